"""G-Blend, UME and UMT: the mechanism each paper describes, on the synthetic set."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

import mmlab
from mmlab.data import load_dataset
from mmlab.methods import METHODS
from mmlab.methods import umt as umt_module
from mmlab.methods.gblend import blend_weights
from mmlab.runner import RunConfig
from mmlab.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def splits():
    return load_dataset("synthetic", seed=0)


def make(name, splits, opts=None, **kw):
    cfg = TrainConfig(device="cpu", **{"epochs": 2, **kw})
    return Trainer(METHODS.get(name)(splits.info, cfg, **(opts or {})), splits, cfg)


def metrics_of(history):
    return [{k: v for k, v in row.items() if k not in ("train_s", "val_s")} for row in history]


def state_of(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class _Crash(RuntimeError):
    pass


def crash_at(trainer, epoch_to_crash):
    """Make `trainer` die at the start of an epoch, as an interrupted job would."""
    start = trainer.method.on_epoch_start

    def boom(tr, epoch):
        if epoch == epoch_to_crash:
            raise _Crash
        start(tr, epoch)
    trainer.method.on_epoch_start = boom
    return trainer


def assert_resume_matches(name, splits, tmp_path, opts=None, epochs=3):
    """An uninterrupted run equals one killed after epoch 1 and resumed from its checkpoint."""
    full = make(name, splits, opts, epochs=epochs, checkpoint_dir=str(tmp_path / "full")).fit()
    with pytest.raises(_Crash):
        crash_at(make(name, splits, opts, epochs=epochs, checkpoint_dir=str(tmp_path / "part")), 2).fit()
    resumed = make(name, splits, opts, epochs=epochs, checkpoint_dir=str(tmp_path / "part"), resume=True).fit()
    assert [r["epoch"] for r in resumed.history] == list(range(epochs))
    assert metrics_of(full.history) == metrics_of(resumed.history)
    assert same_state(full.model.state_dict(), resumed.model.state_dict())
    return full, resumed


@pytest.mark.parametrize("name", ["gblend", "ume", "umt"])
def test_run_gives_finite_metrics(name):
    r = mmlab.run(RunConfig(dataset="synthetic", method=name, epochs=2, device="cpu", probe=False), cache=False)
    test = r.metrics["test"]
    assert math.isfinite(test["acc"]) and test["acc"] > 0.5          # 4 classes: chance 0.25
    assert set(test["per_modality"]) == {"m0", "m1"}
    assert all(math.isfinite(row["train"]["loss"]) for row in r.history)


@pytest.mark.parametrize("name", ["gblend", "ume", "umt"])
def test_one_modality_is_refused(splits, name):
    with pytest.raises(ValueError, match="at least two modalities"):
        METHODS.get(name)(splits.info, TrainConfig(device="cpu"), modalities=["m0"])


# --- G-Blend -------------------------------------------------------------------------------

def test_gblend_weights_follow_g_over_o_squared():
    # heads: fused, m0, m1. prev = (train, holdout) losses at the previous estimate.
    tp, hp = torch.tensor([1.0, 1.2, 1.4]), torch.tensor([1.1, 1.3, 1.4])
    tn, hn = torch.tensor([0.5, 0.6, 1.3]), torch.tensor([0.8, 0.9, 1.38])
    O = (hn - tn) - (hp - tp)          # overfitting change: 0.2, 0.2, 0.08
    G = hp - hn                        # generalisation gain: 0.3, 0.4, 0.02
    expected = (G / O ** 2).abs() / (G / O ** 2).abs().sum()
    w = blend_weights(tp, hp, tn, hn)
    assert torch.allclose(w, expected.double(), atol=1e-6) and math.isclose(float(w.sum()), 1.0)
    assert w[1] > w[0] > w[2]          # more gain per squared overfitting -> more weight
    # a head whose overfitting did not change (O = 0, floored at eps) takes the whole blend
    w = blend_weights([1.0, 1.0, 1.0], [1.2, 1.2, 1.2], [0.8, 0.7, 0.7], [1.0, 1.0, 1.0])
    assert w[0] > 0.999
    # no head generalised (holdout losses unchanged): uniform
    assert torch.allclose(blend_weights(tp, hp, tn, hp), torch.full((3,), 1 / 3, dtype=torch.float64))


def test_gblend_trains_only_outside_the_holdout(splits):
    cfg = TrainConfig(device="cpu", epochs=1)
    transformed = []                  # indices the trainer's per-sample transform is given

    def record(batch, idx, epoch):
        transformed.append(idx.clone())
        return batch
    t = Trainer(METHODS.get("gblend")(splits.info, cfg), splits, cfg, train_transform=record)
    m = t.method
    seen, measured = [], []
    step, head_losses = m.training_step, m.head_losses
    m.training_step = lambda tr, b: (seen.append(b["index"].clone()), step(tr, b))
    m.head_losses = lambda tr, data, pos: (measured.append(data), head_losses(tr, data, pos))[1]
    t.fit()
    seen = torch.cat(seen)
    hold = set(m.holdout_idx.tolist())
    assert len(seen) == len(set(seen.tolist())) == len(splits.train) - len(hold)
    assert hold.isdisjoint(seen.tolist())
    # transforms (missing-modality masks...) see training-split positions, as for other methods
    assert torch.equal(torch.cat(transformed), seen)
    assert abs(len(hold) / len(splits.train) - 0.08) < 0.01
    # stratified: every class has ~8% of its samples in the holdout
    y = splits.train.y
    frac = torch.bincount(y[m.holdout_idx], minlength=4) / torch.bincount(y, minlength=4)
    assert torch.allclose(frac, torch.full((4,), 0.08, dtype=frac.dtype), atol=0.01)
    # the weights are measured on the training part and the holdout only (never val/test)
    assert measured and all(d is m.train_part or d is m.holdout for d in measured)


def test_gblend_reestimation_applies_the_formula_and_changes_the_weights(splits):
    t = make("gblend", splits, {"reestimate_every": 1}, epochs=3, lr=0.01)
    m = t.method
    seen = []
    end = m.on_epoch_end

    def spy(trainer, epoch):
        prev, w_before = m.prev, m.w.clone()
        end(trainer, epoch)
        seen.append((epoch, prev, w_before, m.prev, m.w.clone()))
    m.on_epoch_end = spy
    t.fit()
    assert torch.allclose(seen[0][2], torch.full((3,), 1 / 3, dtype=torch.float64))   # uniform before
    for epoch, prev, w_before, now, w_after in seen:
        assert torch.allclose(w_after, blend_weights(prev[0], prev[1], now[0], now[1]))
        assert not torch.allclose(w_after, w_before)
    assert set(m.weights) == {"fused", "m0", "m1"} and len(m.weight_history) == 3
    # the loss is the blend: w_fused * CE(fused) + sum_m w_m CE(head_m)
    batch = next(iter(t.loader(splits.train, train=False)))
    out, y = t.model(batch), batch["label"]
    w = m.weights
    manual = w["fused"] * F.cross_entropy(out.logits, y) + sum(
        w[k] * F.cross_entropy(out.per_modality[k], y) for k in ("m0", "m1"))
    assert torch.allclose(m.loss(out, batch), manual)
    # per-modality outputs are the extra uni-modal heads, not slices of the fused head
    feats = out.features
    assert torch.allclose(out.per_modality["m1"], t.model.fusion.uni["m1"](feats["m1"]))


def test_gblend_resume_equals_uninterrupted(splits, tmp_path):
    full, resumed = assert_resume_matches("gblend", splits, tmp_path, {"reestimate_every": 1})
    assert full.method.weights == resumed.method.weights
    assert full.method.weight_history == resumed.method.weight_history


# --- UME -----------------------------------------------------------------------------------

def test_ume_branches_are_independent(splits):
    t = make("ume", splits)
    t.setup()
    m, model = t.method, t.model
    ids = {k: {id(p) for p in m.branch(model, k).parameters()} for k in ("m0", "m1")}
    assert ids["m0"].isdisjoint(ids["m1"])
    assert ids["m0"] | ids["m1"] == {id(p) for p in model.parameters()}      # nothing else is trained
    for k, opt in m.optimizers.items():                                       # one optimizer per branch
        assert {id(p) for g in opt.param_groups for p in g["params"]} == ids[k]
    batch = next(iter(t.loader(splits.train, train=True)))
    loss_m0 = F.cross_entropy(model(batch).per_modality["m0"], batch["label"])
    grads = torch.autograd.grad(loss_m0, list(model.encoders["m1"].parameters()), allow_unused=True)
    assert all(g is None or not g.any() for g in grads)
    # a training step moves each branch by its own loss only: m1 after a step of the UME
    # step equals m1 after a step on CE(m1) alone from the same start
    alone = copy.deepcopy(model)
    opt = torch.optim.Adam(m.branch(alone, "m1").parameters(), lr=t.cfg.lr)
    F.cross_entropy(alone(batch).per_modality["m1"], batch["label"]).backward()
    opt.step()
    m.training_step(t, batch)
    assert same_state(state_of(m.branch(model, "m1")), state_of(m.branch(alone, "m1")))


@pytest.mark.parametrize("combine", ["logits", "probs"])
def test_ume_fuses_the_weighted_unimodal_predictions(splits, combine):
    t = make("ume", splits, {"weights": {"m0": 3.0, "m1": 1.0}, "combine": combine})
    t.setup()
    batch = next(iter(t.loader(splits.val, train=False)))
    out = t.model(batch)
    z0, z1 = out.per_modality["m0"], out.per_modality["m1"]
    if combine == "logits":
        assert torch.allclose(out.logits, 0.75 * z0 + 0.25 * z1, atol=1e-6)
    else:
        mix = 0.75 * z0.softmax(-1) + 0.25 * z1.softmax(-1)
        assert torch.allclose(out.logits.exp(), mix, atol=1e-6)
    with pytest.raises(ValueError, match="every modality"):
        METHODS.get("ume")(splits.info, t.cfg, weights={"m0": 1.0})
    with pytest.raises(ValueError, match="combine"):
        METHODS.get("ume")(splits.info, t.cfg, combine="max")


def test_ume_selects_each_branch_at_its_own_best_val_epoch(splits, monkeypatch):
    """Scripted per-branch val scores: m0 peaks at epoch 1, m1 at epoch 3; the fused
    selection would not pick a model made of those two. The final model must hold m0's
    weights of epoch 1 and m1's of epoch 3, and the trainer must keep that model."""
    t = make("ume", splits, epochs=4)
    m = t.method
    script = iter([{"m0": (0.5, 1.0), "m1": (0.3, 1.3)}, {"m0": (0.9, 0.4), "m1": (0.4, 1.2)},
                   {"m0": (0.8, 0.5), "m1": (0.4, 1.25)}, {"m0": (0.7, 0.6), "m1": (0.6, 1.1)}])
    monkeypatch.setattr(m, "branch_val_scores", lambda trainer: next(script))
    states, end = [], m.on_epoch_end

    def spy(trainer, epoch):
        states.append({k: state_of(m.branch(trainer.model, k)) for k in ("m0", "m1")})
        end(trainer, epoch)
    m.on_epoch_end = spy
    t.fit()
    assert m.best_epochs == {"m0": 1, "m1": 3}
    assert same_state(state_of(m.branch(t.model, "m0")), states[1]["m0"])
    assert same_state(state_of(m.branch(t.model, "m1")), states[3]["m1"])
    assert not same_state(states[1]["m0"], states[3]["m0"])      # the branches did move
    assert t.best["epoch"] == 3
    assert t.evaluate(splits.val) == t.history[3]["val"]         # the history describes the returned model


def test_ume_resume_equals_uninterrupted(splits, tmp_path):
    full, resumed = assert_resume_matches("ume", splits, tmp_path)
    assert full.method.best_epochs == resumed.method.best_epochs
    # a FINISHED 2-epoch run extended to 3 continues from its live weights, not from the
    # best branches it returned: same final model as the 3-epoch run
    make("ume", splits, epochs=2, checkpoint_dir=str(tmp_path / "short")).fit()
    longer = make("ume", splits, epochs=3, checkpoint_dir=str(tmp_path / "short"), resume=True).fit()
    assert same_state(full.model.state_dict(), longer.model.state_dict())
    assert metrics_of(full.history)[2] == metrics_of(longer.history)[2]


# --- UMT -----------------------------------------------------------------------------------

@pytest.fixture
def umt_trainer(splits):
    t = make("umt", splits, {"teacher_epochs": 1}, epochs=1)
    t.setup()
    t.method.ensure_teachers(t)
    return t


def test_umt_distillation_is_zero_at_teacher_weights_and_pulls_features_to_them(splits, umt_trainer):
    t = umt_trainer
    m, model = t.method, t.model
    batch = next(iter(t.loader(splits.train, train=False)))
    model.eval()
    t_feats = m.teacher_features(batch)
    assert all(f.grad_fn is None and not f.requires_grad for f in t_feats.values())
    # student encoders initialised with the teachers' weights: the distillation term is 0
    init = copy.deepcopy(model)
    for k, teacher in m.teachers.items():
        init.encoders[k].load_state_dict(teacher.encoders[k].state_dict())
    with torch.no_grad():
        assert float(m.distill_loss(init.encode(batch), t_feats)) == 0.0
    # from the student's own init, one SGD step on the term lowers it for each modality
    opt = torch.optim.SGD(model.encoders.parameters(), lr=0.1)
    with torch.no_grad():
        before = {k: float(F.mse_loss(model.encode(batch)[k], t_feats[k])) for k in t_feats}
    opt.zero_grad()
    m.distill_loss(model.encode(batch), t_feats).backward()
    assert all(p.grad is None for tm in m.teachers.values() for p in tm.parameters())
    opt.step()
    with torch.no_grad():
        after = {k: float(F.mse_loss(model.encode(batch)[k], t_feats[k])) for k in t_feats}
    assert all(after[k] < before[k] for k in before), (before, after)


def test_umt_teachers_are_frozen_during_training(splits):
    t = make("umt", splits, {"teacher_epochs": 1}, epochs=2)
    m, before = t.method, {}
    ensure = m.ensure_teachers

    def spy(trainer):
        ensure(trainer)
        before.update({k: state_of(v) for k, v in m.teachers.items() if k not in before})
    m.ensure_teachers = spy
    t.fit()
    assert set(before) == {"m0", "m1"}
    assert all(same_state(before[k], state_of(v)) for k, v in m.teachers.items())
    assert all(not v.training and not any(p.requires_grad for p in v.parameters()) for v in m.teachers.values())
    assert {id(p) for p in t.model.parameters()}.isdisjoint(
        {id(p) for v in m.teachers.values() for p in v.parameters()})


def test_umt_resume_reuses_the_teachers(splits, tmp_path, monkeypatch):
    calls = []
    real = umt_module.train_teacher
    monkeypatch.setattr(umt_module, "train_teacher", lambda *a, **k: (calls.append(a[3]), real(*a, **k))[1])
    opts = {"teacher_epochs": 2}
    full, resumed = assert_resume_matches("umt", splits, tmp_path, opts)
    assert sorted(calls) == ["m0", "m0", "m1", "m1"]     # full run + interrupted run; resume: none
    for k in ("m0", "m1"):
        assert same_state(state_of(full.method.teachers[k]), state_of(resumed.method.teachers[k]))
