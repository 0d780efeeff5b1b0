"""Encoders, ResNet-18, fusions, MultimodalNet and build_model."""
import pytest
import torch
from torch import nn

from mmlab.data import load_dataset
from mmlab.models import ENCODERS, FUSIONS, MultimodalNet, ResNet18, build_model
from mmlab.models.encoders import MLPEncoder
from mmlab.registry import UnknownNameError


# encoder name -> (constructor kwargs, input shape); small on purpose
ENCODER_CASES = {
    "cnn4": (dict(in_channels=1, out_dim=16, width=8), (3, 1, 28, 28)),
    "conv1d": (dict(in_channels=3, out_dim=16, width=8), (3, 20, 3)),
    "gru": (dict(in_channels=3, out_dim=16), (3, 7, 3)),
    "mlp": (dict(in_dim=10, out_dim=16, hidden=32), (4, 10)),
    "resnet18": (dict(in_channels=1), (2, 1, 64, 48)),
}


def _assert_all_grads(module: nn.Module, what: str):
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{what}: no gradient reached {name}"
        assert torch.isfinite(p.grad).all(), f"{what}: non-finite gradient in {name}"
        assert p.grad.abs().sum() > 0, f"{what}: gradient of {name} is all zero"


def test_encoder_cases_cover_registry():
    assert set(ENCODER_CASES) == set(ENCODERS.names())


@pytest.mark.parametrize("name", sorted(ENCODER_CASES))
def test_encoder_forward_backward(name):
    torch.manual_seed(0)
    kwargs, shape = ENCODER_CASES[name]
    enc = ENCODERS.get(name)(**kwargs)
    enc.train()
    out = enc(torch.randn(*shape))
    assert out.shape == (shape[0], enc.out_dim)
    assert enc.out_dim == kwargs.get("out_dim", 512)
    # a random projection as the loss: sum() would give BatchNorm'd outputs zero gradient
    (out * torch.randn_like(out)).sum().backward()
    _assert_all_grads(enc, name)


def test_resnet18_projection_and_classifier_shapes():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 64, 48)
    assert ResNet18(in_channels=1, out_dim=32)(x).shape == (2, 32)
    net = ResNet18(in_channels=1, num_classes=7)
    assert net.out_dim == 7 and net(x).shape == (2, 7)


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_resnet18_parameter_count_matches_torchvision():
    rgb = _n_params(ResNet18(in_channels=3, num_classes=1000))
    assert rgb == 11_689_512
    gray = _n_params(ResNet18(in_channels=1, num_classes=1000))
    assert rgb - gray == 64 * 7 * 7 * 2
    # as an encoder (no fc): 1000-way fc has 512*1000 + 1000 params
    assert _n_params(ResNet18(in_channels=3)) == rgb - 513_000


# ----------------------------------------------------------------------------- fusions

DIMS = {2: {"a": 6, "b": 10}, 3: {"a": 6, "b": 10, "c": 4}}
IN_DIMS = {"a": 5, "b": 7, "c": 3}
C = 5


def _net(fusion: str, n_mod: int, head: str = "linear", seed: int = 0) -> MultimodalNet:
    torch.manual_seed(seed)
    dims = DIMS[n_mod] if fusion != "single" else {"a": 6}
    encs = {m: MLPEncoder(IN_DIMS[m], out_dim=d, hidden=16) for m, d in dims.items()}
    return MultimodalNet(encs, FUSIONS.get(fusion)(dims, C, head=head))


def _batch(mods, b: int = 8, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {m: torch.randn(b, IN_DIMS[m], generator=g) for m in mods}
    out["label"] = torch.randint(0, C, (b,), generator=g)
    return out


def test_fusion_registry_names():
    assert set(FUSIONS.names()) >= {"concat", "sum", "film", "gated", "late", "single"}


@pytest.mark.parametrize("n_mod", [2, 3])
@pytest.mark.parametrize("fusion", ["concat", "sum", "film", "gated", "late"])
def test_fusion_forward_backward(fusion, n_mod):
    net = _net(fusion, n_mod)
    batch = _batch(net.modalities)
    out = net(batch)
    assert out.logits.shape == (8, C)
    assert set(out.per_modality) == set(DIMS[n_mod])
    for m, z in out.per_modality.items():
        assert z.shape == (8, C)
        assert out.features[m].shape == (8, DIMS[n_mod][m])
    # gradients from the fused logits alone reach every encoder and every fusion parameter
    nn.functional.cross_entropy(out.logits, batch["label"]).backward()
    for m in net.modalities:
        _assert_all_grads(net.encoders[m], f"{fusion}/{m}")
    for name, p in net.fusion.named_parameters():
        assert p.grad is not None, f"{fusion}: no gradient reached fusion.{name}"


def test_single_fusion_forward_backward():
    net = _net("single", 1)
    batch = _batch(["a"])
    out = net(batch)
    assert out.logits.shape == (8, C)
    torch.testing.assert_close(out.per_modality["a"], out.logits)
    nn.functional.cross_entropy(out.logits, batch["label"]).backward()
    _assert_all_grads(net, "single")


def test_single_fusion_rejects_two_modalities():
    with pytest.raises(ValueError, match="one modality"):
        FUSIONS.get("single")({"a": 3, "b": 4}, C)


@pytest.mark.parametrize("n_mod", [2, 3])
def test_concat_linear_per_modality_sums_to_fused(n_mod):
    net = _net("concat", n_mod)
    with torch.no_grad():
        out = net(_batch(net.modalities))
        total = torch.stack(list(out.per_modality.values())).sum(0)
        torch.testing.assert_close(total, out.logits, atol=1e-5, rtol=0)
        # the sliced-weight logits are the zeroed logits with the bias split M ways
        b = net.fusion.head.bias
        for m in net.modalities:
            expected = net.fusion.zeroed(out.features, m) - b * (n_mod - 1) / n_mod
            torch.testing.assert_close(out.per_modality[m], expected, atol=1e-5, rtol=0)


def test_concat_mlp_head_per_modality_is_zeroed():
    net = _net("concat", 2, head="mlp3")
    with torch.no_grad():
        out = net(_batch(net.modalities))
        for m in net.modalities:
            torch.testing.assert_close(out.per_modality[m], net.fusion.zeroed(out.features, m))
        total = torch.stack(list(out.per_modality.values())).sum(0)
        assert (total - out.logits).abs().max() > 1e-3   # no additive split for an MLP head


@pytest.mark.parametrize("n_mod", [2, 3])
def test_sum_fusion_is_sum_of_per_modality(n_mod):
    net = _net("sum", n_mod)
    with torch.no_grad():
        out = net(_batch(net.modalities))
        torch.testing.assert_close(torch.stack(list(out.per_modality.values())).sum(0), out.logits,
                                   atol=1e-5, rtol=0)
        for m in net.modalities:    # each per-modality logit is that modality's own head
            torch.testing.assert_close(out.per_modality[m], net.fusion.heads[m](out.features[m]))


@pytest.mark.parametrize("n_mod", [2, 3])
def test_late_fusion_averages_probabilities(n_mod):
    net = _net("late", n_mod)
    with torch.no_grad():
        out = net(_batch(net.modalities))
        mean_p = torch.stack([z.softmax(-1) for z in out.per_modality.values()]).mean(0)
        torch.testing.assert_close(out.logits.softmax(-1), mean_p, atol=1e-6, rtol=0)
        # fused logits are log-probabilities already
        torch.testing.assert_close(out.logits.exp().sum(-1), torch.ones(8), atol=1e-5, rtol=0)
        # and not simply the mean of the logits
        mean_logits = torch.stack(list(out.per_modality.values())).mean(0)
        assert (out.logits.softmax(-1) - mean_logits.softmax(-1)).abs().max() > 1e-4


@pytest.mark.parametrize("n_mod", [2, 3])
@pytest.mark.parametrize("fusion", ["film", "gated"])
def test_film_gated_per_modality_is_zeroed(fusion, n_mod):
    net = _net(fusion, n_mod)
    with torch.no_grad():
        out = net(_batch(net.modalities))
        for m in net.modalities:
            feats = {n: f if n == m else torch.zeros_like(f) for n, f in out.features.items()}
            torch.testing.assert_close(out.per_modality[m], net.fusion(feats))
            torch.testing.assert_close(out.per_modality[m], net.fusion.zeroed(out.features, m))
            # zeroing the other modalities really changes the output
            assert (out.per_modality[m] - out.logits).abs().max() > 1e-3, m


def test_zeroed_does_not_modify_features():
    net = _net("gated", 3)
    with torch.no_grad():
        out = net(_batch(net.modalities))
        before = {m: f.clone() for m, f in out.features.items()}
        net.fusion.zeroed(out.features, "a")
        for m in before:
            torch.testing.assert_close(out.features[m], before[m])


# ------------------------------------------------------------------ MultimodalNet / build_model

@pytest.fixture(scope="module")
def synth3():
    return load_dataset("synthetic", seed=0, n_samples=200, dims=(6, 8, 5), snr=(3.0, 1.0, 0.5))


def _present_rows_nonzero(f):
    return (f.abs().sum(1) > 0).all()


def test_mask_zeros_only_absent_modalities(synth3):
    torch.manual_seed(0)
    net = build_model(synth3.info, fusion="concat", feature_dim=16)
    batch = {m: t[:6] for m, t in synth3.train.x.items()}
    mask = torch.tensor([[1, 1, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0], [0, 0, 1], [0, 1, 0]], dtype=torch.bool)
    with torch.no_grad():
        full = net.encode(batch)
        masked = net.encode({**batch, "mask": mask})
    for j, m in enumerate(synth3.info.modality_names):
        assert _present_rows_nonzero(full[m])
        present = mask[:, j]
        torch.testing.assert_close(masked[m][present], full[m][present])
        assert (masked[m][~present] == 0).all()


def test_mask_columns_follow_dataset_order_for_a_subset(synth3):
    # a model on (m2, m1) still reads mask columns in the dataset's order m0, m1, m2
    torch.manual_seed(0)
    net = build_model(synth3.info, fusion="concat", modalities=["m2", "m1"], feature_dim=16)
    assert net.modalities == ["m2", "m1"]
    batch = {m: t[:4] for m, t in synth3.train.x.items()}
    mask = torch.tensor([[1, 1, 0], [1, 0, 1], [0, 1, 1], [0, 0, 0]], dtype=torch.bool)
    with torch.no_grad():
        full = net.encode(batch)
        masked = net.encode({**batch, "mask": mask})
        logits = net({**batch, "mask": mask}).logits
    assert set(masked) == {"m1", "m2"}
    for m, j in (("m1", 1), ("m2", 2)):
        present = mask[:, j]
        torch.testing.assert_close(masked[m][present], full[m][present])
        assert (masked[m][~present] == 0).all()
    # all features absent: the concat logits reduce to the head's bias
    torch.testing.assert_close(logits[3], net.fusion.head.bias.detach())


def test_build_model_defaults_and_options(synth3):
    net = build_model(synth3.info, fusion="sum", feature_dim=12,
                      encoder_options={"m1": {"out_dim": 20, "hidden": 8}})
    assert net.modalities == synth3.info.modality_names
    assert all(isinstance(e, MLPEncoder) for e in net.encoders.values())
    assert net.fusion.dims == {"m0": 12, "m1": 20, "m2": 12}
    out = net({m: t[:5] for m, t in synth3.train.x.items()})
    assert out.logits.shape == (5, synth3.info.num_classes)


def test_build_model_unknown_encoder_lists_names(synth3):
    with pytest.raises(UnknownNameError) as err:
        build_model(synth3.info, encoders={"m0": "transformer9000"})
    msg = str(err.value)
    assert "transformer9000" in msg
    for name in ENCODERS.names():
        assert name in msg


def test_build_model_unknown_fusion_lists_names(synth3):
    with pytest.raises(UnknownNameError) as err:
        build_model(synth3.info, fusion="attention9000")
    msg = str(err.value)
    assert "attention9000" in msg
    for name in ("concat", "sum", "film", "gated", "late", "single"):
        assert name in msg


def test_build_model_unknown_modality_names_dataset_modalities(synth3):
    with pytest.raises(KeyError) as err:
        build_model(synth3.info, modalities=["m0", "audio"])
    msg = str(err.value)
    assert "audio" in msg and "synthetic" in msg
    for m in synth3.info.modality_names:
        assert m in msg


@pytest.mark.parametrize("fusion", ["film", "gated", "concat", "sum", "late"])
def test_build_model_multimodal_fusion_needs_two_modalities(synth3, fusion):
    with pytest.raises(ValueError, match="at least two"):
        build_model(synth3.info, fusion=fusion, modalities=["m0"])


def test_build_model_single_modality(synth3):
    net = build_model(synth3.info, fusion="single", modalities=["m1"], feature_dim=8)
    out = net({m: t[:3] for m, t in synth3.train.x.items()})
    assert list(out.per_modality) == ["m1"] and out.logits.shape == (3, synth3.info.num_classes)
