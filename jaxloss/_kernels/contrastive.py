"""The pair math of the two-tower contrastive losses, on one device and across the devices of
a mesh axis.

Both losses score query rows against key rows, ``z_ij = scale · q_i·k_j + bias``:

- CLIP (`softmax_rows`): each query row is a cross-entropy over the keys, its target spread
  evenly over its positives;
- SigLIP (`sigmoid_rows`): every pair is a binary term, ``softplus(z) - [positive]·z``
  (= -log σ(±z)), summed over the keys of each query row.

A query and a key are positives when their ids are equal: by default each row's index in the
global batch, so the pair (i, i); `group_ids` mark several positives per row. Padded rows
(`valid` false) take part neither as queries nor as keys.

Across the devices of a mesh axis (inside ``shard_map``), CLIP gathers the keys
(`clip_rows_on_axis`) and SigLIP walks a bidirectional ring of collective permutes: each
device's texts travel left and right, and each device only ever holds its own rows against
one block of B_local keys per direction. Gradients come from a walk in which the texts travel
with the gradient that the devices they visit add for them, and one last permute takes that
gradient home (`_walk_with_gradients`):

- the global 'mean' or 'sum' (`sigmoid_ring_loss`, a custom JVP) knows its cotangent before
  the walk (one number), so its value and gradient take that one walk;
- each device's rows (`sigmoid_ring_rows`, a custom VJP) walk the ring for the value and
  again for the gradient, since their cotangent comes later.

The residuals are the device's own inputs, so no (B_local, B) array exists in any pass.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, cast

import jax
import jax.numpy as jnp
from jax import lax

from .._core import checks
from .._core.ops import unit_rows
from .._core.precision import dtypes

AxisName = str | tuple[str, ...]


def _logits(queries, keys, scale, bias):
    product = queries @ keys.T
    z = scale * product
    return z if bias is None else z + bias


def _positives(query_ids, key_ids, key_valid):
    positive = query_ids[:, None] == key_ids[None, :]
    return positive if key_valid is None else positive & key_valid[None, :]


def softmax_rows(queries, keys, scale, bias, query_ids, key_ids, key_valid):
    """CLIP's loss of each query row: logsumexp of its logits over the valid keys minus their
    mean over its positives. (B_q,) in the queries' dtype."""
    z = _logits(queries, keys, scale, bias)
    positive = _positives(query_ids, key_ids, key_valid)
    where = None if key_valid is None else jnp.broadcast_to(key_valid[None, :], z.shape)
    lse = jax.nn.logsumexp(z, axis=1, where=where)
    count = jnp.maximum(jnp.sum(positive, axis=1), 1).astype(z.dtype)
    return lse - jnp.sum(jnp.where(positive, z, 0.0), axis=1) / count


def clip_rows(image_q, text_k, text_q, image_k, scale, bias, query_ids, key_ids, key_valid):
    """CLIP's symmetric loss of each pair row: the mean of its image→text and text→image
    cross-entropies, (B_q,)."""
    image_to_text = softmax_rows(image_q, text_k, scale, bias, query_ids, key_ids, key_valid)
    text_to_image = softmax_rows(text_q, image_k, scale, bias, query_ids, key_ids, key_valid)
    return 0.5 * (image_to_text + text_to_image)


class Keys(NamedTuple):
    """A block of key rows as it travels the ring: the embeddings (in their input dtype) and
    their optional group ids and validity."""

    text: jax.Array
    ids: jax.Array | None
    valid: jax.Array | None


def sigmoid_rows(queries, keys: Keys, scale, bias, query_ids, query_valid, *, diagonal: bool):
    """SigLIP's loss of each query row against a block of keys: Σ_j softplus(z_ij) - [i, j
    positive]·z_ij over the valid keys, (B_q,). Without ids, the positives are the diagonal
    when `diagonal` (the block of the queries' own keys) and none otherwise."""
    z = _logits(queries, keys.text.astype(queries.dtype), scale, bias)
    pair = jax.nn.softplus(z)
    if keys.ids is not None:
        pair = pair - jnp.where(query_ids[:, None] == keys.ids[None, :], z, 0.0)
    elif diagonal:
        pair = pair - jnp.where(jnp.eye(z.shape[0], z.shape[1], dtype=bool), z, 0.0)
    if keys.valid is not None:
        pair = jnp.where(query_valid[:, None] & keys.valid[None, :], pair, 0.0)
    return jnp.sum(pair, axis=1)


# The bidirectional ring ---------------------------------------------------------------


def _shift(n: int, hops: int) -> list[tuple[int, int]]:
    """The permutation that sends each device's block `hops` places to the right."""
    return [(i, (i + hops) % n) for i in range(n)]


def _rounds(n: int) -> tuple[int, int]:
    """(rounds in both directions, one more round to the right or not): n - 1 key blocks."""
    return (n - 1) // 2, (n - 1) % 2


def _ring_forward(axis, n, image, keys, scale, bias):
    own_ids, own_valid = keys.ids, keys.valid

    def rows_of(block, diagonal=False):
        return sigmoid_rows(image, block, scale, bias, own_ids, own_valid, diagonal=diagonal)

    rows = rows_of(keys, diagonal=True)
    both, extra = _rounds(n)
    to_right, to_left = _shift(n, 1), _shift(n, -1)

    def round_(carry, _):
        from_left, from_right, rows = carry
        from_left = lax.ppermute(from_left, axis, to_right)
        from_right = lax.ppermute(from_right, axis, to_left)
        return (from_left, from_right, rows + rows_of(from_left) + rows_of(from_right)), None

    (from_left, _, rows), _ = lax.scan(round_, (keys, keys, rows), length=both)
    if extra:
        rows = rows + rows_of(lax.ppermute(from_left, axis, to_right))
    return rows


def _walk_with_gradients(axis, n, image, keys: Keys, scale, bias, row_cotangent):
    """One walk of the ring that forms each block's rows and their gradients at once, for the
    rows' cotangent `row_cotangent`: (rows, d image, d texts, d scale, d bias), d texts in the
    compute dtype and back on the devices that own the texts. The texts travel as in the
    forward walk, each with the gradient the devices it visits add for it; one last permute
    per stream takes those home."""

    def pull(block: Keys, diagonal=False):
        """(rows, d image, d block texts, d scale, d bias) of this block."""

        def rows(q, k, s, b):
            return sigmoid_rows(
                q, block._replace(text=k), s, b, keys.ids, keys.valid, diagonal=diagonal
            )

        value, vjp = jax.vjp(rows, image, block.text.astype(image.dtype), scale, bias)
        d_image, d_text, d_scale, d_bias = vjp(row_cotangent)
        return (value, d_image, d_scale, d_bias), d_text

    def add(totals, more):
        return tuple(None if t is None else t + m for t, m in zip(totals, more))

    totals, d_text = pull(keys, diagonal=True)  # (rows, d image, d scale, d bias)
    both, extra = _rounds(n)
    to_right, to_left = _shift(n, 1), _shift(n, -1)
    from_left, left_grad = keys, None
    if both:
        # Round 1 starts each stream's gradient; later rounds carry it with the texts.
        from_left = lax.ppermute(keys, axis, to_right)
        from_right = lax.ppermute(keys, axis, to_left)
        left, left_grad = pull(from_left)
        right, right_grad = pull(from_right)
        totals = add(add(totals, left), right)

        def round_(carry, _):
            from_left, left_grad, from_right, right_grad, totals = carry
            from_left, left_grad = lax.ppermute((from_left, left_grad), axis, to_right)
            from_right, right_grad = lax.ppermute((from_right, right_grad), axis, to_left)
            left, left_text = pull(from_left)
            right, right_text = pull(from_right)
            totals = add(add(totals, left), right)
            carry = (from_left, left_grad + left_text, from_right, right_grad + right_text, totals)
            return carry, None

        carry = (from_left, left_grad, from_right, right_grad, totals)
        carry, _ = lax.scan(round_, carry, length=both - 1)
        from_left, left_grad, _, right_grad, totals = carry
        # The right-moving stream's blocks sit `both` places from home.
        d_text = d_text + lax.ppermute(right_grad, axis, _shift(n, both))
    if extra:
        if both:
            from_left, left_grad = lax.ppermute((from_left, left_grad), axis, to_right)
        else:
            from_left = lax.ppermute(keys, axis, to_right)
        last, last_text = pull(from_left)
        totals = add(totals, last)
        left_grad = last_text if left_grad is None else left_grad + last_text
    if left_grad is not None:
        d_text = d_text + lax.ppermute(left_grad, axis, _shift(n, -(both + extra)))
    rows, d_image, d_scale, d_bias = totals
    return cast(jax.Array, rows), d_image, d_text, d_scale, d_bias


def _ring_backward(axis, n, residuals, row_cotangent):
    image, keys, scale, bias = residuals
    _, d_image, d_text, d_scale, d_bias = _walk_with_gradients(
        axis, n, image, keys, scale, bias, row_cotangent
    )
    d_keys = keys._replace(text=d_text.astype(keys.text.dtype), ids=None, valid=None)
    return d_image, d_keys, d_scale, d_bias


def _varying(value, axis_name):
    if value is None:
        return None
    names = set(axis_name if isinstance(axis_name, tuple) else (axis_name,))
    missing = tuple(a for a in names if a not in getattr(jax.typeof(value), "vma", frozenset()))
    return lax.pcast(value, missing, to="varying") if missing else value


def _sum(a, b):
    return None if a is None else a + b


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _ring(axis, n, image, keys, scale, bias):
    return _ring_forward(axis, n, image, keys, scale, bias)


def _ring_fwd(axis, n, image, keys, scale, bias):
    return _ring_forward(axis, n, image, keys, scale, bias), (image, keys, scale, bias)


_ring.defvjp(_ring_fwd, _ring_backward)


def sigmoid_ring_rows(image, keys: Keys, scale, bias, *, axis_name: AxisName, axis_size: int):
    """SigLIP's loss of this device's image rows against every text row of the global batch
    (B_local,), inside ``shard_map`` with the batch split over `axis_name`: the texts walk a
    bidirectional ring (open_clip's ``bidir``: ⌊(n-1)/2⌋ rounds each way, plus one rightward
    round when n is even). `keys` are this device's texts (with the rows' ids and validity)."""
    # The shared scale and bias enter every device's rows: made device-varying here, so that
    # their gradient is summed over the devices (the transpose of the cast).
    scale, bias = (_varying(v, axis_name) for v in (scale, bias))
    return _ring(axis_name, axis_size, image, keys, scale, bias)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _ring_total(axis, n, image, keys, scale, bias):
    return lax.psum(jnp.sum(_ring_forward(axis, n, image, keys, scale, bias)), axis)


@_ring_total.defjvp
def _ring_total_jvp(axis, n, primals, tangents):
    """The global sum's tangent from its gradients, formed in the same walk as the rows: a
    scalar's cotangent is known before the walk (one number), so differentiating the sum
    costs one walk (texts and their gradients) and one product per block, not a forward walk
    and a second one for the gradient."""
    image, keys, scale, bias = primals
    t_image, t_keys, t_scale, t_bias = tangents
    rows, d_image, d_text, d_scale, d_bias = _walk_with_gradients(
        axis, n, image, keys, scale, bias, jnp.ones_like(image[:, 0])
    )
    tangent = jnp.sum(d_image * t_image) + d_scale * t_scale
    tangent = tangent + jnp.sum(d_text * t_keys.text.astype(d_text.dtype))
    if bias is not None and d_bias is not None:
        tangent = tangent + d_bias * t_bias
    return lax.psum(jnp.sum(rows), axis), lax.psum(tangent, axis)


def sigmoid_ring_loss(image, keys: Keys, scale, bias, reduction, *, axis_name, axis_size):
    """SigLIP's global 'mean' or 'sum' over every device of `axis_name` (the same value on
    each), the ring walked once for the value and its gradient together (a custom JVP; for
    the per-device rows, `sigmoid_ring_rows`, a custom VJP)."""
    scale, bias = (_varying(v, axis_name) for v in (scale, bias))
    total = _ring_total(axis_name, axis_size, image, keys, scale, bias)
    if reduction == "sum":
        return total
    rows = image.shape[0]
    if keys.valid is None:
        return total / (rows * axis_size)
    return total / lax.psum(jnp.sum(keys.valid, dtype=total.dtype), axis_name)


def _row_ids(ids, rows, axis_name):
    """The group ids of this device's rows: `ids`, or by default their global row indices
    (device i holds rows [i·rows, (i+1)·rows))."""
    if ids is not None:
        return ids
    return lax.axis_index(axis_name) * rows + jnp.arange(rows)


def sigmoid_gather_rows(image, keys: Keys, scale, bias, *, axis_name: AxisName):
    """SigLIP's rows as `sigmoid_ring_rows` gives them, from one all-gather of the texts (with
    their gradient): a (B_local, B) block instead of the ring's (B_local, B_local) ones."""
    own_ids = _row_ids(keys.ids, image.shape[0], axis_name)

    def gathered(a):
        return None if a is None else lax.all_gather(a, axis_name, tiled=True)

    text = lax.all_gather(keys.text, axis_name, tiled=True)
    ids = gathered(keys.ids)
    every = Keys(text, jnp.arange(text.shape[0]) if ids is None else ids, gathered(keys.valid))
    return sigmoid_rows(image, every, scale, bias, own_ids, keys.valid, diagonal=False)


def clip_rows_on_axis(
    image, text, scale, bias, ids, valid, *, axis_name: AxisName, local_loss, gather_with_grad
):
    """CLIP's pair rows inside ``shard_map`` with the batch split over `axis_name`, as
    open_clip's ``ClipLoss`` forms them on each rank: the embeddings all-gathered (with their
    gradient, or without it and this device's own rows put back in place with theirs), then
    this device's rows against the global batch (`local_loss`, (B_local,)) or every row
    against every row ((B,))."""
    index = lax.axis_index(axis_name)
    rows = image.shape[0]

    def gathered(x):
        every = lax.all_gather(x, axis_name, tiled=True)
        if gather_with_grad:
            return every
        every = lax.stop_gradient(every)
        return every if local_loss else lax.dynamic_update_slice_in_dim(every, x, index * rows, 0)

    every_image, every_text = gathered(image), gathered(text)
    own_ids = _row_ids(ids, rows, axis_name)
    every_ids = lax.all_gather(own_ids, axis_name, tiled=True)
    every_valid = None if valid is None else lax.all_gather(valid, axis_name, tiled=True)
    if local_loss:
        return clip_rows(
            image, every_text, text, every_image, scale, bias, own_ids, every_ids, every_valid
        )
    return clip_rows(
        every_image, every_text, every_text, every_image, scale, bias, every_ids, every_ids,
        every_valid,
    )  # fmt: skip


def device_loss(rows, valid, reduction, *, axis_name: AxisName, axis_size: int, local: bool):
    """One device's loss from its pair rows. `local`: its own rows, so that the mean over the
    devices of 'mean' (n · Σ own rows / the global count) and the sum over them of 'sum' are
    the global loss; otherwise `rows` are the global batch's (every device's value is the
    global loss) and 'none' gives this device's share of them."""
    if valid is not None:
        rows = jnp.where(valid, rows, 0.0)
    if reduction == "none":
        if local:
            return rows
        every = rows.shape[0] // axis_size
        return lax.dynamic_slice_in_dim(rows, lax.axis_index(axis_name) * every, every)
    total = jnp.sum(rows)
    if reduction == "sum":
        return total
    count = (
        jnp.asarray(rows.shape[0], rows.dtype)
        if valid is None
        else jnp.sum(valid, dtype=rows.dtype)
    )
    if local:
        count = lax.psum(count, axis_name) / axis_size
    return total / count


class PairInputs(NamedTuple):
    """Checked inputs of a contrastive loss: the image rows in the compute dtype, the text
    rows as keys (in their input dtype, the ring's wire format), the scale and optional bias
    in the compute dtype, and the result dtype."""

    image: jax.Array
    keys: Keys
    scale: jax.Array
    bias: jax.Array | None
    result_dtype: jnp.dtype


def pair_inputs(
    fn, image_embeddings, text_embeddings, scale, bias, *, normalize, eps, group_ids, where
) -> PairInputs:
    """Checks a contrastive loss's arguments (what they must be, what arrived) and prepares
    them: optional L2 normalisation of both towers' rows, float32 or wider inside."""
    image = checks.float_array(fn, "image_embeddings", image_embeddings)
    text = checks.float_array(fn, "text_embeddings", text_embeddings)
    if image.ndim != 2:
        raise ValueError(
            f"{fn}: `image_embeddings` must be a (B, D) batch of embeddings; got shape "
            f"{list(image.shape)}."
        )
    checks.shapes_equal(
        fn, "image_embeddings", image, "text_embeddings", text,
        " Row i of each tower is the pair (i, i); both need the same batch and width.",
    )  # fmt: skip
    checks.python_bool(fn, "normalize", normalize)
    checks.python_number(fn, "eps", eps, low=0.0)
    result_dtype, compute = dtypes(image, text)
    scale = _scalar(fn, "scale", scale).astype(compute)
    bias = None if bias is None else _scalar(fn, "bias", bias).astype(compute)
    rows = image.shape[:1]
    ids = None
    if group_ids is not None:
        ids = checks.int_array(fn, "group_ids", group_ids)
        if ids.shape != rows:
            raise ValueError(
                f"{fn}: `group_ids` must give one integer per pair row, shape {list(rows)}; "
                f"got {list(ids.shape)}."
            )
    valid = checks.where_mask(fn, where, rows, "the batch of pair rows")
    image = image.astype(compute)
    wire = text.dtype
    text = text.astype(compute)
    if normalize:
        image, text = unit_rows(image, eps), unit_rows(text, eps)
    return PairInputs(image, Keys(text.astype(wire), ids, valid), scale, bias, result_dtype)


def _scalar(fn, name, value):
    array = checks.real_array(fn, name, value)
    if array.ndim != 0:
        raise ValueError(
            f"{fn}: `{name}` must be a scalar (one value shared by every pair); got shape "
            f"{list(array.shape)}."
        )
    return array


def global_loss(rows, valid, reduction, axis_name: AxisName, axis_size: int):
    """The global loss from each device's own rows: 'mean' and 'sum' the same on every device
    (a pmean or psum of `device_loss`), 'none' this device's rows."""
    loss = device_loss(rows, valid, reduction, axis_name=axis_name, axis_size=axis_size, local=True)
    if reduction == "mean":
        return lax.pmean(loss, axis_name)
    return loss if reduction == "none" else lax.psum(loss, axis_name)
