"""MIE (Jiang, Chi & Yang 2024) and its training-loop pieces (mmlab.methods.sam, the trainer's
split backward/step API, mmlab.models.capture): what the paper says the method does, on small
synthetic problems."""
import contextlib
import copy

import numpy as np
import pytest
import torch
from torch import nn

from mmlab.data import BatchLoader, load_dataset
from mmlab.methods import METHODS
from mmlab.methods.mie import modification_matrix
from mmlab.methods.sam import bn_frozen, sam_step
from mmlab.models.capture import capture_inputs, linear_layers
from mmlab.train import TrainConfig, Trainer


def _trainer(method="mie", seed=0, amp="off", lr=0.05, epochs=1, amp_dtype="auto", **opts):
    splits = load_dataset("synthetic", seed=seed)
    cfg = TrainConfig(epochs=epochs, optimizer="sgd", lr=lr, momentum=0.9, device="cpu", seed=seed, amp=amp,
                      amp_dtype=amp_dtype)
    t = Trainer(METHODS.get(method)(splits.info, cfg, **opts), splits, cfg)
    t.setup()
    return t, splits


def _batch(splits, n=64):
    return next(iter(BatchLoader(splits.train, n)))


def _loss_fn(t, batch, m="m0"):
    return lambda: nn.functional.cross_entropy(t.method.modality_logits(t.model, batch, m), batch["label"])


# --- Eq. 7: the modification matrix -------------------------------------------------------------
def test_T_has_orthonormal_vectors_and_weights_in_0_1_decreasing_with_the_eigenvalue():
    g = torch.Generator().manual_seed(0)
    r = torch.randn(200, 16, generator=g) * torch.linspace(0.1, 3, 16)
    y = sum(torch.outer(x, x) for x in r)                               # Eq. 5's cumulative sum
    t, lam = modification_matrix(y, tau=0.4)
    lam_y, v = torch.linalg.eigh(y.double())
    assert torch.allclose(v.T @ v, torch.eye(16, dtype=v.dtype), atol=1e-10)
    w = torch.diagonal(v.T @ t.double() @ v)                           # T's weight on each of Y's directions
    off = v.T @ t.double() @ v - torch.diag(w)
    assert off.abs().max() < 1e-5                                       # T = V diag(w) V^T
    assert (w > 0).all() and (w <= 1 + 1e-6).all()
    assert torch.all(w[1:] <= w[:-1] + 1e-6)                            # sharper direction, smaller weight
    assert w[0] == pytest.approx(1.0, abs=1e-5) and w[-1] == pytest.approx(torch.exp(torch.tensor(-0.4)).item(), abs=1e-5)
    assert torch.allclose(lam.double(), lam_y.clamp(min=0), rtol=1e-4, atol=1e-3)


def test_T_is_the_identity_when_every_direction_is_equally_flat():
    t, _ = modification_matrix(torch.eye(5) * 3, tau=10.0)
    assert torch.allclose(t, torch.eye(5))


# --- Eq. 8: which gradients GM touches ------------------------------------------------------------
def _grads_after(t, batch, m, with_T):
    t.method.T = with_T
    t.method.optimizers[m].zero_grad()
    _loss_fn(t, batch, m)().backward()
    t.method.stepping = m
    t.method.on_after_backward(t, t.method.optimizers[m])
    t.method.stepping = None
    return {n: p.grad.clone() for n, p in t.method.branch(t.model, m).named_parameters() if p.grad is not None}


def test_gm_multiplies_only_the_head_layer_gradients_of_the_other_modality_by_its_T():
    t, splits = _trainer()
    batch = _batch(splits)
    layers = t.method.modified_layers(t.model)
    assert layers == ["head.fc1", "head.fc2", "head.fc3"]
    g = torch.Generator().manual_seed(1)
    heads = linear_layers(t.method.branch(t.model, "m0"))
    Ts = {n: torch.linalg.qr(torch.randn(heads[n].in_features, heads[n].in_features, generator=g))[0]
          for n in layers}
    plain = _grads_after(t, batch, "m1", {})
    modified = _grads_after(t, batch, "m1", {"m0": Ts})               # m0's T acts on m1's gradients
    for n, gp in plain.items():
        layer = n.rsplit(".", 1)[0]
        if n.endswith("weight") and layer in Ts:
            assert torch.allclose(modified[n], gp @ Ts[layer], atol=1e-5), n
            assert not torch.allclose(modified[n], gp, atol=1e-4), n
        else:
            assert torch.equal(modified[n], gp), n                       # encoder, biases: untouched
    own = _grads_after(t, batch, "m0", {"m0": Ts})                       # m0's own T never acts on m0
    assert all(torch.equal(own[n], v) for n, v in _grads_after(t, batch, "m0", {}).items())


def test_gm_from_switches_off_one_direction():
    t, splits = _trainer(gm_from=("m1",))                                # "w/o m1-GM": only m1's T is used
    batch = _batch(splits)
    Ts = {n: 0.5 * torch.eye(l.in_features) for n, l in linear_layers(t.method.branch(t.model, "m0")).items()
          if n.startswith("head.")}
    assert all(torch.equal(a, b) for a, b in zip(_grads_after(t, batch, "m1", {"m0": Ts}).values(),
                                                   _grads_after(t, batch, "m1", {}).values()))
    halved = _grads_after(t, batch, "m0", {"m1": Ts})
    plain = _grads_after(t, batch, "m0", {})
    assert torch.allclose(halved["head.fc2.weight"], 0.5 * plain["head.fc2.weight"])


def test_gm_scope_counts_parameters_from_the_deepest_layer():
    t, _ = _trainer(gm_scope=0.0)
    assert t.method.modified_layers(t.model) == []
    branch = t.method.branch(t.model, "m0")
    total = sum(p.numel() for p in branch.parameters())
    n3 = sum(p.numel() for p in branch["head"].fc3.parameters())
    small = _trainer(gm_scope=0.5 * n3 / total)[0]                      # within the deepest layer
    assert small.method.modified_layers(small.model) == ["head.fc3"]
    more = _trainer(gm_scope=(n3 + 1) / total)[0]                       # one parameter more: the next layer too
    assert more.method.modified_layers(more.model) == ["head.fc3", "head.fc2"]
    full = _trainer(gm_scope=1.0)[0]
    assert set(full.method.modified_layers(full.model)) >= {"head.fc1", "head.fc2", "head.fc3"}


def test_covariance_pass_records_each_head_layer_input_and_restarts_every_phase():
    t, splits = _trainer(cov_batch_size=12)
    t.method.update_modification(t, "m0")
    first = {n: s.clone() for n, s in t.method.spectra["m0"].items()}
    assert set(first) == {"head.fc1", "head.fc2", "head.fc3"}
    width = {n: l.in_features for n, l in linear_layers(t.method.branch(t.model, "m0")).items()}
    assert all(len(s) == width[n] for n, s in first.items())
    # trace(Y) = sum_t |r_t|^2 with r_t the batch-mean input of the layer, batches of 12
    feats = []
    with torch.no_grad(), capture_inputs({"fc2": t.model.fusion.heads["m0"].fc2}, lambda n, x: feats.append(x)):
        t.model.eval()
        for b in BatchLoader(splits.train, 12, transform=t.eval_transform):
            t.method.modality_logits(t.model, b, "m0")
    trace = sum(float(x.mean(0).pow(2).sum()) for x in feats)
    assert float(first["head.fc2"].sum()) == pytest.approx(trace, rel=1e-3)
    t.method.update_modification(t, "m0")                               # same weights: same Y, not doubled
    assert torch.allclose(t.method.spectra["m0"]["head.fc2"], first["head.fc2"], rtol=1e-4)


# --- SAM (Eq. 3-4) on the split trainer API ----------------------------------------------------------
def test_sam_takes_the_second_gradient_at_theta_plus_eps_and_restores_the_weights_exactly():
    rho = 0.05
    t, splits = _trainer(gm=False)
    batch, opt = _batch(splits), t.method.optimizers["m0"]
    params = list(t.method.branch(t.model, "m0").parameters())
    theta = [p.detach().clone() for p in params]
    # the expected gradient, by hand: g at theta, then the gradient at theta + rho g/|g|
    ref = copy.deepcopy(t.model)
    ref_params = list(nn.ModuleDict({"e": ref.encoders["m0"], "h": ref.fusion.heads["m0"]}).parameters())
    loss_ref = lambda: nn.functional.cross_entropy(ref.fusion.heads["m0"](ref.encoders["m0"](batch["m0"])),
                                                   batch["label"])
    g = torch.autograd.grad(loss_ref(), ref_params)
    norm = torch.sqrt(sum((x ** 2).sum() for x in g))
    with torch.no_grad():
        for p, x in zip(ref_params, g):
            p.add_(x * rho / norm)
    expected = torch.autograd.grad(loss_ref(), ref_params)
    seen = {}

    def spy(optimizer):                                                  # what the optimizer steps with
        seen["weights"] = [p.detach().clone() for p in params]
        seen["grads"] = [p.grad.detach().clone() for p in params]
    t.step_optimizer = spy
    sam_step(t, opt, params, _loss_fn(t, batch), rho)
    assert all(torch.equal(w, s) for w, s in zip(seen["weights"], theta))      # restored bit for bit
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(seen["grads"], expected))
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(seen["grads"], g))


def test_sam_with_rho_zero_is_exactly_a_plain_step():
    a, splits = _trainer(gm=False, sam=False)
    b, _ = _trainer(gm=False, sam=False)
    batch = _batch(splits)
    pa = list(a.method.branch(a.model, "m0").parameters())
    sam_step(a, a.method.optimizers["m0"], pa, _loss_fn(a, batch), 0.0)
    b.optimize(_loss_fn(b, batch)(), b.method.optimizers["m0"])
    for x, y in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(x, y)
    assert a.step == b.step == 1


def test_sam_step_runs_under_amp_with_a_grad_scaler():
    t, splits = _trainer(gm=False, amp="on", amp_dtype="float16")        # float16 autocast + GradScaler, on CPU
    assert t.scaler.is_enabled()
    batch = _batch(splits)
    params = list(t.method.branch(t.model, "m0").parameters())
    before = [p.detach().clone() for p in params]
    for _ in range(3):                                                   # one unscale_ per step, three steps
        sam_step(t, t.method.optimizers["m0"], params, _loss_fn(t, batch), 0.05)
    assert t.step == 3
    assert all(torch.isfinite(p).all() for p in params)
    assert any(not torch.equal(p, q) for p, q in zip(params, before))


class _BareTrainer:
    """The trainer calls sam_step makes, without AMP, around a bare model."""
    def __init__(self, model):
        self.model, self.scaler = model, torch.amp.GradScaler("cpu", enabled=False)
        self.autocast = contextlib.nullcontext
        self.unscaled_grads = lambda params: Trainer.unscaled_grads(self, params)

    def backward(self, loss, optimizer=None, zero_grad=True):
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()

    def step_optimizer(self, optimizer):
        optimizer.step()


def test_batchnorm_statistics_move_once_per_sam_step():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    ref = copy.deepcopy(net)
    ref(x)                                                               # one training forward at theta
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    sam_step(_BareTrainer(net), opt, net.parameters(), lambda: nn.functional.cross_entropy(net(x), y), 0.5)
    assert torch.equal(net[1].running_mean, ref[1].running_mean)
    assert torch.equal(net[1].running_var, ref[1].running_var)
    assert net[1].momentum == 0.1                                        # restored after the block
    with pytest.raises(RuntimeError), bn_frozen(net):
        raise RuntimeError("an error inside the block")
    assert net[1].momentum == 0.1


# --- the loss-landscape wrapper (loss-landscapes 3.0.6) ---------------------------------------------
from mmlab.analysis.landscape import directions, modality_landscapes, random_plane, sharpness  # noqa: E402


def test_landscape_survives_zero_parameters_and_leaves_the_model_unchanged():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    nn.init.zeros_(net[0].bias)                                          # crashes the bare library
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    plane = random_plane(net, x, y, radius=0.5, steps=7)
    assert plane["loss"].shape == (7, 7) and np.isfinite(plane["loss"]).all()
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.requires_grad for p in net.parameters())
    assert plane["loss"][3, 3] == pytest.approx(plane["center"], rel=1e-5)   # the centre is theta
    d = directions(net, torch.Generator().manual_seed(0))
    assert not d["0.bias"].any() and not d["2.bias"].any()                   # biases do not move
    assert torch.allclose(d["0.weight"].norm(dim=1), net[0].weight.norm(dim=1))  # filter-normalised
    with torch.no_grad():
        net[2].weight[1] = 0                                                 # a zero filter: no crash, no move
    assert not directions(net, torch.Generator().manual_seed(0))["2.weight"][1].any()


class _Weights(nn.Module):
    """A model whose output is its weight: loss = |W - W0|^2 / |W0|^2 reads the distance."""
    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x):
        return self.w


def test_landscape_coordinates_are_in_units_of_the_filter_normalised_directions():
    w0 = torch.randn(5, 7)
    rel = lambda out, target: ((out - target) ** 2).sum() / (target ** 2).sum()
    plane = random_plane(_Weights(w0), torch.zeros(1), w0, radius=0.3, steps=11, loss_fn=rel)
    c = plane["coords"]
    assert c[0] == pytest.approx(-0.3) and c[-1] == pytest.approx(0.3) and c[5] == 0
    assert np.allclose(plane["loss"][:, 5], c ** 2, rtol=1e-4, atol=1e-7)      # along the first direction
    assert np.allclose(plane["loss"][5, :], c ** 2, rtol=1e-4, atol=1e-7)      # along the second
    assert sharpness(plane) > 0


def test_modality_landscapes_of_a_trained_mie_model_are_per_modality():
    t, splits = _trainer()
    rows = modality_landscapes(t.method, t.model, splits, n=64, steps=5)
    assert [r["modality"] for r in rows] == list(t.model.modalities)
    assert all(r["loss"].shape == (5, 5) and r["n"] == 64 for r in rows)


# --- T's scale invariance (Table 7), the Weight rule, per-phase tracking ---------------------------
from mmlab.methods.mie import rule_metrics  # noqa: E402


def test_T_does_not_change_when_Y_is_normalised():
    g = torch.Generator().manual_seed(2)
    r = torch.randn(50, 8, generator=g)
    y = r.T @ r
    t1, lam1 = modification_matrix(y, 0.4)
    t2, lam2 = modification_matrix(y / 37.0, 0.4)
    assert torch.allclose(t1, t2, atol=1e-5)
    assert torch.allclose(lam1 / 37.0, lam2, rtol=1e-4)


def test_weight_rule_is_a_test_time_choice_on_the_same_trained_model():
    t, splits = _trainer(epochs=2)
    t.fit()
    avg = rule_metrics(t.method, t.model, splits, "average")
    assert avg["acc"] == pytest.approx(t.evaluate(splits.test)["acc"])
    weight = rule_metrics(t.method, t.model, splits, "weight")
    assert t.model.fusion.rule == "average"                               # restored
    assert 0 <= weight["acc"] <= 1
    with pytest.raises(ValueError, match="rule"):
        rule_metrics(t.method, t.model, splits, "max")


def test_tracked_mie_records_validation_accuracy_after_every_phase():
    splits = load_dataset("synthetic", seed=0)
    cfg = TrainConfig(epochs=2, optimizer="sgd", lr=0.05, device="cpu", seed=0, track=("method",))
    t = Trainer(METHODS.get("mie")(splits.info, cfg), splits, cfg)
    t.fit()
    phases = [p for h in t.history for p in h["track"]["method"]["phases"]]
    assert [p["phase"] for p in phases] == ["m0", "m1", "m0", "m1"]
    assert all(0 <= p["acc"] <= 1 for p in phases)
    assert phases[-1]["acc"] == pytest.approx(t.history[-1]["val"]["acc"])   # the last phase ends the epoch


def test_mie_rejects_bad_options_with_the_valid_range():
    splits = load_dataset("synthetic", seed=0)
    cfg = TrainConfig(epochs=1, device="cpu")
    for bad in ({"rho": -1.0}, {"tau": 0.0}, {"cov_batch_size": 0}, {"gm_scope": 1.5}, {"gm_from": ("x",)},
                {"fusion_rule": "max"}):
        with pytest.raises(ValueError):
            METHODS.get("mie")(splits.info, cfg, **bad)


def test_a_rho_below_float_resolution_changes_nothing_and_skips_the_second_pass():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x, y = torch.randn(32, 4) * 100, torch.randint(0, 2, (32,))
    with torch.no_grad():
        net[0].weight.mul_(10)                                           # no weight below ~1e-3
    plain = copy.deepcopy(net)
    calls = []

    def loss_fn():
        calls.append(1)
        return nn.functional.cross_entropy(net(x), y)
    sam_step(_BareTrainer(net), torch.optim.SGD(net.parameters(), lr=0.1), net.parameters(), loss_fn, 1e-10)
    opt = torch.optim.SGD(plain.parameters(), lr=0.1)
    nn.functional.cross_entropy(plain(x), y).backward()
    opt.step()
    assert len(calls) == 1                                               # theta + eps == theta: one pass
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), plain.parameters()))
    dropout = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    calls.clear()
    sam_step(_BareTrainer(dropout), torch.optim.SGD(dropout.parameters(), lr=0.1), dropout.parameters(),
             lambda: (calls.append(1), nn.functional.cross_entropy(dropout(x), y))[1], 1e-10)
    assert len(calls) == 2                                               # a new dropout draw: not the same gradient
