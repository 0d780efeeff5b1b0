"""`make lab`: register this environment as the Jupyter kernel "mmlab" and open JupyterLab.

    python -m mmlab.lab                 # register (per user) and start JupyterLab on notebooks/
    python -m mmlab.lab --no-start      # only register the kernel
    python -m mmlab.lab --prefix DIR    # register under DIR/share/jupyter (a test, a shared install)

The kernel runs this interpreter (the project's .venv), so a notebook opened with it in any
JupyterLab imports this checkout's mmlab; the notebooks themselves name the default
"python3" kernel, which is the same interpreter when JupyterLab runs from the .venv.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

KERNEL_NAME = "mmlab"
DISPLAY_NAME = "mmlab (.venv)"
ROOT = Path(__file__).resolve().parents[1]


def install_kernel(prefix: str | None = None) -> Path:
    """Write the "mmlab" kernelspec (this interpreter) per user, or under `prefix`; returns its directory."""
    from ipykernel.kernelspec import install
    return Path(install(user=prefix is None, prefix=prefix, kernel_name=KERNEL_NAME, display_name=DISPLAY_NAME))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m mmlab.lab")
    p.add_argument("--prefix", help="install the kernelspec under PREFIX/share/jupyter instead of per user")
    p.add_argument("--no-start", action="store_true", help="register the kernel only")
    a = p.parse_args(argv)
    path = install_kernel(a.prefix)
    print(f"registered Jupyter kernel {KERNEL_NAME!r} ({sys.executable}) in {path}")
    if not a.no_start:
        jupyter = Path(sys.executable).with_name("jupyter")
        os.execv(str(jupyter), [str(jupyter), "lab", str(ROOT / "notebooks")])


if __name__ == "__main__":
    main()
