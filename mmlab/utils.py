"""Small shared helpers: atomic writes, seeding, devices, hashing."""
from __future__ import annotations

import hashlib
import io
import json
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch


def cache_root() -> Path:
    """Where prepared data and run results are cached ($MMLAB_CACHE, else ~/.cache/mmlab)."""
    root = Path(os.environ.get("MMLAB_CACHE", Path.home() / ".cache" / "mmlab"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then rename: readers never
    see a half-written file, and a crash leaves the previous version intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_torch_save(obj, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def atomic_write_json(obj, path: Path) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def select_device(device: str = "auto") -> torch.device:
    """'auto' picks CUDA, then MPS, then CPU; an explicit name is validated."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available here; "
                           "use device='cpu' or 'auto'")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError(f"device {device!r} requested but MPS is not available; use 'cpu' or 'auto'")
    return dev


def check_range(name: str, value, lo=None, hi=None, integer: bool = False, allow_none: bool = False,
                lo_open: bool = False, hi_open: bool = False, owner: str = "") -> None:
    """Raise ValueError "<owner><name> must be <kind> <range>, got <value>" when `value` lies
    outside the range (NaN, inf, a non-number, a bool, or a fraction where an integer is
    needed are out of range too)."""
    if value is None and allow_none:
        return
    lb = "" if lo is None else (f"> {lo}" if lo_open else f">= {lo}")
    ub = "" if hi is None else (f"< {hi}" if hi_open else f"<= {hi}")
    want = ("an integer" if integer else "a number") + " " + (" and ".join(b for b in (lb, ub) if b) or "(finite)")
    want += " (or None)" if allow_none else ""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    ok = ok and bool(np.isfinite(value)) and (not integer or float(value) == int(value))
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi
    if not ok:
        raise ValueError(f"{owner}{name} must be {want}, got {value!r}")


def stable_hash(obj) -> str:
    """sha256 of the canonical JSON of obj (sorted keys), first 16 hex digits."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def code_version(root: Path | None = None) -> str:
    """mmlab version plus a hash of every source file of the package: the version a chapter
    header shows. Cached results are keyed more finely, on the code each one executes
    (mmlab.deps)."""
    import sys
    __version__ = sys.modules["mmlab"].__version__      # a lookup: see mmlab.deps.code_hash
    h = hashlib.sha256(__version__.encode())
    root = Path(root or Path(__file__).parent)
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return f"{__version__}+{h.hexdigest()[:12]}"
