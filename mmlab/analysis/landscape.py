"""Loss landscapes on a random plane (Li et al., NeurIPS 2018) through loss-landscapes 3.0.6,
wrapped thinly for its defects (../shared/notes/method-notes.md):

- its random_plane draws directions uniform in [0, 1] (not zero-mean: every weight moves the
  same way, so the plane tilts towards a ridge instead of showing a basin) and rescales them
  by model_norm / distance. We draw Gaussian directions and filter-normalise them as Li et al.
  do (each filter of a direction gets the norm of the same filter of the weights), and use the
  library's planar_interpolation only to walk the grid: `radius` is the plane's half-width in
  units of these directions, so coordinate 1 moves every filter by its own norm;
- its filter normalisation divides by zero on a zero filter (a zero-initialised bias, a dead
  row): ours gives a zero filter a zero direction, and 1-D parameters (biases, norm layers) no
  direction at all, as Li et al. do;
- without deepcopy_model=True it switches off requires_grad on the model it gets: always
  True, and the caller's model is never touched (copies are walked);
- its grid is misaligned: it walks the second direction in a zig-zag and every other row lands
  one step further along it (rows 0, 2, ... cover offsets 1 .. s, rows 1, 3, ... 0 .. s - 1,
  s its steps, from the corner). The wrapper asks for steps + 1 points and keeps the part both
  row kinds share, so grid[i, j] really is (coords[i], coords[j]), centred on the weights.

`sharpness` sums a plane up as the mean loss rise above the centre over the grid.
"""
from __future__ import annotations

import copy
from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmlab.methods.alternating import SharedHeadFusion


def directions(model: nn.Module, generator: torch.Generator) -> Dict[str, torch.Tensor]:
    """A Gaussian direction per parameter, filter-normalised (Li et al. 2018): every filter
    (first-dimension slice) of a weight with 2+ dims scaled to that filter's norm in the
    model (a zero filter stays zero); 1-D parameters get none (zero)."""
    out = {}
    for name, p in model.named_parameters():
        w = p.detach().float()
        if w.dim() < 2:
            out[name] = torch.zeros_like(w)
            continue
        d = torch.randn(w.shape, generator=generator)
        dn = d.flatten(1).norm(dim=1).clamp(min=1e-12)
        out[name] = d * (w.flatten(1).norm(dim=1) / dn).view(-1, *[1] * (w.dim() - 1))
    return out


def _moved(model: nn.Module, steps: dict) -> nn.Module:
    """A copy of model with every parameter p moved by steps[name] (a sum of directions)."""
    m = copy.deepcopy(model).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.add_(steps[name].to(p.dtype))
    return m


def random_plane(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor, radius: float = 1.0,
                 steps: int = 21, seed: int = 0, loss_fn=F.cross_entropy) -> Dict[str, np.ndarray]:
    """The loss of model(inputs) vs target over theta + a d1 + b d2, d1 and d2 Gaussian
    filter-normalised directions (seeded), a, b on `steps` points (odd) of [-radius, radius]:
    {"loss": [steps, steps] (rows: a), "coords": [steps], "center": the loss at theta}. The
    model is left unchanged."""
    import loss_landscapes
    from loss_landscapes.metrics import Loss
    if not radius > 0 or steps < 3 or steps % 2 == 0:
        raise ValueError(f"random_plane needs radius > 0 and an odd steps >= 3 (the centre on the grid), "
                         f"got radius={radius!r}, steps={steps!r}")
    if not any(p.dim() >= 2 for p in model.parameters()):
        raise ValueError("random_plane: the model has no weight with 2 or more dimensions for the plane to move")
    g = torch.Generator().manual_seed(seed)
    d1, d2 = directions(model, g), directions(model, g)
    delta, half, n = radius / (steps // 2), (steps + 1) // 2, steps + 1        # grid step; library points
    corner = {k: -half * delta * (d1[k] + d2[k]) for k in d1}
    start = _moved(model, corner)
    end_one = _moved(model, {k: corner[k] + n * delta * d1[k] for k in d1})
    end_two = _moved(model, {k: corner[k] + n * delta * d2[k] for k in d1})
    with torch.no_grad():
        center = float(loss_fn(copy.deepcopy(model).eval()(inputs), target))
    raw = np.asarray(loss_landscapes.planar_interpolation(start, end_one, end_two, Loss(loss_fn, inputs, target),
                                                          steps=n, deepcopy_model=True), dtype=float)
    grid = np.stack([raw[i, :steps] if i % 2 == 0 else raw[i, 1:] for i in range(1, steps + 1)])
    coords = (np.arange(steps) - steps // 2) * delta
    return {"loss": grid, "coords": coords, "center": center}


def sharpness(plane: Dict[str, np.ndarray]) -> float:
    """Mean loss rise above the centre over the plane (0 = flat; larger = sharper)."""
    return float(np.mean(plane["loss"] - plane["center"]))


class ModalityView(nn.Module):
    """One modality's prediction path of a multimodal model: its encoder, then its own head
    (per-modality heads: late fusion, MIE) or the shared head (MLA)."""

    def __init__(self, model: nn.Module, m: str):
        super().__init__()
        fusion = model.fusion
        if hasattr(fusion, "heads") and m in fusion.heads:
            head = fusion.heads[m]
        elif isinstance(fusion, SharedHeadFusion):
            head = fusion.head
        else:
            raise ValueError(f"a per-modality landscape needs per-modality heads or one shared head; "
                             f"{type(fusion).__name__} has neither (use a late-fusion, MLA or MIE model)")
        self.encoder, self.head = model.encoders[m], head

    def forward(self, x):
        return self.head(self.encoder(x))


def modality_landscapes(method, model, splits, n: int = 256, radius: float = 1.0, steps: int = 15,
                        seed: int = 0) -> List[dict]:
    """Per modality: the landscape of its own prediction's cross-entropy on the first n training
    samples (a fixed subset, the same for every model of a dataset); the same direction seed
    for every model, so models of one architecture share their directions."""
    from mmlab.data import BatchLoader
    data = splits.train.subset(np.arange(min(n, len(splits.train))))
    batch = next(iter(BatchLoader(data, len(data))))
    rows = []
    for m in model.modalities:
        plane = random_plane(ModalityView(model, m), batch[m], batch["label"], radius, steps, seed)
        rows.append({"modality": m, **plane, "sharpness": sharpness(plane), "n": len(data)})
    return rows
