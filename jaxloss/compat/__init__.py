"""torch-signature compatibility layer: ``functional`` mirrors torch.nn.functional's losses,
``nn`` mirrors torch.nn's loss modules (torch 2.13 names, argument order and defaults), and
``torchvision`` mirrors torchvision.ops' box losses, box IoUs and focal loss (torchvision 0.28)."""

from . import functional, nn, torchvision

__all__ = ["functional", "nn", "torchvision"]
