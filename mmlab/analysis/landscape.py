"""Loss landscapes on a random plane (Li et al., NeurIPS 2018) through loss-landscapes 3.0.6,
wrapped thinly for three of its defects (../shared/notes/method-notes.md):

- parameters with a zero-norm filter (a zero-initialised bias, a dead row) make its filter
  normalisation divide by zero, and 1-D parameters get a direction too. Li et al. leave biases
  and BatchNorm parameters out of the direction: here every 1-D parameter and every parameter
  with a zero filter becomes a buffer of a copy of the model, so the plane moves only the
  other weights (the ones `moved_parameters` names);
- without deepcopy_model=True it switches off requires_grad on the caller's model: always True,
  and the caller's model is never touched (a copy is plotted);
- 3.0.6 rescales each direction to norm ||theta|| / (distance * steps) per step, so the plane
  spans +-||theta|| / (2 distance): `radius` here is that half-width in units of ||theta|| (the
  norm of the moved weights), passed to the library as distance = 1 / (2 radius). The point
  (a, b) of the grid is theta + a d1 + b d2 with ||d1|| = ||d2|| = ||theta||, a, b in
  [-radius, radius] (steps points per axis, odd, the centre at index steps // 2);
- its grid is misaligned: it walks the second direction in a zig-zag and every other row lands
  one step further along it (rows 0, 2, ... cover offsets 1 - s/2 .. s/2, rows 1, 3, ... -s/2
  .. s/2 - 1, s its steps). The wrapper asks it for steps + 1 points and keeps the symmetric
  part both row kinds share, so grid[i, j] really is (coords[i], coords[j]).

Its directions are uniform in [0, 1] before normalisation (not Gaussian as in Li et al.), and
the second is made orthogonal to the first before the filter normalisation. `sharpness` sums a
plane up as the mean loss rise above the centre over the grid.
"""
from __future__ import annotations

import copy
from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmlab.methods.alternating import SharedHeadFusion


def _zero_filter(p: torch.Tensor) -> bool:
    return p.dim() <= 1 or bool((p.detach().flatten(1).norm(dim=1) == 0).any())


def frozen_copy(model: nn.Module) -> tuple:
    """(a copy of model in eval mode whose 1-D and zero-filter parameters are buffers, the
    names of the parameters left to move)."""
    m = copy.deepcopy(model).eval()
    for mod in m.modules():
        for name, p in list(mod._parameters.items()):
            if p is not None and _zero_filter(p):
                del mod._parameters[name]
                mod.register_buffer(name, p.detach().clone())
    return m, [n for n, _ in m.named_parameters()]


def random_plane(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor, radius: float = 0.5,
                 steps: int = 21, seed: int = 0, loss_fn=F.cross_entropy) -> Dict[str, np.ndarray]:
    """The loss of model(inputs) vs target over a random filter-normalised plane through the
    model's weights: {"loss": [steps, steps] (rows: first direction), "coords": [steps]
    offsets in units of ||theta||, "center": the loss at theta}. The model is left unchanged."""
    import loss_landscapes
    from loss_landscapes.metrics import Loss
    if not radius > 0 or steps < 3 or steps % 2 == 0:
        raise ValueError(f"random_plane needs radius > 0 and an odd steps >= 3 (the centre on the grid), "
                         f"got radius={radius!r}, steps={steps!r}")
    plotted, moved = frozen_copy(model)
    if not moved:
        raise ValueError("random_plane: the model has no weight the plane can move (every parameter is 1-D "
                         "or has a zero filter)")
    with torch.no_grad():
        center = float(loss_fn(plotted(inputs), target))
    delta = radius / (steps // 2)                      # grid step, in units of ||theta||
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:                                               # the library spans +-1/(2 distance) in steps + 1 points
        raw = loss_landscapes.random_plane(plotted, Loss(loss_fn, inputs, target), distance=1.0 / (delta * (steps + 1)),
                                           steps=steps + 1, normalization="filter", deepcopy_model=True)
    finally:
        torch.random.set_rng_state(state)
    raw = np.asarray(raw, dtype=float)
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


def modality_landscapes(method, model, splits, n: int = 512, radius: float = 0.5, steps: int = 21,
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
