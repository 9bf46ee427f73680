"""Two-tower contrastive losses: CLIP's softmax (InfoNCE) loss and SigLIP's sigmoid loss.

Both score every image row against every text row of the batch, ``z_ij = scale · x_i·y_j +
bias``, and treat the pairs (i, i) as positives (several per row with `group_ids`). The scale
is given as its value (open_clip's ``logit_scale.exp()``), not as its logarithm: a model that
learns the log-scale passes ``jnp.exp(log_scale)``, and the gradient flows through it.

On an Explicit mesh whose batch axis is sharded, both losses run themselves per device under
``shard_map``: CLIP all-gathers the embeddings (each device's rows against the global batch,
open_clip's ``local_loss`` with ``gather_with_grad``), and SigLIP passes the texts around a
bidirectional ring of collective permutes, so no device holds more than its rows against one
block of keys per direction; the value and the gradient take one walk of the ring. Inside
``shard_map``, `jaxloss.parallel.clip_loss` and `jaxloss.parallel.siglip_loss` give each
device's loss with open_clip's per-rank meaning.
The pair math is `jaxloss._kernels.contrastive`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from ._core import checks
from ._core.reduction import Reduction, finish, reduce_loss
from ._core.sharding import batch_like, explicitly_sharded, whole
from ._kernels.contrastive import (
    Keys,
    PairInputs,
    clip_rows,
    clip_rows_on_axis,
    global_loss,
    pair_inputs,
    sigmoid_ring_loss,
    sigmoid_ring_rows,
    sigmoid_rows,
)

__all__ = ["clip_loss", "siglip_loss"]


def _reduced(rows, valid, reduction, result_dtype):
    return finish(reduce_loss(rows, reduction, where=valid), result_dtype)


def _row_ids(pairs: PairInputs) -> jax.Array:
    ids = pairs.keys.ids
    return jnp.arange(pairs.image.shape[0]) if ids is None else ids


def _on_batch_shards(fn_name, pairs: PairInputs, per_device, reduction) -> jax.Array:
    """``per_device(image, keys, scale, bias, reduction, axis_name=, axis_size=)`` (the global
    loss, or this device's rows for 'none') run under ``shard_map`` over the Explicit mesh
    axes that split the image rows, the texts, ids and mask split alike and the embedding
    width whole."""
    # The batch split of whichever tower is split along it (the other follows).
    split = pairs.image if explicitly_sharded(pairs.image, 0) else pairs.keys.text
    sharding = jax.typeof(split).sharding
    mesh = sharding.mesh
    lead = sharding.spec[0]
    axes = lead if isinstance(lead, tuple) else (lead,)
    size = 1
    for a in axes:
        size *= mesh.shape[a]
    if pairs.image.shape[0] % size:
        raise ValueError(
            f"{fn_name}: the batch of {pairs.image.shape[0]} pair rows must split evenly over "
            f"the {size} devices of mesh axes {axes}; pad it and pass `where`."
        )
    rows_spec, row_spec = P(lead, None), P(lead)

    # Every per-row array split like the batch, its other axes (the width) whole.
    present = [a for a in (pairs.image, *pairs.keys) if a is not None]
    placed = iter(batch_like(split, *present))
    image, text = next(placed), next(placed)
    keys = Keys(text, *(None if a is None else next(placed) for a in pairs.keys[1:]))

    def local(image, text, ids, valid, scale, bias):
        keys = Keys(text, ids, valid)
        return per_device(image, keys, scale, bias, reduction, axis_name=axes, axis_size=size)

    specs = [rows_spec, rows_spec] + [None if a is None else row_spec for a in keys[1:]]
    out = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(*specs, P(), None if pairs.bias is None else P()),
        out_specs=row_spec if reduction == "none" else P(),
    )(image, *keys, pairs.scale, pairs.bias)
    return finish(out, pairs.result_dtype)


def _sharded_batch(pairs: PairInputs) -> bool:
    return explicitly_sharded(pairs.image, 0) or explicitly_sharded(pairs.keys.text, 0)


def _whole(pairs: PairInputs) -> PairInputs:
    """The inputs replicated when an Explicit mesh splits an axis other than the batch (the
    embedding width): the (B, B) logits of one device need every row whole."""
    text, ids, valid = pairs.keys
    keys = Keys(
        whole(text), None if ids is None else whole(ids), None if valid is None else whole(valid)
    )
    return pairs._replace(image=whole(pairs.image), keys=keys)


def clip_loss(
    image_embeddings: ArrayLike,
    text_embeddings: ArrayLike,
    scale: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    normalize: bool = False,
    eps: float = 1e-12,
    group_ids: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""CLIP's symmetric contrastive loss (InfoNCE, Radford et al. 2021): with $z_{ij} = s\,
    x_i \cdot y_j + b$, each image row is a cross-entropy over the texts and each text row one
    over the images, the pair (i, i) the target,

    $$\ell_i = \tfrac12\Big(\log\sum_j e^{z_{ij}} - z_{ii}\Big)
             + \tfrac12\Big(\log\sum_j e^{z_{ji}} - z_{ii}\Big),$$

    and 'mean' averages $\ell_i$ over the pairs: open_clip's ``ClipLoss`` (the mean of the
    image→text and text→image cross-entropies). With `group_ids`, the target of row i is
    spread evenly over the rows of its group (several positives per row).

    On an Explicit mesh that splits the batch axis, it runs per device: each device's rows
    against the all-gathered global batch, the gradient flowing back through the gather, so
    values and gradients are the single-device ones (memory per device: (B/n, B) logits).
    Inside ``shard_map``, use `jaxloss.parallel.clip_loss`.

    Args:
      image_embeddings: ``(B, D)`` float, one tower's embeddings.
      text_embeddings: ``(B, D)`` float, the other tower's; row i pairs with image row i.
      scale: the logit scale $s$ as a value (open_clip passes ``logit_scale.exp()``), a
        scalar; it may be traced and differentiated.
      bias: optional scalar logit bias $b$ (it cancels in each softmax; open_clip accepts
        one).
      normalize: L2-normalise both towers' rows first (open_clip's models do it before the
        loss, which does not).
      eps: the smallest norm a row is divided by when normalising.
      group_ids: optional integer ``(B,)``: rows with equal ids are positives of each other.
      where: optional boolean ``(B,)`` mask of the pairs that take part (padding rows are
        neither queries nor keys).
      reduction: ``'none'`` (the ``(B,)`` $\ell_i$, 0 where masked), ``'mean'`` (over the
        counted pairs) or ``'sum'``.

    Returns:
      ``'none'``: ``(B,)``; otherwise a scalar, in the embeddings' dtype.

    Examples:
      >>> image = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> text = jnp.array([[0.9, 0.1], [0.2, 0.8]])
      >>> round(float(jaxloss.clip_loss(image, text, 5.0, normalize=True)), 4)
      0.0186
    """
    fn = "clip_loss"
    checks.reduction(fn, reduction)
    pairs = pair_inputs(
        fn, image_embeddings, text_embeddings, scale, bias,
        normalize=normalize, eps=eps, group_ids=group_ids, where=where,
    )  # fmt: skip
    if _sharded_batch(pairs):

        def per_device(image, keys, scale, bias, reduction, *, axis_name, axis_size):
            rows = clip_rows_on_axis(
                image, keys.text.astype(image.dtype), scale, bias, keys.ids, keys.valid,
                axis_name=axis_name, local_loss=True, gather_with_grad=True,
            )  # fmt: skip
            return global_loss(rows, keys.valid, reduction, axis_name, axis_size)

        return _on_batch_shards(fn, pairs, per_device, reduction)
    pairs = _whole(pairs)
    ids = _row_ids(pairs)
    text = pairs.keys.text.astype(pairs.image.dtype)
    rows = clip_rows(
        pairs.image, text, text, pairs.image, pairs.scale, pairs.bias, ids, ids, pairs.keys.valid
    )
    return _reduced(rows, pairs.keys.valid, reduction, pairs.result_dtype)


def siglip_loss(
    image_embeddings: ArrayLike,
    text_embeddings: ArrayLike,
    scale: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    normalize: bool = False,
    eps: float = 1e-12,
    group_ids: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""SigLIP's pairwise sigmoid loss (Zhai et al. 2023): with $z_{ij} = s\, x_i \cdot y_j +
    b$ and $t_{ij} = 1$ for the positive pairs (i, i), $-1$ for every other,

    $$\ell_i = -\sum_j \log \sigma(t_{ij} z_{ij})
             = \sum_j \mathrm{softplus}(z_{ij}) - [t_{ij} = 1]\, z_{ij},$$

    and 'mean' divides $\sum_i \ell_i$ by the number of pairs B: open_clip's ``SigLipLoss``.
    With `group_ids`, every pair within a group is positive (several positives per row).

    On an Explicit mesh that splits the batch axis, it runs per device: the texts walk a
    bidirectional ring of collective permutes (open_clip's default ``bidir``), each device
    holding its B/n rows against one block of B/n texts per direction at a time. The value
    and the gradient take one walk together: the texts travel with the gradient the devices
    they visit add for them. Values and gradients (reverse and forward mode) are the
    single-device ones.
    Inside ``shard_map``, use `jaxloss.parallel.siglip_loss`.

    Args:
      image_embeddings: ``(B, D)`` float, one tower's embeddings.
      text_embeddings: ``(B, D)`` float, the other tower's; row i pairs with image row i.
      scale: the logit scale $s$ as a value (SigLIP learns $\log s$ and passes $e^{\log
        s}$), a scalar; it may be traced and differentiated.
      bias: optional scalar logit bias $b$ (SigLIP starts it at -10).
      normalize: L2-normalise both towers' rows first.
      eps: the smallest norm a row is divided by when normalising.
      group_ids: optional integer ``(B,)``: rows with equal ids are positives of each other.
      where: optional boolean ``(B,)`` mask of the pairs that take part (padding rows are
        neither images nor texts of any pair).
      reduction: ``'none'`` (the ``(B,)`` $\ell_i$ of each image row, 0 where masked),
        ``'mean'`` (divided by the counted rows) or ``'sum'``.

    Returns:
      ``'none'``: ``(B,)``; otherwise a scalar, in the embeddings' dtype.

    Examples:
      >>> image = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> text = jnp.array([[0.9, 0.1], [0.2, 0.8]])
      >>> round(float(jaxloss.siglip_loss(image, text, 10.0, -5.0, normalize=True)), 4)
      0.0549
    """
    fn = "siglip_loss"
    checks.reduction(fn, reduction)
    pairs = pair_inputs(
        fn, image_embeddings, text_embeddings, scale, bias,
        normalize=normalize, eps=eps, group_ids=group_ids, where=where,
    )  # fmt: skip
    if _sharded_batch(pairs):

        def per_device(image, keys, scale, bias, reduction, *, axis_name, axis_size):
            if reduction != "none":
                return sigmoid_ring_loss(
                    image, keys, scale, bias, reduction, axis_name=axis_name, axis_size=axis_size
                )
            rows = sigmoid_ring_rows(
                image, keys, scale, bias, axis_name=axis_name, axis_size=axis_size
            )
            return global_loss(rows, keys.valid, reduction, axis_name, axis_size)

        return _on_batch_shards(fn, pairs, per_device, reduction)
    pairs = _whole(pairs)
    rows = sigmoid_rows(
        pairs.image, pairs.keys, pairs.scale, pairs.bias, pairs.keys.ids, pairs.keys.valid,
        diagonal=True,
    )  # fmt: skip
    return _reduced(rows, pairs.keys.valid, reduction, pairs.result_dtype)
