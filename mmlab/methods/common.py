"""Helpers shared by the method modules: option parsing, fusion swaps, eval mode. Registers
no method."""
from __future__ import annotations

from contextlib import contextmanager


def as_bool(name: str, value) -> bool:
    """A boolean option; the strings "true"/"false" (any case, as the CLI may pass them)
    are accepted, anything else that is not a bool raises (bool("false") would be True)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"option {name} must be True or False, got {value!r}")


def check_choice(method: str, name: str, value, choices) -> None:
    """Raise a one-line error unless option `name` of `method` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"{method} option {name}={value!r} is not one of {choices}")


def swap_fusion(model, fusion_cls, **kwargs):
    """Replace a "sum" model's fusion by `fusion_cls` with the same heads' weights."""
    old = model.fusion
    new = fusion_cls(old.dims, old.num_classes, **kwargs)
    new.load_state_dict(old.state_dict())
    model.fusion = new
    return model


@contextmanager
def eval_mode(model):
    """model.eval() inside the block, then back to the training flag it had."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
