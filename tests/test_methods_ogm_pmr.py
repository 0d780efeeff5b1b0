"""OGM-GE (gradient modulation + Gaussian noise) and PMR (prototypical rebalance): the
mechanisms each paper describes, on hand-built tensors and the fast synthetic dataset."""
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mmlab
from mmlab.data import load_dataset
from mmlab.methods import METHODS
from mmlab.methods.ogm_ge import gradient_stds, modality_scores
from mmlab.methods.pmr import class_means, prototype_logits
from mmlab.runner import RunConfig
from mmlab.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def splits():
    return load_dataset("synthetic", seed=0)


def _trainer(name, splits, **options):
    cfg = TrainConfig(device="cpu", epochs=1, optimizer="sgd", lr=0.05)
    t = Trainer(METHODS.get(name)(splits.info, cfg, **options), splits, cfg)
    t.setup()
    return t


def _fit(name, splits, epochs, ckpt=None, resume=False, **options):
    cfg = TrainConfig(device="cpu", epochs=epochs, checkpoint_dir=ckpt, resume=resume)
    return Trainer(METHODS.get(name)(splits.info, cfg, **options), splits, cfg).fit()


def _backward(t, batch):
    """Fused CE backward on a real batch; returns {modality: [grad clones]} of the encoders."""
    t.model.zero_grad()
    F.cross_entropy(t.model(batch).logits, batch["label"]).backward()
    return {m: [p.grad.clone() for p in e.parameters()] for m, e in t.model.encoders.items()}


def _norm(grads):
    return torch.sqrt(sum((g.double() ** 2).sum() for g in grads))


def _assert_resume_equals_uninterrupted(name, splits, tmp_path, **options):
    full = _fit(name, splits, 4, str(tmp_path / "full"), **options)
    _fit(name, splits, 2, str(tmp_path / "part"), **options)
    resumed = _fit(name, splits, 4, str(tmp_path / "part"), resume=True, **options)
    for r1, r2 in zip(full.history, resumed.history, strict=True):
        assert r1["train"] == r2["train"] and r1["val"] == r2["val"]
    for (k, v1), v2 in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(v1, v2), k
    return full, resumed


def _finite_run(name, **options):
    res = mmlab.run(RunConfig(dataset="synthetic", method=name, epochs=2, device="cpu", probe=False,
                              method_options=options), cache=False)
    assert math.isfinite(res.metrics["test"]["acc"]) and res.metrics["test"]["acc"] > 0.5   # chance 0.25
    assert all(math.isfinite(r["train"]["loss"]) for r in res.history)
    assert set(res.metrics["test"]["per_modality"]) == {"m0", "m1"}


# ----------------------------------------------------------------------------------- OGM-GE

def test_ogm_shrinks_the_dominant_encoder_gradient_by_exactly_k(splits):
    t = _trainer("ogm_ge", splits, ge=False)
    meth, batch = t.method, next(iter(t.loader(splits.train, train=True)))
    y = batch["label"]
    # hand-built per-modality logits: m0 is confident on the true class, m1 is uniform
    k = meth.update_coefficients([10 * F.one_hot(y, 4).float(), torch.zeros(len(y), 4)], y)
    assert k[0] < 0.5 and k[1] == 1
    before = _backward(t, batch)
    meth.on_after_backward(t, meth.optimizers["main"])
    after = {m: [p.grad for p in e.parameters()] for m, e in t.model.encoders.items()}
    assert torch.isclose(_norm(after["m0"]), k[0].double() * _norm(before["m0"]), rtol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(after["m1"], before["m1"]))        # weak: untouched
    head = t.model.fusion.head.weight.grad
    assert head is not None and not torch.equal(head, torch.zeros_like(head))        # head never scaled


def test_ogm_coefficients_follow_eq10_and_the_code_form():
    y = torch.tensor([0, 1])
    za, zb = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.zeros(2, 2)               # s_b = 0.5 + 0.5
    s_a = torch.sigmoid(torch.tensor(2.0)) + torch.sigmoid(torch.tensor(1.0))
    assert torch.allclose(modality_scores([za, zb], y), torch.stack([s_a, torch.tensor(1.0)]))
    info = load_dataset("synthetic", seed=0).info
    cfg = TrainConfig(device="cpu")
    paper = METHODS.get("ogm_ge")(info, cfg, alpha=0.8)
    code = METHODS.get("ogm_ge")(info, cfg, alpha=0.8, coeff="code")
    rho, one = s_a / 1.0, torch.tensor(1.0)                                         # rho_a > 1: a is slowed
    assert torch.allclose(paper.update_coefficients([za, zb], y), torch.stack([1 - torch.tanh(0.8 * rho), one]))
    k_code = code.update_coefficients([za, zb], y)
    assert torch.allclose(k_code, torch.stack([1 - torch.tanh(0.8 * (rho - 1)), one]))
    # three modalities (our generalisation): rho_m = s_m / mean of the others' s
    zc = torch.tensor([[0.0, 3.0], [3.0, 0.0]])                                        # confidently wrong
    s = modality_scores([za, zb, zc], y)
    k3 = METHODS.get("ogm_ge")(load_dataset("synthetic", seed=0, dims=(4, 4, 4), snr=(1, 1, 1)).info,
                               cfg, alpha=0.8).update_coefficients([za, zb, zc], y)
    rho3 = s / ((s.sum() - s) / 2)
    assert torch.allclose(k3, torch.where(rho3 > 1, 1 - torch.tanh(0.8 * rho3), torch.ones(3)))
    assert k3[0] < 1 and k3[2] == 1


def test_ogm_leaves_gradients_alone_outside_modulation_epochs(splits):
    t = _trainer("ogm_ge", splits, modulation_start=1, modulation_end=1)            # GE on
    meth, batch = t.method, next(iter(t.loader(splits.train, train=True)))
    y = batch["label"]
    meth.update_coefficients([10 * F.one_hot(y, 4).float(), torch.zeros(len(y), 4)], y)
    for epoch, changed in [(0, False), (1, True), (2, False)]:
        meth.epoch = epoch
        before = _backward(t, batch)
        meth.on_after_backward(t, meth.optimizers["main"])
        same = all(torch.equal(p.grad, g) for m, e in t.model.encoders.items()
                   for p, g in zip(e.parameters(), before[m]))
        assert same != changed, epoch


def test_ge_noise_has_the_gradients_std():
    torch.manual_seed(0)
    encoders = nn.ModuleDict({"m0": nn.Linear(600, 500), "m1": nn.Linear(400, 500)})
    grads = {"m0": (0.3 + 2.0 * torch.randn(500, 600), 0.5), "m1": (-1.0 + 0.1 * torch.randn(500, 400), 1.0)}
    for m, (g, _) in grads.items():
        encoders[m].weight.grad, encoders[m].bias.grad = g.clone(), torch.zeros(500)
    info = load_dataset("synthetic", seed=0).info
    meth = METHODS.get("ogm_ge")(info, TrainConfig(device="cpu"))
    meth.last_coeffs = torch.tensor([0.5, 1.0])
    assert torch.allclose(gradient_stds([g for g, _ in grads.values()]),
                          torch.stack([g.std() for g, _ in grads.values()]), rtol=1e-4)
    meth.on_after_backward(SimpleNamespace(model=SimpleNamespace(encoders=encoders)), None)
    for m, (g, k) in grads.items():
        noise = encoders[m].weight.grad - k * g                                      # k g + N(0, std(g)^2)
        assert abs(noise.std() / g.std() - 1) < 0.01 and abs(noise.mean()) < 0.01 * g.std()
        assert abs(torch.corrcoef(torch.stack([noise.flatten(), g.flatten()]))[0, 1]) < 0.01
        assert torch.equal(encoders[m].bias.grad, torch.zeros(500))               # zero grad: no noise


def test_ogm_ge_runs_finite_and_resumes_exactly(splits, tmp_path):
    _finite_run("ogm_ge")
    _assert_resume_equals_uninterrupted("ogm_ge", splits, tmp_path)               # GE noise is seeded


def test_bad_options_raise_value_errors(splits):
    cfg = TrainConfig(device="cpu")
    with pytest.raises(ValueError, match="coeff"):
        METHODS.get("ogm_ge")(splits.info, cfg, coeff="tanh")
    with pytest.raises(ValueError, match="two modalities"):
        METHODS.get("ogm_ge")(splits.info, cfg, modalities=["m0"])
    with pytest.raises(ValueError, match="ge must be True or False"):
        METHODS.get("ogm_ge")(splits.info, cfg, ge="no")
    assert METHODS.get("pmr")(splits.info, cfg, entropy="false").entropy is False     # as the CLI passes it
    with pytest.raises(ValueError, match="distance"):
        METHODS.get("pmr")(splits.info, cfg, distance="cosine")
    with pytest.raises(ValueError, match="proto_subset"):
        METHODS.get("pmr")(splits.info, cfg, proto_subset=0)


# ----------------------------------------------------------------------------------- PMR

def test_pmr_prototypes_are_the_class_means_of_encoder_features(splits):
    t = _trainer("pmr", splits, momentum=0.25)
    t.method.update_prototypes(t, 0)
    assert t.model.training                                                        # train mode restored
    t.model.eval()
    with torch.no_grad():
        feats = t.model.encode({m: x for m, x in splits.train.x.items()})
    y = splits.train.y
    for m, f in feats.items():                                                     # naive: one class at a time
        naive = torch.stack([f[y == c].mean(0) for c in range(4)])
        assert torch.allclose(t.method.protos[m], naive, atol=1e-5)
    # momentum: c <- (1 - 0.25) c_new + 0.25 c_old
    old = {m: p.clone() for m, p in t.method.protos.items()}
    with torch.no_grad():
        t.model.encoders["m0"].net[0].weight.mul_(2)
    t.method.update_prototypes(t, 1)
    t.model.eval()
    new, _ = class_means(t.model, t.loader(splits.train, train=False), 4, ["m0"])
    assert torch.allclose(t.method.protos["m0"], 0.75 * new["m0"] + 0.25 * old["m0"], atol=1e-5)


def _pmr_batch():
    """m0's features sit on its prototypes (high score); m1's are equidistant (uniform)."""
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    protos = {"m0": 3 * torch.eye(4, 5), "m1": torch.eye(4, 5)}
    feats = {"m0": protos["m0"][y], "m1": torch.zeros(6, 5)}
    return feats, protos, y


@pytest.mark.parametrize("swap", [False, True])
def test_pmr_pce_weight_goes_to_the_slow_modality(splits, swap):
    feats, protos, y = _pmr_batch()
    if swap:
        feats, protos = {"m0": feats["m1"], "m1": feats["m0"]}, {"m0": protos["m1"], "m1": protos["m0"]}
    meth = METHODS.get("pmr")(splits.info, TrainConfig(device="cpu"), alpha=2.0, mu=0.01)
    meth.protos = protos
    meth.rebalance_terms(feats, y)
    c = meth.last_coeffs
    slow, dom = (0, 1) if swap else (1, 0)
    assert c["beta"][dom] == 0 and c["gamma"][slow] == 0
    rho = c["scores"][dom] / c["scores"][slow]
    assert c["scores"][slow] == pytest.approx(6 / 4)                               # uniform over 4 classes
    assert torch.isclose(c["beta"][slow], 2.0 * (rho - 1).clamp(0, 1))
    assert torch.isclose(c["gamma"][dom], 0.01 * (rho - 1).clamp(0, 1))
    code = METHODS.get("pmr")(splits.info, TrainConfig(device="cpu"), coeff="code")  # constant alpha
    code.protos = protos
    code.rebalance_terms(feats, y)
    assert code.last_coeffs["beta"][slow] == 2.0 and code.last_coeffs["beta"][dom] == 0


def test_pmr_entropy_term_raises_the_dominant_modalitys_entropy_early_only(splits):
    feats, protos, y = _pmr_batch()
    g = torch.Generator().manual_seed(0)
    feats = {m: f + 0.3 * torch.randn(f.shape, generator=g) for m, f in feats.items()}
    loss = {}
    for entropy, epoch in [(True, 0), (False, 0), (True, 3)]:
        meth = METHODS.get("pmr")(splits.info, TrainConfig(device="cpu"), entropy=entropy, entropy_epochs=3)
        meth.protos, meth.epoch = protos, epoch
        loss[entropy, epoch] = meth.rebalance_terms(feats, y)
    logp = F.log_softmax(prototype_logits(feats["m0"], protos["m0"]), 1)           # m0 dominates
    h_dom = -(logp.exp() * logp).sum(1).mean()
    gamma = meth.last_coeffs["gamma"][0]
    assert gamma > 0 and torch.isclose(loss[True, 0] - loss[False, 0], -gamma * h_dom, atol=1e-5)  # -gamma H
    assert torch.equal(loss[True, 3], loss[False, 0])                              # after E_r epochs: off


def test_pmr_loss_pushes_the_weak_encoder_harder_than_concat(splits):
    # one epoch of plain joint training (PMR switched off) lets m0 dominate, as in the paper
    cfg = TrainConfig(device="cpu", epochs=1, optimizer="sgd", lr=0.05, validate=False)
    t = Trainer(METHODS.get("pmr")(splits.info, cfg, modulation_start=5), splits, cfg).fit()
    t.method.modulation_start = 0
    t.method.update_prototypes(t, 0)
    batch = next(iter(t.loader(splits.train, train=True)))
    weak = list(t.model.encoders["m1"].parameters())                                # snr 0.5: the weak one
    out = t.model(batch)
    g_concat = torch.autograd.grad(F.cross_entropy(out.logits, batch["label"]), weak, retain_graph=True)
    g_pmr = torch.autograd.grad(t.method.loss(out, batch), weak)
    assert t.method.last_coeffs["beta"][1] > 0 and t.method.last_coeffs["beta"][0] == 0
    assert _norm(g_pmr) > 2 * _norm(g_concat)
    # the prototype logits are -Euclidean distances
    z = prototype_logits(out.features["m1"], t.method.protos["m1"])
    assert torch.allclose(-z, torch.cdist(out.features["m1"], t.method.protos["m1"]))


def test_pmr_runs_finite_and_resumes_with_its_prototypes(splits, tmp_path):
    _finite_run("pmr")
    full, resumed = _assert_resume_equals_uninterrupted("pmr", splits, tmp_path, momentum=0.5, proto_subset=0.5)
    for m in full.method.protos:                                                    # restored, then updated
        assert torch.equal(full.method.protos[m], resumed.method.protos[m])
    ck = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    assert set(ck["method"]["extra"]["protos"]) == {"m0", "m1"}
