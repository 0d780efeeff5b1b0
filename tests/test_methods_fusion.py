"""TMC (Dempster-Shafer evidential fusion), QMF (energy-weighted fusion with a loss-history
ranking term) and the MMTM fusion: the mechanisms each paper describes."""
import math

import pytest
import torch
import torch.nn.functional as F

import mmlab
from mmlab.data import load_dataset
from mmlab.methods import METHODS
from mmlab.methods.combine import energy, qmf_combine, qmf_confidence, qmf_rank_loss, qmf_weights
from mmlab.methods.combine import (dirichlet_loss, ds_combine_two, evidence, kl_to_uniform_dirichlet, tmc_alpha,
                               tmc_combine, tmc_loss, uncertainty)
from mmlab.models import FUSIONS, build_model
from mmlab.runner import RunConfig
from mmlab.train import TrainConfig, Trainer

B, C = 6, 5


@pytest.fixture(scope="module")
def splits():
    return load_dataset("synthetic", seed=0)


def _logits(seed: int, names=("a", "b")):
    g = torch.Generator().manual_seed(seed)
    return {m: 3 * torch.randn(B, C, generator=g) for m in names}


def _finite_run(method: str, **options):
    res = mmlab.run(RunConfig(dataset="synthetic", method=method, epochs=2, device="cpu", probe=False,
                              method_options=options), cache=False)
    test = res.metrics["test"]
    assert math.isfinite(test["acc"]) and test["acc"] > 0.5          # 4 classes: chance 0.25
    assert all(math.isfinite(r["train"]["loss"]) for r in res.history)
    assert set(test["per_modality"]) == {"m0", "m1"}
    return res


def _fit(method, splits, epochs, ckpt=None, resume=False, **options):
    cfg = TrainConfig(device="cpu", epochs=epochs, checkpoint_dir=ckpt, resume=resume)
    return Trainer(METHODS.get(method)(splits.info, cfg, **options), splits, cfg).fit()


# ----------------------------------------------------------------------------------- TMC

def _paper_ds_rule(alpha1, alpha2):
    """Definition 3.1 of TMC written out: beliefs, uncertainty, conflict, renormalisation."""
    S1, S2 = alpha1.sum(1, keepdim=True), alpha2.sum(1, keepdim=True)
    b1, b2, u1, u2 = (alpha1 - 1) / S1, (alpha2 - 1) / S2, C / S1, C / S2
    conflict = torch.einsum("bi,bj->b", b1, b2)[:, None] - (b1 * b2).sum(1, keepdim=True)  # sum_{i!=j}
    b = (b1 * b2 + b1 * u2 + b2 * u1) / (1 - conflict)
    u = u1 * u2 / (1 - conflict)
    return b * (C / u) + 1


def test_tmc_combination_is_the_papers_ds_rule_and_order_free():
    z = _logits(0, ("a", "b", "c"))
    a1, a2 = evidence(z["a"]) + 1, evidence(z["b"]) + 1
    torch.testing.assert_close(ds_combine_two(a1, a2), _paper_ds_rule(a1, a2), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ds_combine_two(a1, a2), ds_combine_two(a2, a1))          # commutative
    fused = tmc_combine(z)
    for order in (("b", "a", "c"), ("c", "b", "a")):                                     # any order
        torch.testing.assert_close(tmc_combine({m: z[m] for m in order}), fused)
    torch.testing.assert_close(fused.exp().sum(1), torch.ones(B))                        # log-probs


def test_tmc_vacuous_opinion_is_the_identity():
    """A modality with no evidence (softplus(-60) ~ 1e-26) leaves the other's opinion as is."""
    z = _logits(1)
    z["b"] = torch.full((B, C), -60.0)
    alpha_a = evidence(z["a"]) + 1
    expected = torch.log(alpha_a / alpha_a.sum(1, keepdim=True))
    torch.testing.assert_close(tmc_combine(z), expected)
    torch.testing.assert_close(tmc_combine({"b": z["b"], "a": z["a"]}), expected)


def test_tmc_fused_uncertainty_is_below_each_input():
    z = _logits(2)
    u_fused = uncertainty(tmc_alpha(z))
    for m in z:
        assert (u_fused <= uncertainty(evidence(z[m]) + 1) + 1e-7).all()
    # and strictly below when both carry evidence
    assert (u_fused < uncertainty(evidence(z["a"]) + 1)).all()


def test_tmc_loss_terms_match_their_definitions():
    """L_ace is CE integrated over Dir(alpha) (checked by Monte Carlo); the KL is the closed
    form of KL(Dir || Dir(1)); lambda_t anneals it in over `annealing_epochs`."""
    torch.manual_seed(0)
    alpha = torch.tensor([[4.0, 2.0, 1.5, 1.0, 1.2]])
    y = torch.tensor([0])
    p = torch.distributions.Dirichlet(alpha[0]).sample((200_000,))
    mc = -torch.log(p[:, 0]).mean()
    assert abs(float(dirichlet_loss(alpha, y, 0.0)) - float(mc)) < 0.01
    exact = torch.distributions.kl_divergence(torch.distributions.Dirichlet(alpha),
                                              torch.distributions.Dirichlet(torch.ones_like(alpha)))
    torch.testing.assert_close(kl_to_uniform_dirichlet(alpha), exact)
    z, yy = _logits(3), torch.randint(0, C, (B,))
    l0, l5, l10, l20 = (tmc_loss(z, yy, t, annealing_epochs=10) for t in (0, 5, 10, 20))
    assert l0 < l5 < l10 and torch.isclose(l10, l20)            # KL >= 0 weighted by min(1, t/10)


def test_tmc_loss_is_finite_and_decreases_under_sgd():
    torch.manual_seed(0)
    y = torch.randint(0, C, (64,))
    x = {m: 2 * torch.randn(C, 8)[y] + torch.randn(64, 8) for m in ("a", "b")}   # class means + noise
    heads = {m: torch.nn.Linear(8, C) for m in x}
    opt = torch.optim.SGD([p for h in heads.values() for p in h.parameters()], lr=0.5)
    losses = []
    for _ in range(30):
        loss = tmc_loss({m: heads[m](x[m]) for m in x}, y, epoch=5)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < 0.8 * losses[0]


def test_tmc_run_is_finite_and_predicts_with_ds_fusion(splits):
    _finite_run("tmc")
    t = _fit("tmc", splits, epochs=1)
    batch = next(iter(t.loader(splits.val, train=False)))
    out = t.model(batch)
    torch.testing.assert_close(out.logits, tmc_combine(out.per_modality))
    with pytest.raises(ValueError, match="takes no fusion"):
        METHODS.get("tmc")(splits.info, TrainConfig(), fusion="concat")


# ----------------------------------------------------------------------------------- QMF

def test_qmf_weights_sum_to_one_and_fall_with_energy():
    z = _logits(4)
    w = qmf_weights(z)
    assert w.shape == (B, 2)
    torch.testing.assert_close(w.sum(1), torch.ones(B))
    # b = a shifted down: same ranking of classes but energy higher by 3 -> less weight
    z2 = {"a": z["a"], "b": z["a"] - 3.0}
    torch.testing.assert_close(energy(z2["b"]), energy(z2["a"]) + 3.0)
    w2 = qmf_weights(z2)
    assert (w2[:, 1] < w2[:, 0]).all()
    # weighting="code" is the authors' raw confidence logsumexp(z) / 10
    torch.testing.assert_close(qmf_weights(z, weighting="code")[:, 0], torch.logsumexp(z["a"], 1) / 10)
    with pytest.raises(ValueError, match="weighting"):
        qmf_weights(z, weighting="mean")


def test_qmf_combine_is_the_weighted_sum_with_detached_weights():
    z = {m: v.requires_grad_() for m, v in _logits(5).items()}
    w = qmf_weights(z).detach()
    fused = qmf_combine(z)
    torch.testing.assert_close(fused, w[:, :1] * z["a"] + w[:, 1:] * z["b"])
    fused.sum().backward()                        # detached weights: d fused / d z_m = w_m only
    torch.testing.assert_close(z["a"].grad, w[:, :1].expand(B, C))


def test_qmf_rank_loss_is_zero_when_confidence_follows_history():
    hist = torch.tensor([0.0, 0.3, 0.6, 1.0])           # sample 3 has been the hardest
    agree = torch.tensor([9.0, 6.0, 3.0, 0.0])          # ... and is the least confident
    for form in ("enforce", "code"):
        assert float(qmf_rank_loss(agree, hist, form)) == 0.0
        assert float(qmf_rank_loss(agree.flip(0), hist, form)) > 0.0
    # "enforce" asks for a margin of |h_i - h_j|; the code's sign makes it a slack
    close = torch.tensor([0.2, 0.1, 0.05, 0.0])         # right order, gaps below the history gaps
    assert float(qmf_rank_loss(close, hist, "enforce")) > 0.0
    assert float(qmf_rank_loss(close, hist, "code")) == 0.0
    assert float(qmf_rank_loss(agree, torch.full((4,), 0.5))) == 0.0   # no history: no signal


def test_qmf_keeps_a_per_sample_loss_history(splits):
    cfg = TrainConfig(device="cpu", epochs=1)
    method = METHODS.get("qmf")(splits.info, cfg)
    t = Trainer(method, splits, cfg)
    t.setup()
    assert method.history.shape == (2, len(splits.train)) and not method.history.any()
    batch = next(iter(t.loader(splits.train, train=True)))
    with torch.no_grad():
        per = t.model(batch).per_modality
    method.training_step(t, batch)
    for k, m in enumerate(method.modalities):
        ce = F.cross_entropy(per[m], batch["label"], reduction="none")
        torch.testing.assert_close(method.history[k, batch["index"]], ce)
    assert int((method.history[0] != 0).sum()) == len(batch["label"])   # only this batch's samples
    # the ranking term trains the confidence: its gradient reaches the modality's head
    out = t.model(batch)
    conf = qmf_confidence(out.per_modality)                                   # [B, M]
    rank = qmf_rank_loss(conf[:, 0], method.normalised_history(0, batch["index"]))
    assert rank > 0
    rank.backward()
    assert t.model.fusion.heads["m0"].weight.grad.abs().sum() > 0


def test_qmf_run_is_finite(splits):
    _finite_run("qmf")


def test_qmf_resume_equals_uninterrupted(splits, tmp_path):
    full = _fit("qmf", splits, 3, str(tmp_path / "full"))
    _fit("qmf", splits, 2, str(tmp_path / "part"))
    resumed = _fit("qmf", splits, 3, str(tmp_path / "part"), resume=True)
    for r1, r2 in zip(full.history, resumed.history, strict=True):
        assert r1["train"] == r2["train"] and r1["val"] == r2["val"]
    torch.testing.assert_close(full.method.history, resumed.method.history, rtol=0, atol=0)
    for (k, v1), v2 in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(v1, v2), k


# ---------------------------------------------------------------------------------- MMTM

def _mmtm_net(splits):
    torch.manual_seed(0)
    return build_model(splits.info, fusion="mmtm", feature_dim=12)


def test_mmtm_shapes_and_gates_in_0_2(splits):
    net = _mmtm_net(splits)
    fusion = net.fusion
    assert fusion.squeeze.out_features == (12 + 12) // 4           # reduction ratio 4
    batch = {m: splits.train.x[m][:8] for m in ("m0", "m1")}
    out = net(batch)
    assert out.logits.shape == (8, 4) and set(out.per_modality) == {"m0", "m1"}
    for m, g in fusion.excitation(out.features).items():
        assert g.shape == (8, 12) and (g > 0).all() and (g < 2).all()
    big = {m: 100 * torch.randn(8, 12) for m in ("m0", "m1")}     # saturating inputs stay bounded
    for g in fusion.excitation(big).values():                     # (float32 rounds to 0 or 2 there)
        assert (g >= 0).all() and (g <= 2).all()
    # gates are cross-modal: changing m1's features changes m0's gates
    other = dict(out.features, m1=torch.randn(8, 12))
    assert not torch.allclose(fusion.excitation(out.features)["m0"], fusion.excitation(other)["m0"])
    with pytest.raises(ValueError, match="at least two"):
        FUSIONS.get("mmtm")({"a": 4}, 3)


def test_mmtm_gradients_reach_every_encoder_feature(splits):
    net = _mmtm_net(splits)
    batch = {m: splits.train.x[m][:16] for m in ("m0", "m1")}
    feats = {m: f.detach().requires_grad_() for m, f in net.encode(batch).items()}
    logits = net.fusion(feats)
    (logits * torch.randn_like(logits)).sum().backward()
    for m, f in feats.items():
        assert (f.grad != 0).all(), m                             # every sample, every channel
    out = net(batch)
    F.cross_entropy(out.logits, splits.train.y[:16]).backward()
    for m in net.modalities:
        for name, p in net.encoders[m].named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{m}.{name}"


def test_concat_with_mmtm_fusion_runs():
    res = _finite_run("concat", fusion="mmtm")
    assert res.config["method_options"] == {"fusion": "mmtm"}


def test_one_way_gated_fusion_is_the_first_modality_gating_the_others():
    """gate="one" (MLA's BiGated description, OGM-GE's code): h = sigmoid(V_1 f_1) * sum V_m f_m."""
    from mmlab.models.fusion import GatedFusion
    torch.manual_seed(0)
    g = GatedFusion({"a": 3, "b": 3}, 2, gate="one")
    f = {"a": torch.randn(4, 3), "b": torch.randn(4, 3)}
    h = torch.sigmoid(g.value["a"](f["a"])) * g.value["b"](f["b"])
    assert torch.allclose(g(f), g.head(h))
    f2 = {"a": f["a"], "b": f["b"] + 1.0}                   # only b's side moves: the gate on a is fixed
    assert torch.allclose(g(f2) - g.head(torch.sigmoid(g.value["a"](f["a"])) * g.value["b"](f2["b"])),
                          torch.zeros(4, 2), atol=1e-6)
