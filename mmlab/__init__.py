"""mmlab: a thin library to reproduce modality-imbalance papers on embedded real data."""
__version__ = "0.1.0"

from mmlab.data import load_dataset, DATASETS  # noqa: E402
from mmlab.methods import METHODS, Method, register  # noqa: E402
from mmlab.models import build_model  # noqa: E402
from mmlab.train import TrainConfig, Trainer, NonFiniteLossError  # noqa: E402
from mmlab.runner import RunConfig, Result, run  # noqa: E402

__all__ = ["__version__", "load_dataset", "DATASETS", "METHODS", "Method", "register", "build_model",
           "TrainConfig", "Trainer", "NonFiniteLossError", "RunConfig", "Result", "run"]

# the user's own datasets and methods ($MMLAB_PLUGINS, mmlab.plugins): every process that imports
# mmlab (the CLI, run_many's workers, Dask workers, notebooks) registers them
from mmlab.plugins import load_plugins  # noqa: E402

load_plugins()
