"""What a cached result is keyed on (mmlab.deps): a run on the code it executes, prepared data
on its dataset's module, an analysis on the run and its own code. Edits elsewhere keep them."""
import shutil
from pathlib import Path

import pytest

import mmlab
from mmlab import deps

RUNS = [("concat", "avmnist"), ("reconboost", "mfeat"), ("umt", "watch"), ("ogm_ge", "cgm")]


@pytest.fixture
def pkg(tmp_path):
    """A private copy of the mmlab sources to edit."""
    root = tmp_path / "mmlab"
    shutil.copytree(Path(mmlab.__file__).parent, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _keys(root):
    return {run: deps.run_code_version(*run, root=root) for run in RUNS}


def _edit(root, rel, text="\n# an edit\n"):
    path = root / rel
    path.write_text(path.read_text() + text if path.exists() else text)


@pytest.mark.parametrize("rel", ["methods/mla.py", "data/newset.py", "configs.py", "studies.py", "viz.py",
                                 "book.py", "claims.py", "notebook.py", "cli.py", "bench.py",
                                 "analysis/embed.py", "analysis/__init__.py", "papers/__init__.py"])
def test_adding_a_method_or_editing_presentation_keeps_every_run_key(pkg, rel):
    before = _keys(pkg)
    _edit(pkg, rel, "from mmlab.methods.base import Method, register\n\n@register('new')\nclass New(Method):\n"
                    "    pass\n" if rel.endswith("mla.py") else "\n# an edit\n")
    assert _keys(pkg) == before


@pytest.mark.parametrize("rel, changed", [
    ("train.py", {r for r in RUNS}),                                  # the trainer: every run
    ("models/net.py", {r for r in RUNS}),
    ("methods/reconboost.py", {("reconboost", "mfeat")}),             # a method: its own runs only
    ("methods/ogm_ge.py", {("ogm_ge", "cgm")}),
    ("methods/unimodal.py", {("umt", "watch"), ("reconboost", "mfeat")}),   # UMT's teachers, RB's code init
    ("methods/tmc.py", set()),                                        # another method: no run here
    ("methods/combine.py", {("reconboost", "mfeat"), ("ogm_ge", "cgm")}),   # shared helpers: their users
    ("data/mfeat.py", {("reconboost", "mfeat")}),                     # a dataset: its runs only
    ("data/cgm.py", {("ogm_ge", "cgm")}),
    ("data/mnist.py", {("concat", "avmnist"), ("ogm_ge", "cgm")}),    # the MNIST both build on
])
def test_editing_executed_code_invalidates_exactly_the_runs_that_use_it(pkg, rel, changed):
    before = _keys(pkg)
    _edit(pkg, rel)
    after = _keys(pkg)
    assert {r for r in RUNS if after[r] != before[r]} == changed


def test_a_new_import_is_followed(pkg):
    before = deps.run_code_version("concat", "avmnist", root=pkg)
    _edit(pkg, "methods/helpers_new.py", "X = 1\n")
    assert deps.run_code_version("concat", "avmnist", root=pkg) == before
    _edit(pkg, "methods/joint.py", "\nfrom mmlab.methods import helpers_new  # noqa\n")
    mid = deps.run_code_version("concat", "avmnist", root=pkg)
    _edit(pkg, "methods/helpers_new.py", "X = 2\n")
    assert len({before, mid, deps.run_code_version("concat", "avmnist", root=pkg)}) == 3


def test_prepared_data_is_keyed_on_its_dataset_module(run_cache, monkeypatch):
    from mmlab.data import load_dataset
    load_dataset("mfeat")
    load_dataset("mfeat")
    assert len(list((run_cache / "data").glob("mfeat-*.pt"))) == 1
    real = deps.code_hash
    monkeypatch.setattr(deps, "code_hash", lambda names, root=deps.ROOT: real(names, root)
                        + ("-edited" if "mmlab.data.mfeat" in names else ""))
    load_dataset("mfeat")
    assert len(list((run_cache / "data").glob("mfeat-*.pt"))) == 2


def test_analyses_are_cached_by_run_code_and_parameters(run_cache, monkeypatch):
    import mmlab.runner as runner
    from mmlab.analysis import probe_rows
    from mmlab.runner import RunConfig, run
    from mmlab.studies import per_model
    cfg = RunConfig(dataset="synthetic", method="concat", epochs=1, device="cpu", probe=False)
    runs = [("concat", cfg, run(cfg))]
    first = per_model(runs, probe_rows, max_train=200)
    monkeypatch.setattr(runner, "trained", lambda cfg: pytest.fail("a cached analysis reloaded the model"))
    assert per_model(runs, probe_rows, max_train=200).equals(first)
    with pytest.raises(pytest.fail.Exception):       # other parameters: a miss
        per_model(runs, probe_rows, max_train=100)
    with pytest.raises(ValueError, match="module-level mmlab function"):
        per_model(runs, lambda method, model, splits: {})


def test_two_processes_asking_for_one_run_train_it_once(run_cache):
    """Parallel notebooks share runs: the second process waits on the run's lock and reads
    the first one's result instead of training again."""
    import multiprocessing as mp
    from mmlab.runner import RunConfig
    cfg = RunConfig(dataset="synthetic", method="concat", epochs=2, device="cpu", probe=False)
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        a, b = pool.map(_run_cached_flag, [cfg, cfg])
    assert sorted([a, b]) == [False, True]


def _run_cached_flag(cfg) -> bool:
    from mmlab.runner import run
    return run(cfg).cached


def test_results_record_seconds_per_phase(run_cache):
    from mmlab.runner import RunConfig, run
    r = run(RunConfig(dataset="synthetic", method="concat", epochs=2, device="cpu", probe_max_train=200))
    assert set(r.timings) == {"data_s", "fit_s", "test_s", "probe_s"}
    assert all(v >= 0 for v in r.timings.values()) and sum(r.timings.values()) <= r.wall_s + 1e-6
    assert all("val_s" in h for h in r.history)


def test_umt_teachers_are_the_cached_unimodal_runs(run_cache):
    """A UMT run's teachers are the study's "<m> alone" runs: trained once, shared."""
    from mmlab.runner import RunConfig, cached_result, run
    common = dict(dataset="synthetic", epochs=2, device="cpu", probe=False, seed=3)
    run(RunConfig(method="umt", **common))
    alone = [RunConfig(method="unimodal", method_options={"modality": m}, **common) for m in ("m0", "m1")]
    assert all(cached_result(c) is not None for c in alone)
    # and a UMT run with other distillation weight reuses them (no new unimodal entries)
    n = len(list((run_cache / "runs").glob("*.json")))
    run(RunConfig(method="umt", method_options={"distill_weight": 0.5}, **common))
    assert len(list((run_cache / "runs").glob("*.json"))) == n + 1


def test_random_encoder_probes_are_shared_by_methods_with_the_same_initialisation(run_cache, monkeypatch):
    import mmlab.runner as runner
    from mmlab.runner import RunConfig, run
    common = dict(dataset="synthetic", epochs=1, device="cpu", probe_max_train=200)
    a = run(RunConfig(method="concat", **common))
    calls = []
    real = runner.probe_encoders
    monkeypatch.setattr(runner, "probe_encoders", lambda *a, **k: calls.append(1) or real(*a, **k))
    b = run(RunConfig(method="ogm_ge", **common))        # same encoders, same seed: same init
    assert b.probe_random == a.probe_random and len(calls) == 1      # only the trained probe ran
    c = run(RunConfig(method="concat", **{**common, "seed": 1}))
    assert len(calls) == 3 and c.probe_random is not None     # another seed: another init, probed anew


def test_run_many_trains_other_runs_while_one_is_locked_elsewhere(run_cache, monkeypatch):
    """A run another process holds is deferred, not waited for, while others remain."""
    import fcntl
    import mmlab.runner as runner
    from mmlab.runner import RunConfig, run_many
    cfgs = [RunConfig(dataset="synthetic", method="concat", epochs=1, device="cpu", probe=False, seed=s)
            for s in (0, 1)]
    (run_cache / "runs").mkdir(parents=True)
    other = open(run_cache / "runs" / f".{cfgs[0].hash()}.lock", "a")    # "another notebook" holds seed 0
    fcntl.flock(other, fcntl.LOCK_EX)
    order, real = [], runner._train

    def train(cfg, *a):
        order.append(cfg.seed)
        out = real(cfg, *a)
        if cfg.seed == 1:                                  # ... and lets go once seed 1 is done
            fcntl.flock(other, fcntl.LOCK_UN)
        return out
    monkeypatch.setattr(runner, "_train", train)
    res = run_many(cfgs)
    other.close()
    assert order == [1, 0] and [r.config["seed"] for r in res] == [0, 1]


def test_bench_cache_validity_counts_the_runs_an_edit_keeps(run_cache, capsys):
    from mmlab import bench
    from mmlab.runner import RunConfig, run
    for method in ("concat", "late"):
        run(RunConfig(dataset="synthetic", method=method, epochs=1, device="cpu", probe=False))
    cases = ([], 1.0), (["--add-method"], 1.0), (["--edit", "mmlab/methods/late.py"], 0.5), \
        (["--edit", "mmlab/train.py"], 0.0)
    for extra, fraction in cases:
        bench.main(["cache-validity", "--cache", str(run_cache), *extra])
        assert capsys.readouterr().out.splitlines()[-1] == f"valid_fraction {fraction:.4f}"
