"""Your own datasets and methods, visible everywhere: `MMLAB_PLUGINS=mypkg.datasets,mypkg.methods`.

A plugin is any importable module that registers datasets or methods with the library's own
decorators when it is imported:

    # mypkg/datasets.py
    from mmlab.data.base import DatasetInfo, MMData, Splits, register_dataset

    @register_dataset("mydata")
    def build(seed=0, val_fraction=0.1):
        ...                                   # return Splits(train, val, test, DatasetInfo(...))

Name it once and every process that imports mmlab imports it too: the CLI (`python -m mmlab
datasets` lists it), `run_many`'s spawned workers, Dask workers (the module names travel with
each task) and every notebook (`-p plugins '["mypkg.datasets"]'`, which sets the variable for
the workers the notebook starts). Runs of a plugin's dataset or method are cached like any
other, keyed on the plugin module's source too (mmlab.deps), so editing it retrains them.
"""
from __future__ import annotations

import importlib
import os
from typing import Iterable, List, Optional

ENV = "MMLAB_PLUGINS"
_loaded: List[str] = []


def names_from_env() -> List[str]:
    """The module names in $MMLAB_PLUGINS (comma- or whitespace-separated)."""
    return [n for n in os.environ.get(ENV, "").replace(",", " ").split() if n]


def load_plugins(names: Optional[Iterable[str]] = None) -> List[str]:
    """Import each plugin module once: `names` (also added to $MMLAB_PLUGINS, so processes
    started from here import them too) and those already in $MMLAB_PLUGINS. Returns every
    plugin loaded so far. A module that cannot be imported is an error naming it and the fix."""
    if isinstance(names, str):
        names = [names]
    wanted = names_from_env() + [n for n in (names or []) if n not in names_from_env()]
    if wanted:
        os.environ[ENV] = ",".join(wanted)
    for name in wanted:
        if name in _loaded:
            continue
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ImportError(f"plugin module {name!r} (named in ${ENV} or plugins=) cannot be imported: {e}. "
                              f"Put its folder on PYTHONPATH (or pip install it), or remove it from ${ENV}") from e
        _loaded.append(name)
    return list(_loaded)
