"""What an array's type says about its sharding, for the kernels that must adapt to it.

On an Explicit mesh every array's type fixes its sharding, and JAX applies typing rules
instead of choosing: a gather along a sharded axis has no rule, a concatenation needs its
operands sharded alike, and a scan's carry must keep the sharding it started with. Auto meshes
and unsharded code see none of this (every helper here is then a no-op).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P


def _explicit_mesh(x: jax.Array):
    sharding = getattr(jax.typeof(x), "sharding", None)
    mesh = getattr(sharding, "mesh", None)
    if mesh is None or not any(t == AxisType.Explicit for t in getattr(mesh, "axis_types", ())):
        return None
    return sharding


def explicitly_sharded(x: jax.Array, axis: int) -> bool:
    """Whether `axis` of `x` is split over an Explicit mesh axis (known from its type)."""
    sharding = _explicit_mesh(x)
    if sharding is None or axis >= len(sharding.spec) or sharding.spec[axis] is None:
        return False
    spec = sharding.spec[axis]
    names = spec if isinstance(spec, tuple) else (spec,)
    types = dict(zip(sharding.mesh.axis_names, sharding.mesh.axis_types))
    return any(types.get(name) == AxisType.Explicit for name in names)


def has_explicit_axes(x: jax.Array) -> bool:
    return any(explicitly_sharded(x, axis) for axis in range(x.ndim))


def whole(x: jax.Array) -> jax.Array:
    """`x` replicated (every axis whole) on an Explicit mesh, for the operations that need a
    whole axis (a sort, a quantile); unchanged elsewhere."""
    sharding = _explicit_mesh(x)
    if sharding is None or not has_explicit_axes(x):
        return x
    return jax.sharding.reshard(x, NamedSharding(sharding.mesh, P()))


def batch_like(reference: jax.Array, *arrays: jax.Array) -> tuple[jax.Array, ...]:
    """`arrays` resharded so that their leading (batch) axis is split as `reference`'s and
    their other axes are whole, on Explicit meshes (labels and lengths then follow the
    inputs they describe; they are small). Elsewhere they are returned as they are."""
    sharding = _explicit_mesh(reference)
    if sharding is None:
        return arrays
    lead = sharding.spec[0] if len(sharding.spec) else None
    out = []
    for array in arrays:
        target = P(lead, *([None] * (array.ndim - 1)))
        current = jax.typeof(array).sharding.spec
        if tuple(current) + (None,) * (array.ndim - len(current)) != tuple(target):
            array = jax.sharding.reshard(array, NamedSharding(sharding.mesh, target))
        out.append(array)
    return tuple(out)


def rowwise(fn: Callable[..., jax.Array], *arrays: jax.Array) -> jax.Array:
    """fn(*arrays) for a `fn` that treats the rows (leading axis) independently, returning
    one row of output per row. On an Explicit mesh it runs per device under ``shard_map``,
    rows split as the first array's and every other axis whole, for kernels (a vmapped sort
    and binary search) that have no sharding rule of their own. Elsewhere, fn(*arrays)."""
    sharding = _explicit_mesh(arrays[0])
    if sharding is None:
        return fn(*arrays)
    arrays = batch_like(arrays[0], *arrays)
    lead = sharding.spec[0] if len(sharding.spec) else None
    specs = tuple(P(lead, *([None] * (a.ndim - 1))) for a in arrays)
    return jax.shard_map(fn, mesh=sharding.mesh, in_specs=specs, out_specs=P(lead))(*arrays)
