"""torch-signature compatibility layer: ``functional`` mirrors torch.nn.functional's losses and
``nn`` mirrors torch.nn's loss modules (torch 2.13 names, argument order and defaults)."""

from . import functional, nn

__all__ = ["functional", "nn"]
