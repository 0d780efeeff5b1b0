"""The CREMA-D loader on a generated miniature in the exact on-disk layout: OGM-GE's audio and
visual preprocessing, the standard and actor-disjoint splits, errors naming the first wrong
file, and a resumable, atomic prepare."""
import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import wavfile

from mmlab.data import DataFormatError, load_dataset
from mmlab.data import cremad

ACTORS = range(1001, 1011)                       # 10 actors x 6 emotions = 60 clips


@pytest.fixture
def root(tmp_path, run_cache):
    r = tmp_path / "CREMA-D"
    (r / "AudioWAV").mkdir(parents=True)
    rng = np.random.default_rng(0)
    clips = []
    for a in ACTORS:
        for k, emo in enumerate(cremad.EMOTIONS):
            clip = f"{a}_DFA_{emo}_XX"
            t = np.arange(8000) / 16000                                  # 0.5 s at 16 kHz
            x = 0.3 * np.sin(2 * np.pi * (500 + 250 * k) * t) + 0.01 * rng.standard_normal(len(t))
            wavfile.write(r / "AudioWAV" / f"{clip}.wav", 16000, (x * 32767).astype(np.int16))
            (r / "Image-01-FPS" / clip).mkdir(parents=True)
            for f in range(3):
                Image.fromarray(np.full((20, 24, 3), 40 * k + 10 * f, np.uint8)).save(
                    r / "Image-01-FPS" / clip / f"{f:06d}.jpg")
            clips.append((clip, emo))
    test = [c for c in clips if int(c[0][:4]) % 4 == 0 or c[0].endswith("_HAP_XX") and c[0].startswith("1001")]
    train = [c for c in clips if c not in test]
    for name, rows in (("train.csv", train), ("test.csv", test)):
        (r / name).write_text("".join(f"{c},{e}\n" for c, e in rows))
    return r


def test_standard_split_has_ogm_ge_shapes_and_the_lists_clips(root):
    s = load_dataset("cremad", data_root=str(root), image_size=32, val_fraction=0.25)
    assert s.info.modalities == {"audio": (1, 257, 188), "visual": (3, 32, 32)}
    assert s.train.x["audio"].shape[1:] == (1, 257, 188) and s.test.x["visual"].shape[1:] == (3, 32, 32)
    n_test = len((root / "test.csv").read_text().splitlines())
    assert len(s.test) == n_test and len(s.train) + len(s.val) == 60 - n_test
    assert s.info.class_names == list(cremad.EMOTIONS)


def test_spectrogram_of_a_tone_peaks_at_its_frequency_bin(tmp_path):
    t = np.arange(16000) / 16000
    wavfile.write(tmp_path / "tone.wav", 16000, (0.5 * np.sin(2 * np.pi * 1000 * t) * 32767).astype(np.int16))
    s = cremad.spectrogram(tmp_path / "tone.wav")
    assert s.shape == (1, 257, 188)
    peak = int(s[0].mean(1).argmax())
    assert peak == round(1000 * cremad.N_FFT / cremad.SR)               # bin 23 of the 22,050 Hz STFT


def test_three_frames_are_stacked_on_channels_and_imagenet_normalised(root):
    v = cremad.frames_of(root / "Image-01-FPS" / "1001_DFA_ANG_XX", frames=3, size=8)
    assert v.shape == (9, 8, 8)
    # the first frame is uniform grey 0 (+ jpeg noise): after normalisation about -mean/std per channel
    expect = -torch.tensor(cremad.IMAGENET_MEAN) / torch.tensor(cremad.IMAGENET_STD)
    assert torch.allclose(v[:3].mean((1, 2)), expect, atol=0.1)


def test_actor_split_is_actor_disjoint(root):
    s = load_dataset("cremad", data_root=str(root), split="actor", image_size=16)
    tr, va, te = (set(d.groups.tolist()) for d in (s.train, s.val, s.test))
    assert tr and va and te and not (tr & va) and not (tr & te) and not (va & te)
    assert te == cremad.actor_test_set(ACTORS) and len(te) == 2
    assert len(s.train) + len(s.val) + len(s.test) == 60


def test_a_missing_root_names_the_expected_layout(tmp_path, monkeypatch):
    monkeypatch.delenv("MMLAB_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="MMLAB_DATA"):
        load_dataset("cremad")
    with pytest.raises(FileNotFoundError, match="AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav"):
        load_dataset("cremad", data_root=str(tmp_path / "nowhere"))


def test_the_environment_variable_and_the_parent_folder_are_accepted(root, monkeypatch):
    monkeypatch.setenv("MMLAB_DATA", str(root.parent))                 # the folder holding CREMA-D/
    assert cremad.find_root() == root


def test_a_malformed_file_is_named(root):
    (root / "AudioWAV" / "1003_DFA_SAD_XX.wav").write_bytes(b"not a wav")
    with pytest.raises(DataFormatError, match="1003_DFA_SAD_XX.wav"):
        load_dataset("cremad", data_root=str(root), image_size=16)


def test_a_misnamed_clip_is_named(root):
    (root / "AudioWAV" / "1003_DFA_XYZ_XX.wav").write_bytes(b"")
    with pytest.raises(DataFormatError, match="1003_DFA_XYZ_XX.wav"):
        load_dataset("cremad", data_root=str(root), image_size=16)


def test_standard_split_without_its_lists_says_how_to_fix_it(root):
    (root / "test.csv").unlink()
    with pytest.raises(FileNotFoundError, match="split='actor'"):
        load_dataset("cremad", data_root=str(root), image_size=16)


def test_an_interrupted_prepare_resumes_and_equals_an_uninterrupted_one(root, monkeypatch, tmp_path):
    monkeypatch.setattr(cremad, "SHARD", 16)                             # 4 shards of the 60 clips
    with pytest.raises(KeyboardInterrupt):
        cremad.prepare(str(root), image_size=16, stop_after=2)
    data = tmp_path / "cache" / "data"
    shards = list(data.glob("cremad-*.shards/*.pt"))
    assert len(shards) == 2 and not list(data.glob("cremad-*.pt"))     # no final file a load would trust
    calls = []
    real = cremad._clip_tensors
    monkeypatch.setattr(cremad, "_clip_tensors", lambda *a: calls.append(1) or real(*a))
    resumed = cremad.prepare(str(root), image_size=16)
    assert len(calls) == 2                                               # only the two missing shards
    assert list(data.glob("cremad-*.pt")) and not list(data.glob("cremad-*.shards"))
    monkeypatch.setenv("MMLAB_CACHE", str(tmp_path / "fresh"))
    fresh = cremad.prepare(str(root), image_size=16)
    for k in ("audio", "visual", "y", "actor"):
        assert torch.equal(resumed[k], fresh[k])


def test_prepare_from_the_command_line(root, capsys):
    from mmlab.cli import main
    assert main(["prepare", "cremad", "--root", str(root), "--data-opt", "image_size=16"]) == 0
    assert "60 clips prepared" in capsys.readouterr().out
    assert main(["prepare", "watch", "--root", str(root)]) == 2           # ships with a package: no prepare
