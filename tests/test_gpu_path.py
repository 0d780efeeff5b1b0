"""The GPU code paths, run on CPU: AMP dtype choice (bfloat16 / float16 + GradScaler), pinned
non-blocking copies, channels-last ResNets. CPU results of amp/channels_last "auto" and "off"
stay bit-identical to before (the book's numbers)."""
import copy

import pytest
import torch

from mmlab.data import load_dataset
from mmlab.data.base import BatchLoader, DatasetInfo, MMData, Splits, pins_memory
from mmlab.methods import METHODS
from mmlab.models import ResNet18, use_channels_last
from mmlab.train import TrainConfig, Trainer, resolve_amp_dtype, wants_channels_last

CUDA = torch.device("cuda")          # a device object only: nothing is moved there


@pytest.fixture(scope="module")
def splits():
    return load_dataset("synthetic", seed=0)


def trainer(splits, method="concat", **kw):
    cfg = TrainConfig(device="cpu", **{"epochs": 2, **kw})
    return Trainer(METHODS.get(method)(splits.info, cfg), splits, cfg)


def rows(t):
    return [{k: r[k] for k in ("epoch", "train", "val")} for r in t.history]


# --- AMP -------------------------------------------------------------------------------------
def test_amp_on_cpu_is_bfloat16_without_loss_scaling(splits):
    t = trainer(splits, amp="on", epochs=3)
    t.setup()
    assert t.amp and t.amp_dtype == torch.bfloat16 and not t.scaler.is_enabled()
    batch = next(iter(t.loader(splits.train, train=True)))
    with t.autocast():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert t.model(batch).logits.dtype == torch.bfloat16
    t.fit()
    assert t.history[-1]["val"]["acc"] > 0.5


def test_amp_dtype_choice_on_cuda(monkeypatch):
    """bfloat16 where the GPU supports it, else float16 (the one that gets a GradScaler)."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_amp_dtype(CUDA) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_amp_dtype(CUDA) == torch.float16
    assert resolve_amp_dtype(torch.device("cpu")) == torch.bfloat16
    assert resolve_amp_dtype(torch.device("cpu"), "float16") == torch.float16
    assert resolve_amp_dtype(CUDA, "bfloat16") == torch.bfloat16
    with pytest.raises(ValueError, match="amp_dtype must be one of"):
        TrainConfig(amp_dtype="fp8")


def test_float16_with_grad_scaler_runs_and_resumes_exactly_on_cpu(splits, tmp_path):
    """The fp16 path of older GPUs (autocast float16, GradScaler on), forced on CPU: finite
    losses, learning, and a checkpoint/resume round trip that restores the scaler's state."""
    kw = dict(amp="on", amp_dtype="float16", optimizer="sgd", lr=0.05)
    full = trainer(splits, epochs=2, checkpoint_dir=str(tmp_path / "full"), **kw)
    full.setup()
    assert full.amp_dtype == torch.float16 and full.scaler.is_enabled()
    with full.autocast():
        assert torch.get_autocast_dtype("cpu") == torch.float16
    full.fit()
    assert all(torch.isfinite(torch.tensor(r["train"]["loss"])) for r in full.history)
    assert full.history[-1]["val"]["acc"] > 0.5
    trainer(splits, epochs=1, checkpoint_dir=str(tmp_path / "part"), **kw).fit()
    ck = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    assert ck["scaler"]["scale"] > 0 and ck["scaler"]["_growth_tracker"] > 0    # a live scaler state
    resumed = trainer(splits, epochs=2, checkpoint_dir=str(tmp_path / "part"), resume=True, **kw).fit()
    assert rows(resumed) == rows(full)
    assert resumed.scaler.state_dict() == full.scaler.state_dict()              # restored, then stepped on
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_cpu_auto_is_plain_fp32_and_unchanged(splits):
    """amp/channels_last "auto" on CPU: no autocast, no scaler, contiguous weights; the same
    numbers as "off" bit for bit."""
    auto, off = trainer(splits).fit(), trainer(splits, amp="off", channels_last="off").fit()
    assert not auto.amp and not auto.scaler.is_enabled()
    assert rows(auto) == rows(off)


def test_checkpoints_older_than_the_new_options_still_resume(splits, tmp_path):
    trainer(splits, epochs=1, checkpoint_dir=str(tmp_path)).fit()
    ck = torch.load(tmp_path / "last.pt", weights_only=True)
    for k in ("amp_dtype", "channels_last"):
        del ck["config"][k]
    torch.save(ck, tmp_path / "last.pt")
    t = trainer(splits, epochs=2, checkpoint_dir=str(tmp_path), resume=True).fit()
    assert [r["epoch"] for r in t.history] == [0, 1]


# --- pinned memory, non-blocking copies ------------------------------------------------------
def test_only_cuda_batches_are_pinned():
    assert pins_memory("cuda") and pins_memory(torch.device("cuda", 1))
    assert not pins_memory("cpu") and not pins_memory(torch.device("cpu"))


def test_cpu_loaders_never_pin(splits, monkeypatch):
    """Pinning needs an accelerator: a CPU-only build raises on pin_memory()."""
    def boom(self, *a, **k):
        raise AssertionError("pin_memory called on a CPU run")
    monkeypatch.setattr(torch.Tensor, "pin_memory", boom)
    loader = BatchLoader(splits.train, 64, shuffle=True)
    assert not loader.pin and sum(len(b["label"]) for b in loader) == len(splits.train)


def test_cuda_batches_are_pinned_then_copied_non_blocking(splits, monkeypatch):
    """The CUDA branch of BatchLoader.batch, with pin_memory / to recorded instead of run."""
    calls = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self, *a, **k: calls.append("pin") or self)
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: calls.append(("to", a, k)) or self)
    loader = BatchLoader(splits.train, 8, device="cuda")
    batch = loader.batch(torch.arange(8))
    n = len(batch)                            # m0, m1, label, index
    assert loader.pin and calls[:n] == ["pin"] * n
    assert calls[n:] == [("to", (CUDA,), {"non_blocking": True})] * n


# --- channels-last ---------------------------------------------------------------------------
def test_channels_last_resnet_gives_the_same_outputs():
    torch.manual_seed(0)
    net = ResNet18(in_channels=3, num_classes=5)
    nhwc = copy.deepcopy(net)
    assert use_channels_last(nhwc) == 1
    seen = []
    nhwc.stem[0].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    x = torch.randn(8, 3, 64, 64)                                   # [B, C, H, W], contiguous
    # eval (running statistics): within 1e-5 (measured <= 4e-6: float32 sums in another order).
    # train: BatchNorm divides by the std of 8 values at 2x2 in the last stage, which amplifies
    # those rounding differences ~10x (measured <= 2e-5), so 1e-4 there
    for train, tol in ((False, 1e-5), (True, 1e-4)):
        net.train(train), nhwc.train(train)
        assert torch.allclose(net(x), nhwc(x), atol=tol, rtol=0), train
    assert seen[-1].is_contiguous(memory_format=torch.channels_last)
    for name, p in nhwc.named_parameters():
        if p.dim() == 4:
            assert p.is_contiguous(memory_format=torch.channels_last), name
    assert not net.stem[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_choice():
    resnet, mlp = torch.nn.Sequential(ResNet18()), torch.nn.Linear(4, 2)
    assert wants_channels_last("auto", CUDA, resnet) and not wants_channels_last("auto", CUDA, mlp)
    assert not wants_channels_last("auto", torch.device("cpu"), resnet)
    assert wants_channels_last("on", torch.device("cpu"), mlp) and not wants_channels_last("off", CUDA, resnet)


def _image_splits(n: int = 24) -> Splits:
    g = torch.Generator().manual_seed(0)
    x = {"img": torch.randn(n, 3, 16, 16, generator=g), "vec": torch.randn(n, 4, generator=g)}
    info = DatasetInfo("tiny-images", {"img": (3, 16, 16), "vec": (4,)}, ["a", "b"],
                       {"img": ("resnet18", {"in_channels": 3}), "vec": ("mlp", {"in_dim": 4})})
    data = MMData(x, torch.arange(n) % 2)
    return Splits(data, data, data, info)


def test_trainer_channels_last_on_trains_like_contiguous():
    s = _image_splits()
    on = trainer(s, epochs=1, batch_size=12, channels_last="on").fit()
    off = trainer(s, epochs=1, batch_size=12, channels_last="off").fit()
    conv = on.model.encoders["img"].stem[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and on.model.encoders["img"].channels_last
    assert not off.model.encoders["img"].channels_last
    for a, b in zip(rows(on), rows(off)):
        for split in ("train", "val"):
            assert abs(a[split]["loss"] - b[split]["loss"]) < 1e-4 and a[split]["acc"] == b[split]["acc"]
