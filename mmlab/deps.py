"""Code versions keyed on what a computation imports, so an edit invalidates only what it can change.

`code_hash(["mmlab.runner", "mmlab.methods.joint", "mmlab.data.avmnist"])` hashes the source of
those modules and of every mmlab module they import (statically, transitively, lazy imports
inside functions included). A package's `__init__.py` counts only where the package itself
is imported (`from mmlab.models import build_model`), not when one of its submodules is:
package files hold imports, re-exports and discovery only (`mmlab/methods/__init__.py` imports
every method file by discovery, and a run of `concat` must not depend on `reconboost.py`;
exporting a new analysis from `mmlab/analysis/__init__.py` must not invalidate every run).

So, for a training run (`run_modules`): the runner, trainer, data base and models (the core),
the method's module and what it imports, and the dataset's module and what it imports.
Configs, studies, notebooks, viz, claims and the book are not imported by any of these and
never enter a run's key; adding a method or dataset file leaves every other key as it was.
A dependency looked up by registry name at run time is invisible here: import it statically
(as `umt` imports `unimodal`).
"""
from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path
from typing import FrozenSet, Iterable, Optional

PACKAGE = "mmlab"
ROOT = Path(__file__).resolve().parent


def module_path(name: str, root: Path = ROOT) -> Optional[Path]:
    """The source file of an mmlab module name (package -> its __init__.py), or of a plugin
    module (mmlab.plugins: a user's module named in $MMLAB_PLUGINS, hashed like ours), or None."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return plugin_path(name)
    base = root.joinpath(*parts[1:])
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def plugin_path(name: str) -> Optional[Path]:
    """The source file of a loaded plugin module or of one of its package's modules, else None
    (third-party libraries never enter a code hash: their versions are pinned)."""
    import sys
    from mmlab.plugins import names_from_env
    roots = {n.split(".")[0] for n in names_from_env()}
    mod = sys.modules.get(name)
    if name.split(".")[0] not in roots or mod is None or not getattr(mod, "__file__", None):
        return None
    path = Path(mod.__file__)
    return path if path.suffix == ".py" and path.is_file() else None


def _rel(path: Path, root: Path) -> str:
    """A file's name in a code hash: relative to mmlab's root, or the module's own path for a plugin."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return path.name


def _resolve(node: ast.ImportFrom, current: str, is_pkg: bool) -> str:
    if not node.level:
        return node.module or ""
    pkg = current.split(".") if is_pkg else current.split(".")[:-1]
    pkg = pkg[:len(pkg) - node.level + 1]
    return ".".join(pkg + ([node.module] if node.module else []))


def imported_modules(name: str, root: Path = ROOT) -> FrozenSet[str]:
    """mmlab modules that `name`'s source imports anywhere in the file (no transitivity)."""
    st = module_path(name, root).stat()
    return _imported(name, str(root), (st.st_mtime_ns, st.st_size))


@lru_cache(maxsize=None)
def _imported(name: str, root_s: str, stamp: tuple) -> FrozenSet[str]:   # stamp: re-parse on edit
    root = Path(root_s)
    path = module_path(name, root)
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            cands = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = _resolve(node, name, path.name == "__init__.py")
            cands = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        out.update(c for c in cands if module_path(c, root) is not None)
    return frozenset(out)


def closure(names: Iterable[str], root: Path = ROOT) -> FrozenSet[str]:
    """The modules `names` depend on: themselves and what they import, transitively."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen or module_path(name, root) is None:
            continue
        seen.add(name)
        todo.extend(imported_modules(name, root))
    return frozenset(seen)


def code_hash(names: Iterable[str], root: Path = ROOT) -> str:
    """mmlab version + sha256 of the closure's files (path and bytes, sorted), 12 hex digits."""
    import sys
    # the version by lookup, not `from mmlab import __version__`: that statement would put the
    # package's __init__ (and all it imports: runner, trainer, models) in every code hash,
    # so prepared data (mmlab.data.base.cached_prepare) would be rebuilt on any trainer edit
    __version__ = sys.modules[PACKAGE].__version__
    h = hashlib.sha256(__version__.encode())
    for name in sorted(closure(names, root)):
        path = module_path(name, root)
        h.update(_rel(path, root).encode())
        h.update(path.read_bytes())
    return f"{__version__}+{h.hexdigest()[:12]}"


def run_modules(method: str, dataset: str) -> list:
    """The module names a training run of (method, dataset) executes: the runner (core), the
    registered method class's module and the registered dataset builder's module."""
    import importlib                  # registries by lookup: the hasher's own imports stay out of hashes
    DATASETS = importlib.import_module("mmlab.data").DATASETS
    METHODS = importlib.import_module("mmlab.methods").METHODS
    mods = ["mmlab.runner"]
    if method in METHODS:
        mods.append(METHODS.get(method).__module__)
    if dataset in DATASETS:
        mods.append(DATASETS.get(dataset).__module__)
    return mods


def run_code_version(method: str, dataset: str, root: Path = ROOT) -> str:
    """The code version of a training run: code_hash of run_modules(method, dataset)."""
    return code_hash(run_modules(method, dataset), root)
