"""The Kinetics-Sounds loader on a generated miniature in the exact on-disk layout (train.csv /
test.csv or OGM-GE's my_train.txt / my_test.txt, Audio/<clip>.wav, Image-01-FPS/<clip>/*.jpg):
10-s audio, the lists' splits with a stratified validation slice, errors naming the first wrong
file, a resumable prepare."""
import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import wavfile

from mmlab.data import DataFormatError, load_dataset
from mmlab.data import av_clips, kinetics_sounds as ks

CLASSES = ("playing bagpipes", "blowing nose", "tap dancing", "chopping wood")
TRAIN, TEST = 6, 2                                                   # clips per class: 24 / 8


@pytest.fixture
def root(tmp_path, run_cache):
    r = tmp_path / "Kinetics-Sounds"
    (r / "Audio").mkdir(parents=True)
    rows = {"train.csv": [], "test.csv": []}
    for k, name in enumerate(CLASSES):
        for n in range(TRAIN + TEST):
            clip = f"-yt{k}{n:02d}_000010_000020"
            t = np.arange(8000) / 8000                               # 1 s at 8 kHz (tiled to 10 s)
            wavfile.write(r / "Audio" / f"{clip}.wav", 8000, (0.3 * np.sin(2 * np.pi * (300 + 200 * k) * t)
                                                              * 32767).astype(np.int16))
            (r / "Image-01-FPS" / clip).mkdir(parents=True)
            for f in range(3):
                Image.fromarray(np.full((10, 14, 3), 60 * k + 5 * f, np.uint8)).save(
                    r / "Image-01-FPS" / clip / f"frame_{f + 1:05d}.jpg")
            rows["train.csv" if n < TRAIN else "test.csv"].append(f"{clip},{name}\n")
    for name, lines in rows.items():
        (r / name).write_text("".join(lines))
    return r


def test_splits_shapes_and_ten_second_audio(root):
    s = load_dataset("kinetics_sounds", data_root=str(root), image_size=16, val_fraction=0.25)
    assert s.info.modalities == {"audio": (1, 257, 625), "visual": (9, 16, 16)}
    assert s.train.x["audio"].shape[1:] == (1, 257, 625) and s.test.x["visual"].shape[1:] == (9, 16, 16)
    assert len(s.test) == 8 and len(s.train) + len(s.val) == 24 and len(s.val) == 6
    assert torch.bincount(s.val.y).tolist() in ([2, 2, 1, 1], [1, 1, 2, 2], [2, 1, 2, 1], [1, 2, 1, 2],
                                                [2, 1, 1, 2], [1, 2, 2, 1])    # stratified
    assert s.info.class_names == sorted(CLASSES)
    peak = int(s.test.x["audio"][0, 0].mean(1).argmax())             # the first test clip: class 0's
    assert peak == round(300 * av_clips.N_FFT / av_clips.SR)           # 300 Hz tone, bin 7
    assert s.info.class_names[int(s.test.y[0])] == CLASSES[0]
    assert s.info.encoders == {"audio": ("resnet18", {"in_channels": 1}), "visual": ("resnet18", {"in_channels": 9})}


def test_ogm_ge_index_lists_are_read(root):
    for name, new in (("train.csv", "my_train.txt"), ("test.csv", "my_test.txt")):
        rows = [line.split(",") for line in (root / name).read_text().splitlines()]
        (root / new).write_text("".join(f"{c},10,{CLASSES.index(lab)}\n" for c, lab in rows))
        (root / name).unlink()
    s = load_dataset("kinetics_sounds", data_root=str(root), image_size=16, val_fraction=0.25, frames=1)
    assert s.info.class_names == [f"class {k}" for k in range(4)] and len(s.test) == 8


def test_a_missing_root_names_the_expected_layout(tmp_path, monkeypatch):
    monkeypatch.delenv("MMLAB_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="MMLAB_DATA"):
        load_dataset("kinetics_sounds")
    with pytest.raises(FileNotFoundError, match="train.csv.*Audio/<clip>.wav.*first missing: .*train.csv"):
        load_dataset("kinetics_sounds", data_root=str(tmp_path / "nowhere"))


def test_the_environment_variable_and_the_parent_folder_are_accepted(root, monkeypatch):
    monkeypatch.setenv("MMLAB_DATA", str(root.parent))
    assert ks.find_root() == root


def test_a_broken_wav_is_named(root):
    (root / "Audio" / "-yt203_000010_000020.wav").write_bytes(b"RIFF....")
    with pytest.raises(DataFormatError, match="-yt203_000010_000020.wav: not a readable WAV"):
        load_dataset("kinetics_sounds", data_root=str(root), image_size=16, val_fraction=0.25)


def test_a_list_line_naming_a_missing_clip_is_named(root):
    with open(root / "test.csv", "a") as f:
        f.write("missing_clip,tap dancing\n")
    with pytest.raises(DataFormatError, match=r"missing_clip\.wav is missing.*test.csv lists clip 'missing_clip'"):
        load_dataset("kinetics_sounds", data_root=str(root), image_size=16, val_fraction=0.25)


def test_a_malformed_list_line_is_named(root):
    with open(root / "train.csv", "a") as f:
        f.write("a,b,c,d\n")
    with pytest.raises(DataFormatError, match=r"train.csv, line 25: expected '<clip>,<label name>'"):
        load_dataset("kinetics_sounds", data_root=str(root), image_size=16, val_fraction=0.25)


def test_an_interrupted_prepare_resumes_and_equals_an_uninterrupted_one(root, monkeypatch, tmp_path):
    monkeypatch.setattr(ks, "SHARD", 8)                                 # 4 shards of the 32 clips
    with pytest.raises(KeyboardInterrupt):
        ks.prepare(str(root), image_size=16, frames=1, stop_after=2)
    data = tmp_path / "cache" / "data"
    assert len(list(data.glob("kinetics_sounds-*.shards/*.pt"))) == 2 and not list(data.glob("kinetics_sounds-*.pt"))
    calls = []
    real = ks._clip_tensors
    monkeypatch.setattr(ks, "_clip_tensors", lambda *a: calls.append(1) or real(*a))
    resumed = ks.prepare(str(root), image_size=16, frames=1)
    assert len(calls) == 2                                               # only the two missing shards
    assert list(data.glob("kinetics_sounds-*.pt")) and not list(data.glob("kinetics_sounds-*.shards"))
    monkeypatch.setenv("MMLAB_CACHE", str(tmp_path / "fresh"))
    fresh = ks.prepare(str(root), image_size=16, frames=1)
    assert resumed["clip"] == fresh["clip"]
    for k in ("audio", "visual", "y"):
        assert torch.equal(resumed[k], fresh[k])


def test_spectrogram_of_a_ten_second_tone_peaks_at_its_bin(tmp_path):
    t = np.arange(16000 * 10) / 16000
    wavfile.write(tmp_path / "tone.wav", 16000, (0.5 * np.sin(2 * np.pi * 2000 * t) * 32767).astype(np.int16))
    s = av_clips.spectrogram(tmp_path / "tone.wav", ks.SECONDS)
    assert s.shape == (1, 257, 625) and int(s[0].mean(1).argmax()) == round(2000 * av_clips.N_FFT / av_clips.SR)
