"""The extracted-feature loaders on generated miniatures in the exact on-disk layouts: MMSA and
MultiBench pickles (MOSI/MOSEI/SIMS), DialogueRNN's IEMOCAP pickle, and the documented npz
layout of the image-text sets and NVGesture; label mapping, real val splits, errors naming the
first wrong file, and a prepare that parses the files once."""
import pickle

import numpy as np
import pytest
import torch

from mmlab.data import DataFormatError, load_dataset
from mmlab.data import features

SCORES = np.array([-2.4, -0.6, 0.0, 0.4, 1.8, -1.0])          # negative, negative, neutral, positive, ...


def mmsa_split(n, rng, t_audio=7):
    audio = rng.standard_normal((n, t_audio, 5)).astype(np.float32)
    audio[0, 0, 0] = -np.inf                                   # as in MMSA's files; set to 0
    return {"raw_text": ["x"] * n, "id": [f"v{i}$_$1" for i in range(n)], "text": rng.standard_normal((n, 6, 8)),
            "audio": audio, "vision": rng.standard_normal((n, 9, 4)), "text_bert": np.zeros((n, 3, 6)),
            "regression_labels": np.resize(SCORES, n), "classification_labels": np.zeros(n)}


@pytest.fixture
def mosi(tmp_path, run_cache):
    rng = np.random.default_rng(0)
    (tmp_path / "MOSI").mkdir()
    data = {"train": mmsa_split(30, rng), "valid": mmsa_split(12, rng), "test": mmsa_split(18, rng, t_audio=5)}
    with open(tmp_path / "MOSI" / "unaligned_50.pkl", "wb") as f:
        pickle.dump(data, f)
    return tmp_path


def write_npz(folder, mods, sizes, n_classes, rng):
    folder.mkdir(parents=True)
    (folder / "classes.txt").write_text("".join(f"class{c}\n" for c in range(n_classes)))
    for split, n in sizes.items():
        arrays = {m: rng.standard_normal((n,) + shape).astype(np.float32) for m, shape in mods.items()}
        np.savez(folder / f"{split}.npz", label=np.arange(n) % n_classes, id=np.arange(n), **arrays)


# ---------------------------------------------------------------- MOSI / MOSEI / SIMS

def test_mosi_mmsa_pickle_shapes_splits_and_three_classes(mosi):
    s = load_dataset("mosi", data_root=str(mosi))
    assert s.sizes() == {"train": 30, "val": 12, "test": 18}                # the file's own valid split
    assert s.info.modalities == {"text": (6, 8), "audio": (7, 5), "visual": (9, 4)}
    assert s.info.encoders["audio"] == ("gru", {"in_channels": 5})
    assert s.info.class_names == ["negative", "neutral", "positive"]
    assert s.train.y[:6].tolist() == [0, 0, 1, 2, 2, 0]                      # sign of the score
    assert s.test.x["audio"].shape == (18, 7, 5) and torch.all(s.test.x["audio"][:, 5:] == 0)  # padded to train's
    assert s.train.x["audio"][0, 0, 0] == 0 and torch.isfinite(s.train.x["audio"]).all()


def test_mosi_two_classes_and_reconboost_mean_pooling(mosi):
    s = load_dataset("mosi", data_root=str(mosi), classes=2, pool="mean")
    assert s.train.y[:6].tolist() == [0, 0, 1, 1, 1, 0]                      # 0 is non-negative
    assert s.info.modalities == {"text": (6, 8), "audio": (5,), "visual": (4,)}
    assert s.info.encoders["visual"] == ("mlp", {"in_dim": 4})
    seq = load_dataset("mosi", data_root=str(mosi))
    assert torch.allclose(s.train.x["visual"], seq.train.x["visual"].mean(1))
    with pytest.raises(ValueError, match="classes must be 3"):
        load_dataset("mosi", data_root=str(mosi), classes=7)


def test_mosei_multibench_pickle_and_sims_under_processed(tmp_path, run_cache):
    rng = np.random.default_rng(1)
    def mb(n):
        return {"vision": rng.standard_normal((n, 50, 35)), "audio": rng.standard_normal((n, 50, 74)),
                "text": rng.standard_normal((n, 50, 300)), "labels": np.resize(SCORES, n).reshape(n, 1, 1)}
    (tmp_path / "MOSEI").mkdir()
    with open(tmp_path / "MOSEI" / "mosei_raw.pkl", "wb") as f:
        pickle.dump({"train": mb(12), "valid": mb(6), "test": mb(6)}, f)
    s = load_dataset("mosei", data_root=str(tmp_path))
    assert s.sizes() == {"train": 12, "val": 6, "test": 6} and s.info.modalities["audio"] == (50, 74)
    assert s.train.y[:6].tolist() == [0, 0, 1, 2, 2, 0]
    (tmp_path / "SIMS" / "Processed").mkdir(parents=True)
    with open(tmp_path / "SIMS" / "Processed" / "unaligned_39.pkl", "wb") as f:
        pickle.dump({k: mmsa_split(n, rng) for k, n in (("train", 12), ("valid", 6), ("test", 6))}, f)
    assert load_dataset("sims", data_root=str(tmp_path)).sizes() == {"train": 12, "val": 6, "test": 6}


def test_prepare_parses_the_pickle_once(mosi, monkeypatch):
    calls = []
    real = features._load_pickle
    monkeypatch.setattr(features, "_load_pickle", lambda p: calls.append(p) or real(p))
    load_dataset("mosi", data_root=str(mosi))
    load_dataset("mosi", data_root=str(mosi), classes=2, pool="mean")
    assert len(calls) == 1


def test_missing_root_names_the_layout_and_mmlab_data(tmp_path, monkeypatch):
    monkeypatch.delenv("MMLAB_DATA", raising=False)
    for name in features.SPECS:                     # `python -m mmlab datasets` lists each as not found
        with pytest.raises(FileNotFoundError, match="MMLAB_DATA"):
            load_dataset(name)
    with pytest.raises(FileNotFoundError, match=r"MOSI/unaligned_50\.pkl.*first missing"):
        load_dataset("mosi", data_root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"Food101/\{train,val,test\}\.npz"):
        load_dataset("food101", data_root=str(tmp_path))


def test_malformed_pickles_are_named(mosi):
    path = mosi / "MOSI" / "unaligned_50.pkl"
    data = pickle.loads(path.read_bytes())
    del data["test"]["vision"]
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(DataFormatError, match=r"unaligned_50\.pkl.*'vision' is missing"):
        load_dataset("mosi", data_root=str(mosi))
    path.write_bytes(b"not a pickle")
    with pytest.raises(DataFormatError, match=r"unaligned_50\.pkl: not a readable pickle"):
        load_dataset("mosi", data_root=str(mosi))


# ---------------------------------------------------------------- IEMOCAP

def dialogue_rnn_pickle(path, rng):
    ids = [f"Ses0{s}_d{i}" for s in (1, 2, 3, 4, 5) for i in range(2)]
    labels = {v: [i % 6 for i in range(12)] for v in ids}              # every class in every dialogue
    feats = lambda d: {v: rng.standard_normal((12, d)) for v in ids}
    data = [{v: [] for v in ids}, {v: ["M"] * 12 for v in ids}, labels, feats(100), feats(100), feats(512),
            {v: ["hi"] * 12 for v in ids}, ids[:8], ids[8:]]
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps(data))


def test_iemocap_dialogue_rnn_pickle_four_and_six_classes(tmp_path, run_cache):
    dialogue_rnn_pickle(tmp_path / "IEMOCAP" / "IEMOCAP_features.pkl", np.random.default_rng(2))
    six = load_dataset("iemocap", data_root=str(tmp_path), classes=6, val_fraction=0.25)
    assert six.info.modalities == {"text": (100,), "audio": (100,), "visual": (512,)}
    assert len(six.test) == 24 and len(six.train) + len(six.val) == 96      # session 5 is test
    assert not set(six.val.groups.tolist()) & set(six.train.groups.tolist())   # whole dialogues
    four = load_dataset("iemocap", data_root=str(tmp_path), val_fraction=0.25)
    assert four.info.class_names == ["angry", "happy", "neutral", "sad"]
    assert len(four.test) == 20                                             # frustrated dropped
    # DialogueRNN order hap, sad, neu, ang, exc, fru -> happy, sad, neutral, angry, happy
    assert four.test.y[:5].tolist() == [1, 3, 2, 0, 1]


# ---------------------------------------------------------------- the npz layout

def test_npz_layout_shapes_real_and_carved_val(tmp_path, run_cache):
    rng = np.random.default_rng(3)
    write_npz(tmp_path / "Twitter2015", {"image": (16,), "text": (12,)}, {"train": 30, "val": 9, "test": 9}, 3, rng)
    write_npz(tmp_path / "NVGesture", {"rgb": (4, 8), "depth": (4, 8), "of": (4, 8)}, {"train": 50, "test": 25}, 25,
              rng)
    write_npz(tmp_path / "Food101", {"image": (6,), "text": (5,)}, {"train": 202, "val": 101, "test": 101}, 101, rng)
    tw = load_dataset("twitter2015", data_root=str(tmp_path))
    assert tw.sizes() == {"train": 30, "val": 9, "test": 9} and tw.info.class_names == ["class0", "class1", "class2"]
    assert tw.info.encoders == {"image": ("mlp", {"in_dim": 16}), "text": ("mlp", {"in_dim": 12})}
    assert tw.train.y[:4].tolist() == [0, 1, 2, 0]
    nv = load_dataset("nvgesture", data_root=str(tmp_path), val_fraction=0.5)  # no val.npz: stratified slice
    assert nv.info.modalities == {"rgb": (4, 8), "depth": (4, 8), "of": (4, 8)} and nv.info.num_classes == 25
    assert len(nv.train) == 25 and len(nv.val) == 25 and len(nv.test) == 25
    assert load_dataset("food101", data_root=str(tmp_path / "Food101")).info.num_classes == 101   # the folder itself


def test_npz_layout_errors_name_the_file(tmp_path, run_cache):
    rng = np.random.default_rng(4)
    write_npz(tmp_path / "MVSA", {"image": (6,), "text": (5,)}, {"train": 30, "test": 9}, 3, rng)
    (tmp_path / "MVSA" / "classes.txt").write_text("positive\nnegative\n")
    with pytest.raises(DataFormatError, match=r"MVSA/classes\.txt.*3 class names"):
        load_dataset("mvsa", data_root=str(tmp_path))
    (tmp_path / "MVSA" / "classes.txt").write_text("negative\nneutral\npositive\n")
    np.savez(tmp_path / "MVSA" / "test.npz", image=np.zeros((9, 6)), label=np.zeros(9, int))
    with pytest.raises(DataFormatError, match=r"MVSA/test\.npz.*'text' is missing"):
        load_dataset("mvsa", data_root=str(tmp_path))
    np.savez(tmp_path / "MVSA" / "test.npz", image=np.zeros((9, 6)), text=np.zeros((9, 5)), label=np.full(9, 3))
    with pytest.raises(DataFormatError, match=r"MVSA/test\.npz.*0\.\.2"):
        load_dataset("mvsa", data_root=str(tmp_path))
    (tmp_path / "MVSA" / "test.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"MVSA/test\.npz is missing"):
        load_dataset("mvsa", data_root=str(tmp_path))


def test_prepare_finds_the_one_set_and_the_command_line_prepares_it(mosi, capsys):
    assert len(features.prepare(str(mosi))["y"]) == 60                      # dataset=None: the only set there
    from mmlab.cli import main
    assert main(["prepare", "mosi", "--root", str(mosi)]) == 0
    assert "60 clips prepared" in capsys.readouterr().out
    write_npz(mosi / "Sarcasm", {"image": (4,), "text": (4,)}, {"train": 8, "test": 4}, 2, np.random.default_rng(5))
    with pytest.raises(ValueError, match="dataset=NAME"):
        features.prepare(str(mosi))
    assert len(features.prepare(str(mosi), dataset="sarcasm")["y"]) == 12
