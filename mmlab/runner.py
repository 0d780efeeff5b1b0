"""`mmlab.run(config) -> Result`: train, evaluate, probe, and cache the result on disk.

The cache key is a hash of the whole config, of the code the run executes (mmlab version
plus the source of the runner, trainer, models, data base, the method's and the dataset's
modules and what they import: `mmlab.deps.run_code_version`) and of the device type the
config resolves to, so a changed config or changed code never gets a stale result, while an
edit of another method, of configs, studies, notebooks or the book keeps it. Results are
written atomically as JSON under $MMLAB_CACHE/runs/, each run's weights beside it.

`analysis(cfg, fn, **params)` caches what an analysis of a trained model returns (probes,
t-SNE, noise grids, retrieval) the same way, keyed by the run's key, the analysis
function's code and its parameters, under $MMLAB_CACHE/analyses/.
"""
from __future__ import annotations

import importlib
import inspect
import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

import numpy as np
import torch

from mmlab.analysis.imbalance import joint_only_accuracy
from mmlab.analysis.metrics import classification_metrics
from mmlab.analysis.probe import probe_encoders
from mmlab.data import load_dataset
from mmlab.data.base import BatchLoader
from mmlab.methods import METHODS
from mmlab.train import TRAIN_RANGES, TrainConfig, Trainer, check_options
from mmlab.deps import code_hash, run_code_version
from mmlab.utils import atomic_torch_save, atomic_write_bytes, atomic_write_json, cache_root, select_device, stable_hash


# the run's numeric options and their valid ranges (the CLI's and RunConfig's checks)
RUN_RANGES = {**{k: v for k, v in TRAIN_RANGES.items() if k != "eval_batch_size"},
              "val_fraction": dict(lo=0, hi=1, lo_open=True, hi_open=True),
              "probe_max_train": dict(lo=1, integer=True, allow_none=True),
              "train_subset": dict(lo=1, integer=True, allow_none=True),
              "missing_rate": dict(lo=0, hi=1, hi_open=True)}


@dataclass
class RunConfig:
    dataset: str
    method: str
    seed: int = 0
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    device: str = "auto"
    amp: str = "auto"
    amp_dtype: str = "auto"                               # auto: bfloat16 where supported, else float16
    channels_last: str = "auto"                           # ResNet encoders NHWC: auto (CUDA only) | on | off
    val_fraction: float = 0.1
    dataset_options: dict = field(default_factory=dict)   # e.g. {"image_patch": 14}
    method_options: dict = field(default_factory=dict)    # e.g. {"modality": "image", "feature_dim": 64}
    probe: bool = True                                    # linear probes, trained and random encoders
    probe_max_train: Optional[int] = 10000
    train_subset: Optional[int] = None                    # stratified seeded subsample of train (smoke runs)
    nonfinite: str = "raise"                              # NaN/inf loss: "raise", or "stop" and keep the best epoch
    missing_rate: float = 0.0                             # each modality of each sample absent with this
                                                          # probability, in train, val and test (MLA Table 2)
    train_missing: dict = field(default_factory=dict)     # {modality: fraction of TRAINING samples without it}
    lr_step: Optional[int] = None                         # StepLR every lr_step epochs (TrainConfig)
    lr_gamma: float = 0.1
    track: tuple = ()                                     # per-epoch measurements (TrainConfig.track)

    def __post_init__(self):
        check_options(self, RUN_RANGES, "")
        self.track = tuple(self.track)            # a list from JSON or the CLI names the same run
        for name in ("dataset_options", "method_options", "train_missing"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a dict, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def hash(self, root=None) -> str:
        """Config + code version + the device type "auto" resolves to here (CPU fp32 and CUDA
        AMP results never share a key). Method and dataset options equal to their defaults
        are dropped first, so {"final": "na"} and {} name the same run."""
        from mmlab.train import resolve_amp_dtype
        device = select_device(self.device)
        dev = device.type
        amp = self.amp == "on" or (self.amp == "auto" and dev == "cuda")
        if amp:                  # which half precision (bf16 / fp16) the device resolves to
            amp = str(resolve_amp_dtype(device, self.amp_dtype)).replace("torch.", "")
        cfg = dict(self.to_dict(), method_options=_non_default(self.method_options, _method_defaults(self.method)),
                   dataset_options=_non_default(self.dataset_options, _dataset_defaults(self.dataset)))
        # fields added later with a default that changes nothing stay out of the key (old runs keep theirs)
        cfg = {k: v for k, v in cfg.items() if not (k in _KEY_OPTIONAL and v == _KEY_OPTIONAL[k])}
        return stable_hash({"config": cfg, "code": self.code_version(root), "device": dev, "amp": amp})

    def code_version(self, root=None) -> str:
        """The version of the code this run executes (mmlab.deps.run_code_version), read from
        the installed sources or from a copy of them at `root` (mmlab.bench cache-validity)."""
        return run_code_version(self.method, self.dataset) if root is None else \
            run_code_version(self.method, self.dataset, root=root)

    def train_config(self, **extra) -> TrainConfig:
        names = {f.name for f in fields(TrainConfig)}
        return TrainConfig(**{**{k: v for k, v in self.to_dict().items() if k in names}, **extra})


# RunConfig fields left out of the cache key while they hold these values (fields added after
# runs were cached: a run that does not use them keeps its key)
_KEY_OPTIONAL = {"missing_rate": 0.0, "train_missing": {}, "lr_step": None, "lr_gamma": 0.1, "track": (),
                 "amp_dtype": "auto", "channels_last": "auto"}


def run_transforms(cfg: RunConfig, info) -> tuple:
    """(train transform, eval transform) of a run's missing-modality settings, or (None, None).
    Masks are part of the data: fixed by the split (train seed 0, val/test seed 1), the same for
    every training seed and method, so runs compare on the same missing pattern."""
    from mmlab.data.transforms import Compose, DropModality, MissingModality
    if not cfg.missing_rate and not cfg.train_missing:
        return None, None
    mods = info.modality_names
    unknown = sorted(set(cfg.train_missing) - set(mods))
    if unknown:
        raise ValueError(f"train_missing names modalities {unknown} that {cfg.dataset!r} does not have; it has {mods}")
    train = [MissingModality(mods, cfg.missing_rate, seed=0)] if cfg.missing_rate else []
    train += [DropModality(mods, m, f, seed=0) for m, f in cfg.train_missing.items()]
    evaluate = MissingModality(mods, cfg.missing_rate, seed=1) if cfg.missing_rate else None
    return Compose(*train), evaluate


@dataclass
class Result:
    config: dict
    config_hash: str
    code_version: str
    metrics: dict            # {"val": {...}, "test": {acc, map, f1, per_modality, joint_only}}
    probe: dict              # modality -> linear-probe test accuracy (trained encoder)
    probe_random: dict       # modality -> the same probe on a randomly initialised encoder
    history: list
    best_epoch: int
    wall_s: float
    device: str
    cached: bool = False
    stopped: Optional[dict] = None   # {"epoch", "step", "reason"} if a non-finite loss ended training early
    timings: dict = field(default_factory=dict)   # seconds per phase: data_s, fit_s, test_s, probe_s

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(dataset=self.config["dataset"], method=self.config["method"], seed=self.config["seed"])
        return d


def _defaults(fn) -> dict:
    return {k: p.default for k, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _method_defaults(name: str) -> dict:
    """Keyword defaults of a method's constructor and those of its bases (base last)."""
    if name not in METHODS:
        return {}
    out = {}
    for c in reversed(METHODS.get(name).__mro__):
        if "__init__" in vars(c):
            out.update(_defaults(c.__init__))
    return out


def _dataset_defaults(name: str) -> dict:
    from mmlab.data import DATASETS
    return _defaults(DATASETS.get(name)) if name in DATASETS else {}


def _non_default(options: dict, defaults: dict) -> dict:
    return {k: v for k, v in options.items() if not (k in defaults and _same(defaults[k], v))}


def _same(a, b) -> bool:
    try:
        return type(a) is type(b) and a == b or (isinstance(a, (int, float)) and isinstance(b, (int, float))
                                                 and not isinstance(a, bool) and not isinstance(b, bool) and a == b)
    except Exception:
        return False


def build_method(cfg: RunConfig, info, train_cfg):
    cls = METHODS.get(cfg.method)
    try:
        return cls(info, train_cfg, **cfg.method_options)
    except TypeError as e:
        params = [p for c in cls.__mro__ if "__init__" in vars(c)
                  for p in inspect.signature(c.__init__).parameters if p not in ("self", "info", "train_cfg", "kw")]
        raise TypeError(f"method {cfg.method!r} rejected options {cfg.method_options}: {e}. "
                        f"Accepted options: {sorted(set(params))}") from None


def _cache_path(key: str):
    return cache_root() / "runs" / f"{key}.json"


def cached_result(cfg: RunConfig) -> Optional[Result]:
    """The cached Result of cfg (same config and code version), or None."""
    path = _cache_path(cfg.hash())
    if not path.exists():
        return None
    return load_result_json({**json.loads(path.read_text()), "cached": True})


def run(cfg: RunConfig, cache: bool = True, progress: bool = False, checkpoint_dir: Optional[str] = None,
        resume: bool = False, force: bool = False, wait: bool = True, trainer_cls=None) -> Optional[Result]:
    """Train cfg.method on cfg.dataset and evaluate; cached by (config, code version).
    force=True retrains and rewrites the cache entry even when one exists. Two processes
    (parallel notebooks) asking for the same uncached run train it once: the second waits
    on the run's lock file and then reads the first one's result; with wait=False it
    returns None at once instead (run_many then trains other runs meanwhile). trainer_cls replaces
    the Trainer (mmlab.distributed's DDPTrainer: the same run across processes)."""
    if cache and not force and (hit := cached_result(cfg)) is not None:
        return hit
    if not cache:
        result = _train(cfg, progress, checkpoint_dir, resume, trainer_cls)
        del result._weights
        return result
    with _run_lock(cfg.hash(), wait) as locked:
        if not locked:
            return None
        if not force and (hit := cached_result(cfg)) is not None:
            return hit
        result = _train(cfg, progress, checkpoint_dir, resume, trainer_cls)
        # weights first: a result on disk always has its model beside it
        atomic_torch_save(result.__dict__.pop("_weights"), _model_path(result.config_hash))
        atomic_write_json(result.to_json() | {"cached": False}, _cache_path(result.config_hash))
    return result


@contextmanager
def _run_lock(key: str, wait: bool = True):
    """An exclusive lock on $MMLAB_CACHE/runs/.<key>.lock while the block runs; yields False
    (without blocking) when wait=False and another process holds it."""
    import fcntl
    path = cache_root() / "runs" / f".{key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _train(cfg: RunConfig, progress: bool, checkpoint_dir, resume: bool, trainer_cls=None) -> Result:
    """Train, test and probe cfg; Result.timings holds the seconds of each phase and the
    result carries its model's weights (attribute _weights) for the cache."""
    clock = _Clock()
    with clock("data"):
        splits = load_dataset(cfg.dataset, seed=cfg.seed, val_fraction=cfg.val_fraction, **cfg.dataset_options)
        if cfg.train_subset:
            splits = subsample_train(splits, cfg.train_subset, cfg.seed)
    tcfg = cfg.train_config(progress=progress, checkpoint_dir=checkpoint_dir, resume=resume)
    method = build_method(cfg, splits.info, tcfg)
    method.run_config = cfg       # a method may reuse other cached runs (UMT's teachers)
    with clock("fit"):
        trainer = (trainer_cls or Trainer)(method, splits, tcfg, *run_transforms(cfg, splits.info)).fit()
    with clock("test"):
        metrics = {"val": trainer.history[trainer.best["epoch"]]["val"] if trainer.history else {},
                   "test": evaluate_test(trainer, splits)}
    probe, probe_random = {}, {}
    with clock("probe"):
        if cfg.probe:
            probe = probe_encoders(trainer.model, splits, max_train=cfg.probe_max_train, seed=cfg.seed,
                                   device=trainer.device)
            probe_random = random_probe(cfg, method, splits, trainer.device)
    result = Result(cfg.to_dict(), cfg.hash(), cfg.code_version(), metrics, probe, probe_random,
                    trainer.history, trainer.best["epoch"], clock.total(), str(trainer.device),
                    stopped=trainer.stopped, timings=clock.seconds)
    result._weights = {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}
    return result


def random_probe(cfg: RunConfig, method, splits, device) -> dict:
    """The linear probe of a randomly initialised encoder (the initialisation the trained model
    started from), cached by the initial weights themselves, the data and the probe's code:
    methods that build the same architecture from the same seed share it."""
    import hashlib
    torch.manual_seed(cfg.seed)
    fresh = method.build_model()
    h = hashlib.sha256(repr(fresh).encode())
    for k, v in fresh.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    from mmlab.data import DATASETS
    data = {k: cfg.to_dict()[k] for k in ("dataset", "seed", "val_fraction", "train_subset", "probe_max_train")}
    data["options"] = _non_default(cfg.dataset_options, _dataset_defaults(cfg.dataset))
    key = stable_hash({"weights": h.hexdigest(), "data": data,
                       "code": code_hash(["mmlab.analysis.probe", DATASETS.get(cfg.dataset).__module__])})
    path = cache_root() / "probes" / f"{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    out = probe_encoders(fresh.to(device), splits, max_train=cfg.probe_max_train, seed=cfg.seed, device=device)
    atomic_write_json(out, path)
    return out


class _Clock:
    """Seconds per named phase: `with clock("fit"): ...`; clock.seconds = {"fit_s": ...}."""

    def __init__(self):
        self.seconds, self._t0 = {}, time.perf_counter()

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[f"{name}_s"] = time.perf_counter() - t0

    def total(self) -> float:
        return time.perf_counter() - self._t0


def _model_path(key: str):
    return cache_root() / "runs" / f"{key}.pt"


def trained(cfg: RunConfig):
    """(method, model, splits) of cfg's validation-selected model, in eval mode on CPU.

    Loads the weights cached beside the run's result (training the run first if it is
    not cached), for analyses that need the model itself: noise robustness, retrieval,
    t-SNE, non-linear probes."""
    path = _model_path(cfg.hash())
    if not path.exists():
        run(cfg, cache=True, force=True)
    splits = load_dataset(cfg.dataset, seed=cfg.seed, val_fraction=cfg.val_fraction, **cfg.dataset_options)
    if cfg.train_subset:
        splits = subsample_train(splits, cfg.train_subset, cfg.seed)
    method = build_method(cfg, splits.info, cfg.train_config(device="cpu"))
    model = method.build_model()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return method, model.eval(), splits


def analysis(cfg: RunConfig, fn, **params):
    """fn(method, model, splits, **params) on cfg's trained model, cached on disk by the run's
    key, fn's code (its module and what that imports) and params; a hit skips loading the
    model and the data. fn must be a module-level function of mmlab (a lambda or a function
    defined in a notebook has no stable code to key on)."""
    import pickle
    from mmlab.deps import module_path
    name = f"{fn.__module__}.{fn.__qualname__}"
    if "<" in fn.__qualname__ or module_path(fn.__module__) is None:
        raise ValueError(f"analysis needs a module-level mmlab function, got {name}; pass its "
                         f"parameters as keywords (per_model(runs, probe_rows, max_train=300)), "
                         f"not a lambda or a function defined in a notebook")
    key = stable_hash({"run": cfg.hash(), "fn": name, "code": code_hash([fn.__module__]), "params": params})
    path = cache_root() / "analyses" / f"{key}.pkl"
    if path.exists():
        try:
            return pickle.loads(path.read_bytes())["out"]
        except Exception:           # a corrupt entry is recomputed, never trusted
            path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    out = fn(*trained(cfg), **params)
    entry = {"out": out, "fn": name, "run": cfg.hash(), "seconds": time.perf_counter() - t0}
    atomic_write_bytes(path, pickle.dumps(entry))
    return out


def subsample_train(splits, n: int, seed: int):
    """The same splits with a stratified, seeded subsample of n training samples."""
    from dataclasses import replace
    from sklearn.model_selection import train_test_split
    if n >= len(splits.train):
        return splits
    idx, _ = train_test_split(np.arange(len(splits.train)), train_size=n, random_state=seed,
                              stratify=splits.train.y.numpy())
    return replace(splits, train=splits.train.subset(np.sort(idx)))


def evaluate_test(trainer: Trainer, splits) -> dict:
    """Test metrics of the validation-selected model: fused acc / mAP / macro-F1,
    per-modality accuracy (the method's own per-modality predictions) and joint-only
    accuracy (the method's fused prediction with only that modality present, through its
    own predict: analysis.imbalance.joint_only_accuracy) for multimodal models."""
    p = trainer.predict(splits.test)
    y = p["labels"]
    out = classification_metrics(p["logits"], y)
    out["per_modality"] = {m: float((z.argmax(1) == y).mean()) for m, z in p["per_modality"].items()}
    if len(trainer.model.modalities) > 1:
        loader = BatchLoader(splits.test, trainer.cfg.eval_batch_size, device=trainer.device,
                             transform=trainer.eval_transform)
        out["joint_only"] = joint_only_accuracy(trainer.model, loader, trainer.method.predict)
    return out


def load_result_json(d: dict) -> Result:
    keep = {f.name for f in fields(Result)}
    return Result(**{k: v for k, v in d.items() if k in keep})


def _run_in_worker(cfg: RunConfig, wait: bool = True) -> Optional[dict]:
    # n_jobs single-threaded workers beat one oversubscribed process (torch and BLAS alike)
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(1)
    with threadpool_limits(1):
        r = run(cfg, wait=wait)
        return None if r is None else r.to_json()


def run_many(configs, n_jobs: int = 1, progress: bool = False, executor: Optional[str] = None) -> list:
    """run() over many configs; cached ones return at once, the rest in `n_jobs`
    processes (spawned, one torch thread each). Results come back in input order. A run
    that another process (a notebook built in parallel) is training is left for later, so
    both train disjoint runs of a shared study instead of one waiting for the other.
    executor ("local[:N]", "tcp://host:8786"; default $MMLAB_EXECUTOR) sends the uncached runs
    to a Dask cluster instead (mmlab.executors); the run cache stays the source of truth."""
    # by name, not an import statement: how runs are dispatched never changes their results, so
    # mmlab.executors stays out of every run's code hash (mmlab.deps)
    executors = importlib.import_module("mmlab.executors")
    configs = list(configs)
    results: list = [None] * len(configs)
    todo, first = [], {}            # a config listed twice is trained once
    for i, cfg in enumerate(configs):
        results[i] = cached_result(cfg)
        if results[i] is None and first.setdefault(cfg.hash(), i) == i:
            todo.append(i)
    executor = executors.executor_from_env(executor)
    if executor and todo:
        for i, d in zip(todo, executors.run_on_dask(executor, [configs[i] for i in todo])):
            results[i] = load_result_json(d)
        todo = []
    wait = False
    while todo:                     # pass 1 skips runs locked elsewhere; a pass of only those waits
        step = _run_serial if n_jobs <= 1 or len(todo) <= 1 else _run_parallel
        step(configs, todo, results, n_jobs, wait, progress)
        left = [i for i in todo if results[i] is None]
        wait = len(left) == len(todo)
        todo = left
    for i, cfg in enumerate(configs):      # duplicates share their first occurrence's result
        if results[i] is None:
            results[i] = results[first[cfg.hash()]]
    return results


def _run_serial(configs, todo, results, n_jobs: int, wait: bool, progress: bool) -> None:
    for i in todo:
        results[i] = run(configs[i], progress=progress, wait=wait)


def _run_parallel(configs, todo, results, n_jobs: int, wait: bool, progress: bool) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context("spawn")) as ex:
        for i, d in zip(todo, ex.map(_run_in_worker, [configs[i] for i in todo], [wait] * len(todo))):
            results[i] = None if d is None else load_result_json(d)
