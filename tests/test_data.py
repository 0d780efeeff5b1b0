"""Tests for mmlab.data: shapes, splits, determinism, CGM bias, cache, transforms, errors."""
import importlib.metadata
import time

import numpy as np
import pytest
import torch

from mmlab.data import BatchLoader, DataFormatError, MMData, load_dataset, transforms
from mmlab.data.base import MissingPackageError
from mmlab.data.cgm import PALETTE

SMALL = {  # fast options per dataset
    "synthetic": {},
    "mfeat": {},
    "watch": {},
    "avmnist": {},
    "cgm": {"n_train": 2000, "n_test": 1000},
}


@pytest.fixture(scope="session", autouse=True)
def shared_cache(tmp_path_factory):
    """All tests share one temporary prepared-data cache (never the user's)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMLAB_CACHE", str(tmp_path_factory.mktemp("mmlab_cache")))
        yield


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty cache, so the next load really reads the package files."""
    monkeypatch.setenv("MMLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path


def rows(t: torch.Tensor) -> set:
    """Each sample's bytes, to compare splits by content."""
    return {r.numpy().tobytes() for r in t.reshape(len(t), -1)}


# ---------------------------------------------------------------- shapes and splits

@pytest.mark.parametrize("name", sorted(SMALL))
def test_shapes_dtypes_and_info(name):
    s = load_dataset(name, seed=0, **SMALL[name])
    info = s.info
    assert set(info.encoders) == set(info.modalities)
    for split in (s.train, s.val, s.test):
        assert len(split) > 0 and split.y.dtype == torch.int64
        assert 0 <= split.y.min() and split.y.max() < info.num_classes
        for m, shape in info.modalities.items():
            assert split.x[m].dtype == torch.float32
            assert tuple(split.x[m].shape[1:]) == shape
            assert torch.isfinite(split.x[m]).all()
    for m, (enc, kw) in info.encoders.items():
        assert enc in ("cnn4", "conv1d", "gru", "mlp")
        if enc == "mlp":
            assert kw["in_dim"] == info.modalities[m][0]
        else:  # images [C, H, W] or sequences [T, C]
            assert kw["in_channels"] == info.modalities[m][0 if enc == "cnn4" else -1]


@pytest.mark.parametrize("name", ["synthetic", "mfeat", "avmnist", "cgm"])
def test_splits_disjoint(name):
    s = load_dataset(name, seed=0, **SMALL[name])
    m = s.info.modality_names[0]
    tr, va, te = rows(s.train.x[m]), rows(s.val.x[m]), rows(s.test.x[m])
    assert not (tr & va) and not (tr & te) and not (va & te)


def test_split_sizes():
    assert sum(load_dataset("synthetic").sizes().values()) == 2000
    assert sum(load_dataset("mfeat", variant="easy").sizes().values()) == 2000
    assert load_dataset("mfeat", train_per_class=20).sizes() == {"train": 180, "val": 20, "test": 400}
    assert load_dataset("avmnist").sizes() == {"train": 2160, "val": 240, "test": 600}


def test_calibrated_and_easy_constructions_are_distinct_and_cached_apart(fresh_cache):
    """The calibrated default and the first round's "easy" construction are both reachable;
    their prepared tensors never share a cache file; explicit knobs win over the variant."""
    expect = {"avmnist": dict(audio_frames=32, audio_noise=0.0, image_patch=14),
              "mfeat": dict(views=["fac", "zer", "mor"], train_per_class=None)}
    for name, knobs in expect.items():
        cal, easy = load_dataset(name), load_dataset(name, variant="easy")
        assert {k: easy.info.options[k] for k in knobs} == knobs
        assert cal.info.options != easy.info.options
        files = sorted((fresh_cache / "cache" / "data").glob(f"{name}-*.pt"))
        assert len(files) >= 2, files
    mixed = load_dataset("avmnist", variant="easy", audio_noise=0.5)
    assert mixed.info.options["audio_noise"] == 0.5 and mixed.info.options["audio_frames"] == 32
    with pytest.raises(ValueError, match=r"unknown variant 'hard'; variants: \['calibrated', 'easy'\]"):
        load_dataset("avmnist", variant="hard")


def test_avmnist_audio_noise_is_fixed_per_sample_and_cut_to_frames():
    clean = load_dataset("avmnist", audio_noise=0.0, audio_frames=12)
    noisy, again = load_dataset("avmnist", audio_noise=1.0, audio_frames=12), load_dataset("avmnist", audio_noise=1.0,
                                                                                              audio_frames=12, seed=3)
    assert noisy.train.x["audio"].shape[1:] == (12, 13)
    diff = noisy.test.x["audio"] - clean.test.x["audio"]
    assert 0.95 < float(diff.std()) < 1.05 and abs(float(diff.mean())) < 0.02    # N(0, 1) added
    assert torch.equal(noisy.test.x["audio"], again.test.x["audio"])               # the same for every seed
    assert torch.equal(noisy.test.x["image"], clean.test.x["image"])               # the image is untouched


def test_mfeat_fewer_samples_per_class_and_view_noise():
    s = load_dataset("mfeat", train_per_class=20, views=("fou", "zer", "mor"))
    pool = torch.cat([s.train.y, s.val.y])
    assert torch.equal(torch.bincount(pool), torch.full((10,), 20))                # stratified, 20 per class
    full = load_dataset("mfeat", views=("fou", "zer", "mor"), variant="easy")
    assert torch.equal(s.test.y, full.test.y)                                     # the same test digits
    noisy = load_dataset("mfeat", views=("fou", "zer", "mor"), view_noise={"fou": 2.0})
    clean = load_dataset("mfeat", views=("fou", "zer", "mor"), view_noise=0.0)
    assert 1.9 < float((noisy.test.x["fou"] - clean.test.x["fou"]).std()) < 2.1
    assert torch.equal(noisy.test.x["zer"], clean.test.x["zer"])


@pytest.mark.parametrize("name,opts,match", [
    ("avmnist", {"audio_noise": -0.5}, "avmnist: audio_noise must be a number >= 0, got -0.5"),
    ("avmnist", {"audio_noise": float("nan")}, "audio_noise must be a number >= 0"),
    ("avmnist", {"audio_frames": 0}, "audio_frames must be an integer >= 1 and <= 92"),
    ("avmnist", {"audio_frames": 12.5}, "audio_frames must be an integer"),
    ("avmnist", {"image_patch": 30}, r"image_patch must be an integer >= 1 and <= 28 \(or None\)"),
    ("avmnist", {"test_fraction": 1.0}, "test_fraction must be a number > 0 and < 1"),
    ("mfeat", {"train_per_class": 1}, "train_per_class must be an integer >= 2 and <= 160"),
    ("mfeat", {"train_per_class": 500}, "train_per_class must be an integer >= 2 and <= 160"),
    ("mfeat", {"view_noise": -1.0}, r"view_noise\[fou\] must be a number >= 0"),
    ("mfeat", {"view_noise": {"pix": 1.0}}, "not among views"),
    ("watch", {"window": 0}, "watch: window must be an integer >= 1"),
    ("watch", {"stride": -2}, "watch: stride must be an integer >= 1"),
    ("cgm", {"random_color_fraction": 1.5}, "random_color_fraction must be a number >= 0 and <= 1"),
    ("cgm", {"color_std": -0.1}, "color_std must be a number >= 0"),
])
def test_a_knob_out_of_range_names_its_valid_range(name, opts, match):
    with pytest.raises(ValueError, match=match):
        load_dataset(name, **opts)


def test_watch_subject_disjoint():
    s = load_dataset("watch", seed=1)
    subj = [set(d.groups.tolist()) for d in (s.train, s.val, s.test)]
    assert subj[2] == {8, 9, 10}
    assert not (subj[0] & subj[1]) and not (subj[0] & subj[2]) and not (subj[1] & subj[2])
    assert set(s.test.y.tolist()) == set(range(7))     # every exercise in test
    assert s.info.class_names[0] == "PEN"


def test_fixed_test_and_seeded_val():
    a, b = load_dataset("avmnist", seed=0), load_dataset("avmnist", seed=1)
    assert torch.equal(a.test.x["audio"], b.test.x["audio"])
    assert torch.equal(a.test.x["image"], b.test.x["image"])
    assert not torch.equal(a.val.y, b.val.y) or not torch.equal(a.val.x["audio"], b.val.x["audio"])


def test_determinism_without_cache(tmp_path, monkeypatch):
    loads = []
    for d in ("c1", "c2"):  # two empty caches: both builds run from the files
        monkeypatch.setenv("MMLAB_CACHE", str(tmp_path / d))
        loads.append(load_dataset("cgm", seed=3, **SMALL["cgm"]))
    for split in ("train", "val", "test"):
        x, y = getattr(loads[0], split), getattr(loads[1], split)
        assert torch.equal(x.y, y.y)
        assert all(torch.equal(x.x[m], y.x[m]) for m in x.x)
    other = load_dataset("cgm", seed=4, **SMALL["cgm"])
    assert not torch.equal(other.val.x["gray"], loads[0].val.x["gray"])
    assert torch.equal(other.test.x["color"], loads[0].test.x["color"])


@pytest.mark.parametrize("name", ["cgm", "mfeat", "avmnist", "synthetic"])
def test_val_is_stratified(name):
    s = load_dataset(name, seed=0, **SMALL[name])
    k = s.info.num_classes
    p_tr = torch.bincount(s.train.y, minlength=k) / len(s.train)
    p_va = torch.bincount(s.val.y, minlength=k) / len(s.val)
    assert (p_tr - p_va).abs().max() < 0.02


# ---------------------------------------------------------------- dataset-specific

def colour_accuracy(d: MMData) -> float:
    """Nearest-class-mean colour accuracy; a digit's brightest pixel is ~1, so the
    per-channel max of the colored image recovers its colour."""
    c = d.x["color"].amax(dim=(-1, -2))                                  # [N, 3]
    pred = torch.cdist(c, torch.tensor(PALETTE, dtype=torch.float32)).argmin(1)
    return (pred == d.y).float().mean().item()


def test_cgm_colour_bias():
    s = load_dataset("cgm", **SMALL["cgm"])
    assert colour_accuracy(s.train) > 0.9 and colour_accuracy(s.val) > 0.9
    assert colour_accuracy(s.test) < 0.2
    half = load_dataset("cgm", random_color_fraction=0.5, **SMALL["cgm"])
    assert 0.4 < colour_accuracy(half.train) < 0.7


def test_cgm_pairing():
    same = load_dataset("cgm", **SMALL["cgm"]).train
    other = load_dataset("cgm", pair_same_image=False, **SMALL["cgm"]).train
    fg = lambda d: (d.x["gray"][:, 0] > 0, d.x["color"].amax(1) > 0)  # foreground masks
    g, c = fg(same)
    assert (g == c).all()
    g, c = fg(other)
    assert (g != c).any(-1).any(-1).float().mean() > 0.99


def test_avmnist_patch_and_speaker_split():
    img = load_dataset("avmnist", image_patch=7).train.x["image"]
    assert ((img[:, 0] != 0).sum((-1, -2)) <= 49).all()
    with pytest.raises(ValueError, match="speaker"):
        load_dataset("avmnist", split="speaker")


def test_mfeat_views():
    s = load_dataset("mfeat", views=("pix", "kar"))
    assert s.info.modalities == {"pix": (240,), "kar": (64,)}
    assert s.train.x["pix"].mean(0).abs().max() < 0.2            # standardised with train stats
    with pytest.raises(ValueError, match="valid views"):
        load_dataset("mfeat", views=("fac", "nope"))


def test_synthetic_snr_controls_separability():
    s = load_dataset("synthetic", snr=(4.0, 0.0))
    k = s.info.num_classes
    for m, expect_high in (("m0", True), ("m1", False)):
        means = torch.stack([s.train.x[m][s.train.y == c].mean(0) for c in range(k)])
        acc = (torch.cdist(s.test.x[m], means).argmin(1) == s.test.y).float().mean()
        assert (acc > 0.9) if expect_high else (acc < 0.45)


# ---------------------------------------------------------------- cache

def test_cache_second_load_faster_and_equal(fresh_cache):
    t0 = time.perf_counter(); a = load_dataset("avmnist", split_seed=5)
    t1 = time.perf_counter(); b = load_dataset("avmnist", split_seed=5)
    t2 = time.perf_counter()
    assert t2 - t1 < t1 - t0
    assert torch.equal(a.train.x["audio"], b.train.x["audio"]) and torch.equal(a.test.y, b.test.y)
    assert list((fresh_cache / "cache" / "data").glob("avmnist-*.pt"))


# ---------------------------------------------------------------- transforms

def indexed_data(n=4000, modalities=("a", "b", "c")):
    """Data whose 'row' modality records each sample's dataset index."""
    x = {m: torch.ones(n, 5) for m in modalities}
    x["row"] = torch.arange(n, dtype=torch.float32)
    return MMData(x, torch.zeros(n, dtype=torch.long))


@pytest.mark.parametrize("eta,mods", [(0.3, ("a", "b")), (0.5, ("a", "b", "c")), (0.9, ("a", "b"))])
def test_missing_modality(eta, mods):
    t = transforms.MissingModality(list(mods), eta, seed=1)
    data = indexed_data(modalities=mods)
    masks = []
    for epoch in range(2):
        loader = BatchLoader(data, 64, shuffle=True, seed=0, transform=t)
        loader.set_epoch(epoch)
        mask = torch.zeros(len(data), len(mods), dtype=torch.bool)
        for batch in loader:
            mask[batch["row"].long()] = batch["mask"]
            for j, m in enumerate(mods):  # missing inputs are zeroed, present ones kept
                assert torch.equal(batch[m][:, 0], batch["mask"][:, j].float())
        masks.append(mask)
    assert torch.equal(masks[0], masks[1])                              # fixed per sample
    assert masks[0].any(1).all()                                        # >= 1 present
    rate = 1 - masks[0].float().mean().item()
    assert abs(rate - t.expected_missing_rate) < 0.03


def test_missing_modality_validation():
    with pytest.raises(ValueError, match="eta"):
        transforms.MissingModality(["a"], 1.5)
    t = transforms.MissingModality(["a", "zzz"], 0.2)
    with pytest.raises(KeyError, match="'a', 'b'"):
        t({"a": torch.ones(2, 3), "b": torch.ones(2, 3), "label": torch.zeros(2)}, torch.arange(2), 0)


def test_gaussian_noise():
    data = indexed_data(modalities=("a", "b"))
    t = transforms.GaussianNoise(["a"], fraction=0.3, std=2.0, seed=0)
    outs = []
    for bs in (64, 1000):  # the noise of a sample does not depend on batching
        a = torch.zeros_like(data.x["a"])
        for batch in BatchLoader(data, bs, shuffle=True, transform=t):
            a[batch["row"].long()] = batch["a"]
            assert (batch["b"] == 1).all()                              # other modality untouched
        outs.append(a)
    assert torch.equal(outs[0], outs[1])
    touched = (outs[0] != 1).any(1).float().mean().item()
    assert abs(touched - 0.3) < 0.03
    noise = outs[0][(outs[0] != 1).any(1)] - 1
    assert abs(noise.std().item() - 2.0) < 0.1 and abs(noise.mean().item()) < 0.1
    with pytest.raises(ValueError, match="fraction"):
        transforms.GaussianNoise(["a"], fraction=-0.1, std=1.0)


# ---------------------------------------------------------------- bad input

def test_unknown_dataset_lists_names():
    with pytest.raises(KeyError) as e:
        load_dataset("cifar")
    for name in ("avmnist", "cgm", "mfeat", "synthetic", "watch"):
        assert name in str(e.value)


def test_unknown_option_lists_options():
    with pytest.raises(TypeError, match="image_patch"):
        load_dataset("avmnist", patch=3)


def test_missing_package_message(fresh_cache, monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(MissingPackageError, match="pip install --no-deps seglearn"):
        load_dataset("watch")


def test_malformed_npz(fresh_cache, monkeypatch):
    bad = fresh_cache / "digits.npz"
    np.savez(bad, X=np.zeros((10, 12), np.float32), y=np.zeros(2, np.int64), lengths=np.array([5, 5]))
    monkeypatch.setattr("mmlab.data.avmnist.package_file", lambda pkg, rel: bad)
    with pytest.raises(DataFormatError, match="digits.npz.*13"):
        load_dataset("avmnist")
    np.savez(bad, X=np.zeros((10, 13), np.float32))                     # keys missing
    with pytest.raises(DataFormatError, match="digits.npz.*keys"):
        load_dataset("avmnist")


@pytest.mark.parametrize("module,content,name", [
    ("mfeat", "0,1,2\n1,2,0\n", "mfeat"),
    ("watch", None, "watch"),
    ("mnist", b"not a gzip", "cgm"),
])
def test_malformed_files(fresh_cache, monkeypatch, module, content, name):
    bad = fresh_cache / f"bad_{module}.dat"
    if content is None:
        bad = bad.with_suffix(".npy")                                   # dict lacking keys
        np.save(bad, {"X": [np.zeros((200, 5))], "y": np.zeros(1)}, allow_pickle=True)
    elif isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        bad.write_text(content)
    monkeypatch.setattr(f"mmlab.data.{module}.package_file", lambda pkg, rel: bad)
    with pytest.raises(DataFormatError, match=bad.name):
        load_dataset(name, **SMALL[name])
