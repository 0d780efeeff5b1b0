"""Training methods, registered by name (`python -m mmlab methods` lists them)."""
from mmlab.methods.base import METHODS, Method, make_optimizer, register
from mmlab.methods import joint, late, unimodal  # noqa: F401  (registration)

__all__ = ["METHODS", "Method", "make_optimizer", "register"]
