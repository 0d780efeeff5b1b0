"""The AVE loader on a generated miniature in the exact on-disk layout (Annotations.txt, the
official train/val/test lists, Audio/<VideoID>.wav, Image-01-FPS/<VideoID>/*.jpg): OGM-GE's AVE
preprocessing, the official splits, errors naming the first wrong file, a resumable prepare."""
import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import wavfile

from mmlab.data import DataFormatError, load_dataset
from mmlab.data import av_clips, ave

CLASSES = ("Church bell", "Dog", "Rodeo", "Toilet flush")
SIZES = {"trainSet.txt": 3, "valSet.txt": 1, "testSet.txt": 1}      # videos per class: 12 / 4 / 4


def _clip(r, vid, k):
    t = np.arange(16000) / 16000                                     # 1 s at 16 kHz (OGM-GE tiles it)
    x = 0.3 * np.sin(2 * np.pi * (400 + 300 * k) * t)
    wavfile.write(r / "Audio" / f"{vid}.wav", 16000, (x * 32767).astype(np.int16))
    (r / "Image-01-FPS" / vid).mkdir(parents=True)
    for f in range(4):
        Image.fromarray(np.full((12, 16, 3), 50 * k + 10 * f, np.uint8)).save(
            r / "Image-01-FPS" / vid / f"frame_{f + 1:05d}.jpg")


@pytest.fixture
def root(tmp_path, run_cache):
    r = tmp_path / "AVE_Dataset"
    (r / "Audio").mkdir(parents=True)
    lines = {n: [] for n in SIZES}
    for k, cat in enumerate(CLASSES):
        n = 0
        for name, count in SIZES.items():
            for _ in range(count):
                vid = f"v{k}x{n:02d}-_A"
                _clip(r, vid, k)
                lines[name].append(f"{cat}&{vid}&good&0&10\n")
                n += 1
    for name, rows in lines.items():
        (r / name).write_text("".join(rows))
    (r / "Annotations.txt").write_text(ave.HEADER + "\n" + "".join(sum(lines.values(), [])))
    return r


def test_official_splits_and_ogm_ge_shapes(root):
    s = load_dataset("ave", data_root=str(root), image_size=16)
    assert s.info.modalities == {"audio": (1, 257, 1004), "visual": (9, 16, 16)}
    assert s.train.x["audio"].shape[1:] == (1, 257, 1004) and s.val.x["visual"].shape[1:] == (9, 16, 16)
    assert s.sizes() == {"train": 12, "val": 4, "test": 4}
    assert s.info.class_names == sorted(CLASSES) and s.info.encoders["visual"] == ("resnet18", {"in_channels": 9})
    assert torch.bincount(s.test.y).tolist() == [1, 1, 1, 1]
    a = s.train.x["audio"][0, 0]                                     # standardised per clip
    assert abs(float(a.mean())) < 1e-3 and abs(float(a.std()) - 1) < 1e-2


def test_frames_follow_ogm_ge_pick_and_audio_rate_option(root):
    v = av_clips.frames_of(root / "Image-01-FPS" / "v1x00-_A", 3, 8, "ogm_ge")    # frames 0, 1, 2 of 4
    grey = torch.tensor([50, 60, 70]) / 255.0                          # frame f is grey 50 + 10 f
    expect = (grey.view(3, 1) - torch.tensor(av_clips.IMAGENET_MEAN)) / torch.tensor(av_clips.IMAGENET_STD)
    assert torch.allclose(v.view(3, 3, -1).mean(-1), expect, atol=0.1)
    whole = av_clips.psd_spectrogram(root / "Audio" / "v1x00-_A.wav", ave.SAMPLES, 16000)
    assert whole.shape == (1, 257, 1004)                               # the whole 10 s at 16 kHz, same shape
    with pytest.raises(ValueError, match="audio_rate"):
        load_dataset("ave", data_root=str(root), audio_rate=8000)


def test_a_missing_root_names_the_expected_layout(tmp_path, monkeypatch):
    monkeypatch.delenv("MMLAB_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="MMLAB_DATA"):
        load_dataset("ave")
    with pytest.raises(FileNotFoundError, match="Annotations.txt.*trainSet.txt.*Image-01-FPS/<VideoID>/"):
        load_dataset("ave", data_root=str(tmp_path / "nowhere"))


def test_the_environment_variable_and_the_parent_folder_are_accepted(root, monkeypatch):
    monkeypatch.setenv("MMLAB_DATA", str(root.parent))
    assert ave.find_root() == root


def test_a_broken_wav_is_named(root):
    (root / "Audio" / "v2x01-_A.wav").write_bytes(b"not a wav")
    with pytest.raises(DataFormatError, match="v2x01-_A.wav"):
        load_dataset("ave", data_root=str(root), image_size=16)


def test_a_list_line_naming_a_missing_clip_is_named(root):
    with open(root / "valSet.txt", "a") as f:
        f.write("Dog&ghost_clip&good&0&10\n")
    with pytest.raises(DataFormatError, match=r"ghost_clip\.wav is missing.*valSet.txt lists clip 'ghost_clip'"):
        load_dataset("ave", data_root=str(root), image_size=16)


def test_a_bad_annotation_line_is_named(root):
    with open(root / "trainSet.txt", "a") as f:
        f.write("Dog&v1x00-_A&good&0\n")
    with pytest.raises(DataFormatError, match=r"trainSet.txt, line 13: expected 'Category&VideoID"):
        load_dataset("ave", data_root=str(root), image_size=16)
    (root / "trainSet.txt").write_text("Cat&v1x00-_A&good&0&10\n")
    with pytest.raises(DataFormatError, match="category 'Cat' is not in Annotations.txt"):
        load_dataset("ave", data_root=str(root), image_size=16)


def test_an_interrupted_prepare_resumes_and_equals_an_uninterrupted_one(root, monkeypatch, tmp_path):
    monkeypatch.setattr(ave, "SHARD", 6)                                # 4 shards of the 20 videos
    with pytest.raises(KeyboardInterrupt):
        ave.prepare(str(root), image_size=16, stop_after=2)
    data = tmp_path / "cache" / "data"
    assert len(list(data.glob("ave-*.shards/*.pt"))) == 2 and not list(data.glob("ave-*.pt"))
    calls = []
    real = ave._clip_tensors
    monkeypatch.setattr(ave, "_clip_tensors", lambda *a: calls.append(1) or real(*a))
    resumed = ave.prepare(str(root), image_size=16)
    assert len(calls) == 2                                               # only the two missing shards
    assert list(data.glob("ave-*.pt")) and not list(data.glob("ave-*.shards"))
    monkeypatch.setenv("MMLAB_CACHE", str(tmp_path / "fresh"))
    fresh = ave.prepare(str(root), image_size=16)
    assert resumed["clip"] == fresh["clip"]
    for k in ("audio", "visual", "y"):
        assert torch.equal(resumed[k], fresh[k])


def test_prepare_from_the_command_line(root, capsys):
    from mmlab.cli import main
    assert main(["prepare", "ave", "--root", str(root), "--data-opt", "image_size=16", "--data-opt", "frames=1"]) == 0
    assert "ave: 20 clips prepared" in capsys.readouterr().out
