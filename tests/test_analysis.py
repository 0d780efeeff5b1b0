"""Metrics, MIR / DMC, joint-only accuracy and linear probes."""
import math

import numpy as np
import pytest
import torch

import mmlab.analysis.probe as probe_mod
from mmlab.analysis import (accuracy, classification_metrics, dmc, fit_probe, joint_only_accuracy, macro_f1,
                            mean_average_precision, mir, mir_table, probe_encoders)
from mmlab.data import BatchLoader, load_dataset
from mmlab.models import build_model


# --------------------------------------------------------------------------- metrics

# 4 samples, 3 classes; hand-computed below
LOGITS = np.array([[0.9, 0.05, 0.05],
                   [0.8, 0.10, 0.10],
                   [0.1, 0.60, 0.30],
                   [0.3, 0.20, 0.50]])
Y = np.array([0, 1, 2, 0])


def test_perfect_predictions_score_one():
    y = np.array([0, 1, 2, 2, 1, 0, 3])
    logits = np.eye(4)[y] * 5 + 0.1
    assert classification_metrics(logits, y) == {"acc": 1.0, "map": 1.0, "f1": 1.0}


def test_accuracy_by_hand():
    # argmax: 0, 0, 1, 2 vs labels 0, 1, 2, 0 -> only the first is right
    assert accuracy(LOGITS, Y) == pytest.approx(0.25)
    assert accuracy(torch.tensor(LOGITS).numpy(), Y) == pytest.approx(0.25)


def test_map_by_hand():
    # class 0: positives rank 1 and 3 -> AP = (1/1 + 2/3) / 2 = 5/6
    # class 1: the positive ranks 3rd -> AP = 1/3;  class 2: ranks 2nd -> AP = 1/2
    assert mean_average_precision(LOGITS, Y) == pytest.approx((5 / 6 + 1 / 3 + 1 / 2) / 3)


def test_map_single_present_class():
    logits = np.array([[0.5, 0.9, 0.1], [0.1, 0.2, 0.3], [0.1, 0.95, 0.3]])
    assert mean_average_precision(logits, np.array([1, 1, 1])) == pytest.approx(1.0)


def test_map_skips_classes_absent_from_labels():
    extra = np.concatenate([LOGITS, np.array([[0.0], [5.0], [0.0], [0.0]])], axis=1)  # class 3: no positives
    assert mean_average_precision(extra, Y) == pytest.approx(5 / 9)


def test_map_binary_depends_on_ranking_not_argmax():
    # two classes (label_binarize would give one column here); each class's scores rank
    # its positives first -> mAP 1 although an argmax is wrong
    y = np.array([0, 1])
    logits = np.array([[0.5, 0.9], [0.1, 0.95]])   # sample 0 argmax is wrong
    assert accuracy(logits, y) == 0.5
    assert mean_average_precision(logits, y) == pytest.approx(1.0)


def test_macro_f1_by_hand():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    # class 0: P=1, R=2/3 -> 0.8;  class 1: P=1/2, R=1/2 -> 0.5;  class 2: P=1/2, R=1 -> 2/3
    expected = (0.8 + 0.5 + 2 / 3) / 3
    assert macro_f1(np.eye(3)[y_pred], y_true) == pytest.approx(expected)
    assert accuracy(np.eye(3)[y_pred], y_true) == pytest.approx(4 / 6)


# --------------------------------------------------------------------------- MIR / DMC

def test_mir_dmc_reconboost_table11_cremad_concat():
    uni = {"audio": 56.67, "visual": 50.14}
    mul = {"audio": 54.86, "visual": 26.81}
    t = mir_table(uni, mul)
    assert round(t["mir_uni"], 2) == 1.13
    assert round(t["mir_mul"], 2) == 2.05
    assert round(t["dmc"], 2) == 1.81
    assert round(dmc(uni, mul), 2) == 1.81
    assert t["dmc"] == pytest.approx(t["mir_mul"] / t["mir_uni"])
    assert mir(56.67, 50.14) == pytest.approx(56.67 / 50.14)
    # accuracies as fractions give the same ratios
    assert dmc({k: v / 100 for k, v in uni.items()}, {k: v / 100 for k, v in mul.items()}) == pytest.approx(t["dmc"])


def test_dmc_orients_by_unimodal_accuracy():
    # the joint model flips the order (visual above audio): DMC < 1, still oriented audio -> visual
    uni = {"audio": 0.6, "visual": 0.5}
    mul = {"audio": 0.4, "visual": 0.5}
    assert dmc(uni, mul) == pytest.approx((0.4 / 0.5) / (0.6 / 0.5))
    assert dmc(uni, mul) < 1


def test_dmc_tie_rule_is_defined_and_independent_of_names():
    """Equally strong alone: the pair is oriented by the joint accuracies, so DMC >= 1 and
    renaming the modalities (which flipped the alphabetical orientation: 0.5 vs 2.0) changes nothing."""
    uni, mul = {"audio": 0.8, "image": 0.8}, {"audio": 0.4, "image": 0.8}
    renamed_uni, renamed_mul = {"z": 0.8, "b": 0.8}, {"z": 0.4, "b": 0.8}
    assert dmc(uni, mul) == pytest.approx(2.0) and dmc(renamed_uni, renamed_mul) == pytest.approx(2.0)
    swapped = {"audio": 0.8, "image": 0.4}
    assert dmc(uni, swapped) == pytest.approx(2.0)                  # whichever ends up stronger
    assert mir_table(uni, mul)["mir_mul"] == pytest.approx(2.0)
    assert dmc(uni, {"audio": 0.7, "image": 0.7}) == 1.0           # both tie: no competition


UNI3 = {"a": 0.80, "v": 0.60, "t": 0.50}
MUL3 = {"a": 0.85, "v": 0.30, "t": 0.45}   # joint training ranks t above v


def _manual_dmc3(uni, mul):
    vals = []
    for x, y in (("a", "v"), ("a", "t"), ("v", "t")):
        s, w = (x, y) if uni[x] >= uni[y] else (y, x)
        vals.append((mul[s] / mul[w]) / (uni[s] / uni[w]))
    return math.prod(vals) ** (1 / 3)


def test_dmc_three_modalities_geometric_mean_of_pairs():
    expected = ((0.85 / 0.30) / (0.80 / 0.60) * (0.85 / 0.45) / (0.80 / 0.50)
                * (0.30 / 0.45) / (0.60 / 0.50)) ** (1 / 3)
    assert expected == pytest.approx(_manual_dmc3(UNI3, MUL3))
    assert dmc(UNI3, MUL3) == pytest.approx(expected)
    assert abs(dmc(UNI3, MUL3) - 1) > 0.05       # the literal ordered-pair product would be 1
    t = mir_table(UNI3, MUL3)
    assert t["dmc"] == pytest.approx(expected)
    assert t["mir_uni"] == pytest.approx((0.8 / 0.6 * 0.8 / 0.5 * 0.6 / 0.5) ** (1 / 3))
    assert t["mir_mul"] == pytest.approx((0.85 / 0.30 * 0.85 / 0.45 * 0.30 / 0.45) ** (1 / 3))


def test_dmc_invariant_to_dict_order():
    base = dmc(UNI3, MUL3)
    for order in (["t", "v", "a"], ["v", "a", "t"]):
        uni = {m: UNI3[m] for m in order}
        mul = {m: MUL3[m] for m in reversed(order)}
        assert dmc(uni, mul) == pytest.approx(base, rel=1e-12)
        assert mir_table(uni, mul) == pytest.approx(mir_table(UNI3, MUL3), rel=1e-12)


def test_dmc_equal_competition_is_one():
    uni = {"a": 0.8, "v": 0.4, "t": 0.5}
    mul = {m: 0.9 * a for m, a in uni.items()}   # every accuracy scaled alike: no relative change
    assert dmc(uni, mul) == pytest.approx(1.0)


def test_dmc_errors():
    with pytest.raises(ValueError, match="same"):
        dmc({"a": 0.5, "v": 0.4}, {"a": 0.5, "t": 0.4})
    with pytest.raises(ValueError):
        dmc({"a": 0.5}, {"a": 0.5})
    with pytest.raises(ValueError, match="positive"):
        dmc({"a": 0.5, "v": 0.0}, {"a": 0.5, "v": 0.4})     # unimodal weak accuracy 0
    with pytest.raises(ValueError, match="positive"):
        dmc({"a": 0.5, "v": 0.4}, {"a": 0.5, "v": 0.0})     # joint weak accuracy 0
    with pytest.raises(ValueError):
        mir(0.7, 0.0)


# --------------------------------------------------------------------------- joint-only accuracy

@pytest.fixture(scope="module")
def trained_concat():
    """Concat model trained on synthetic where m1 carries no signal at all (snr 0)."""
    s = load_dataset("synthetic", seed=0, snr=(3.0, 0.0))
    torch.manual_seed(0)
    net = build_model(s.info, fusion="concat", feature_dim=32)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    batch = {**s.train.x, "label": s.train.y}
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(batch).logits, s.train.y).backward()
        opt.step()
    return net, s


def test_joint_only_accuracy_signal_modality(trained_concat):
    net, s = trained_concat
    acc = joint_only_accuracy(net, BatchLoader(s.test, 64))
    assert set(acc) == {"m0", "m1"}
    chance = 1 / s.info.num_classes
    assert acc["m0"] > 0.8
    assert abs(acc["m1"] - chance) < 0.08


def test_joint_only_accuracy_equals_zeroed_argmax(trained_concat):
    net, s = trained_concat
    acc = joint_only_accuracy(net, BatchLoader(s.test, 37))   # uneven last batch
    with torch.no_grad():
        feats = net.encode(dict(s.test.x))
        W, b = net.fusion.head.weight, net.fusion.head.bias
        d0 = net.fusion.dims["m0"]
        by_hand = {"m0": feats["m0"] @ W[:, :d0].T + b, "m1": feats["m1"] @ W[:, d0:].T + b}
        for m in ("m0", "m1"):
            z = net.fusion.zeroed(feats, m)
            torch.testing.assert_close(z, by_hand[m], atol=1e-5, rtol=0)
            expected = (z.argmax(1) == s.test.y).float().mean().item()
            assert acc[m] == pytest.approx(expected)


# --------------------------------------------------------------------------- probes

@pytest.fixture(scope="module")
def synth():
    return load_dataset("synthetic", seed=0)


@pytest.fixture(scope="module")
def untrained(synth):
    torch.manual_seed(0)
    return build_model(synth.info, fusion="concat")


def test_probe_recovers_snr_imbalance(synth, untrained):
    assert synth.info.options["snr"] == (3.0, 0.5)
    acc = probe_encoders(untrained, synth)
    assert set(acc) == {"m0", "m1"}
    assert acc["m0"] > 0.85
    assert acc["m0"] - acc["m1"] > 0.3


def test_probe_restricted_modalities(synth, untrained):
    acc = probe_encoders(untrained, synth, modalities=["m1"], max_train=400)
    assert list(acc) == ["m1"]


def test_fit_probe_unknown_kind():
    x, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="unknown probe kind"):
        fit_probe(x, y, x, y, kind="svm")


def _blobs(n, seed):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.standard_normal((n, 8)) + 3.0 * np.eye(8)[y]
    return x, y


def test_fit_probe_mlp_kind():
    xtr, ytr = _blobs(150, 0)
    xva, yva = _blobs(60, 1)
    clf = fit_probe(xtr, ytr, xva, yva, kind="mlp", Cs=(1.0,))
    assert clf.score(xva, yva) > 0.85
    assert type(clf.steps[-1][1]).__name__ == "MLPClassifier"


def test_probe_encoders_mlp_kind():
    s = load_dataset("synthetic", seed=0, n_samples=300, dims=(8, 8), snr=(4.0, 0.0))
    torch.manual_seed(0)
    net = build_model(s.info, fusion="concat", feature_dim=16)
    acc = probe_encoders(net, s, kind="mlp")
    assert acc["m0"] > 0.7
    assert acc["m0"] > acc["m1"] + 0.2


def test_probe_max_train_subsample(synth, untrained, monkeypatch):
    seen = []
    real = probe_mod.fit_probe

    def spy(xtr, ytr, xva, yva, **kw):
        seen.append((len(xtr), len(ytr), len(xva)))
        return real(xtr, ytr, xva, yva, **kw)

    monkeypatch.setattr(probe_mod, "fit_probe", spy)
    probe_encoders(untrained, synth, max_train=100)
    assert seen == [(100, 100, len(synth.val))] * 2
    seen.clear()
    probe_encoders(untrained, synth, max_train=None)
    assert seen == [(len(synth.train), len(synth.train), len(synth.val))] * 2


def test_subsample_is_seeded_and_unique():
    a = probe_mod._subsample(50, 20, seed=3)
    assert len(a) == 20 and len(set(a.tolist())) == 20 and (np.diff(a) > 0).all()
    assert (a == probe_mod._subsample(50, 20, seed=3)).all()
    assert not (a == probe_mod._subsample(50, 20, seed=4)).all()
    assert (probe_mod._subsample(10, 20, seed=0) == np.arange(10)).all()
