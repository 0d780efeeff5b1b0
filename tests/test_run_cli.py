"""mmlab.run caching and the command line."""
import json
import os
import subprocess
import sys
import time

import pytest

import mmlab.runner as runmod
from mmlab.runner import RunConfig, run

CFG = dict(dataset="synthetic", method="concat", epochs=2, device="cpu", probe_max_train=500)


def test_cache_hit_miss_and_invalidation(run_cache, monkeypatch):
    cfg = RunConfig(**CFG)
    first = run(cfg)
    assert not first.cached
    t0 = time.perf_counter()
    again = run(cfg)
    assert again.cached and time.perf_counter() - t0 < 1.0
    assert again.metrics == first.metrics and again.probe == first.probe
    assert again.config_hash == first.config_hash
    # a changed config is a miss
    other = run(RunConfig(**{**CFG, "seed": 1}))
    assert not other.cached and other.config_hash != first.config_hash
    # a changed code version is a miss too (never a stale result)
    monkeypatch.setattr(runmod, "run_code_version", lambda method, dataset: "9.9.9+other")
    assert not run(cfg).cached
    # cache files are complete JSON, each with its model weights beside it; no temp files
    files = [f for f in (run_cache / "runs").iterdir() if f.suffix != ".lock"]   # run locks stay
    assert sorted(f.suffix for f in files) == [".json"] * 3 + [".pt"] * 3
    for f in files:
        if f.suffix == ".json":
            json.loads(f.read_text())
            assert f.with_suffix(".pt").exists()


def test_trained_reloads_the_selected_weights(run_cache):
    """trained(cfg) gives back the model the cached result was measured on."""
    from mmlab.runner import trained
    cfg = RunConfig(**CFG)
    res = run(cfg)
    method, model, splits = trained(cfg)
    import torch
    from mmlab.data.base import BatchLoader
    with torch.no_grad():
        logits = torch.cat([method.predict(model, b).logits for b in BatchLoader(splits.test, 512)])
    acc = float((logits.argmax(1) == splits.test.y).float().mean())
    assert abs(acc - res.metrics["test"]["acc"]) < 1e-6


def test_no_cache_runs_are_identical(run_cache):
    a, b = run(RunConfig(**CFG), cache=False), run(RunConfig(**CFG), cache=False)
    assert a.metrics == b.metrics and a.probe == b.probe
    assert not (run_cache / "runs").exists()


def test_result_reports_probes_beside_random_and_joint_only(run_cache):
    r = run(RunConfig(**CFG))
    t = r.metrics["test"]
    assert set(t) >= {"acc", "map", "f1", "per_modality", "joint_only"}
    assert set(r.probe) == set(r.probe_random) == {"m0", "m1"}
    assert r.probe["m0"] > r.probe["m1"]        # snr 3.0 vs 0.5


def test_unknown_method_option_lists_accepted(run_cache):
    with pytest.raises(TypeError, match="Accepted options"):
        run(RunConfig(**{**CFG, "method_options": {"bogus": 1}}))


def cli(*args, env_cache):
    env = {**os.environ, "MMLAB_CACHE": str(env_cache)}
    return subprocess.run([sys.executable, "-m", "mmlab", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_train_json_schema(tmp_path):
    p = cli("train", "--dataset", "synthetic", "--method", "unimodal", "--modality", "m0", "--epochs", "1",
            "--seed", "0", "--device", "cpu", "--json", "--no-cache", env_cache=tmp_path)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["dataset"] == "synthetic" and d["method"] == "unimodal" and d["seed"] == 0
    assert isinstance(d["config_hash"], str) and d["wall_s"] > 0
    assert 0 <= d["metrics"]["test"]["acc"] <= 1 and 0 <= d["metrics"]["val"]["acc"] <= 1
    assert set(d["metrics"]["test"]["per_modality"]) == {"m0"} and set(d["probe"]) == {"m0"}


def test_cli_table_and_options(tmp_path):
    p = cli("train", "--dataset", "synthetic", "--method", "concat", "--epochs", "1", "--device", "cpu",
            "--data-opt", "snr=(2.0,1.0)", "--method-opt", "feature_dim=32", env_cache=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "test acc" in p.stdout and "joint-only" in p.stdout and "m1" in p.stdout


def test_cli_methods_lists_all(tmp_path):
    p = cli("methods", env_cache=tmp_path)
    names = [line.split()[0] for line in p.stdout.splitlines()]
    assert {"unimodal", "concat", "sum", "film", "gated", "late"} <= set(names)


@pytest.mark.parametrize("args,expect", [
    (["--dataset", "nope", "--method", "concat"], "unknown dataset 'nope'; available: ave, avmnist, cgm"),
    (["--dataset", "synthetic", "--method", "nope"], "unknown method 'nope'; available:"),
    (["--dataset", "synthetic", "--method", "unimodal"], "needs modality"),
    (["--dataset", "synthetic", "--method", "unimodal", "--modality", "audio"], "has no modality 'audio'"),
    (["--dataset", "synthetic", "--method", "concat", "--data-opt", "colour=1"], "has no option"),
])
def test_cli_bad_input_is_a_clear_error(tmp_path, args, expect):
    p = cli("train", *args, "--epochs", "1", "--no-cache", env_cache=tmp_path)
    assert p.returncode == 2 and expect in p.stderr and "Traceback" not in p.stderr


def test_run_many_trains_a_repeated_config_once(run_cache, monkeypatch):
    import mmlab.runner as runmod
    calls = []
    real = runmod.run
    monkeypatch.setattr(runmod, "run", lambda cfg, **kw: calls.append(cfg.hash()) or real(cfg, **kw))
    a, b = RunConfig(**CFG), RunConfig(**{**CFG, "seed": 1})
    out = runmod.run_many([a, b, RunConfig(**CFG)])
    assert len(calls) == 2 and out[0] is out[2] and out[1].config["seed"] == 1


def test_variant_study_labels_rows_by_position(run_cache):
    """Two labels may name the same config (e.g. 'with GRS' and 'fixed (ours)'); each keeps its rows."""
    from mmlab.studies import variant_study
    df, runs = variant_study("synthetic", {"A": ("concat", {}), "B": ("concat", {}), "C": ("sum", {})}, seeds=(0,),
                             epochs=1, device="cpu", probe=False)
    assert [l for l, _, _ in runs] == ["unimodal", "unimodal", "A", "B", "C"]
    counts = df.groupby("method").size()
    assert counts["A"] == counts["B"] == counts["C"] == 2 and counts["unimodal"] == 2
    a, b = df[df.method == "A"], df[df.method == "B"]
    assert list(a.fused_acc) == list(b.fused_acc) and a.config_hash.iloc[0] == b.config_hash.iloc[0]


# every numeric run option with its invalid values: negative, zero where it must be positive,
# NaN, out of its interval, a fraction where an integer is needed
BAD_NUMBERS = [("epochs", "-1"), ("epochs", "0"), ("epochs", "nan"), ("epochs", "1.5"),
               ("seed", "-1"), ("seed", "nan"), ("batch-size", "0"), ("batch-size", "-4"),
               ("lr", "0"), ("lr", "-0.1"), ("lr", "nan"), ("lr", "inf"), ("momentum", "-0.1"),
               ("momentum", "1"), ("momentum", "nan"), ("weight-decay", "-1e-4"), ("weight-decay", "nan"),
               ("val-fraction", "0"), ("val-fraction", "1"), ("val-fraction", "nan")]


@pytest.mark.parametrize("option,value", BAD_NUMBERS, ids=[f"{o}={v}" for o, v in BAD_NUMBERS])
def test_cli_rejects_an_invalid_number_in_one_line(tmp_path, monkeypatch, capsys, option, value):
    """A one-line error naming the option and its valid range, before any data is loaded."""
    from mmlab import cli as cli_mod
    monkeypatch.setenv("MMLAB_CACHE", str(tmp_path))
    with pytest.raises(SystemExit) as exit_:
        cli_mod.main(["train", "--dataset", "mfeat", "--method", "concat", f"--{option}={value}"])
    err = capsys.readouterr()
    lines = err.err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1, err.err
    assert f"--{option}" in lines[0] and "must be" in lines[0] and err.out == ""
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()


def test_cli_negative_epochs_fail_fast_in_a_fresh_process(tmp_path):
    """`--epochs -1` used to run on without a word (killed by a 120 s timeout)."""
    p = cli("train", "--dataset", "mfeat", "--method", "concat", "--epochs", "-1", env_cache=tmp_path)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "--epochs" in p.stderr, p.stderr


RUN_BAD = [("epochs", 0), ("epochs", -1), ("batch_size", 0), ("lr", 0.0), ("lr", float("nan")),
           ("momentum", 1.0), ("weight_decay", -1.0), ("seed", -1), ("val_fraction", 0.0),
           ("probe_max_train", 0), ("train_subset", -5), ("epochs", 2.5), ("optimizer", "rmsprop"),
           ("amp", "yes")]


@pytest.mark.parametrize("name,value", RUN_BAD, ids=[f"{n}={v}" for n, v in RUN_BAD])
def test_runconfig_rejects_an_invalid_option_naming_it(name, value):
    with pytest.raises(ValueError, match=rf"^{name} must be .*got"):
        RunConfig(**{**CFG, name: value})


def test_resume_from_a_truncated_checkpoint_names_the_file_and_the_fix(tmp_path):
    ck = tmp_path / "ck"
    p = cli("train", *"--dataset synthetic --method concat --epochs 1 --device cpu --no-cache".split(),
            "--checkpoint-dir", str(ck), env_cache=tmp_path)
    assert p.returncode == 0, p.stderr
    data = (ck / "last.pt").read_bytes()
    (ck / "last.pt").write_bytes(data[: len(data) // 3])                # a torn copy / full disk
    p = cli("train", *"--dataset synthetic --method concat --epochs 2 --device cpu --no-cache --resume".split(),
            "--checkpoint-dir", str(ck), env_cache=tmp_path)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert str(ck / "last.pt") in lines[0] and "corrupt or truncated" in lines[0] and "delete it" in lines[0]


def test_options_equal_to_their_defaults_name_the_same_run():
    """{"final": "na"} is ReconBoost's default, so it is the same run as {} (trained once);
    a real change, or a value of another type, is another run."""
    base = RunConfig(dataset="synthetic", method="reconboost", device="cpu")
    same = RunConfig(dataset="synthetic", method="reconboost", device="cpu",
                     method_options={"final": "na", "alpha": 0.1}, dataset_options={"n_samples": 2000})
    assert same.hash() == base.hash()
    for other in ({"final": "lw"}, {"alpha": 0.2}, {"grs": 1}):
        assert RunConfig(dataset="synthetic", method="reconboost", device="cpu", method_options=other).hash() != base.hash()
    assert RunConfig(dataset="synthetic", method="concat", device="cpu").hash() != base.hash()


def test_calibration_summary_measures_the_regime_criteria(run_cache):
    """The calibration table's numbers are the runs' own: alone, concat, UME, headroom and the
    weak modality's drops, each criterion checked against mmlab.studies.REGIME."""
    from mmlab.studies import CRITERIA, REGIME, calibration_summary, imbalance_frame, study_results
    res = study_results("synthetic", ("concat", "ume"), seeds=(0,), epochs=2, device="cpu", probe_max_train=300)
    s = calibration_summary(res, weak="m1")
    df = imbalance_frame(res)
    concat = df[df.method == "concat"].fused_acc.iloc[0]
    ume = df[df.method == "ume"].fused_acc.iloc[0]
    assert s["concat"] == pytest.approx(concat) and s["headroom"] == pytest.approx(ume - concat)
    alone = df[df.method == "unimodal"].groupby("modality").unimodal_acc.first()
    assert s["alone in range"] == bool(alone.between(*REGIME["alone"]).all())
    assert s["weak is weakest"] == (alone.idxmin() == "m1")            # snr 3.0 vs 0.5: m1 is the weak one
    assert s["criteria met"] == sum(bool(s[c]) for c in CRITERIA) and set(CRITERIA) <= set(s)
