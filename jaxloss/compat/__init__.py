"""Compatibility layers with other libraries' exact signatures: ``functional`` mirrors
torch.nn.functional's losses, ``nn`` mirrors torch.nn's loss modules (torch 2.13 names, argument
order and defaults), ``torchvision`` mirrors torchvision.ops' box losses, box IoUs and focal
loss (torchvision 0.28), ``keras`` mirrors keras.losses' functions and loss classes (Keras
3.15, with its reductions and ``sample_weight``), ``monai`` mirrors MONAI's focal loss
classes (MONAI 1.6, channels first, with its reductions), and ``smp`` mirrors
segmentation_models_pytorch's ``FocalLoss`` class (smp 0.6)."""

from . import functional, keras, monai, nn, smp, torchvision

__all__ = ["functional", "keras", "monai", "nn", "smp", "torchvision"]
