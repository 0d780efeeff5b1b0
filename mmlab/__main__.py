import sys

from mmlab.cli import main

sys.exit(main())
