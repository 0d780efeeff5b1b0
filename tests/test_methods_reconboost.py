"""ReconBoost: the mechanisms of Eq. 7-9 and Alg. 1, not just that it runs."""
import pytest
import torch
import torch.nn.functional as F

from mmlab.data import load_dataset
from mmlab.methods import METHODS
from mmlab.methods.reconboost import mcr_loss, reconciliation_loss
from mmlab.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def splits():
    return load_dataset("synthetic", n_samples=400)


def trainer(splits, epochs=2, checkpoint_dir=None, resume=False, **opts):
    cfg = TrainConfig(device="cpu", epochs=epochs, optimizer="sgd", lr=0.05, weight_decay=5e-4,
                      checkpoint_dir=checkpoint_dir, resume=resume)
    return Trainer(METHODS.get("reconboost")(splits.info, cfg, **opts), splits, cfg)


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed(before, after, prefix):
    return [k for k in before if k.startswith(prefix) and not torch.equal(before[k], after[k])]


def test_boosting_stage_moves_only_the_chosen_learner(splits):
    t = trainer(splits, epochs=1, t1=1, t2=1)
    t.setup()
    before = snapshot(t.model)
    loader = t.loader(splits.train, train=True)
    t.model.train()
    t.method.on_epoch_start(t, 0)
    assert t.method.current == "m0" and t.method.phase(0) == "boost"
    t.method.train_epoch(t, loader, 0)
    after = snapshot(t.model)
    assert changed(before, after, "encoders.m0") and changed(before, after, "fusion.heads.m0")
    assert changed(before, after, "encoders.m1") == [] and changed(before, after, "fusion.heads.m1") == []
    assert torch.equal(before["fusion.boost_rate"], after["fusion.boost_rate"])
    # then global rectification moves every learner and the boost rate
    t.method.on_epoch_start(t, 1)
    assert set(t.method.optimizers) == {"grs"}
    t.method.train_epoch(t, loader, 1)
    final = snapshot(t.model)
    assert changed(after, final, "encoders.m1") and changed(after, final, "encoders.m0")
    assert not torch.equal(after["fusion.boost_rate"], final["fusion.boost_rate"])


def test_kl_reconciliation_gradient_is_the_boosting_pseudo_label(splits):
    """Corollary 3.2: with lam = 1, grad_phi [CE - KL(sigma || p)] = grad_phi CE(phi, y - sigma)."""
    torch.manual_seed(0)
    z = torch.randn(5, 4, requires_grad=True)
    others, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 1])
    g_rb, = torch.autograd.grad(reconciliation_loss(z, others, y, lam=1.0), z)
    pseudo = F.one_hot(y, 4).float() - F.softmax(others, -1)          # y - sigma (Eq. 19)
    g_gb, = torch.autograd.grad(-(pseudo * F.log_softmax(z, -1)).sum(1).mean(), z)
    assert torch.allclose(g_rb, g_gb, atol=1e-6)
    # general lam: grad = ((1 - lam) p - (y - lam sigma)) / B   (Eq. 25)
    lam = 1 / 3
    g, = torch.autograd.grad(reconciliation_loss(z, others, y, lam=lam), z)
    p, s = F.softmax(z, -1), F.softmax(others, -1)
    assert torch.allclose(g, ((1 - lam) * p - (F.one_hot(y, 4) - lam * s)) / 5, atol=1e-6)
    # and the reconciliation term really changes the gradient
    g0, = torch.autograd.grad(reconciliation_loss(z, others, y, lam=0.0), z)
    assert (g - g0).abs().max() > 1e-3


def test_code_form_is_a_weighted_cross_entropy():
    torch.manual_seed(1)
    z, others, y = torch.randn(6, 3), torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    got = reconciliation_loss(z, others, y, lam=0.0, form="code", w1=5, w2=1)
    sig_y = F.softmax(others, -1).gather(1, y[:, None]).squeeze(1)
    want = ((5 - sig_y) * F.cross_entropy(z, y, reduction="none")).mean() / 3
    assert torch.allclose(got, want, atol=1e-6)


def test_mcr_has_a_real_gradient_and_the_code_form_has_none():
    torch.manual_seed(2)
    z = torch.randn(4, 3, requires_grad=True)
    prev = torch.randn(4, 3)
    g, = torch.autograd.grad(mcr_loss(z, prev), z)
    assert g.abs().sum() > 1e-3
    loss = mcr_loss(z, prev, detach=True)
    assert not loss.requires_grad                      # the authors' code: no gradient at all
    # Eq. 8 = ||(p_k - y) - (p_prev - y)||^2: the label cancels
    assert torch.allclose(mcr_loss(z, prev), (F.softmax(z, -1) - F.softmax(prev, -1)).pow(2).sum(1).mean())


def test_mcr_changes_the_learner_update(splits):
    """alpha > 0 changes the trained weights of the second stage's learner (MCR is not inert)."""
    def stage2(alpha, mcr="paper"):
        t = trainer(splits, epochs=3, t1=1, t2=1, alpha=alpha, mcr=mcr).fit()
        assert t.method.selections == ["m0", "m1"] and t.method.previous == "m0"
        return snapshot(t.model)
    base, paper, code = stage2(0.0), stage2(5.0), stage2(5.0, "code")
    assert changed(base, paper, "encoders.m1")
    assert changed(base, code, "encoders.m1") == []     # detached MCR = no MCR


@pytest.mark.parametrize("order,pick", [("s1", min), ("s2", max)])
def test_loss_guided_selection(splits, order, pick):
    t = trainer(splits, epochs=4, t1=1, t2=1, order=order).fit()
    assert len(t.method.stage_losses) == 2
    for losses, chosen in zip(t.method.stage_losses, t.method.selections):
        assert chosen == pick(losses, key=losses.get)
    fixed = trainer(splits, epochs=6, t1=1, t2=1).fit()
    assert fixed.method.selections == ["m0", "m1", "m0"]


def test_final_rules(splits):
    na = trainer(splits, epochs=2).fit().model.fusion
    assert not na.weights.requires_grad and torch.equal(na.weights, torch.ones(2))
    lw = trainer(splits, epochs=2, final="lw").fit().model.fusion
    assert lw.weights.requires_grad and not torch.equal(lw.weights.detach(), torch.ones(2))
    z = {"m0": torch.randn(3, 4), "m1": torch.randn(3, 4)}
    assert torch.allclose(lw.combine(z), lw.weights[0] * z["m0"] + lw.weights[1] * z["m1"])
    assert torch.allclose(na.combine(z), na.boost_rate * (z["m0"] + z["m1"]))


def test_resume_mid_stage_equals_uninterrupted(splits, tmp_path):
    full = trainer(splits, epochs=6, t1=2, t2=1, checkpoint_dir=str(tmp_path / "a"), alpha=1.0).fit()
    trainer(splits, epochs=4, t1=2, t2=1, checkpoint_dir=str(tmp_path / "b"), alpha=1.0).fit()
    resumed = trainer(splits, epochs=6, t1=2, t2=1, checkpoint_dir=str(tmp_path / "b"), resume=True,
                      alpha=1.0).fit()
    assert resumed.method.selections == full.method.selections == ["m0", "m1"]
    for r1, r2 in zip(full.history, resumed.history):
        assert r1["train"] == r2["train"] and r1["val"] == r2["val"]
    for (k, v1), v2 in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(v1, v2), k


@pytest.mark.parametrize("opts,match", [({"final": "max"}, "final"), ({"order": "random"}, "order"),
                                        ({"t1": 0}, "t1"), ({"recon": "l2"}, "recon")])
def test_bad_options_are_named(splits, opts, match):
    with pytest.raises(ValueError, match=match):
        trainer(splits, **opts)


@pytest.mark.parametrize("final", ["tmc", "qmf"])
def test_decision_level_final_rules_fuse_the_learners(splits, final):
    """Ours + TMC / QMF (Table 14): the fused score is that rule applied to the learners' logits."""
    from mmlab.methods.qmf import qmf_combine
    from mmlab.methods.tmc import tmc_combine
    t = trainer(splits, epochs=2, final=final).fit()
    batch = next(iter(t.loader(splits.test, train=False)))
    t.model.eval()
    with torch.no_grad():
        out = t.method.predict(t.model, batch)
    rule = tmc_combine if final == "tmc" else qmf_combine
    assert torch.allclose(out.logits, rule(out.per_modality), atol=1e-5)
    assert t.history[-1]["val"]["acc"] > 0.5


def test_paper_kl_objective_is_unbounded_below():
    """Why the book runs both forms: CE - lam*KL(sigma || p) has no minimum when the others
    put mass on a wrong class (p -> 0 there sends the loss to -inf); the code's form is >= 0."""
    y, others = torch.tensor([0]), torch.tensor([[0.0, 5.0, 0.0]])     # others favour class 1
    losses = [reconciliation_loss(torch.tensor([[s, -s, 0.0]]), others, y, lam=1 / 3) for s in (0.0, 10.0, 100.0)]
    assert losses[2] < losses[1] < losses[0] and losses[2] < -20
    code = [reconciliation_loss(torch.tensor([[s, -s, 0.0]]), others, y, lam=0, form="code") for s in (0.0, 100.0)]
    assert min(code) >= 0
