"""Compatibility layers with other libraries' exact signatures: ``functional`` mirrors
torch.nn.functional's losses, ``nn`` mirrors torch.nn's loss modules (torch 2.13 names, argument
order and defaults), ``torchvision`` mirrors torchvision.ops' box losses, box IoUs and focal
loss (torchvision 0.28), and ``keras`` mirrors keras.losses' functions and loss classes (Keras
3.15, with its reductions and ``sample_weight``)."""

from . import functional, keras, nn, torchvision

__all__ = ["functional", "keras", "nn", "torchvision"]
