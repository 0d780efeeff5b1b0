"""Retrieval mAP, t-SNE / cluster scores, noise robustness and their figures (ReconBoost
App. D.1, Fig. 4/12, Tables 8-10)."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from mmlab import viz
from mmlab.analysis import (cluster_scores, noisy_accuracy, retrieval_map, retrieval_table, robustness_grid,
                            tsne_embed)
from mmlab.data import load_dataset
from mmlab.methods import METHODS
from mmlab.train import TrainConfig, Trainer


def blobs(n=120, k=3, d=8, sep=5.0, seed=0):
    """Gaussian clusters: labels [n] and features [n, d] with class means sep apart."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    return sep * rng.standard_normal((k, d))[y] + rng.standard_normal((n, d)), y


def cos(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    return a @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T


# --------------------------------------------------------------------------- retrieval

def test_map_equals_sklearn_per_query_ap():
    rng = np.random.default_rng(0)
    q, g = rng.standard_normal((30, 6)), rng.standard_normal((50, 6))
    qy, gy = rng.integers(0, 4, 30), rng.integers(0, 4, 50)
    sim = cos(q, g)
    ref = np.mean([average_precision_score(gy == qy[i], sim[i]) for i in range(len(q))])
    assert retrieval_map(q, qy, g, gy) == pytest.approx(ref, abs=1e-6)
    # chunking over queries does not change the result
    assert retrieval_map(q, qy, g, gy, chunk_size=7) == pytest.approx(ref, abs=1e-6)


def test_map_uses_cosine_not_euclidean():
    # scaling rows changes Euclidean neighbours but not cosine ranks
    x, y = blobs(seed=1, sep=1.0)
    scale = np.random.default_rng(2).uniform(0.1, 10, (len(x), 1))
    assert retrieval_map(x * scale, y, x, y) == pytest.approx(retrieval_map(x, y, x, y), abs=1e-6)


def test_perfect_features_give_map_one():
    y = np.arange(40) % 4
    feats = np.eye(4)[y] + 0.01 * np.random.default_rng(0).standard_normal((40, 4))
    assert retrieval_map(feats, y, feats, y) == pytest.approx(1.0)
    assert retrieval_map(feats, y, feats, y, exclude_self=True) == pytest.approx(1.0)


def test_exclude_self_is_leave_one_out():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((25, 5)), rng.integers(0, 3, 25)
    sim = cos(x, x)
    ref = []
    for i in range(len(x)):
        others = np.arange(len(x)) != i
        ref.append(average_precision_score(y[others] == y[i], sim[i, others]))
    assert retrieval_map(x, y, x, y, exclude_self=True, chunk_size=4) == pytest.approx(np.mean(ref), abs=1e-6)
    # without exclusion each query finds itself first, which inflates the score
    assert retrieval_map(x, y, x, y) > retrieval_map(x, y, x, y, exclude_self=True)
    with pytest.raises(ValueError, match="query set itself"):
        retrieval_map(x, y, x[:10], y[:10], exclude_self=True)


def test_retrieval_table_overall_is_mean_of_modality_cosines():
    rng = np.random.default_rng(4)
    te = {"a": rng.standard_normal((20, 3)), "b": 50 * rng.standard_normal((20, 7))}
    tr = {"a": rng.standard_normal((30, 3)), "b": 50 * rng.standard_normal((30, 7))}
    ty, gy = rng.integers(0, 3, 20), rng.integers(0, 3, 30)
    table = retrieval_table(te, ty, tr, gy)
    assert set(table) == {"overall", "a", "b"}
    assert table["a"] == pytest.approx(retrieval_map(te["a"], ty, tr["a"], gy))
    sim = (cos(te["a"], tr["a"]) + cos(te["b"], tr["b"])) / 2   # equal weight despite scale 50
    ref = np.mean([average_precision_score(gy == ty[i], sim[i]) for i in range(20)])
    assert table["overall"] == pytest.approx(ref, abs=1e-6)
    raw = retrieval_table(te, ty, tr, gy, combine="raw")["overall"]      # b's scale dominates
    big = retrieval_map(np.hstack([te["a"], te["b"]]), ty, np.hstack([tr["a"], tr["b"]]), gy)
    assert raw == pytest.approx(big)
    loo = retrieval_table(te, ty, gallery="test")
    assert loo["a"] == pytest.approx(retrieval_map(te["a"], ty, te["a"], ty, exclude_self=True))
    with pytest.raises(ValueError, match="'train' or 'test'"):
        retrieval_table(te, ty, tr, gy, gallery="val")


# --------------------------------------------------------------------------- t-SNE / clusters

def test_tsne_shape_indices_and_determinism():
    x, y = blobs(n=150)
    xy, idx = tsne_embed(x, seed=0, max_points=60, perplexity=10, labels=y)
    assert xy.shape == (60, 2) and len(idx) == 60 and len(set(idx)) == 60
    assert np.bincount(y[idx]).tolist() == [20, 20, 20]            # stratified
    xy2, idx2 = tsne_embed(x, seed=0, max_points=60, perplexity=10, labels=y)
    np.testing.assert_array_equal(idx, idx2)
    np.testing.assert_allclose(xy, xy2)
    # the 2-D map keeps the blobs apart: classes of matched labels are separable
    assert cluster_scores(xy, y[idx])["knn_acc"] > 0.9


def test_cluster_scores_separable_beat_random():
    x, y = blobs(n=150)
    good = cluster_scores(x, y)
    bad = cluster_scores(np.random.default_rng(1).standard_normal(x.shape), y)
    assert good["silhouette"] > 0.5 > bad["silhouette"] + 0.4
    assert good["knn_acc"] > 0.95 and bad["knn_acc"] < 0.6


# --------------------------------------------------------------------------- noise robustness

@pytest.fixture(scope="module")
def trained():
    splits = load_dataset("synthetic", seed=0, n_samples=800)
    cfg = TrainConfig(device="cpu", epochs=3, lr=0.01)
    t = Trainer(METHODS.get("concat")(splits.info, cfg), splits, cfg).fit()
    return t, splits


def test_zero_variance_is_clean_accuracy(trained):
    t, splits = trained
    clean = t.evaluate(splits.test)
    r = noisy_accuracy(t.model, t.method, splits.test, ["m0", "m1"], fraction=0.5, variance=0.0)
    assert r["acc"] == pytest.approx(clean["acc"])
    assert r["per_modality"] == pytest.approx(clean["per_modality"])
    assert noisy_accuracy(t, None, splits.test, [], variance=1.0)["acc"] == pytest.approx(clean["acc"])


def test_noise_on_strong_modality_hits_only_the_chosen_fraction(trained):
    t, splits = trained
    clean = noisy_accuracy(t, None, splits.test, [], return_predictions=True)
    r = noisy_accuracy(t, None, splits.test, ["m0"], fraction=0.5, variance=1e4, return_predictions=True)
    sel = r["selected"]["m0"]
    assert 0.4 < sel.mean() < 0.6 and r["corrupted"]["m0"] == pytest.approx(sel.mean())
    assert r["acc"] < clean["acc"] - 0.2                          # m0 is the strong modality
    np.testing.assert_array_equal(r["pred"][~sel], clean["pred"][~sel])   # untouched samples unchanged
    assert (r["pred"][sel] != clean["pred"][sel]).mean() > 0.3
    # the weak modality's own head never sees m0's noise
    assert r["per_modality"]["m1"] == pytest.approx(clean["per_modality"]["m1"])


def test_robustness_grid_rows_and_monotone_damage(trained):
    t, splits = trained
    df = robustness_grid(t, None, splits.test, {"m0": ["m0"], "both": ["m0", "m1"]},
                         variances=(0.0, 1.0, 100.0))
    assert list(df.columns[:3]) == ["case", "variance", "acc"] and len(df) == 6
    assert {"acc_m0", "acc_m1"} <= set(df.columns)
    m0 = df[df.case == "m0"].acc.to_numpy()
    assert m0[0] >= m0[1] >= m0[2] and m0[0] > m0[2]
    with pytest.raises(ValueError, match="distinct names"):
        noisy_accuracy(t, None, splits.test, ["audio"])


# --------------------------------------------------------------------------- figures

def test_tsne_grid_and_noise_curves_figures():
    rng = np.random.default_rng(0)
    emb = {(meth, m): (rng.standard_normal((30, 2)), np.arange(30) % 3)
           for meth in ("concat", "reconboost") for m in ("audio", "image", "text")}
    fig = viz.tsne_grid(emb, class_names=["a", "b", "c"], scores={("concat", "audio"): "sil 0.1"})
    assert len(fig.axes) == 6 and len(fig.legends) == 1
    assert all(not ax.get_xticks().size for ax in fig.axes)
    plt.close(fig)
    df = pd.DataFrame([{"method": meth, "case": c, "variance": v, "acc": 0.9 - v / 3}
                       for meth in ("concat", "reconboost") for c in ("image", "audio", "both")
                       for v in (0.0, 0.1, 0.3, 0.5, 1.0)])
    fig = viz.noise_curves(df)
    assert len(fig.axes) == 3
    plt.close(fig)
