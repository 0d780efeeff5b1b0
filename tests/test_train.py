"""Trainer and Method API behaviour on the fast synthetic dataset."""
import math

import pytest
import torch

from mmlab.data import load_dataset
from mmlab.methods import METHODS, Method, make_optimizer
from mmlab.train import NonFiniteLossError, TrainConfig, Trainer
from mmlab.utils import select_device

BASELINES = ["concat", "sum", "film", "gated", "late"]


@pytest.fixture(scope="module")
def splits():
    return load_dataset("synthetic", seed=0)


def metrics_of(history):
    """History without wall-clock times (which legitimately differ between runs)."""
    return [{k: v for k, v in row.items() if k not in ("train_s", "val_s")} for row in history]


def fit(method_name, splits, **kw):
    opts = kw.pop("method_options", {})
    cfg = TrainConfig(device="cpu", **{"epochs": 3, **kw})
    return Trainer(METHODS.get(method_name)(splits.info, cfg, **opts), splits, cfg).fit()


@pytest.mark.parametrize("name", BASELINES + ["unimodal"])
def test_each_method_lowers_the_loss(splits, name):
    opts = {"modality": "m0"} if name == "unimodal" else {}
    t = fit(name, splits, epochs=4, method_options=opts)
    losses = [row["train"]["loss"] for row in t.history]
    assert losses[-1] < 0.8 * losses[0], losses
    assert t.history[-1]["val"]["acc"] > 0.5          # 4 classes: chance is 0.25
    # every method reports per-modality predictions
    assert set(t.history[-1]["val"]["per_modality"]) == set(t.model.modalities)


def test_late_trains_modalities_independently(splits):
    """Late fusion = each modality trained alone: m1's encoder after late training equals
    m1's encoder after unimodal training when both start from the same weights."""
    cfg = TrainConfig(device="cpu", epochs=2, optimizer="sgd", lr=0.05)
    late = METHODS.get("late")(splits.info, cfg)
    t = Trainer(late, splits, cfg)
    t.setup()
    before = {k: v.clone() for k, v in t.model.encoders["m1"].state_dict().items()}
    batch = next(iter(t.loader(splits.train, train=True)))
    out = t.model(batch)
    loss_m1 = torch.nn.functional.cross_entropy(out.per_modality["m1"], batch["label"])
    g_alone = torch.autograd.grad(loss_m1, list(t.model.encoders["m1"].parameters()), retain_graph=True)
    g_joint = torch.autograd.grad(late.loss(out, batch), list(t.model.encoders["m1"].parameters()))
    for a, b in zip(g_alone, g_joint):
        assert torch.allclose(a, b, atol=1e-6)
    assert all(torch.equal(before[k], v) for k, v in t.model.encoders["m1"].state_dict().items())


def test_best_epoch_is_selected_on_validation(splits):
    t = fit("concat", splits, epochs=4, lr=0.05)
    vals = [row["val"]["acc"] for row in t.history]
    assert t.best["epoch"] == max(range(len(vals)), key=lambda i: (vals[i], -i))
    # the model returned is the best-on-val one: re-evaluating val gives that accuracy
    assert math.isclose(t.evaluate(splits.val)["acc"], vals[t.best["epoch"]])


def test_same_seed_is_deterministic_and_seed_matters(splits):
    a, b = fit("concat", splits), fit("concat", splits)
    assert metrics_of(a.history) == metrics_of(b.history)
    c = fit("concat", splits, seed=1)
    assert metrics_of(c.history) != metrics_of(a.history)


def test_resume_equals_uninterrupted(splits, tmp_path):
    full = fit("gated", splits, epochs=4, checkpoint_dir=str(tmp_path / "full"))
    fit("gated", splits, epochs=2, checkpoint_dir=str(tmp_path / "part"))
    resumed = fit("gated", splits, epochs=4, checkpoint_dir=str(tmp_path / "part"), resume=True)
    assert [r["epoch"] for r in resumed.history] == [0, 1, 2, 3]
    for r1, r2 in zip(full.history, resumed.history, strict=True):
        assert r1["train"] == r2["train"] and r1["val"] == r2["val"]
    for (k, v1), v2 in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(v1, v2), k
    # checkpoints load with weights_only=True and hold the best-on-val weights separately
    ck = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    assert ck["epoch"] == 3 and (tmp_path / "part" / "best.pt").exists()
    assert not list((tmp_path / "part").glob("*.tmp"))


class _NaNMethod(Method):
    name = "nan-test"

    def loss(self, out, batch):
        return super().loss(out, batch) * float("nan")


def test_nan_loss_stops_with_method_epoch_and_step(splits):
    cfg = TrainConfig(device="cpu", epochs=2)
    with pytest.raises(NonFiniteLossError, match=r"'nan-test'.*epoch 0, step 0"):
        Trainer(_NaNMethod(splits.info, cfg), splits, cfg).fit()


def test_amp_path_runs_on_cpu(splits):
    """The mixed-precision path (autocast + GradScaler) also runs, and learns, on CPU."""
    t = fit("concat", splits, epochs=3, amp="on")
    assert t.amp and t.amp_dtype == torch.bfloat16 and not t.scaler.is_enabled()   # bf16: no scaler
    assert t.history[-1]["val"]["acc"] > 0.5
    assert fit("concat", splits, epochs=1).amp is False        # auto: off on CPU


def test_device_selection():
    assert select_device("auto").type in ("cuda", "mps", "cpu")
    assert select_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            select_device("cuda")


class _Alternating(Method):
    """A stage-based method written only against the hooks: each epoch trains ONE
    modality's encoder (alternating) with a fresh optimizer, others frozen; it keeps a
    stage counter in its checkpointed state."""
    name = "alternating-test"

    def _stage_optimizer(self, model):
        params = list(model.encoders[self.active].parameters()) + list(model.fusion.parameters())
        return make_optimizer(params, self.cfg)

    def on_epoch_start(self, trainer, epoch):
        self.active = self.modalities[epoch % len(self.modalities)]
        self.optimizers = {"main": self._stage_optimizer(trainer.model)}   # fresh per stage
        self.stages = getattr(self, "stages", 0) + 1

    def extra_state(self):
        return {"stages": self.stages, "active": self.active}

    def load_extra_state(self, state):
        self.stages, self.active = state["stages"], state["active"]

    def make_named_optimizer(self, key, model):
        return self._stage_optimizer(model)


def test_hooks_let_a_method_own_the_loop(splits, tmp_path):
    cfg = TrainConfig(device="cpu", epochs=1, checkpoint_dir=str(tmp_path))
    m = _Alternating(splits.info, cfg)
    t = Trainer(m, splits, cfg)
    t.setup()
    frozen = {k: v.clone() for k, v in t.model.encoders["m1"].state_dict().items()}
    t.fit()
    assert m.active == "m0" and m.stages == 1
    assert all(torch.equal(frozen[k], v) for k, v in t.model.encoders["m1"].state_dict().items())
    cfg2 = TrainConfig(device="cpu", epochs=2, checkpoint_dir=str(tmp_path), resume=True)
    m2 = _Alternating(splits.info, cfg2)
    Trainer(m2, splits, cfg2).fit()
    assert m2.active == "m1" and m2.stages == 2      # stage counter restored from the checkpoint


def test_val_accuracy_ties_are_broken_by_lower_val_loss(splits, monkeypatch):
    """A saturated val (CGM keeps the colour shortcut in val) must not pin the first epoch."""
    cfg = TrainConfig(device="cpu", epochs=3)
    t = Trainer(METHODS.get("concat")(splits.info, cfg), splits, cfg)
    vals = iter([{"acc": 1.0, "loss": 0.5, "per_modality": {}}, {"acc": 1.0, "loss": 0.2, "per_modality": {}},
                 {"acc": 1.0, "loss": 0.3, "per_modality": {}}])
    monkeypatch.setattr(t, "evaluate", lambda data: next(vals))
    t.fit()
    assert t.best["epoch"] == 1


def test_resume_refuses_a_checkpoint_of_another_run(splits, tmp_path):
    fit("concat", splits, epochs=1, checkpoint_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"belongs to another run.*'lr'"):
        fit("concat", splits, epochs=2, lr=0.01, checkpoint_dir=str(tmp_path), resume=True)
    with pytest.raises(ValueError, match="belongs to another run"):
        fit("sum", splits, epochs=2, checkpoint_dir=str(tmp_path), resume=True)


def test_no_size_one_training_batch_for_batchnorm(splits):
    """len(train) % batch_size == 1 would leave a 1-sample batch, which BatchNorm cannot train on."""
    cfg = TrainConfig(device="cpu", epochs=1, batch_size=len(splits.train) - 1)
    t = Trainer(METHODS.get("concat")(splits.info, cfg), splits, cfg)
    assert [len(b["label"]) for b in t.loader(splits.train, train=True)] == [len(splits.train) - 1]


def test_debris_of_an_interrupted_checkpoint_write_is_removed(splits, tmp_path):
    """A kill -9 during an atomic write leaves a 0-byte `.best.pt.<random>.tmp`; the next
    run in that directory removes it and resumes from the intact checkpoints."""
    full = fit("concat", splits, epochs=2)
    ck = tmp_path / "ck"
    fit("concat", splits, epochs=1, checkpoint_dir=str(ck))
    for name in (".best.pt.k9x2.tmp", ".last.pt.abcd.tmp"):
        (ck / name).write_bytes(b"")
    (ck / "notes.tmp").write_text("not ours")                       # only our own temp files go
    resumed = fit("concat", splits, epochs=2, checkpoint_dir=str(ck), resume=True)
    assert sorted(p.name for p in ck.iterdir()) == ["best.pt", "last.pt", "notes.tmp"]
    assert metrics_of(resumed.history) == metrics_of(full.history)


class _NaNLaterMethod(Method):
    name = "nan-later-test"

    def loss(self, out, batch):
        loss = super().loss(out, batch)
        return loss * float("nan") if self.epoch_now >= 2 else loss

    def on_epoch_start(self, trainer, epoch):
        self.epoch_now = epoch


def test_a_diverged_objective_can_stop_training_at_the_best_epoch_before_it(splits):
    """nonfinite="stop" (the book's studies): training ends at the first NaN loss and the
    validation-selected epoch before it is kept, with where it stopped; "raise" still raises,
    and a NaN before any finished epoch raises under both."""
    cfg = TrainConfig(device="cpu", epochs=5, nonfinite="stop")
    t = Trainer(_NaNLaterMethod(splits.info, cfg), splits, cfg).fit()
    assert [r["epoch"] for r in t.history] == [0, 1] and t.best["epoch"] in (0, 1)
    assert t.stopped["epoch"] == 2 and "loss is nan at epoch 2" in t.stopped["reason"]
    assert math.isclose(t.evaluate(splits.val)["acc"], t.history[t.best["epoch"]]["val"]["acc"])
    with pytest.raises(NonFiniteLossError):
        Trainer(_NaNLaterMethod(splits.info, TrainConfig(device="cpu", epochs=5)), splits,
                TrainConfig(device="cpu", epochs=5)).fit()
    with pytest.raises(NonFiniteLossError, match="epoch 0"):
        cfg0 = TrainConfig(device="cpu", epochs=2, nonfinite="stop")
        Trainer(_NaNMethod(splits.info, cfg0), splits, cfg0).fit()


def test_step_lr_schedule_scales_every_optimizer_per_epoch():
    from mmlab.data import load_dataset
    from mmlab.methods import METHODS
    from mmlab.train import TrainConfig, Trainer
    splits = load_dataset("synthetic")
    cfg = TrainConfig(epochs=5, optimizer="sgd", lr=0.1, lr_step=2, lr_gamma=0.5, device="cpu", validate=False)
    seen = []
    method = METHODS.get("concat")(splits.info, cfg)
    real = method.train_epoch
    method.train_epoch = lambda t, loader, epoch: (seen.append(method.optimizers["main"].param_groups[0]["lr"]),
                                                   real(t, loader, epoch))
    Trainer(method, splits, cfg).fit()
    assert seen == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
