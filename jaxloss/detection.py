r"""Detection criteria: box conversions, pairwise IoU matrices and the IoU family of box
regression losses.

Boxes are arrays whose last axis holds 4 coordinates in one of three formats
(``box_format``): ``'xyxy'`` (x1, y1, x2, y2: corners), ``'xywh'`` (x1, y1, width, height)
or ``'cxcywh'`` (centre x, centre y, width, height). The losses compare *matched* boxes,
``predictions[..., 4]`` with ``targets[..., 4]`` element by element, and reduce over every
leading axis; the pairwise functions (`box_iou` and its generalised, distance and complete
variants) return ``(..., N, M)`` matrices for matching.

Every loss is written once, here, over one shared geometry of the pair (intersection, union,
enclosing box, centre distance); ``jaxloss.compat.torchvision`` maps torchvision's signatures
onto these functions. Where torchvision's formulas and the papers' differ (eps placement,
CIoU's inner eps, an aspect ratio without eps), the native functions take the paper's form
with one ``eps`` everywhere and say so, and the compat layer passes torchvision's choices.

Conventions shared by the losses:

- ``eps`` (1e-7) is added where a ratio could be 0/0: IoU = I / (U + eps), the enclosing
  box's area and squared diagonal, the enclosing width and height (EIoU), the aspect ratio
  w / (h + eps) (CIoU), the centre distance (SIoU).
- 'mean' of no boxes (an empty input, or ``where`` all False) is 0, as torchvision's
  losses give, so a batch without matched boxes adds nothing to a detector's loss.
- Box dtypes, as torchvision computes: the matched losses take integer and 16-bit boxes as
  float32 and return float32 (float64 boxes stay float64); the pairwise IoUs and
  ``box_area`` widen integers narrower than 32 bits to int32 and 16-bit floats to float32
  before any product of coordinates, so no area overflows.
- Gradients are finite for identical, nested, touching, disjoint and zero-width or
  zero-height boxes (tested); powers of a quantity that can be 0 (α-IoU, Focal-EIoU) are
  taken as 0 there with a zero gradient.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from ._core import checks
from ._core.ops import power_of_nonnegative
from ._core.reduction import Reduction, reduce_loss

# The public functions, in the order their docs page lists them (jaxloss and the
# page read this list).
__all__ = [
    "iou_loss",
    "generalized_box_iou_loss",
    "distance_box_iou_loss",
    "complete_box_iou_loss",
    "eiou_loss",
    "focal_eiou_loss",
    "alpha_iou_loss",
    "siou_loss",
    "wise_iou_loss",
    "box_convert",
    "box_area",
    "box_iou",
    "generalized_box_iou",
    "distance_box_iou",
    "complete_box_iou",
]

BoxFormat = Literal["xyxy", "xywh", "cxcywh"]
BOX_FORMATS: tuple[str, ...] = ("xyxy", "xywh", "cxcywh")
IouBase = Literal["iou", "giou", "diou", "ciou"]


# ----------------------------------------------------------------------------- boxes


def _box_format(fn: str, name: str, value: object) -> str:
    if value not in BOX_FORMATS:
        raise ValueError(f"{fn}: `{name}` must be one of {list(BOX_FORMATS)}; got {value!r}.")
    return str(value)


def _boxes(fn: str, name: str, boxes: ArrayLike) -> jax.Array:
    """A (..., 4) box array, as float (integers become float32, as torchvision upcasts)."""
    x = checks.real_array(fn, name, boxes)
    if x.ndim == 0 or x.shape[-1] != 4:
        raise ValueError(
            f"{fn}: `{name}` must have 4 coordinates on its last axis, shape (..., 4); got "
            f"shape {list(x.shape)}."
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        return x.astype(jnp.float32)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _corners(boxes: jax.Array, box_format: str) -> tuple[jax.Array, ...]:
    """(x1, y1, x2, y2) of boxes in `box_format`."""
    a, b, c, d = (boxes[..., i] for i in range(4))
    if box_format == "xyxy":
        return a, b, c, d
    if box_format == "xywh":
        return a, b, a + c, b + d
    return a - c / 2, b - d / 2, a + c / 2, b + d / 2


def box_convert(boxes: ArrayLike, in_fmt: BoxFormat, out_fmt: BoxFormat) -> jax.Array:
    """Converts boxes between the ``'xyxy'``, ``'xywh'`` and ``'cxcywh'`` formats, as
    torchvision's ``box_convert`` does for these three (through corners).

    Args:
      boxes: ``(..., 4)`` boxes in ``in_fmt``.
      in_fmt: the format of ``boxes``.
      out_fmt: the format to return.

    Returns:
      ``(..., 4)`` boxes in ``out_fmt``, in the boxes' dtype (integer boxes stay integer
      where the conversion needs no division).

    Examples:
      >>> jaxloss.box_convert(jnp.array([0.0, 0.0, 4.0, 2.0]), "xyxy", "cxcywh")
      Array([2., 1., 4., 2.], dtype=float32)
    """
    fn = "box_convert"
    in_fmt = _box_format(fn, "in_fmt", in_fmt)  # type: ignore[assignment]
    out_fmt = _box_format(fn, "out_fmt", out_fmt)  # type: ignore[assignment]
    x = checks.real_array(fn, "boxes", boxes)
    if x.ndim == 0 or x.shape[-1] != 4:
        raise ValueError(f"{fn}: `boxes` must have shape (..., 4); got shape {list(x.shape)}.")
    if in_fmt == out_fmt:
        return x
    x1, y1, x2, y2 = _corners(x, in_fmt)
    if out_fmt == "xyxy":
        parts = (x1, y1, x2, y2)
    elif out_fmt == "xywh":
        parts = (x1, y1, x2 - x1, y2 - y1)
    else:
        parts = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    return jnp.stack(parts, axis=-1)


def box_area(boxes: ArrayLike, *, box_format: BoxFormat = "xyxy") -> jax.Array:
    """Areas of ``(..., 4)`` boxes, as torchvision's ``box_area``.

    Args:
      boxes: ``(..., 4)`` boxes.
      box_format: ``'xyxy'``, ``'xywh'`` or ``'cxcywh'``.

    Returns:
      ``boxes.shape[:-1]``: one area per box, as torchvision computes it: integer boxes
      narrower than 32 bits give int32 areas, 16-bit float boxes float32 ones, wider types
      their own.

    Examples:
      >>> jaxloss.box_area(jnp.array([[0.0, 0.0, 4.0, 2.0]]))
      Array([8.], dtype=float32)
    """
    fn = "box_area"
    box_format = _box_format(fn, "box_format", box_format)  # type: ignore[assignment]
    x = checks.real_array(fn, "boxes", boxes)
    if x.ndim == 0 or x.shape[-1] != 4:
        raise ValueError(f"{fn}: `boxes` must have shape (..., 4); got shape {list(x.shape)}.")
    x = _widened(x)
    if box_format == "xyxy":
        return (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])
    return x[..., 2] * x[..., 3]


# ----------------------------------------------------------------------------- pairwise


def _clamped(x):
    """max(x, 0) with torch's clamp gradient at 0 (1, not jnp.maximum's 0.5)."""
    return jnp.where(x >= 0, x, jnp.zeros((), x.dtype))


def _widened(x: jax.Array) -> jax.Array:
    """torchvision's upcast before products of coordinates: integers narrower than 32 bits
    become int32 and 16-bit floats float32 (an int16 or float16 area overflows at a few
    hundred pixels a side); wider types stay as they are."""
    if x.dtype.itemsize >= 4:
        return x
    return x.astype(jnp.float32 if jnp.issubdtype(x.dtype, jnp.floating) else jnp.int32)


def _pairwise_boxes(fn, boxes1, boxes2):
    a = _widened(checks.real_array(fn, "boxes1", boxes1))
    b = _widened(checks.real_array(fn, "boxes2", boxes2))
    for name, x in (("boxes1", a), ("boxes2", b)):
        if x.ndim < 2 or x.shape[-1] != 4:
            raise ValueError(
                f"{fn}: `{name}` must be (..., N, 4) boxes; got shape {list(x.shape)}."
            )
    if a.shape[:-2] != b.shape[:-2]:
        raise ValueError(
            f"{fn}: `boxes1` and `boxes2` must share their leading (batch) axes; got shapes "
            f"{list(a.shape)} and {list(b.shape)}."
        )
    return a, b


def _as_float(x):
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def _pairwise_inter_union(a, b, box_format):
    """Intersection and union areas (..., N, M); integer boxes stay integer here, as in
    torchvision, whose ratios then divide into float32."""
    a1 = _corners(a, box_format)
    b1 = _corners(b, box_format)
    left = [jnp.maximum(p[..., :, None], q[..., None, :]) for p, q in zip(a1[:2], b1[:2])]
    right = [jnp.minimum(p[..., :, None], q[..., None, :]) for p, q in zip(a1[2:], b1[2:])]
    inter = _clamped(right[0] - left[0]) * _clamped(right[1] - left[1])
    if box_format == "xyxy":
        area_a = (a1[2] - a1[0]) * (a1[3] - a1[1])
        area_b = (b1[2] - b1[0]) * (b1[3] - b1[1])
    else:  # width times height as given (torchvision's box_area)
        area_a, area_b = a[..., 2] * a[..., 3], b[..., 2] * b[..., 3]
    union = area_a[..., :, None] + area_b[..., None, :] - inter
    return inter, union, a1, b1


def _enclosing_pairwise(a1, b1):
    """Width and height of each pair's smallest enclosing box, clamped at 0 (..., N, M)."""
    left = [jnp.minimum(p[..., :, None], q[..., None, :]) for p, q in zip(a1[:2], b1[:2])]
    right = [jnp.maximum(p[..., :, None], q[..., None, :]) for p, q in zip(a1[2:], b1[2:])]
    return _clamped(right[0] - left[0]), _clamped(right[1] - left[1])


def _ratio(numerator, denominator):
    return _as_float(numerator) / _as_float(denominator)


def box_iou(boxes1: ArrayLike, boxes2: ArrayLike, *, box_format: BoxFormat = "xyxy") -> jax.Array:
    r"""Pairwise intersection over union, $|A\cap B| / |A\cup B|$, as torchvision's
    ``box_iou``: ``(..., N, M)`` for ``(..., N, 4)`` and ``(..., M, 4)`` boxes. Two
    zero-area boxes give nan (0/0), as in torchvision.

    Args:
      boxes1: ``(..., N, 4)`` boxes.
      boxes2: ``(..., M, 4)`` boxes.
      box_format: ``'xyxy'``, ``'xywh'`` or ``'cxcywh'``.

    Returns:
      ``(..., N, M)``: one value per pair, float32 for integer and 16-bit boxes (computed
      as torchvision does: integers widened to int32, 16-bit floats to float32), else the
      boxes' float dtype.

    Examples:
      >>> a = jnp.array([[0.0, 0.0, 2.0, 2.0]])
      >>> b = jnp.array([[1.0, 0.0, 3.0, 2.0], [4.0, 4.0, 5.0, 5.0]])
      >>> jaxloss.box_iou(a, b)
      Array([[0.33333334, 0.        ]], dtype=float32)
    """
    fn = "box_iou"
    box_format = _box_format(fn, "box_format", box_format)  # type: ignore[assignment]
    a, b = _pairwise_boxes(fn, boxes1, boxes2)
    inter, union, _, _ = _pairwise_inter_union(a, b, box_format)
    return _ratio(inter, union)


def generalized_box_iou(
    boxes1: ArrayLike, boxes2: ArrayLike, *, box_format: BoxFormat = "xyxy"
) -> jax.Array:
    r"""Pairwise generalised IoU, $\mathrm{IoU} - (|C| - |A\cup B|) / |C|$ with $C$ the
    smallest enclosing box, as torchvision's ``generalized_box_iou`` (no eps: degenerate
    pairs give nan, as there).

    Args:
      boxes1: ``(..., N, 4)`` boxes.
      boxes2: ``(..., M, 4)`` boxes.
      box_format: ``'xyxy'``, ``'xywh'`` or ``'cxcywh'``.

    Returns:
      ``(..., N, M)``: one value per pair, float32 for integer and 16-bit boxes (computed
      as torchvision does: integers widened to int32, 16-bit floats to float32), else the
      boxes' float dtype.

    Examples:
      >>> a = jnp.array([[0.0, 0.0, 1.0, 1.0]])
      >>> jaxloss.generalized_box_iou(a, jnp.array([[2.0, 0.0, 3.0, 1.0]]))
      Array([[-0.33333334]], dtype=float32)
    """
    fn = "generalized_box_iou"
    box_format = _box_format(fn, "box_format", box_format)  # type: ignore[assignment]
    a, b = _pairwise_boxes(fn, boxes1, boxes2)
    inter, union, a1, b1 = _pairwise_inter_union(a, b, box_format)
    iou = _ratio(inter, union)
    width, height = _enclosing_pairwise(a1, b1)
    enclosing = width * height
    return iou - _ratio(enclosing - union, enclosing)


def _pairwise_distance_terms(a1, b1, inter, union, eps):
    iou = _ratio(inter, union)
    width, height = (_as_float(v) for v in _enclosing_pairwise(a1, b1))
    diagonal = width**2 + height**2 + eps
    centre = [_as_float(p + q) / 2 for p, q in zip(a1[:2], a1[2:])]
    centre_other = [_as_float(p + q) / 2 for p, q in zip(b1[:2], b1[2:])]
    distance = sum((c[..., :, None] - g[..., None, :]) ** 2 for c, g in zip(centre, centre_other))
    return iou, iou - distance / diagonal


def distance_box_iou(
    boxes1: ArrayLike,
    boxes2: ArrayLike,
    *,
    box_format: BoxFormat = "xyxy",
    eps: float = 1e-7,
) -> jax.Array:
    r"""Pairwise distance IoU, $\mathrm{IoU} - \rho^2 / (c^2 + \epsilon)$ with $\rho$ the
    distance between the centres and $c$ the enclosing box's diagonal, as torchvision's
    ``distance_box_iou``.

    Args:
      boxes1: ``(..., N, 4)`` boxes.
      boxes2: ``(..., M, 4)`` boxes.
      box_format: ``'xyxy'``, ``'xywh'`` or ``'cxcywh'``.
      eps: added to the squared diagonal of the enclosing box.

    Returns:
      ``(..., N, M)``: one value per pair, float32 for integer and 16-bit boxes (computed
      as torchvision does: integers widened to int32, 16-bit floats to float32), else the
      boxes' float dtype.

    Examples:
      >>> a = jnp.array([[0.0, 0.0, 2.0, 2.0]])
      >>> jaxloss.distance_box_iou(a, a)
      Array([[1.]], dtype=float32)
    """
    fn = "distance_box_iou"
    box_format = _box_format(fn, "box_format", box_format)  # type: ignore[assignment]
    a, b = _pairwise_boxes(fn, boxes1, boxes2)
    inter, union, a1, b1 = _pairwise_inter_union(a, b, box_format)
    return _pairwise_distance_terms(a1, b1, inter, union, eps)[1]


def complete_box_iou(
    boxes1: ArrayLike,
    boxes2: ArrayLike,
    *,
    box_format: BoxFormat = "xyxy",
    eps: float = 1e-7,
) -> jax.Array:
    r"""Pairwise complete IoU, $\mathrm{DIoU} - \alpha v$ with
    $v = \tfrac{4}{\pi^2}(\arctan\tfrac{w}{h} - \arctan\tfrac{w_g}{h_g})^2$ and
    $\alpha = v / (1 - \mathrm{IoU} + v + \epsilon)$ taken without gradient, as
    torchvision's ``complete_box_iou`` (the aspect ratios have no eps there either).

    Args:
      boxes1: ``(..., N, 4)`` boxes.
      boxes2: ``(..., M, 4)`` boxes.
      box_format: ``'xyxy'``, ``'xywh'`` or ``'cxcywh'``.
      eps: added to the squared diagonal and to the aspect term's denominator.

    Returns:
      ``(..., N, M)``: one value per pair, float32 for integer and 16-bit boxes (computed
      as torchvision does: integers widened to int32, 16-bit floats to float32), else the
      boxes' float dtype.

    Examples:
      >>> a = jnp.array([[0.0, 0.0, 2.0, 2.0]])
      >>> jaxloss.complete_box_iou(a, jnp.array([[0.0, 0.0, 2.0, 4.0]]))
      Array([[0.44...]], dtype=float32)
    """
    fn = "complete_box_iou"
    box_format = _box_format(fn, "box_format", box_format)  # type: ignore[assignment]
    a, b = _pairwise_boxes(fn, boxes1, boxes2)
    inter, union, a1, b1 = _pairwise_inter_union(a, b, box_format)
    iou, diou = _pairwise_distance_terms(a1, b1, inter, union, eps)
    aspect = jnp.arctan(_ratio(a1[2] - a1[0], a1[3] - a1[1]))
    aspect_other = jnp.arctan(_ratio(b1[2] - b1[0], b1[3] - b1[1]))
    v = 4 / math.pi**2 * (aspect[..., :, None] - aspect_other[..., None, :]) ** 2
    alpha = lax.stop_gradient(v / (1 - iou + v + eps))
    return diou - alpha * v


# ----------------------------------------------------------------------------- matched pairs


class _Pair(NamedTuple):
    """The geometry of matched boxes that every IoU loss reads (all (...) arrays)."""

    inter: jax.Array  # intersection area
    union: jax.Array
    width: jax.Array  # of the predictions
    height: jax.Array
    target_width: jax.Array
    target_height: jax.Array
    enclosing_width: jax.Array  # of the smallest box enclosing both (not clamped)
    enclosing_height: jax.Array
    dx: jax.Array  # centre of the prediction minus centre of the target
    dy: jax.Array


def _pair(predictions, targets, box_format) -> _Pair:
    x1, y1, x2, y2 = _corners(predictions, box_format)
    gx1, gy1, gx2, gy2 = _corners(targets, box_format)
    inner_w = jnp.minimum(x2, gx2) - jnp.maximum(x1, gx1)
    inner_h = jnp.minimum(y2, gy2) - jnp.maximum(y1, gy1)
    # Only where the boxes overlap (torchvision's mask: touching boxes have no gradient).
    overlap = (inner_w > 0) & (inner_h > 0)
    inter = jnp.where(overlap, inner_w * inner_h, jnp.zeros((), inner_w.dtype))
    width, height, target_width, target_height = x2 - x1, y2 - y1, gx2 - gx1, gy2 - gy1
    union = width * height + target_width * target_height - inter
    return _Pair(
        inter=inter,
        union=union,
        width=width,
        height=height,
        target_width=target_width,
        target_height=target_height,
        enclosing_width=jnp.maximum(x2, gx2) - jnp.minimum(x1, gx1),
        enclosing_height=jnp.maximum(y2, gy2) - jnp.minimum(y1, gy1),
        dx=(x1 + x2) / 2 - (gx1 + gx2) / 2,
        dy=(y1 + y2) / 2 - (gy1 + gy2) / 2,
    )


def _iou(pair: _Pair, eps):
    return pair.inter / (pair.union + eps)


def _generalized_penalty(pair: _Pair, eps):
    enclosing = pair.enclosing_width * pair.enclosing_height
    return (enclosing - pair.union) / (enclosing + eps)


def _distance_penalty(pair: _Pair, eps):
    diagonal = pair.enclosing_width**2 + pair.enclosing_height**2 + eps
    return (pair.dx**2 + pair.dy**2) / diagonal


def _aspect_terms(pair: _Pair, iou, eps, aspect_eps):
    """CIoU's v and its detached weight α = v / (1 - IoU + v + eps)."""
    aspect = jnp.arctan(pair.width / (pair.height + aspect_eps))
    aspect_target = jnp.arctan(pair.target_width / (pair.target_height + aspect_eps))
    v = 4 / math.pi**2 * (aspect_target - aspect) ** 2
    return v, lax.stop_gradient(v / (1 - iou + v + eps))


def _matched(fn, predictions, targets, box_format, eps, where, reduction):
    """Checked, promoted inputs of a matched-box loss, its `_Pair`, mask and dtype."""
    box_format = _box_format(fn, "box_format", box_format)
    p = _boxes(fn, "predictions", predictions)
    t = _boxes(fn, "targets", targets)
    if p.shape != t.shape:
        raise ValueError(
            f"{fn}: `predictions` and `targets` must be matched boxes of one shape; got "
            f"{list(p.shape)} and {list(t.shape)}."
        )
    checks.reduction(fn, reduction)
    eps = checks.python_number(fn, "eps", eps, low=0.0)
    result_dtype = jnp.promote_types(p.dtype, t.dtype)
    p, t = p.astype(result_dtype), t.astype(result_dtype)
    where = checks.where_mask(fn, where, p.shape[:-1], "the boxes (predictions.shape[:-1])")
    return _pair(p, t, box_format), eps, where, result_dtype


def _reduced(loss, where, reduction):
    """'none' / 'sum' / 'mean' over the boxes; 'mean' of no boxes is 0 (torchvision)."""
    return reduce_loss(loss, reduction, where=where, empty_mean=0.0)


def iou_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    mode: Literal["linear", "log"] = "linear",
    box_format: BoxFormat = "xyxy",
    eps: float = 1e-7,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""IoU loss of matched boxes: $1 - \mathrm{IoU}$ (``mode='linear'``) or
    $-\ln(\mathrm{IoU} + \epsilon)$ (``mode='log'``, UnitBox; 16.1 for disjoint boxes rather
    than inf), with $\mathrm{IoU} = I / (U + \epsilon)$.

    Args:
      predictions: ``(..., 4)`` predicted boxes.
      targets: ``(..., 4)`` target boxes, matched one to one with ``predictions``.
      box_format: ``'xyxy'``, ``'xywh'`` or ``'cxcywh'``.
      eps: added where a ratio could be 0/0 (see the module's conventions).
      where: optional boolean mask over the boxes (``predictions.shape[:-1]``).
      reduction: ``'none'``, ``'mean'`` (0 for no boxes) or ``'sum'``.
      mode: ``'linear'`` or ``'log'``.

    Returns:
      ``'none'``: one loss per box pair (``predictions.shape[:-1]``); otherwise a scalar.

    Examples:
      >>> p = jnp.array([[0.0, 0.0, 2.0, 2.0]])
      >>> float(jaxloss.iou_loss(p, jnp.array([[1.0, 0.0, 3.0, 2.0]])))
      0.666...
    """
    fn = "iou_loss"
    if mode not in ("linear", "log"):
        raise ValueError(f"{fn}: `mode` must be 'linear' or 'log'; got {mode!r}.")
    pair, eps, where, dtype = _matched(fn, predictions, targets, box_format, eps, where, reduction)
    loss = 1 - _iou(pair, eps) if mode == "linear" else -jnp.log(_iou(pair, eps) + eps)
    return _reduced(loss, where, reduction).astype(dtype)


def _giou(pair: _Pair, eps):
    return 1 - _iou(pair, eps) + _generalized_penalty(pair, eps)


def _diou(pair: _Pair, eps):
    return 1 - _iou(pair, eps) + _distance_penalty(pair, eps)


def generalized_box_iou_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    box_format: BoxFormat = "xyxy",
    eps: float = 1e-7,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Generalised IoU loss (Rezatofighi et al. 2019),
    $1 - \mathrm{IoU} + (|C| - |A\cup B|) / (|C| + \epsilon)$, $C$ the smallest box
    enclosing both: exact to torchvision's ``generalized_box_iou_loss``.

    Args:
      predictions: ``(..., 4)`` predicted boxes.
      targets: ``(..., 4)`` target boxes, matched one to one with ``predictions``.
      box_format: ``'xyxy'``, ``'xywh'`` or ``'cxcywh'``.
      eps: added where a ratio could be 0/0 (see the module's conventions).
      where: optional boolean mask over the boxes (``predictions.shape[:-1]``).
      reduction: ``'none'``, ``'mean'`` (0 for no boxes) or ``'sum'``.

    Returns:
      ``'none'``: one loss per box pair; otherwise a scalar.

    Examples:
      >>> p = jnp.array([[0.0, 0.0, 1.0, 1.0]])
      >>> float(jaxloss.generalized_box_iou_loss(p, jnp.array([[2.0, 0.0, 3.0, 1.0]])))
      1.333...
    """
    fn = "generalized_box_iou_loss"
    pair, eps, where, dtype = _matched(fn, predictions, targets, box_format, eps, where, reduction)
    return _reduced(_giou(pair, eps), where, reduction).astype(dtype)


def distance_box_iou_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    box_format: BoxFormat = "xyxy",
    eps: float = 1e-7,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Distance IoU loss (Zheng et al. 2020), $1 - \mathrm{IoU} + \rho^2 / (c^2 + \epsilon)$,
    $\rho$ the distance between the centres, $c$ the enclosing box's diagonal: exact to
    torchvision's ``distance_box_iou_loss``.

    Args:
      predictions: ``(..., 4)`` predicted boxes.
      targets: ``(..., 4)`` target boxes, matched one to one with ``predictions``.
      box_format: ``'xyxy'``, ``'xywh'`` or ``'cxcywh'``.
      eps: added where a ratio could be 0/0 (see the module's conventions).
      where: optional boolean mask over the boxes (``predictions.shape[:-1]``).
      reduction: ``'none'``, ``'mean'`` (0 for no boxes) or ``'sum'``.

    Returns:
      ``'none'``: one loss per box pair; otherwise a scalar.

    Examples:
      >>> p = jnp.array([[0.0, 0.0, 2.0, 2.0]])
      >>> float(jaxloss.distance_box_iou_loss(p, jnp.array([[1.0, 0.0, 3.0, 2.0]])))
      0.7435...
    """
    fn = "distance_box_iou_loss"
    pair, eps, where, dtype = _matched(fn, predictions, targets, box_format, eps, where, reduction)
    return _reduced(_diou(pair, eps), where, reduction).astype(dtype)


def _ciou(pair: _Pair, eps, distance_eps, aspect_eps):
    """CIoU with the eps of its DIoU part and of its aspect ratios given apart (torchvision
    uses 1e-7 and 0 whatever its `eps`)."""
    v, alpha = _aspect_terms(pair, _iou(pair, distance_eps), eps, aspect_eps)
    return _diou(pair, distance_eps) + alpha * v


def _complete_loss(
    fn, predictions, targets, *, box_format, eps, distance_eps, aspect_eps, where, reduction
):
    """CIoU loss with its three eps given apart (`complete_box_iou_loss` passes one for all;
    jaxloss.compat.torchvision passes torchvision's)."""
    pair, eps, where, dtype = _matched(fn, predictions, targets, box_format, eps, where, reduction)
    distance_eps = eps if distance_eps is None else distance_eps
    aspect_eps = eps if aspect_eps is None else aspect_eps
    return _reduced(_ciou(pair, eps, distance_eps, aspect_eps), where, reduction).astype(dtype)


def complete_box_iou_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    box_format: BoxFormat = "xyxy",
    eps: float = 1e-7,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Complete IoU loss (Zheng et al. 2020), DIoU loss $+ \alpha v$ with
    $v = \tfrac{4}{\pi^2}(\arctan\tfrac{w_g}{h_g + \epsilon} - \arctan\tfrac{w}{h + \epsilon})^2$
    and $\alpha = v / (1 - \mathrm{IoU} + v + \epsilon)$ taken without gradient (as the paper
    and torchvision do).

    torchvision's ``complete_box_iou_loss`` differs in two places, reproduced by
    ``jaxloss.compat.torchvision``: its DIoU part always uses eps = 1e-7, and its aspect
    ratios have no eps (a zero-height box gives nan there; finite here).

    Args:
      predictions: ``(..., 4)`` predicted boxes.
      targets: ``(..., 4)`` target boxes, matched one to one with ``predictions``.
      box_format: ``'xyxy'``, ``'xywh'`` or ``'cxcywh'``.
      eps: added where a ratio could be 0/0 (see the module's conventions).
      where: optional boolean mask over the boxes (``predictions.shape[:-1]``).
      reduction: ``'none'``, ``'mean'`` (0 for no boxes) or ``'sum'``.

    Returns:
      ``'none'``: one loss per box pair; otherwise a scalar.

    Examples:
      >>> p = jnp.array([[0.0, 0.0, 2.0, 2.0]])
      >>> float(jaxloss.complete_box_iou_loss(p, jnp.array([[0.0, 0.0, 2.0, 4.0]])))
      0.55...
    """
    return _complete_loss(
        "complete_box_iou_loss",
        predictions,
        targets,
        box_format=box_format,
        eps=eps,
        distance_eps=None,
        aspect_eps=None,
        where=where,
        reduction=reduction,
    )


def _eiou(pair: _Pair, eps):
    width_term = (pair.width - pair.target_width) ** 2 / (pair.enclosing_width**2 + eps)
    height_term = (pair.height - pair.target_height) ** 2 / (pair.enclosing_height**2 + eps)
    return _diou(pair, eps) + width_term + height_term


def eiou_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    box_format: BoxFormat = "xyxy",
    eps: float = 1e-7,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Efficient IoU loss (Zhang et al., arXiv 2101.08158):
    $1 - \mathrm{IoU} + \rho^2/c^2 + (w - w_g)^2/C_w^2 + (h - h_g)^2/C_h^2$, $C_w$ and $C_h$
    the enclosing box's width and height (each denominator $+\epsilon$). Not mmdet's
    "Extended IoU", a different loss.

    Args:
      predictions: ``(..., 4)`` predicted boxes.
      targets: ``(..., 4)`` target boxes, matched one to one with ``predictions``.
      box_format: ``'xyxy'``, ``'xywh'`` or ``'cxcywh'``.
      eps: added where a ratio could be 0/0 (see the module's conventions).
      where: optional boolean mask over the boxes (``predictions.shape[:-1]``).
      reduction: ``'none'``, ``'mean'`` (0 for no boxes) or ``'sum'``.

    Returns:
      ``'none'``: one loss per box pair; otherwise a scalar.

    Examples:
      >>> p = jnp.array([[0.0, 0.0, 2.0, 2.0]])
      >>> round(float(jaxloss.eiou_loss(p, jnp.array([[0.0, 0.0, 2.0, 4.0]]))), 4)
      0.8
    """
    fn = "eiou_loss"
    pair, eps, where, dtype = _matched(fn, predictions, targets, box_format, eps, where, reduction)
    return _reduced(_eiou(pair, eps), where, reduction).astype(dtype)


def focal_eiou_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    gamma: float = 0.5,
    box_format: BoxFormat = "xyxy",
    eps: float = 1e-7,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Focal-EIoU loss (Zhang et al., arXiv 2101.08158), $\mathrm{IoU}^\gamma \cdot L_{EIoU}$:
    well-overlapping boxes weigh more. The factor keeps its gradient, as in the paper's
    formula (some implementations detach it); ``gamma=0`` gives `eiou_loss`. The paper
    normalises by $\sum \mathrm{IoU}^\gamma$ over the batch; this 'mean' divides by the
    number of boxes, like every loss here (divide by the factor's sum yourself for the
    paper's weighting).

    Args:
      predictions: ``(..., 4)`` predicted boxes.
      targets: ``(..., 4)`` target boxes, matched one to one with ``predictions``.
      box_format: ``'xyxy'``, ``'xywh'`` or ``'cxcywh'``.
      eps: added where a ratio could be 0/0 (see the module's conventions).
      where: optional boolean mask over the boxes (``predictions.shape[:-1]``).
      reduction: ``'none'``, ``'mean'`` (0 for no boxes) or ``'sum'``.
      gamma: γ >= 0, the focusing exponent (0.5 in the paper).

    Returns:
      ``'none'``: one loss per box pair; otherwise a scalar.

    Examples:
      >>> p = jnp.array([[0.0, 0.0, 2.0, 2.0]])
      >>> float(jaxloss.focal_eiou_loss(p, jnp.array([[0.0, 0.0, 2.0, 4.0]])))
      0.5656...
    """
    fn = "focal_eiou_loss"
    gamma = checks.python_number(fn, "gamma", gamma, low=0.0)
    pair, eps, where, dtype = _matched(fn, predictions, targets, box_format, eps, where, reduction)
    loss = _eiou(pair, eps)
    if not (isinstance(gamma, (int, float)) and gamma == 0):
        loss = power_of_nonnegative(_iou(pair, eps), gamma) * loss
    return _reduced(loss, where, reduction).astype(dtype)


def alpha_iou_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: float = 3.0,
    base: IouBase = "iou",
    box_format: BoxFormat = "xyxy",
    eps: float = 1e-7,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""α-IoU loss (He et al., NeurIPS 2021): $1 - \mathrm{IoU}^\alpha$ plus the base's
    penalty to the power α: $((|C| - |A\cup B|)/|C|)^\alpha$ for ``'giou'``,
    $(\rho^2/c^2)^\alpha$ for ``'diou'``, and $(\rho^2/c^2)^\alpha + (\alpha_v v)^\alpha$ for
    ``'ciou'`` (α_v CIoU's detached weight). ``alpha=1`` gives the base loss (`iou_loss`,
    `generalized_box_iou_loss`, `distance_box_iou_loss`, `complete_box_iou_loss`).
    Powers are taken of the exact terms (the paper's code adds eps inside them).

    Args:
      predictions: ``(..., 4)`` predicted boxes.
      targets: ``(..., 4)`` target boxes, matched one to one with ``predictions``.
      box_format: ``'xyxy'``, ``'xywh'`` or ``'cxcywh'``.
      eps: added where a ratio could be 0/0 (see the module's conventions).
      where: optional boolean mask over the boxes (``predictions.shape[:-1]``).
      reduction: ``'none'``, ``'mean'`` (0 for no boxes) or ``'sum'``.
      alpha: α > 0 (3 in the paper).
      base: ``'iou'``, ``'giou'``, ``'diou'`` or ``'ciou'``.

    Returns:
      ``'none'``: one loss per box pair; otherwise a scalar.

    Examples:
      >>> p = jnp.array([[0.0, 0.0, 2.0, 2.0]])
      >>> float(jaxloss.alpha_iou_loss(p, jnp.array([[1.0, 0.0, 3.0, 2.0]])))
      0.962...
    """
    fn = "alpha_iou_loss"
    alpha = checks.python_number(fn, "alpha", alpha, low=0.0, low_inclusive=False)
    if base not in ("iou", "giou", "diou", "ciou"):
        raise ValueError(f"{fn}: `base` must be 'iou', 'giou', 'diou' or 'ciou'; got {base!r}.")
    pair, eps, where, dtype = _matched(fn, predictions, targets, box_format, eps, where, reduction)
    loss = 1 - power_of_nonnegative(_iou(pair, eps), alpha)
    if base == "giou":
        loss = loss + power_of_nonnegative(_clamped(_generalized_penalty(pair, eps)), alpha)
    elif base in ("diou", "ciou"):
        loss = loss + power_of_nonnegative(_distance_penalty(pair, eps), alpha)
    if base == "ciou":
        v, weight = _aspect_terms(pair, _iou(pair, eps), eps, eps)
        loss = loss + power_of_nonnegative(weight * v, alpha)
    return _reduced(loss, where, reduction).astype(dtype)


def siou_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    theta: float = 4.0,
    box_format: BoxFormat = "xyxy",
    eps: float = 1e-7,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""SCYLLA-IoU loss (Gevorgyan, arXiv 2205.12740), $1 - \mathrm{IoU} + (\Delta + \Omega)/2$:

    - angle cost $\Lambda = 1 - 2\sin^2(\arcsin(x) - \pi/4) = \sin 2\alpha$, α the angle
      of the line between the centres to the x axis; computed as
      $2|d_x d_y| / (d_x^2 + d_y^2 + \epsilon)$, the same value without arcsin's infinite
      slope at a vertical or horizontal offset;
    - distance cost $\Delta = \sum_{t \in x, y} (1 - e^{-(2 - \Lambda)\rho_t})$,
      $\rho_x = (d_x / C_w)^2$, $\rho_y = (d_y / C_h)^2$ ($C$ the enclosing box);
    - shape cost $\Omega = \sum_{t \in w, h} (1 - e^{-\omega_t})^\theta$,
      $\omega_w = |w - w_g| / \max(w, w_g)$, $\omega_h$ likewise.

    Signs: this is the paper's $\gamma = 2 - \Lambda$ inside $e^{-\gamma\rho}$, so each
    distance term lies in [0, 1). Code that writes ``gamma = angle_cost - 2`` with
    ``exp(gamma * rho)`` computes the same; code that pairs ``gamma = 2 - angle_cost`` with
    ``exp(gamma * rho)`` makes the distance cost negative and unbounded.

    Args:
      predictions: ``(..., 4)`` predicted boxes.
      targets: ``(..., 4)`` target boxes, matched one to one with ``predictions``.
      box_format: ``'xyxy'``, ``'xywh'`` or ``'cxcywh'``.
      eps: added where a ratio could be 0/0 (see the module's conventions).
      where: optional boolean mask over the boxes (``predictions.shape[:-1]``).
      reduction: ``'none'``, ``'mean'`` (0 for no boxes) or ``'sum'``.
      theta: θ, the shape cost's exponent (4 in the paper; 2 to 6 is its range).

    Returns:
      ``'none'``: one loss per box pair; otherwise a scalar.

    Examples:
      >>> p = jnp.array([[0.0, 0.0, 2.0, 2.0]])
      >>> float(jaxloss.siou_loss(p, jnp.array([[1.0, 1.0, 3.0, 3.0]])))
      0.962...
    """
    fn = "siou_loss"
    theta = checks.python_number(fn, "theta", theta, low=0.0, low_inclusive=False)
    pair, eps, where, dtype = _matched(fn, predictions, targets, box_format, eps, where, reduction)
    angle = 2 * jnp.abs(pair.dx * pair.dy) / (pair.dx**2 + pair.dy**2 + eps)
    gamma = 2 - angle
    rho_x = (pair.dx / (pair.enclosing_width + eps)) ** 2
    rho_y = (pair.dy / (pair.enclosing_height + eps)) ** 2
    distance = (1 - jnp.exp(-gamma * rho_x)) + (1 - jnp.exp(-gamma * rho_y))
    omega_w = jnp.abs(pair.width - pair.target_width) / (
        jnp.maximum(pair.width, pair.target_width) + eps
    )
    omega_h = jnp.abs(pair.height - pair.target_height) / (
        jnp.maximum(pair.height, pair.target_height) + eps
    )
    shape = power_of_nonnegative(1 - jnp.exp(-omega_w), theta) + power_of_nonnegative(
        1 - jnp.exp(-omega_h), theta
    )
    loss = 1 - _iou(pair, eps) + (distance + shape) / 2
    return _reduced(loss, where, reduction).astype(dtype)


def wise_iou_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    running_mean: ArrayLike = 1.0,
    *,
    version: Literal[1, 2, 3] = 3,
    momentum: float = 0.01,
    gamma: float = 0.5,
    alpha: float = 1.9,
    delta: float = 3.0,
    box_format: BoxFormat = "xyxy",
    eps: float = 1e-7,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> tuple[jax.Array, jax.Array]:
    r"""Wise-IoU loss (Tong et al., arXiv 2301.10051), v1, v2 or v3; returns
    ``(loss, new_running_mean)``.

    - v1: $R \cdot L_{IoU}$, $L_{IoU} = 1 - \mathrm{IoU}$,
      $R = \exp(\rho^2 / (W_g^2 + H_g^2)^*)$, $W_g, H_g$ the enclosing box's size, detached
      (*) as in the paper.
    - v2 (monotonic focusing): $(L_{IoU}^* / \overline{L_{IoU}})^\gamma \cdot$ v1.
    - v3 (non-monotonic focusing): $r \cdot$ v1 with outlier degree
      $\beta = L_{IoU}^* / \overline{L_{IoU}}$ and $r = \beta / (\delta\,\alpha^{\beta - \delta})$.

    $\overline{L_{IoU}}$ is a running mean of $L_{IoU}$, which the function keeps pure: it
    takes the mean so far and returns it updated, $(1 - m)\,\overline{L} + m\,\mathrm{mean}
    (L_{IoU}^*)$ over the (unmasked) boxes, and the focusing factors use the *updated* mean,
    as the authors' code does. Carry it in your training state; 1.0 is the authors' start.
    The focusing factors are detached, as in the paper. v1 ignores the mean but still
    returns it updated.

    Args:
      predictions: ``(..., 4)`` predicted boxes.
      targets: ``(..., 4)`` target boxes, matched one to one with ``predictions``.
      running_mean: the running mean of the IoU loss so far (a scalar).
      version: 1, 2 or 3.
      momentum: m in (0, 1]; the authors set m = 1 - 0.05^(1/(n t)) for n batches per epoch
        and t the epoch where mAP's rise slows.
      gamma: v2's exponent (0.5 in the paper).
      alpha: v3's α (1.9 in the paper).
      delta: v3's δ (3 in the paper), the outlier degree of largest gain.
      box_format: ``'xyxy'``, ``'xywh'`` or ``'cxcywh'``.
      eps: added where a ratio could be 0/0.
      where: optional boolean mask over the boxes (``predictions.shape[:-1]``).
      reduction: ``'none'``, ``'mean'`` (0 for no boxes) or ``'sum'``.

    Returns:
      ``(loss, new_running_mean)``: the loss (one per box pair for ``'none'``, else a
      scalar) and the updated mean (a scalar, without gradient).

    Examples:
      >>> p = jnp.array([[0.0, 0.0, 2.0, 2.0]])
      >>> loss, mean = jaxloss.wise_iou_loss(p, jnp.array([[1.0, 0.0, 3.0, 2.0]]))
      >>> round(float(loss), 4), round(float(mean), 4)
      (0.7167, 0.9967)
    """
    fn = "wise_iou_loss"
    if version not in (1, 2, 3) or isinstance(version, bool):
        raise ValueError(f"{fn}: `version` must be 1, 2 or 3; got {version!r}.")
    momentum = checks.python_number(
        fn, "momentum", momentum, low=0.0, high=1.0, low_inclusive=False
    )
    gamma = checks.python_number(fn, "gamma", gamma, low=0.0)
    alpha = checks.python_number(fn, "alpha", alpha, low=0.0, low_inclusive=False)
    delta = checks.python_number(fn, "delta", delta)
    pair, eps, where, dtype = _matched(fn, predictions, targets, box_format, eps, where, reduction)
    mean_so_far = checks.float_array(fn, "running_mean", jnp.asarray(running_mean, dtype))
    if mean_so_far.shape != ():
        raise ValueError(
            f"{fn}: `running_mean` must be a scalar; got shape {list(mean_so_far.shape)}."
        )
    iou_loss_value = 1 - _iou(pair, eps)
    detached = lax.stop_gradient(iou_loss_value)
    batch_mean = _reduced(detached, where, "mean")
    new_mean = lax.stop_gradient((1 - momentum) * mean_so_far.astype(dtype) + momentum * batch_mean)
    diagonal = lax.stop_gradient(pair.enclosing_width**2 + pair.enclosing_height**2) + eps
    loss = jnp.exp((pair.dx**2 + pair.dy**2) / diagonal) * iou_loss_value
    if version > 1:
        beta = detached / jnp.maximum(new_mean, jnp.finfo(dtype).tiny)
        if version == 2:
            loss = power_of_nonnegative(beta, gamma) * loss
        else:
            loss = beta / (delta * jnp.power(alpha, beta - delta)) * loss
    return _reduced(loss, where, reduction).astype(dtype), new_mean
