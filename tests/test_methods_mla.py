"""MLA (CVPR 2024) and its shared machinery (mmlab.methods.alternating): what the paper says the
method does, shown on small synthetic problems."""
import math

import numpy as np

import pytest
import torch

from mmlab.data import BatchLoader, load_dataset
from mmlab.methods import METHODS
from mmlab.methods.alternating import fuse, fusion_weights
from mmlab.runner import RunConfig, run, run_transforms
from mmlab.train import TrainConfig, Trainer


def _trainer(method="mla", epochs=1, lr=0.1, seed=0, optimizer="sgd", **opts):
    splits = load_dataset("synthetic", seed=seed)
    cfg = TrainConfig(epochs=epochs, optimizer=optimizer, lr=lr, momentum=0.0, device="cpu", seed=seed)
    t = Trainer(METHODS.get(method)(splits.info, cfg, **opts), splits, cfg)
    t.setup()
    return t, splits


def _batch(splits, n=64):
    return next(iter(BatchLoader(splits.train, n)))


def _head_move_on(projection: str):
    """|Delta W r_A| / (|Delta W| |r_A|) for a head step on modality m1 right after one on m0,
    r_A = m0's batch-mean feature (the weight's part of the head's output on it)."""
    t, splits = _trainer(projection=projection)
    method, batch = t.method, _batch(splits)
    method.modality_step(t, batch, "m0", 0, 10)
    with torch.no_grad():
        r_a = t.model.encoders["m0"](batch["m0"]).mean(0)
    w0 = t.model.fusion.head.weight.detach().clone()
    method.modality_step(t, batch, "m1", 1, 10)
    dw = t.model.fusion.head.weight.detach() - w0
    return float((dw @ r_a).norm() / (dw.norm() * r_a.norm())), float(dw.norm())


def test_projection_keeps_the_head_s_output_on_the_other_modality_s_mean_feature():
    moved_paper, step_paper = _head_move_on("replace")
    moved_never, step_never = _head_move_on("never")
    assert step_paper > 0 and step_never > 0          # the head did learn on m1 in both
    assert moved_paper < 0.02 < 0.1 < moved_never, (moved_paper, moved_never)


def test_projector_stays_finite_symmetric_and_psd_over_many_steps():
    t, _ = _trainer()
    g = torch.Generator().manual_seed(0)
    for i in range(500):
        t.method.update_projector(torch.rand(t.method.P.shape[0], generator=g) * 3, t.method.alpha_at(i, 50))
    p = t.method.P
    assert torch.isfinite(p).all() and torch.allclose(p, p.T, atol=1e-5)
    assert torch.linalg.eigvalsh(p.double()).min() > -1e-5
    assert torch.linalg.eigvalsh(p.double()).max() <= 1 + 1e-5       # RLS never grows P beyond I


def test_the_toolkit_s_added_projection_differs_from_the_paper_s_replaced_one():
    grads = {}
    for projection in ("replace", "add", "never"):
        t, splits = _trainer(projection=projection)
        batch = _batch(splits)
        z, loss, f = t.method.modality_loss(t, batch, "m0")
        t.method.update_projector(f.detach().mean(0), t.method.alpha)
        t.method.optimizers["main"].zero_grad()
        loss.backward()
        t.method.stepping = "m0"
        t.method.on_after_backward(t, t.method.optimizers["main"])
        grads[projection] = t.model.fusion.head.weight.grad.clone()
    p = t.method.P
    assert torch.allclose(grads["replace"], grads["never"] @ p, atol=1e-6)
    assert torch.allclose(grads["add"], grads["never"] + grads["never"] @ p, atol=1e-6)
    assert not torch.allclose(grads["add"], grads["replace"], atol=1e-4)


def test_dynamic_fusion_gives_the_less_uncertain_modality_the_larger_weight_per_sample():
    sure, unsure = torch.tensor([[8.0, 0.0, 0.0]]), torch.tensor([[0.3, 0.2, 0.1]])
    logits = {"a": torch.cat([sure, unsure]), "b": torch.cat([unsure, sure])}     # sample 0: a sure; 1: b sure
    w = fusion_weights(logits)
    assert w[0, 0] > 0.5 > w[0, 1] and w[1, 1] > 0.5 > w[1, 0]
    assert torch.allclose(w.sum(1), torch.ones(2))
    batch_w = fusion_weights(logits, scope="batch")          # the code's form: one weight for the batch
    assert torch.allclose(batch_w[0], batch_w[1])
    assert torch.allclose(fusion_weights(logits, rule="mean"), torch.full((2, 2), 0.5))
    present = torch.tensor([[False, True], [True, True]])
    fused = fuse(logits, present=present)
    assert torch.allclose(fused[0], logits["b"][0]) and fusion_weights(logits, present=present)[0, 0] == 0


def test_eq7_weights_are_a_softmax_of_negative_entropies():
    logits = {"a": torch.tensor([[2.0, 0.0]]), "b": torch.tensor([[0.5, 0.0]])}
    p = {k: torch.softmax(v, -1) for k, v in logits.items()}
    e = {k: float(-(v * v.log()).sum()) for k, v in p.items()}
    top = max(e.values())
    expected = [math.exp(top - e[k]) for k in "ab"]
    expected = torch.tensor(expected) / sum(expected)
    assert torch.allclose(fusion_weights(logits)[0], expected.float(), atol=1e-6)


def test_the_missing_rate_is_honoured_in_train_val_and_test():
    splits = load_dataset("synthetic")
    train_t, eval_t = run_transforms(RunConfig(dataset="synthetic", method="mla", missing_rate=0.4), splits.info)
    for t, data in ((train_t, splits.train), (eval_t, splits.test)):
        batch = t({**{m: x for m, x in data.x.items()}, "label": data.y}, torch.arange(len(data)))
        missing = 1 - batch["mask"].float().mean(0)
        assert torch.allclose(missing, torch.full_like(missing, 0.4 - 0.4 ** 2 / 2), atol=0.05)
        gone = ~batch["mask"][:, 0]
        assert (batch["m0"][gone] == 0).all()


def test_a_modality_step_only_counts_samples_that_have_the_modality():
    t, splits = _trainer()
    batch = _batch(splits)
    mask = torch.ones(len(batch["label"]), 2, dtype=torch.bool)
    mask[::2, 0] = False
    _, loss_masked, f = t.method.modality_loss(t, {**batch, "mask": mask}, "m0")
    z = t.model.fusion.head(t.model.encoders["m0"](batch["m0"]))
    expected = torch.nn.functional.cross_entropy(z[1::2], batch["label"][1::2])
    assert torch.allclose(loss_masked, expected) and len(f) == len(batch["label"]) // 2


def test_training_one_modality_alone_leaves_the_other_s_accuracy_alone(run_cache):
    """Modality isolation (MLA Fig. 2): dropping all of m1's training data leaves MLA's m0
    branch as it is (the step on m0 never sees m1)."""
    common = dict(dataset="synthetic", method="mla", epochs=2, device="cpu", probe=False, seed=1)
    full = run(RunConfig(**common)).metrics["test"]["per_modality"]
    isolated = run(RunConfig(**common, train_missing={"m1": 1.0})).metrics["test"]["per_modality"]
    assert isolated["m0"] == pytest.approx(full["m0"], abs=0.02)
    chance = 1 / load_dataset("synthetic").info.num_classes
    assert isolated["m1"] <= chance + 0.05 < full["m1"]           # m1's branch never trained


def test_joint_only_goes_through_mla_s_own_prediction(run_cache):
    r = run(RunConfig(dataset="synthetic", method="mla", epochs=1, device="cpu", probe=False))
    assert r.metrics["test"]["joint_only"] == pytest.approx(r.metrics["test"]["per_modality"])


def test_resume_restores_the_projector(tmp_path, run_cache):
    cfg = dict(dataset="synthetic", method="mla", device="cpu", probe=False, seed=2)
    whole = run(RunConfig(**cfg, epochs=3), cache=False)
    run(RunConfig(**cfg, epochs=2), cache=False, checkpoint_dir=str(tmp_path))
    resumed = run(RunConfig(**cfg, epochs=3), cache=False, checkpoint_dir=str(tmp_path), resume=True)
    assert resumed.metrics["test"]["acc"] == whole.metrics["test"]["acc"]
    assert [h["train"]["loss"] for h in resumed.history] == pytest.approx([h["train"]["loss"] for h in whole.history])


@pytest.mark.parametrize("opts, message", [
    ({"projection": "sideways"}, "projection"), ({"alpha": 0}, "alpha"), ({"fusion_rule": "max"}, "fusion_rule"),
    ({"fusion": "concat"}, "fusion")])
def test_bad_options_name_what_is_allowed(opts, message):
    splits = load_dataset("synthetic")
    with pytest.raises(ValueError, match=message):
        METHODS.get("mla")(splits.info, TrainConfig(), **opts)


@pytest.mark.parametrize("method", ["ae", "mmin"])
def test_imputers_reconstruct_a_hidden_modality_better_than_zeros(method):
    """Table 2's baselines: trained, the imputation of a hidden modality's features is closer to
    its real features than the zeros a plain joint model would see."""
    t, splits = _trainer(method, epochs=8, lr=1e-3, optimizer="adam")
    t.fit()
    model = t.model.eval()
    batch = next(iter(BatchLoader(splits.test, 400)))
    with torch.no_grad():
        feats = model.encode(batch)
        present = torch.ones(len(batch["label"]), 2, dtype=torch.bool)
        present[:, 0] = False
        shown = {"m0": torch.zeros_like(feats["m0"]), "m1": feats["m1"]}
        full = model.fusion.imputer(shown, present)
    err = float(((full["m0"] - feats["m0"]) ** 2).mean())
    zeros = float((feats["m0"] ** 2).mean())
    assert err < 0.7 * zeros, (err, zeros)
    assert torch.equal(full["m1"], feats["m1"])                      # present features are kept


def test_imputers_leave_complete_samples_alone():
    t, splits = _trainer("ae")
    feats = t.model.encode(_batch(splits))
    full = t.model.fusion.imputer(feats, torch.ones(64, 2, dtype=torch.bool))
    assert all(torch.equal(full[m], feats[m]) for m in feats)


def test_modality_gap_matches_a_hand_computation():
    from mmlab.analysis.gap import modality_gap
    a = np.array([[3.0, 4.0], [0.0, 2.0]])          # unit rows (0.6, 0.8), (0, 1): centroid (0.3, 0.9)
    b = np.array([[1.0, 0.0], [5.0, 0.0]])          # unit rows (1, 0), (1, 0): centroid (1, 0)
    assert modality_gap({"a": a, "b": b})["a|b"] == pytest.approx(math.hypot(0.7, 0.9))
    assert modality_gap({"a": a, "b": 10 * a})["a|b"] == pytest.approx(0.0)     # scale does not matter


def test_the_gap_is_tracked_per_epoch(run_cache):
    r = run(RunConfig(dataset="synthetic", method="mla", epochs=2, device="cpu", probe=False, track=("modality_gap",)))
    assert [set(h["track"]["modality_gap"]) for h in r.history] == [{"m0|m1"}, {"m0|m1"}]


def test_pretrained_encoders_come_from_the_held_out_pool(run_cache):
    from mmlab.methods.pretrain import pretrain_config
    from mmlab.runner import cached_result
    cfg = RunConfig(dataset="mfeat", method="concat", epochs=2, device="cpu", probe=False,
                    method_options={"pretrained": True, "pretrain_epochs": 3})
    scratch = run(RunConfig(dataset="mfeat", method="concat", epochs=2, device="cpu", probe=False))
    pre = run(cfg)
    first = pretrain_config(cfg, "fou", {}, 3)
    assert first.dataset_options["pool"] == "held_out" and cached_result(first) is not None
    assert pre.metrics["test"]["acc"] != scratch.metrics["test"]["acc"]
