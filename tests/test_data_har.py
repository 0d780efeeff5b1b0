"""USC-HAD and UTD-MHAD loaders on generated miniatures in the public releases' exact layouts
(.mat files written with scipy.io.savemat): shapes, subject-disjoint splits, label mapping,
errors naming the first wrong file, and a prepare that reads the raw files once."""
import numpy as np
import pytest
import torch
from scipy.io import savemat

from mmlab.data import DataFormatError, load_dataset
from mmlab.data import uschad, utdmhad


@pytest.fixture
def usc(tmp_path, run_cache):
    """14 subjects x 12 activities x 1 trial of 300 samples; acc x carries the activity number."""
    root = tmp_path / "USC-HAD"
    rng = np.random.default_rng(0)
    for k in range(1, 15):
        (root / f"Subject{k}").mkdir(parents=True)
        for a in range(1, 13):
            x = 0.1 * rng.standard_normal((300, 6))
            x[:, 0] += a
            savemat(root / f"Subject{k}" / f"a{a}t1.mat", {"sensor_readings": x, "activity_number": str(a)})
    return root


@pytest.fixture
def utd(tmp_path, run_cache):
    """27 actions x 8 subjects x 1 trial; inertial of 100-179 samples, skeletons of 40-69 frames."""
    root = tmp_path / "UTD-MHAD"
    (root / "Inertial").mkdir(parents=True)
    (root / "Skeleton").mkdir()
    rng = np.random.default_rng(1)
    for k in range(1, 28):
        for j in range(1, 9):
            t, f = 100 + int(rng.integers(80)), 40 + int(rng.integers(30))
            iner = 0.1 * rng.standard_normal((t, 6))
            iner[:, 0] += k
            savemat(root / "Inertial" / f"a{k}_s{j}_t1_inertial.mat", {"d_iner": iner})
            savemat(root / "Skeleton" / f"a{k}_s{j}_t1_skeleton.mat", {"d_skel": rng.standard_normal((20, 3, f)) + 5})
    return root


# ---------------------------------------------------------------- USC-HAD

def test_uschad_windows_shapes_and_subject_disjoint_split(usc):
    s = load_dataset("uschad", data_root=str(usc))
    assert s.info.modalities == {"acc": (200, 3), "gyro": (200, 3)} and s.info.num_classes == 12
    assert s.train.x["acc"].shape[1:] == (200, 3) and s.test.x["gyro"].shape[1:] == (200, 3)
    assert len(s.test) == 2 * 12 * 2                                   # subjects 13, 14; 2 windows a recording
    assert len(s.train) + len(s.val) == 12 * 12 * 2
    tr, va, te = (set(d.groups.tolist()) for d in (s.train, s.val, s.test))
    assert te == {13, 14} and len(va) == 1 and not (tr & va) and not (tr & te) and not (va & te)
    assert abs(float(s.train.x["acc"].mean())) < 0.1                   # standardised on the training pool


def test_uschad_labels_follow_the_file_names(usc):
    d = uschad.prepare(str(usc))
    assert torch.equal(d["acc"][:, :, 0].mean(1).round().long(), d["y"] + 1)   # a<k> -> class k-1
    assert d["acc"].shape[0] == 14 * 12 * 2 and sorted(set(d["subject"].tolist())) == list(range(1, 15))


def test_uschad_prepare_reads_the_files_once(usc, monkeypatch):
    calls = []
    real = uschad.read_recording
    monkeypatch.setattr(uschad, "read_recording", lambda p: calls.append(p) or real(p))
    load_dataset("uschad", data_root=str(usc))
    n = len(calls)
    s = load_dataset("uschad", data_root=str(usc), test_subjects=(1, 2))      # same windows, other split
    assert n == 14 * 12 and len(calls) == n and set(s.test.groups.tolist()) == {1, 2}


def test_uschad_missing_root_names_the_layout(tmp_path, monkeypatch):
    monkeypatch.delenv("MMLAB_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="MMLAB_DATA"):
        load_dataset("uschad")
    with pytest.raises(FileNotFoundError, match=r"Subject<k>/a<activity>t<trial>\.mat"):
        load_dataset("uschad", data_root=str(tmp_path / "nowhere"))


def test_uschad_malformed_and_misnamed_files_are_named(usc):
    savemat(usc / "Subject3" / "a2t1.mat", {"readings": np.zeros((300, 6))})
    with pytest.raises(DataFormatError, match=r"Subject3/a2t1\.mat.*sensor_readings"):
        load_dataset("uschad", data_root=str(usc))
    savemat(usc / "Subject3" / "a2t1.mat", {"sensor_readings": np.zeros((300, 4))})
    with pytest.raises(DataFormatError, match=r"a2t1\.mat.*\[T, 6\]"):
        load_dataset("uschad", data_root=str(usc))
    (usc / "Subject3" / "a2t1.mat").write_bytes(b"not a mat file")
    with pytest.raises(DataFormatError, match=r"Subject3/a2t1\.mat"):
        load_dataset("uschad", data_root=str(usc))
    (usc / "Subject3" / "a2t1.mat").unlink()
    savemat(usc / "Subject3" / "walk.mat", {"sensor_readings": np.zeros((300, 6))})
    with pytest.raises(DataFormatError, match=r"walk\.mat"):
        load_dataset("uschad", data_root=str(usc))


def test_uschad_prepare_from_the_command_line(usc, capsys):
    from mmlab.cli import main
    assert main(["prepare", "uschad", "--root", str(usc.parent)]) == 0          # the folder holding USC-HAD/
    assert "336 clips prepared" in capsys.readouterr().out


# ---------------------------------------------------------------- UTD-MHAD

def test_utdmhad_shapes_and_cross_subject_split(utd):
    s = load_dataset("utdmhad", data_root=str(utd), val_fraction=0.25)
    assert s.info.modalities == {"acc": (128, 3), "skeleton": (64, 60)} and s.info.num_classes == 27
    assert s.info.encoders["skeleton"] == ("conv1d", {"in_channels": 60})
    assert len(s.test) == 4 * 27 and len(s.train) + len(s.val) == 4 * 27 and len(s.val) == 27
    assert set(s.test.groups.tolist()) == {2, 4, 6, 8}
    assert set(s.train.groups.tolist()) | set(s.val.groups.tolist()) == {1, 3, 5, 7}
    three = load_dataset("utdmhad", data_root=str(utd), val_fraction=0.25, modalities=("acc", "gyro", "skeleton"))
    assert three.info.modalities["gyro"] == (128, 3)


def test_utdmhad_labels_resampling_and_centring(utd):
    d = utdmhad.prepare(str(utd), inertial_length=32, skeleton_length=16)
    assert d["acc"].shape == (216, 32, 3) and d["skeleton"].shape == (216, 16, 60)
    assert torch.equal(d["acc"][:, :, 0].mean(1).round().long(), d["y"] + 1)   # a<k> -> class k-1
    assert float(d["skeleton"].mean().abs()) < 0.05                            # centred (the raw joints sit at +5)
    ramp = np.stack([np.arange(10.0), 2 * np.arange(10.0)], axis=1)
    assert np.allclose(utdmhad.resample(ramp, 4), [[0, 0], [3, 6], [6, 12], [9, 18]])


def test_utdmhad_prepare_reads_the_files_once(utd, monkeypatch):
    calls = []
    real = utdmhad.read_sequence
    monkeypatch.setattr(utdmhad, "read_sequence", lambda *a: calls.append(a) or real(*a))
    load_dataset("utdmhad", data_root=str(utd), val_fraction=0.25)       # >= 27 val sequences of 108
    load_dataset("utdmhad", data_root=str(utd), val_fraction=0.25, modalities=("gyro", "skeleton"))
    assert len(calls) == 216


def test_utdmhad_missing_root_and_missing_partner_are_named(utd, tmp_path, monkeypatch):
    monkeypatch.delenv("MMLAB_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="MMLAB_DATA"):
        load_dataset("utdmhad")
    with pytest.raises(FileNotFoundError, match=r"Inertial/a<k>_s<j>_t<i>_inertial\.mat"):
        load_dataset("utdmhad", data_root=str(tmp_path / "nowhere"))
    (utd / "Skeleton" / "a3_s2_t1_skeleton.mat").unlink()
    with pytest.raises(FileNotFoundError, match=r"a3_s2_t1_skeleton\.mat is missing"):
        load_dataset("utdmhad", data_root=str(utd))


def test_utdmhad_malformed_file_is_named(utd):
    savemat(utd / "Skeleton" / "a3_s2_t1_skeleton.mat", {"d_skel": np.zeros((25, 3, 40))})
    with pytest.raises(DataFormatError, match=r"a3_s2_t1_skeleton\.mat.*\[20, 3, T\]"):
        load_dataset("utdmhad", data_root=str(utd))
    savemat(utd / "Inertial" / "a3_s2_t1_inertial.mat", {"data": np.zeros((100, 6))})
    with pytest.raises(DataFormatError, match=r"a3_s2_t1_inertial\.mat.*d_iner"):
        load_dataset("utdmhad", data_root=str(utd))
