"""Capture the inputs of named layers during forward passes (forward pre-hooks), e.g. MIE's
covariance of each head layer's input. Registers nothing; no state outside the block."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Dict

import torch
from torch import nn


@contextmanager
def capture_inputs(modules: Dict[str, nn.Module], on_input: Callable[[str, torch.Tensor], None]):
    """Inside the block, every forward pass through modules[name] calls on_input(name, x) with the
    layer's (first) input tensor, detached; the hooks are removed on exit, even on an error."""
    handles = [m.register_forward_pre_hook(lambda mod, args, name=name: on_input(name, args[0].detach()))
               for name, m in modules.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def linear_layers(module: nn.Module, prefix: str = "") -> Dict[str, nn.Linear]:
    """{qualified name: nn.Linear} of a module, in forward-definition order."""
    return {f"{prefix}{n}": m for n, m in module.named_modules() if isinstance(m, nn.Linear)}
