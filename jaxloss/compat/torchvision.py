"""torchvision.ops' loss and box-IoU functions, with torchvision 0.28's names, argument order
and defaults: ``jaxloss.compat.torchvision.generalized_box_iou_loss(boxes1, boxes2,
reduction="none", eps=1e-7)`` means what torchvision's does.

Beside ``compat.functional`` (torch.nn.functional) because torchvision is a library of its
own with its own conventions: boxes are ``(..., 4)`` corners (x1, y1, x2, y2), losses default
to ``reduction='none'``, and 'mean' of no boxes is 0. Each function maps its arguments onto
`jaxloss.detection` or `jaxloss.focal`, passing torchvision's choices where its formulas
differ from the papers' (documented there): CIoU's DIoU part uses eps = 1e-7 whatever
``eps`` is, and its aspect ratios have no eps. No loss math lives in this module.
"""

from __future__ import annotations

from typing import Literal

import jax
from jax.typing import ArrayLike

from .. import detection, focal
from .._core.reduction import Reduction

__all__ = [
    "box_area",
    "box_convert",
    "box_iou",
    "complete_box_iou",
    "complete_box_iou_loss",
    "distance_box_iou",
    "distance_box_iou_loss",
    "generalized_box_iou",
    "generalized_box_iou_loss",
    "sigmoid_focal_loss",
]

_Format = Literal["xyxy", "xywh", "cxcywh"]


def _reduction(fn: str, reduction: object) -> Reduction:
    if reduction not in ("none", "mean", "sum"):
        # torchvision's own words
        raise ValueError(
            f"{fn}: Invalid Value for arg 'reduction': '{reduction} \n Supported reduction "
            "modes: 'none', 'mean', 'sum'"
        )
    return reduction  # type: ignore[return-value]


def sigmoid_focal_loss(
    inputs: ArrayLike,
    targets: ArrayLike,
    alpha: float = 0.25,
    gamma: float = 2,
    reduction: str = "none",
) -> jax.Array:
    """torchvision.ops.sigmoid_focal_loss: ``alpha=-1`` disables the balancing; any other α
    outside [0, 1] raises, as in torchvision. See `jaxloss.sigmoid_focal_loss`.

    Args:
      inputs: logits of any shape.
      targets: binary targets of the same shape.
      alpha: the weight of the positive class in [0, 1], or -1 for none.
      gamma: the focusing exponent.
      reduction: ``'none'``, ``'mean'`` or ``'sum'``.
    """
    fn = "sigmoid_focal_loss"
    if not 0 <= alpha <= 1 and alpha != -1:
        raise ValueError(
            f"{fn}: Invalid alpha value: {alpha}. alpha must be in the range [0,1] or -1 for "
            "ignore."
        )
    return focal.sigmoid_focal_loss(
        inputs,
        targets,
        alpha=None if alpha == -1 else alpha,
        gamma=gamma,
        reduction=_reduction(fn, reduction),
    )


def generalized_box_iou_loss(
    boxes1: ArrayLike, boxes2: ArrayLike, reduction: str = "none", eps: float = 1e-7
) -> jax.Array:
    """torchvision.ops.generalized_box_iou_loss; see `jaxloss.generalized_box_iou_loss`.

    Args:
      boxes1: ``(..., 4)`` predicted boxes, (x1, y1, x2, y2).
      boxes2: ``(..., 4)`` target boxes, matched one to one.
      reduction: ``'none'``, ``'mean'`` (0 for no boxes) or ``'sum'``.
      eps: added where a ratio could be 0/0.
    """
    fn = "generalized_box_iou_loss"
    return detection.generalized_box_iou_loss(
        boxes1, boxes2, eps=eps, reduction=_reduction(fn, reduction)
    )


def distance_box_iou_loss(
    boxes1: ArrayLike, boxes2: ArrayLike, reduction: str = "none", eps: float = 1e-7
) -> jax.Array:
    """torchvision.ops.distance_box_iou_loss; see `jaxloss.distance_box_iou_loss`.

    Args:
      boxes1: ``(..., 4)`` predicted boxes, (x1, y1, x2, y2).
      boxes2: ``(..., 4)`` target boxes, matched one to one.
      reduction: ``'none'``, ``'mean'`` (0 for no boxes) or ``'sum'``.
      eps: added where a ratio could be 0/0.
    """
    fn = "distance_box_iou_loss"
    return detection.distance_box_iou_loss(
        boxes1, boxes2, eps=eps, reduction=_reduction(fn, reduction)
    )


def complete_box_iou_loss(
    boxes1: ArrayLike, boxes2: ArrayLike, reduction: str = "none", eps: float = 1e-7
) -> jax.Array:
    """torchvision.ops.complete_box_iou_loss, with its DIoU part at eps = 1e-7 and aspect
    ratios without eps (a zero-height box gives nan, as there); see
    `jaxloss.complete_box_iou_loss`.

    Args:
      boxes1: ``(..., 4)`` predicted boxes, (x1, y1, x2, y2).
      boxes2: ``(..., 4)`` target boxes, matched one to one.
      reduction: ``'none'``, ``'mean'`` (0 for no boxes) or ``'sum'``.
      eps: added where a ratio could be 0/0.
    """
    fn = "complete_box_iou_loss"
    return detection._complete_loss(
        fn,
        boxes1,
        boxes2,
        box_format="xyxy",
        eps=eps,
        distance_eps=1e-7,
        aspect_eps=0.0,
        where=None,
        reduction=_reduction(fn, reduction),
    )


def box_convert(boxes: ArrayLike, in_fmt: str, out_fmt: str) -> jax.Array:
    """torchvision.ops.box_convert for the 'xyxy', 'xywh' and 'cxcywh' formats.

    Args:
      boxes: ``(..., 4)`` boxes.
      in_fmt: their format.
      out_fmt: the format to return.
    """
    return detection.box_convert(boxes, in_fmt, out_fmt)  # type: ignore[arg-type]


def box_area(boxes: ArrayLike, fmt: str = "xyxy") -> jax.Array:
    """torchvision.ops.box_area.

    Args:
      boxes: ``(..., 4)`` boxes.
      fmt: their format (torchvision takes corners; the others are accepted too).
    """
    return detection.box_area(boxes, box_format=fmt)  # type: ignore[arg-type]


def box_iou(boxes1: ArrayLike, boxes2: ArrayLike, fmt: str = "xyxy") -> jax.Array:
    """torchvision.ops.box_iou (axis-aligned formats).

    Args:
      boxes1: ``(N, 4)`` boxes.
      boxes2: ``(M, 4)`` boxes.
      fmt: their format.
    """
    return detection.box_iou(boxes1, boxes2, box_format=fmt)  # type: ignore[arg-type]


def generalized_box_iou(boxes1: ArrayLike, boxes2: ArrayLike) -> jax.Array:
    """torchvision.ops.generalized_box_iou.

    Args:
      boxes1: ``(N, 4)`` boxes, (x1, y1, x2, y2).
      boxes2: ``(M, 4)`` boxes.
    """
    return detection.generalized_box_iou(boxes1, boxes2)


def distance_box_iou(boxes1: ArrayLike, boxes2: ArrayLike, eps: float = 1e-7) -> jax.Array:
    """torchvision.ops.distance_box_iou.

    Args:
      boxes1: ``(N, 4)`` boxes, (x1, y1, x2, y2).
      boxes2: ``(M, 4)`` boxes.
      eps: added to the enclosing box's squared diagonal.
    """
    return detection.distance_box_iou(boxes1, boxes2, eps=eps)


def complete_box_iou(boxes1: ArrayLike, boxes2: ArrayLike, eps: float = 1e-7) -> jax.Array:
    """torchvision.ops.complete_box_iou.

    Args:
      boxes1: ``(N, 4)`` boxes, (x1, y1, x2, y2).
      boxes2: ``(M, 4)`` boxes.
      eps: added to the enclosing box's squared diagonal and the aspect term.
    """
    return detection.complete_box_iou(boxes1, boxes2, eps=eps)
