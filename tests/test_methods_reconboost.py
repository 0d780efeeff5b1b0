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
    # then global rectification moves every learner (the paper has no boost rate: it stays 1)
    t.method.on_epoch_start(t, 1)
    assert set(t.method.optimizers) == {"grs"}
    t.method.train_epoch(t, loader, 1)
    final = snapshot(t.model)
    assert changed(after, final, "encoders.m1") and changed(after, final, "encoders.m0")
    assert float(final["fusion.boost_rate"]) == 1.0


def _boost_grad(t, beta):
    """Gradient of a boosting loss for learner m0 w.r.t. its logits at boost rate beta. The
    frozen learner m1 is made confident (head x 20): near-uniform others hide beta."""
    t.setup()
    t.method.on_epoch_start(t, 0)
    with torch.no_grad():
        t.model.fusion.boost_rate.fill_(beta)
        t.model.fusion.heads["m1"].weight.mul_(20)
    batch = next(iter(t.loader(t.splits.train, train=False)))
    per = t.model.fusion.per_modality(t.model.encode(batch))
    z = per["m0"].detach().requires_grad_()
    g, = torch.autograd.grad(t.method.boost_loss(t.model, {"m0": z, "m1": per["m1"].detach()},
                                                 batch["label"]), z)
    return g, z.detach(), per["m1"].detach(), batch["label"]


def test_paper_form_has_no_boost_rate_the_code_form_does(splits):
    """Eq. 7: Phi_{M/k} = sum_{j != k} phi_j; Eq. 9 / Alg. 1: l(sum_k phi_k). The authors'
    code scales both by a learnable beta: an option, not the default."""
    g_paper, z, other, y = _boost_grad(trainer(splits, lam=1 / 3, alpha=0.0), beta=1.7)
    want, = torch.autograd.grad(reconciliation_loss(z.requires_grad_(), other, y, 1 / 3), z)
    torch.testing.assert_close(g_paper, want)
    g_code, z, other, y = _boost_grad(trainer(splits, lam=1 / 3, alpha=0.0, boost_rate="code"), beta=1.7)
    want_code, = torch.autograd.grad(reconciliation_loss(z.requires_grad_(), 1.7 * other, y, 1 / 3), z)
    torch.testing.assert_close(g_code, want_code)
    without, = torch.autograd.grad(reconciliation_loss(z, other, y, 1 / 3), z)
    assert (g_code - without).norm() > 0.05 * without.norm()      # beta really changes Eq. 7
    # GRS trains beta only in the code form
    paper, code = trainer(splits, epochs=2).fit(), trainer(splits, epochs=2, boost_rate="code").fit()
    assert float(paper.model.fusion.boost_rate) == 1.0 and not paper.model.fusion.boost_rate.requires_grad
    assert code.model.fusion.boost_rate.item() != 1.0


def test_tmc_final_anneals_by_the_same_rule_as_the_tmc_method(splits):
    """One rule: at the trainer's pass 0 both use lambda = 1 / annealing_epochs (= 0.1)."""
    from mmlab.methods.combine import dirichlet_loss, evidence, tmc_alpha
    rb = trainer(splits, epochs=2, final="tmc")
    rb.setup()
    tmc_cfg = TrainConfig(device="cpu")
    tmc = METHODS.get("tmc")(splits.info, tmc_cfg)
    batch = next(iter(rb.loader(splits.train, train=False)))
    out = rb.model(batch)
    tmc.on_epoch_start(None, 0)
    y = batch["label"]
    want = (dirichlet_loss(tmc_alpha(out.per_modality), y, 0.1)
            + sum(dirichlet_loss(evidence(z) + 1, y, 0.1) for z in out.per_modality.values())).mean()
    torch.testing.assert_close(rb.method.grs_loss(out, batch, 0), want)
    torch.testing.assert_close(tmc.loss(out, batch), want)


def test_qmf_final_trains_qmfs_own_objective(splits):
    """GRS with final="qmf" trains QMF's loss (fused CE + per-learner CE + ranking term over
    a per-sample loss history), not only CE on the fused score."""
    from mmlab.methods.combine import qmf_confidence, qmf_rank_loss
    t = trainer(splits, epochs=2, final="qmf")
    t.setup()
    t.method.on_epoch_start(t, 0)
    t.method.on_epoch_start(t, 1)                        # the GRS phase of stage 0
    batch = next(iter(t.loader(splits.train, train=True)))
    t.method.grs_step(t, batch, 1)
    hist = t.method.qmf.history
    assert hist.shape == (2, len(splits.train)) and int((hist[0] != 0).sum()) == len(batch["label"])
    out = t.model(batch)
    y, idx = batch["label"], batch["index"]
    conf = qmf_confidence(out.per_modality)
    rank = sum(qmf_rank_loss(conf[:, k], t.method.qmf.normalised_history(k, idx)) for k in range(2))
    want = F.cross_entropy(out.logits, y) + sum(F.cross_entropy(z, y) for z in out.per_modality.values()) + 0.1 * rank
    got = t.method.grs_loss(out, batch, 1)
    torch.testing.assert_close(got, want)
    assert abs(got.item() - F.cross_entropy(out.logits, y).item()) > 0.1


def test_every_learner_goes_through_the_missing_modality_mask(splits):
    """A masked modality's features are zero in the boosting step too (model.encode's path)."""
    from mmlab.data.transforms import MissingModality
    cfg = TrainConfig(device="cpu", epochs=1, optimizer="sgd", lr=0.05)
    method = METHODS.get("reconboost")(splits.info, cfg)
    t = Trainer(method, splits, cfg, train_transform=MissingModality(["m0", "m1"], eta=0.5))
    t.setup()
    seen = []
    t.log_batch = lambda out, batch, loss: seen.append((out.features["m0"].detach(), batch["mask"]))
    method.on_epoch_start(t, 0)
    assert method.current == "m0"
    method.train_epoch(t, t.loader(splits.train, train=True), 0)
    feats = torch.cat([f for f, _ in seen])
    absent = ~torch.cat([m for _, m in seen])[:, 0]
    assert absent.any() and (~absent).any()
    assert torch.equal(feats[absent], torch.zeros_like(feats[absent]))
    assert (feats[~absent].abs().sum(1) > 0).all()


def test_code_init_starts_every_learner_from_its_unimodal_model(splits, monkeypatch):
    from mmlab.methods import umt
    calls = []

    def fake_teacher(trainer, info, model_kwargs, modality, epochs):
        calls.append((modality, epochs))
        torch.manual_seed(len(calls))
        return umt.freeze(METHODS.get("unimodal")(info, trainer.cfg, modality=modality).build_model())
    monkeypatch.setattr(umt, "train_teacher", fake_teacher)
    t = trainer(splits, epochs=2, init="code", init_epochs=3)
    t.setup()
    t.method.on_epoch_start(t, 0)
    assert calls == [("m0", 3), ("m1", 3)]
    for k, m in enumerate(("m0", "m1")):
        torch.manual_seed(k + 1)
        uni = METHODS.get("unimodal")(splits.info, t.cfg, modality=m).build_model()
        torch.testing.assert_close(t.model.encoders[m].state_dict(), uni.encoders[m].state_dict())
        torch.testing.assert_close(t.model.fusion.heads[m].state_dict(), uni.fusion.head.state_dict())
    t.method.on_epoch_start(t, 1)                  # a later epoch never warm-starts again
    assert len(calls) == 2


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
    for losses, chosen in zip(t.method.stage_losses, t.method.selections, strict=True):
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
    assert torch.allclose(na.combine(z), z["m0"] + z["m1"])          # the paper: no boost rate
    code = trainer(splits, epochs=2, boost_rate="code").fit().model.fusion
    assert torch.allclose(code.combine(z), code.boost_rate * (z["m0"] + z["m1"]))


def test_resume_mid_stage_equals_uninterrupted(splits, tmp_path):
    full = trainer(splits, epochs=6, t1=2, t2=1, checkpoint_dir=str(tmp_path / "a"), alpha=1.0).fit()
    trainer(splits, epochs=4, t1=2, t2=1, checkpoint_dir=str(tmp_path / "b"), alpha=1.0).fit()
    resumed = trainer(splits, epochs=6, t1=2, t2=1, checkpoint_dir=str(tmp_path / "b"), resume=True,
                      alpha=1.0).fit()
    assert resumed.method.selections == full.method.selections == ["m0", "m1"]
    for r1, r2 in zip(full.history, resumed.history, strict=True):
        assert r1["train"] == r2["train"] and r1["val"] == r2["val"]
    for (k, v1), v2 in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(v1, v2), k


@pytest.mark.parametrize("opts,match", [({"final": "max"}, "final"), ({"order": "random"}, "order"),
                                        ({"t1": 0}, "t1"), ({"recon": "l2"}, "recon"),
                                        ({"boost_rate": "learned"}, "boost_rate"), ({"init": "warm"}, "init")])
def test_bad_options_are_named(splits, opts, match):
    with pytest.raises(ValueError, match=match):
        trainer(splits, **opts)


@pytest.mark.parametrize("final", ["tmc", "qmf"])
def test_decision_level_final_rules_fuse_the_learners(splits, final):
    """Ours + TMC / QMF (Table 14): the fused score is that rule applied to the learners' logits."""
    from mmlab.methods.combine import qmf_combine
    from mmlab.methods.combine import tmc_combine
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
