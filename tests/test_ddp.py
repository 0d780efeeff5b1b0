"""One run across 2 processes (DDP, gloo on CPU) through the real launcher:

    python -m torch.distributed.run --nproc_per_node=2 -m mmlab.distributed --dataset ... --method ...

(a) equals one process on the same global batches, (b) resumes exactly from a checkpoint,
(c) only process 0 writes files. Every process records the files it writes through an audit
hook (a sitecustomize.py put on PYTHONPATH for the launch only), so (c) checks what rank 1
did, not only what is left on disk.

Tolerance: the two runs see the same global batches from the same initial weights; they
differ only in the order of float32 sums (each process's slice mean, then the weighted
all-reduce, instead of one mean over the batch; 63 samples per batch split 32/31, so the
n_r / N weighting is exercised). That moves a loss by ~1e-7 per step (measured: <= 2e-7 over
these 10 steps), so losses must agree within 1e-5 and accuracies (counts of argmax over
80 test / 32 val samples, far from ties at this precision) exactly.
"""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mmlab.data import load_dataset
from mmlab.data.base import BatchLoader
from mmlab.distributed import DDP_METHODS, ShardedLoader, main, sync_batchnorm

TOL = 1e-5
DATA = ["--dataset", "synthetic", "--method", "concat", "--data-opt", "n_samples=400", "--batch-size", "63",
        "--no-probe"]

AUDIT = '''
import os
_dir, _rank = os.environ.get("MMLAB_TEST_AUDIT"), os.environ.get("RANK")
if _dir and _rank is not None:            # a torchrun worker: log every file it writes
    _log = open(os.path.join(_dir, f"rank{_rank}.log"), "a", buffering=1)
    _WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def _hook(event, args):
        if event == "open":
            path, mode, flags = args
            if not (mode and any(c in mode for c in "wax+")) and not (mode is None and flags & _WRITE):
                return
            paths = [path]
        elif event in ("os.rename", "os.replace", "os.link", "os.symlink"):
            paths = list(args[:2])
        elif event in ("os.remove", "os.unlink", "os.mkdir", "os.rmdir", "os.truncate", "shutil.rmtree"):
            paths = [args[0]]
        else:
            return
        for p in paths:
            _log.write(f"{event}\\t{os.fsdecode(p) if isinstance(p, (str, bytes, os.PathLike)) else p}\\n")

    import sys
    sys.addaudithook(_hook)
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(root: Path, tag: str, args: list) -> dict:
    """Launch 2 processes on `args`; {"out": parsed JSON or None, "logs": {rank: [(event, path)]}}."""
    audit = root / "audit" / tag
    audit.mkdir(parents=True)
    env = {**os.environ, "MMLAB_CACHE": str(root / "cache"), "MMLAB_TEST_AUDIT": str(audit),
           "PYTHONPATH": os.pathsep.join([str(root / "site"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "mmlab.distributed", *args]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    logs = {r: [tuple(line.split("\t")) for line in (audit / f"rank{r}.log").read_text().splitlines()]
            for r in (0, 1)}
    return {"out": json.loads(p.stdout) if "--json" in args else None, "logs": logs}


@pytest.fixture(scope="module")
def launches(tmp_path_factory):
    """Uninterrupted 2-epoch run (cached, checkpointed); 1 epoch; resumed to 2 epochs."""
    root = tmp_path_factory.mktemp("ddp")
    (root / "site").mkdir()
    (root / "site" / "sitecustomize.py").write_text(AUDIT)
    t0 = time.perf_counter()
    full = _torchrun(root, "full", [*DATA, "--epochs", "2", "--checkpoint-dir", str(root / "ck_full"), "--json"])
    part = _torchrun(root, "part", [*DATA, "--epochs", "1", "--checkpoint-dir", str(root / "ck_part"),
                                    "--no-cache"])
    resumed = _torchrun(root, "resumed", [*DATA, "--epochs", "2", "--checkpoint-dir", str(root / "ck_part"),
                                          "--resume", "--no-cache", "--json"])
    print(f"3 launches in {time.perf_counter() - t0:.1f}s")
    return root, {"full": full, "part": part, "resumed": resumed}


def _close(a: dict, b: dict, path: str = "") -> None:
    """Same keys; floats named *loss*/map within TOL, every other number (accuracies) equal."""
    assert set(a) == set(b), path
    for k in a:
        if isinstance(a[k], dict):
            _close(a[k], b[k], f"{path}.{k}")
        elif k in ("loss", "map", "f1"):
            assert abs(a[k] - b[k]) <= TOL, (f"{path}.{k}", a[k], b[k])
        else:
            assert a[k] == b[k], (f"{path}.{k}", a[k], b[k])


def _rows(history) -> list:
    return [{k: r[k] for k in ("epoch", "train", "val")} for r in history]


def test_ddp_equals_one_process_on_the_same_global_batches(launches):
    from mmlab.runner import RunConfig, run
    ddp = launches[1]["full"]["out"]
    cfg = RunConfig(dataset="synthetic", method="concat", epochs=2, batch_size=63, probe=False,
                    dataset_options={"n_samples": 400})
    one = json.loads(json.dumps(run(cfg, cache=False).to_json()))      # as the launch printed it
    assert ddp["config"] == one["config"] and ddp["device"] == one["device"]     # the very same run
    assert ddp["best_epoch"] == one["best_epoch"]
    _close(ddp["metrics"], one["metrics"])
    for r_ddp, r_one in zip(_rows(ddp["history"]), _rows(one["history"]), strict=True):
        _close(r_ddp, r_one)
    assert one["metrics"]["test"]["acc"] > 0.5                # it learned (4 classes)


def test_ddp_resume_equals_uninterrupted(launches):
    root, runs = launches
    full, resumed = runs["full"]["out"], runs["resumed"]["out"]
    assert [r["epoch"] for r in resumed["history"]] == [0, 1]
    # resuming replays the same steps on the same slices: equal, not merely close
    assert _rows(resumed["history"]) == _rows(full["history"])
    assert resumed["metrics"] == full["metrics"]
    a = torch.load(root / "ck_full" / "last.pt", weights_only=True)
    b = torch.load(root / "ck_part" / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 1
    assert list(a["model"]) == list(b["model"]) and not any(k.startswith("module.") for k in a["model"])
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_only_rank_0_writes(launches):
    root, runs = launches
    watched = [str(root / d) for d in ("cache", "ck_full", "ck_part")]

    def writes(log):
        return [(e, p) for e, p in log if any(p.startswith(w) for w in watched)]

    for tag, r in runs.items():
        assert writes(r["logs"][1]) == [], (tag, writes(r["logs"][1]))
    # the hook does see writes: rank 0's checkpoints and cache entry, renamed into place
    renamed = {Path(p).name for e, p in writes(runs["full"]["logs"][0]) if e in ("os.rename", "os.replace")}
    assert {"last.pt", "best.pt"} <= renamed and any(n.endswith(".json") for n in renamed)
    assert sorted(p.name for p in (root / "ck_full").iterdir()) == ["best.pt", "last.pt"]
    cached = sorted(p.suffix for p in (root / "cache" / "runs").iterdir() if not p.name.startswith("."))
    assert cached == [".json", ".pt"]                         # one result and its weights


@pytest.mark.parametrize("world,batch", [(2, 63), (3, 64), (2, 7)])
def test_sharded_loader_slices_every_global_batch(world, batch):
    """The slices of all processes, in rank order, are the global batch of one process;
    shares n_r / N sum to 1; a last global batch with fewer samples than processes is dropped."""
    data = load_dataset("synthetic", n_samples=400).train                 # 288 samples
    whole = BatchLoader(data, batch, shuffle=True, seed=3)
    whole.set_epoch(2)
    shards = [ShardedLoader(BatchLoader(data, batch, shuffle=True, seed=3), r, world) for r in range(world)]
    for s in shards:
        s.set_epoch(2)
    steps = list(zip(*[[(b["index"], s.share) for b in s] for s in shards]))
    glob = [b["index"] for b in whole]
    assert len(steps) == len(shards[0]) and len(glob) - len(steps) == int(len(glob[-1]) < world)
    for g, parts in zip(glob, steps):
        assert torch.equal(torch.cat([idx for idx, _ in parts]), g)
        assert abs(sum(share for _, share in parts) - 1) < 1e-12
        assert max(len(i) for i, _ in parts) - min(len(i) for i, _ in parts) <= 1


def test_unsupported_methods_are_refused_by_name(capsys):
    assert main(["--dataset", "synthetic", "--method", "mla", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "'mla' is not supported across processes" in err and all(m in err for m in DDP_METHODS)


def test_batchnorm_becomes_syncbatchnorm_on_cuda_only():
    from mmlab.models import ResNet18
    net = sync_batchnorm(ResNet18(), torch.device("cuda"), warn=False)      # conversion only, no CUDA needed
    kinds = {type(m) for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    assert kinds == {torch.nn.SyncBatchNorm}
    with pytest.warns(UserWarning, match="SyncBatchNorm needs CUDA"):
        cpu = sync_batchnorm(ResNet18(), torch.device("cpu"))
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in cpu.modules())
