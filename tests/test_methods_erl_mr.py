"""ERL-MR (Han et al., ACM MM 2024) and the fusions its tables compare: the Euler transform, the
MMC loss and its switches, CentralNet and MMCosine forward passes by hand, and every baseline of
Table 3 with every fusion."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmlab.data import BatchLoader, load_dataset
from mmlab.methods import METHODS
from mmlab.methods.erl_mr import EulerFusion, EulerTransform, phase_cosine_loss
from mmlab.methods.mmcosine import CosineLinear
from mmlab.models.centralnet import CentralNetFusion
from mmlab.train import TrainConfig, Trainer

FUSIONS4 = ("concat", "sum", "film", "gated")


def _setup(method, seed=0, epochs=1, **opts):
    splits = load_dataset("synthetic", seed=0)
    cfg = TrainConfig(epochs=epochs, optimizer="sgd", lr=0.05, device="cpu", seed=seed)
    t = Trainer(METHODS.get(method)(splits.info, cfg, feature_dim=16, **opts), splits, cfg)
    t.setup()
    return t, next(iter(BatchLoader(splits.train, 32)))


def _loss_and_grads(t, batch, params=None):
    t.model.zero_grad()
    out = t.model(batch)
    loss = t.method.loss(out, batch)
    loss.backward()
    named = dict(t.model.named_parameters())
    return loss.detach(), {k: named[k].grad.clone() for k in (params or named) if named[k].grad is not None}


# --- the Euler transform (Eqs. 5-10) -----------------------------------------------------------
def test_transform_keeps_the_width_and_its_phase_is_atan2_of_the_compressed_parts():
    torch.manual_seed(0)
    tr = EulerTransform(12)
    with torch.no_grad():
        tr.mu.copy_(torch.rand(12) + 0.5)
    e = torch.randn(5, 12)
    new, phase = tr(e)
    assert new.shape == e.shape and phase.shape == (5, 6)
    r_hat = tr.compress(tr.mu * torch.cos(e))                       # Eq. 8 on Eq. 6's real part
    p_hat = tr.compress(tr.mu * torch.sin(e))                       # the same W, b on the imaginary part
    assert torch.allclose(phase, torch.atan2(p_hat, r_hat), atol=1e-6)
    assert torch.allclose(new, torch.cat([torch.relu(r_hat), torch.relu(p_hat)], 1), atol=1e-6)
    assert (new >= 0).all()


def test_an_odd_feature_width_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="even feature_dim"):
        EulerTransform(7)


# --- C1 (Eq. 12) ---------------------------------------------------------------------------------
def test_c1_is_zero_for_identical_phases_and_grows_with_their_angle():
    phi = torch.randn(8, 6)
    assert phase_cosine_loss([phi, phi.clone()]).item() == pytest.approx(0.0, abs=1e-6)
    u = F.normalize(torch.randn(6), dim=0)
    v = F.normalize(torch.randn(6) - (torch.randn(6) @ u) * u, dim=0)
    v = F.normalize(v - (v @ u) * u, dim=0)                         # orthogonal to u
    losses = []
    for a in (0.0, 0.3, 0.8, 1.4, 2.2, 3.0):
        rotated = math.cos(a) * u + math.sin(a) * v                 # at angle a from u
        losses.append(phase_cosine_loss([u.expand(4, 6), rotated.expand(4, 6)]).item())
        assert losses[-1] == pytest.approx(1 - math.cos(a), abs=1e-5)
    assert all(b > a for a, b in zip(losses, losses[1:]))


def test_c1_sums_adjacent_pairs_chain_or_cycle():
    a, b, c = torch.randn(3, 4, 5).unbind()
    one = lambda x, y: (1 - F.cosine_similarity(x, y, dim=1)).mean()   # noqa: E731
    assert torch.allclose(phase_cosine_loss([a, b, c]), one(a, b) + one(b, c))
    assert torch.allclose(phase_cosine_loss([a, b, c], "cycle"), one(a, b) + one(b, c) + one(c, a))


# --- the switches: each removes exactly its term -------------------------------------------------
@pytest.mark.parametrize("fusion", FUSIONS4)
def test_the_loss_is_ce_plus_c1_plus_c2_computed_by_hand(fusion):
    t, batch = _setup("erl_mr", fusion=fusion, c1_weight=0.7, c2_weight=0.3)
    out = t.model(batch)
    y = batch["label"]
    feats = out.features
    new, phases = {}, {}
    for m, f in feats.items():                                   # the transform again, from its parameters
        tr = t.model.fusion.euler[m]
        rp_r, rp_p = tr.compress(tr.mu * torch.cos(f)), tr.compress(tr.mu * torch.sin(f))
        new[m], phases[m] = torch.cat([rp_r.relu(), rp_p.relu()], 1), torch.atan2(rp_p, rp_r)
    inner = t.model.fusion.inner
    fused = inner(new)
    per = inner.per_modality(new)
    m0, m1 = t.model.modalities
    hand = (F.cross_entropy(fused, y) + 0.7 * (1 - F.cosine_similarity(phases[m0], phases[m1], dim=1)).mean()
            + 0.3 * sum(F.cross_entropy(per[m], y) for m in per))
    assert torch.allclose(t.method.loss(out, batch), hand, atol=1e-5)


def _same_start(method_a, opts_a, method_b, opts_b):
    """Two trainers whose shared parameters hold the same values (b's copied into a)."""
    ta, batch = _setup(method_a, **opts_a)
    tb, _ = _setup(method_b, **opts_b)
    pa = dict(ta.model.named_parameters())
    for k, v in tb.model.named_parameters():
        k_a = k.replace("fusion.", "fusion.inner.", 1) if "fusion.inner." + k[len("fusion."):] in pa else k
        with torch.no_grad():
            pa[k_a].copy_(v)
    return ta, tb, batch


@pytest.mark.parametrize("fusion", FUSIONS4)
def test_every_switch_off_is_exactly_the_plain_fusion(fusion):
    ta, tb, batch = _same_start("erl_mr", {"fusion": fusion, "euler": False, "c1": False, "c2": False},
                                fusion, {})
    la, ga = _loss_and_grads(ta, batch)
    lb, gb = _loss_and_grads(tb, batch)
    assert torch.equal(la, lb) and ga.keys() == gb.keys()
    assert all(torch.equal(ga[k], gb[k]) for k in ga)


@pytest.mark.parametrize("switch", ["c1", "c2"])
def test_switching_a_term_off_removes_exactly_that_term_and_its_gradient(switch):
    full, _, batch = _same_start("erl_mr", {}, "erl_mr", {})
    off, _, _ = _same_start("erl_mr", {switch: False}, "erl_mr", {})
    with torch.no_grad():
        for p, q in zip(off.model.parameters(), full.model.parameters()):
            p.copy_(q)
    l_full, g_full = _loss_and_grads(full, batch)
    l_off, g_off = _loss_and_grads(off, batch)
    # the term alone, from the full model
    full.model.zero_grad()
    out = full.model(batch)
    if switch == "c1":
        ph = full.model.fusion.phases(out.features)
        term = phase_cosine_loss([ph[m] for m in full.model.modalities])
    else:
        term = sum(F.cross_entropy(z, batch["label"]) for z in out.per_modality.values())
    term.backward()
    g_term = {k: p.grad for k, p in full.model.named_parameters() if p.grad is not None}
    assert torch.allclose(l_full - l_off, term.detach(), atol=1e-5)
    for k, g in g_full.items():
        expect = g_off.get(k, torch.zeros_like(g)) + g_term.get(k, torch.zeros_like(g))
        assert torch.allclose(g, expect, atol=1e-5), k


def test_euler_off_removes_the_transform_and_c1_without_it_is_refused():
    t, batch = _setup("erl_mr", euler=False, c1=False)
    assert not isinstance(t.model.fusion, EulerFusion)
    t2, _ = _setup("erl_mr")
    assert isinstance(t2.model.fusion, EulerFusion)
    with pytest.raises(ValueError, match="c1 .*needs euler=True"):
        _setup("erl_mr", euler=False)


def test_erl_mr_wraps_mmtm_and_centralnet_and_adds_centralnet_s_own_losses():
    for fusion in ("mmtm", "centralnet"):
        t, batch = _setup("erl_mr", fusion=fusion)
        assert isinstance(t.model.fusion, EulerFusion)
        assert t.model(batch).logits.shape == (32, t.model.fusion.num_classes)
    ta, tb, batch = _same_start("erl_mr", {"fusion": "centralnet", "euler": False, "c1": False, "c2": False},
                                "centralnet", {})
    assert torch.equal(_loss_and_grads(ta, batch)[0], _loss_and_grads(tb, batch)[0])


def test_training_lowers_the_mmc_loss():
    t, batch = _setup("erl_mr")
    before = t.method.loss(t.model(batch), batch).item()
    t.fit()
    assert t.method.loss(t.model(batch), batch).item() < before


# --- CentralNet and MMCosine, by hand -------------------------------------------------------------
def test_centralnet_forward_matches_the_weighted_sums_by_hand():
    torch.manual_seed(0)
    f = CentralNetFusion({"a": 4, "b": 4}, num_classes=3, depth=2)
    with torch.no_grad():
        f.alpha.copy_(torch.rand(3, 3) + 0.5)
    x = {"a": torch.randn(2, 4), "b": torch.randn(2, 4)}
    al = f.alpha
    ha, hb = x["a"], x["b"]
    c = torch.relu(f.central[0](al[0, 1] * ha + al[0, 2] * hb))
    ha, hb = torch.relu(f.towers["a"][0](ha)), torch.relu(f.towers["b"][0](hb))
    c = torch.relu(f.central[1](al[1, 0] * c + al[1, 1] * ha + al[1, 2] * hb))
    ha, hb = torch.relu(f.towers["a"][1](ha)), torch.relu(f.towers["b"][1](hb))
    c = al[2, 0] * c + al[2, 1] * ha + al[2, 2] * hb
    assert torch.allclose(f(x), f.central_head(c), atol=1e-6)
    per = f.per_modality(x)
    assert torch.allclose(per["a"], f.heads["a"](ha), atol=1e-6) and torch.allclose(per["b"], f.heads["b"](hb), atol=1e-6)
    with pytest.raises(ValueError, match="same feature_dim"):
        CentralNetFusion({"a": 4, "b": 6}, 3)


def test_centralnet_trains_central_plus_per_modality_cross_entropies():
    t, batch = _setup("centralnet")
    out = t.model(batch)
    y = batch["label"]
    hand = F.cross_entropy(out.logits, y) + sum(F.cross_entropy(z, y) for z in out.per_modality.values())
    assert torch.allclose(t.method.loss(out, batch), hand)


def test_mmcosine_logits_are_scaled_cosines_summed_without_bias():
    t, batch = _setup("mmcosine", scale=7.0)
    out = t.model(batch)
    heads = t.model.fusion.heads
    total = 0
    for m, f in out.features.items():
        w = heads[m].weight
        cos = (f @ w.T) / (f.norm(dim=1, keepdim=True) * w.norm(dim=1)).clamp_min(1e-12)
        assert torch.allclose(out.per_modality[m], 7.0 * cos, atol=1e-5)
        total = total + 7.0 * cos
    assert torch.allclose(out.logits, total, atol=1e-5)
    assert not any("bias" in k for k, _ in t.model.fusion.named_parameters())
    # scaling a modality's features leaves its logits unchanged
    lin = CosineLinear(4, 3, 10.0)
    x = torch.randn(2, 4)
    assert torch.allclose(lin(x), lin(5 * x), atol=1e-5)


@pytest.mark.parametrize("fusion", ("film", "gated"))
def test_mmcosine_with_a_fused_head_normalises_the_inputs_and_uses_a_cosine_classifier(fusion):
    t, batch = _setup("mmcosine", fusion=fusion)
    out = t.model(batch)
    inner = t.model.fusion.inner
    assert isinstance(inner.head, CosineLinear)
    normed = {m: F.normalize(f, dim=1) for m, f in out.features.items()}
    assert torch.allclose(out.logits, inner(normed), atol=1e-6)
    assert out.logits.abs().max() <= 10.0 + 1e-4                     # |s cos| <= s


# --- Table 3: every baseline with every fusion -----------------------------------------------------
@pytest.mark.parametrize("method", ("gblend", "ogm_ge", "mmcosine", "pmr", "erl_mr"))
def test_every_baseline_trains_with_every_fusion(method):
    for fusion in FUSIONS4:
        t, batch = _setup(method, epochs=3, fusion=fusion)
        t.fit()
        out = t.model(batch)
        assert torch.isfinite(out.logits).all()
        assert set(out.per_modality) == set(t.model.modalities)
        assert t.history[-1]["train"]["acc"] > 0.4, (method, fusion)   # 4 classes: chance 0.25


# --- the chapters' configs ------------------------------------------------------------------------
def test_sections_share_runs_and_name_the_paper_rows():
    from mmlab import papers
    from mmlab.configs import erl_mr as cfg
    for f in FUSIONS4:
        assert cfg.T5[cfg.t5_label(f, "none")] == cfg.T2[cfg.T2_NAMES[f]]            # the plain fusion, chapter 01's run
        assert cfg.T5[cfg.t5_label(f, "E+C1+C2")] == cfg.T2[cfg.T2_NAMES[f] + cfg.DAGGER]
        assert cfg.T3[f"Ours ({cfg.T3_NAMES[f]})"] == cfg.T2[cfg.T2_NAMES[f] + cfg.DAGGER]
    for tid, labels in (("erl-mr-table2", cfg.T2), ("erl-mr-table3", cfg.T3), ("erl-mr-table4", cfg.T4)):
        assert set(labels) <= set(papers.load_table(tid).method), tid      # every row of ours is a paper row
    assert set(papers.load_table("erl-mr-table5").column) == set(cfg.SWITCHES)
    # every switch setting is a distinct run
    runs = [repr(v) for k, v in cfg.T5.items()]
    assert len(set(runs)) == len(runs)
