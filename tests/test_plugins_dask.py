"""Your own data through the plugin path (CLI, run_many's workers, a chapter's study) and runs
spread over a real Dask LocalCluster on 127.0.0.1: same results as the local pool, a killed
worker's run retried, no result lost or duplicated, the run cache the single source of truth."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

PLUGIN = textwrap.dedent('''
    """A user's own dataset and method, registered with mmlab's decorators."""
    import os
    import time

    import numpy as np
    import torch

    from mmlab.data.base import DatasetInfo, MMData, Splits, register_dataset, stratified_val_split
    from mmlab.methods import register
    from mmlab.methods.joint import Concat


    @register_dataset("plugdata")
    def build(seed=0, val_fraction=0.1, n=400):
        rng = np.random.default_rng(7)                              # fixed data, seed picks val
        y = np.arange(n) % 3
        strong = np.eye(3)[y] * 2.0 + rng.standard_normal((n, 3))
        weak = np.eye(3)[y] * 0.5 + rng.standard_normal((n, 3))
        full = MMData({"strong": torch.tensor(strong, dtype=torch.float32),
                       "weak": torch.tensor(weak, dtype=torch.float32)}, torch.tensor(y))
        train, val = stratified_val_split(full.subset(np.arange(0, 300)), val_fraction, seed)
        info = DatasetInfo(name="plugdata", modalities={"strong": (3,), "weak": (3,)},
                           class_names=["a", "b", "c"],
                           encoders={m: ("mlp", {"in_dim": 3}) for m in ("strong", "weak")},
                           description="a user's plugin dataset")
        return Splits(train, val, full.subset(np.arange(300, n)), info)


    @register("slowconcat")
    class SlowConcat(Concat):
        """concat that sleeps per epoch and leaves a mark per start (the kill test)."""
        description = "concat, slowly"

        def train_epoch(self, trainer, loader, epoch):
            marks = os.environ.get("PLUG_MARKS")
            if marks and epoch == 0:
                with open(os.path.join(marks, f"{os.getpid()}-{time.time_ns()}"), "w") as f:
                    f.write(str(self.run_config.seed if hasattr(self, "run_config") else -1))
            time.sleep(float(os.environ.get("PLUG_SLEEP", "0")))
            return super().train_epoch(trainer, loader, epoch)
''')


@pytest.fixture
def plugin(tmp_path, monkeypatch, run_cache):
    """A plugin module `userplug` on PYTHONPATH and in $MMLAB_PLUGINS, loaded here."""
    pkg = tmp_path / "plugins"
    pkg.mkdir()
    (pkg / "userplug.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(pkg))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(pkg), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("MMLAB_PLUGINS", "userplug")
    from mmlab import plugins
    from mmlab.data import DATASETS
    from mmlab.methods import METHODS
    monkeypatch.delitem(sys.modules, "userplug", raising=False)       # each test imports its own copy
    monkeypatch.setattr(plugins, "_loaded", [])
    monkeypatch.setattr(DATASETS, "_items", dict(DATASETS._items))
    monkeypatch.setattr(METHODS, "_items", dict(METHODS._items))
    DATASETS._items.pop("plugdata", None)
    METHODS._items.pop("slowconcat", None)
    plugins.load_plugins()
    return pkg


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "mmlab", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def test_plugin_dataset_and_method_are_visible_to_the_cli(plugin):
    out = _cli("datasets")
    assert out.returncode == 0, out.stderr
    assert "plugdata" in out.stdout and "strong (3,)" in out.stdout
    assert "slowconcat" in _cli("methods").stdout
    r = _cli("train", "--dataset", "plugdata", "--method", "concat", "--epochs", "2", "--no-probe", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["metrics"]["test"]["acc"] > 0.5        # 3 classes: chance is 1/3


def test_a_missing_plugin_is_an_error_naming_it_and_the_fix(tmp_path):
    r = _cli("methods", env={"MMLAB_PLUGINS": "no_such_plugin_mod"})
    assert r.returncode != 0
    assert "no_such_plugin_mod" in r.stderr and "PYTHONPATH" in r.stderr


def test_a_chapter_study_runs_on_a_plugin_dataset_through_the_parallel_path(plugin):
    from mmlab.configs.imbalance import imbalance_results
    from mmlab.studies import imbalance_frame
    res = imbalance_results("plugdata", "smoke", ("concat", "sum"), seeds=(0, 1), n_jobs=2, device="cpu")
    assert [r.cached for r in res] == [False] * 8                      # trained by the 2 spawned workers
    df = imbalance_frame(res)
    assert {"concat", "sum"} <= set(df.method) and set(df.modality) == {"strong", "weak"}
    assert all(r.metrics["test"]["acc"] > 0.5 for r in res if r.config["method"] != "unimodal"
               or r.config["method_options"]["modality"] == "strong")


def test_a_chapter_notebook_runs_on_a_plugin_dataset(plugin, tmp_path):
    """papermill chapter 01 -p plugins userplug -y 'datasets: [plugdata]' (what a user runs)."""
    import nbformat
    import papermill as pm
    from pathlib import Path
    out = tmp_path / "out.ipynb"
    nb_in = Path(__file__).resolve().parents[1] / "notebooks" / "01-modality-imbalance.ipynb"
    os.environ.pop("MMLAB_PLUGINS")                                  # the notebook parameter names it
    pm.execute_notebook(str(nb_in), str(out), parameters=dict(profile="smoke", plugins="userplug", device="cpu",
                        datasets=["plugdata"], n_jobs=1), kernel_name="python3", progress_bar=False,
                        cwd=str(tmp_path))
    text = "".join(str(o.get("data", {}).get("text/html", "")) for c in nbformat.read(out, 4).cells
                   if c.cell_type == "code" for o in c.get("outputs", []))
    assert "plugdata" in text and "no stand-in: the dataset itself" in text
    assert "0 reproduced" in text and "untested" in text            # no paper makes a claim on it


def test_editing_a_plugin_changes_its_runs_keys(plugin):
    from mmlab.runner import RunConfig
    import importlib
    cfg = RunConfig(dataset="plugdata", method="concat", epochs=1, device="cpu")
    before = cfg.hash()
    (plugin / "userplug.py").write_text(PLUGIN.replace("np.eye(3)[y] * 2.0", "np.eye(3)[y] * 2.5"))
    from mmlab import deps
    deps._imported.cache_clear()
    assert RunConfig(dataset="plugdata", method="concat", epochs=1, device="cpu").hash() != before
    importlib.import_module("userplug")


# --- Dask --------------------------------------------------------------------------------------

def _configs(method="concat", seeds=(0, 1, 2), epochs=2):
    from mmlab.runner import RunConfig
    return [RunConfig(dataset="plugdata", method=method, seed=s, epochs=epochs, device="cpu", probe=False)
            for s in seeds]


def _strip(r):
    return {k: r.metrics["test"][k] for k in ("acc", "map", "f1")}, [h["val"] for h in r.history]


@pytest.fixture
def cluster(plugin):
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as lc, Client(lc) as client:
        yield client


def test_dask_results_equal_the_local_pool_and_land_in_the_cache(cluster, run_cache, monkeypatch):
    from mmlab import executors
    from mmlab.runner import run_many
    monkeypatch.setitem(executors._clients, "tcp://test", cluster)
    cfgs = _configs()
    local = run_many(cfgs, n_jobs=2)
    for p in (run_cache / "runs").glob("*"):                        # empty the cache: Dask trains anew
        p.unlink()
    dist = run_many(cfgs + cfgs[:1], executor="tcp://test")          # a run listed twice trains once
    assert [_strip(a) for a in local] == [_strip(b) for b in dist[:3]]
    assert dist[3].config_hash == dist[0].config_hash
    assert sorted(p.stem for p in (run_cache / "runs").glob("*.json")) == sorted(c.hash() for c in cfgs)
    again = run_many(cfgs)                                          # a cache hit here, trained there
    assert all(r.cached for r in again)


def test_a_killed_worker_leaves_no_result_and_its_run_is_retried(cluster, run_cache, tmp_path, monkeypatch):
    from mmlab import executors
    from mmlab.runner import run_many
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("PLUG_MARKS", str(marks))
    monkeypatch.setenv("PLUG_SLEEP", "1.5")
    cluster.run(lambda m=str(marks): os.environ.update(PLUG_MARKS=m, PLUG_SLEEP="1.5"))
    monkeypatch.setitem(executors._clients, "tcp://test", cluster)
    cfg = _configs("slowconcat", seeds=(5,), epochs=3)[0]
    key = f"mmlab-run-{cfg.hash()}"
    import threading
    out = {}
    t = threading.Thread(target=lambda: out.update(r=run_many([cfg], executor="tcp://test")))
    t.start()
    victim = None
    for _ in range(300):                                            # wait until it is training
        busy = [w for w, keys in cluster.processing().items() if key in keys]
        if busy and any(marks.iterdir()):
            victim = busy[0]
            break
        time.sleep(0.1)
    assert victim is not None, "the run never started on a worker"
    assert not (run_cache / "runs" / f"{cfg.hash()}.json").exists()
    os.kill(cluster.run(os.getpid, workers=[victim])[victim], signal.SIGKILL)   # kill the worker mid-run
    t.join(timeout=240)
    assert not t.is_alive()
    r = out["r"][0]
    assert len(list(marks.iterdir())) == 2                           # started twice: once killed, once retried
    assert len(list((run_cache / "runs").glob("*.json"))) == 1 and r.config_hash == cfg.hash()
    assert len(r.history) == 3 and not list((run_cache / "runs").glob("*.tmp"))
