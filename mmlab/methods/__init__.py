"""Training methods, registered by name (`python -m mmlab methods` lists them).

Every module of this package is imported here, so a new method file registers itself
with `@register("name")` and needs no edit of this file.
"""
import importlib
import pkgutil

from mmlab.methods.base import METHODS, Method, make_optimizer, register

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _mod != "base" and not _mod.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod}")

__all__ = ["METHODS", "Method", "make_optimizer", "register"]
