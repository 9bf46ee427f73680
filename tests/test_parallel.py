"""Losses over a split vocabulary or split tokens on 8 CPU devices (tests/conftest.py):
jaxloss.parallel.cross_entropy inside jax.shard_map equals jaxloss.cross_entropy of the whole
logits (values, gradients, forward mode), with its global reductions, and moves only O(N)
statistics; the fused linear_cross_entropy in its data-, tensor- and FSDP-parallel layouts,
under jit on sharded arrays and inside shard_map, equals the single-device loss."""

import contextlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxloss

pytestmark = pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (CPU) devices")

N, V = 12, 16


def _mesh(shape, axis_type=AxisType.Explicit):
    names = ("data", "model") if len(shape) == 2 else ("model",)
    return jax.make_mesh(shape, names, axis_types=(axis_type,) * len(shape))


def _problem(seed=0, dtype=jnp.float32):
    rng = np.random.default_rng(seed)
    logits = jnp.asarray(rng.normal(size=(N, V)) * 2, dtype)
    labels = jnp.asarray(rng.integers(0, V, size=N))
    weight = jnp.asarray(rng.uniform(0.5, 2.0, size=V), dtype)
    return logits, labels, weight


def _parallel(mesh, reduction="mean", **options):
    """loss(logits, labels, weight or None): the parallel loss under shard_map on `mesh`,
    tokens over 'data' (when the mesh has it) and classes over 'model'."""
    batch = "data" if "data" in mesh.axis_names else None
    reduced = reduction != "none"

    def local(z, y, w, where):
        return jaxloss.parallel.cross_entropy(
            z,
            y,
            axis_name="model",
            class_weights=w,
            where=where,
            reduction=reduction,
            batch_axis_name=batch if reduced else None,
            **options,
        )

    out_specs = P(batch) if not reduced else (P(), P()) if reduction == "sum_and_count" else P()

    def loss(z, y, w=None, where=None):
        specs = (P(batch, "model"), P(batch), None if w is None else P("model"))
        specs += (None if where is None else P(batch),)
        args = (z, y, w, where)
        if mesh.axis_types[0] == AxisType.Explicit:
            args = tuple(
                a if a is None else jax.sharding.reshard(a, NamedSharding(mesh, s))
                for a, s in zip(args, specs)
            )
        return jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=out_specs)(*args)

    return loss


def _value_and_grad(loss, logits, *rest):
    return jax.jit(jax.value_and_grad(lambda z: loss(z, *rest)))(logits)


OPTIONS = {
    "plain": {},
    "smoothing": {"label_smoothing": 0.2},
    "weights_smoothing": {"label_smoothing": 0.1, "_weight": True},
    "ignore_index": {"_ignore": True, "_weight": True},
    "z_loss_softcap": {"z_loss": 1e-3, "softcap": 3.0, "label_smoothing": 0.1},
    "padded_vocabulary": {"num_classes": 13, "label_smoothing": 0.1},
}


def _reference(logits, labels, weight, options):
    """The whole-logits loss: cross_entropy, or the fused loss with an identity head for the
    z-loss and soft-cap (both written once, in the shared kernel)."""
    num_classes = options.get("num_classes")
    if "z_loss" in options or "softcap" in options:
        return jaxloss.linear_cross_entropy(
            logits,
            jnp.eye(V, dtype=logits.dtype),
            labels,
            class_weights=weight,
            label_smoothing=options.get("label_smoothing", 0.0),
            z_loss=options.get("z_loss", 0.0),
            softcap=options.get("softcap"),
        )
    mask = None if num_classes is None else jnp.arange(V) < num_classes
    return jaxloss.cross_entropy(
        logits,
        labels,
        class_weights=weight,
        label_smoothing=options.get("label_smoothing", 0.0),
        class_mask=mask,
    )


@pytest.mark.parametrize("case", list(OPTIONS))
@pytest.mark.parametrize("mesh_shape", [(2, 4), (8,), (4, 2)])
def test_equals_whole_logits(case, mesh_shape, full_tier):
    default = {"weights_smoothing": (2, 4), "z_loss_softcap": (8,), "padded_vocabulary": (4, 2)}
    if not full_tier and default.get(case) != mesh_shape:
        pytest.skip("three cases, one mesh each, in the default tier (--full: all)")
    options = dict(OPTIONS[case])
    use_weight, ignore = options.pop("_weight", False), options.pop("_ignore", False)
    logits, labels, weight = _problem()
    if ignore:
        labels = labels.at[jnp.array([0, 1, 5])].set(-100)
    if "num_classes" in options:
        labels = labels % options["num_classes"]
        logits = logits.at[:, options["num_classes"] :].set(jnp.nan)  # padding: never read
    weight = weight if use_weight else None
    mesh = _mesh(mesh_shape)
    loss = _parallel(mesh, **options)
    value, grad = _value_and_grad(loss, logits, labels, weight)
    clean = jnp.where(jnp.isnan(logits), 0.0, logits)
    expected, expected_grad = jax.value_and_grad(lambda z: _reference(z, labels, weight, options))(
        clean
    )
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)
    # Forward mode: the tangent is <grad, t>.
    t = jnp.asarray(np.random.default_rng(1).normal(size=logits.shape), logits.dtype)
    _, tangent = jax.jit(lambda z, t: jax.jvp(lambda z: loss(z, labels, weight), (z,), (t,)))(
        logits, t
    )
    np.testing.assert_allclose(tangent, jnp.sum(expected_grad * t), rtol=1e-5)


def _ragged_labels():
    """Labels for the (2, 4) mesh's two token shards of 6: the first shard has one counted
    token, the second none (all ignored) in the first half, and labels sit on the block
    edges of the four vocabulary shards of 4 (3|4, 7|8, 11|12, 0 and 15)."""
    labels = np.array([3, -100, -100, -100, -100, -100, 4, 7, 8, 11, 12, 15])
    return jnp.asarray(labels)


def test_global_mean_over_uneven_shards_is_not_a_mean_of_means():
    logits, _, weight = _problem()
    labels = _ragged_labels()
    loss = _parallel(_mesh((2, 4)), label_smoothing=0.1)
    value, grad = _value_and_grad(loss, logits, labels, weight)
    expected, expected_grad = jax.value_and_grad(
        lambda z: jaxloss.cross_entropy(z, labels, class_weights=weight, label_smoothing=0.1)
    )(logits)
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)
    # A mean of the two shards' means would weigh the lone token of shard 0 as much as the
    # six of shard 1.
    per_token = jaxloss.cross_entropy(
        logits, labels, class_weights=weight, label_smoothing=0.1, reduction="none"
    )
    w_y = jnp.where(labels >= 0, weight[jnp.clip(labels, 0)], 0.0)
    means = [jnp.sum(per_token[s]) / jnp.sum(w_y[s]) for s in (slice(0, 6), slice(6, 12))]
    assert abs(float(value) - float(np.mean(means))) > 1e-2


def test_an_all_ignored_shard_and_sum_and_count_accumulate_micro_batches():
    logits, _, _ = _problem()
    labels = _ragged_labels().at[0].set(-100)  # shard 0: every token ignored
    loss = _parallel(_mesh((2, 4)), reduction="sum_and_count")
    total, count = jax.jit(loss)(logits, labels)
    assert float(count) == 6.0
    np.testing.assert_allclose(total / count, jaxloss.cross_entropy(logits, labels), rtol=1e-6)
    # Two micro-batches accumulated as (Σ loss, Σ w) give the mean of the whole batch.
    halves = [jax.jit(loss)(logits[s], labels[s]) for s in (slice(0, 6), slice(6, 12))]
    # (each half is spread over the mesh's two token shards of 3)
    pooled = sum(h[0] for h in halves) / sum(h[1] for h in halves)
    np.testing.assert_allclose(pooled, total / count, rtol=1e-6)


def test_scaling_the_loss_scales_every_gradient():
    logits, labels, weight = _problem()
    loss = _parallel(_mesh((2, 4)), label_smoothing=0.1, z_loss=1e-3)
    grad = jax.jit(jax.grad(lambda z: loss(z, labels, weight)))(logits)
    doubled = jax.jit(jax.grad(lambda z: 2.0 * loss(z, labels, weight)))(logits)
    np.testing.assert_allclose(doubled, 2.0 * grad, rtol=1e-6)


def test_per_token_losses_and_where():
    logits, labels, _ = _problem()
    where = jnp.arange(N) % 3 != 0
    mesh = _mesh((2, 4))
    per_token = jax.jit(_parallel(mesh, reduction="none"))(logits, labels, None, where)
    expected = jaxloss.cross_entropy(logits, labels, where=where, reduction="none")
    np.testing.assert_allclose(per_token, expected, rtol=1e-6)
    mean = jax.jit(_parallel(mesh))(logits, labels, None, where)
    np.testing.assert_allclose(mean, jaxloss.cross_entropy(logits, labels, where=where), rtol=1e-6)


@pytest.mark.slow
def test_bfloat16_logits_with_float32_statistics():
    logits, labels, _ = _problem(dtype=jnp.bfloat16)
    loss = _parallel(_mesh((2, 4)), label_smoothing=0.1)
    value, grad = _value_and_grad(loss, logits, labels, None)
    assert value.dtype == jnp.bfloat16 and grad.dtype == jnp.bfloat16
    expected, expected_grad = jax.value_and_grad(
        lambda z: jaxloss.cross_entropy(z, labels, label_smoothing=0.1)
    )(logits.astype(jnp.float32))
    np.testing.assert_allclose(float(value), float(expected), rtol=1e-2)
    np.testing.assert_allclose(
        np.asarray(grad, np.float32), np.asarray(expected_grad), rtol=2e-2, atol=2e-3
    )


@pytest.mark.slow
def test_auto_mesh():
    logits, labels, weight = _problem()
    loss = _parallel(_mesh((2, 4), AxisType.Auto), label_smoothing=0.1)
    value, grad = _value_and_grad(loss, logits, labels, weight)
    expected, expected_grad = jax.value_and_grad(
        lambda z: jaxloss.cross_entropy(z, labels, class_weights=weight, label_smoothing=0.1)
    )(logits)
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)


def _collectives(hlo):
    """(kind, bytes) of every collective in a compiled HLO text."""
    sizes = {"f32": 4, "f64": 8, "bf16": 2, "s32": 4, "pred": 1}
    found = []
    for line in hlo.splitlines():
        match = re.search(r"= (.*?) (all-reduce|all-gather|reduce-scatter|all-to-all)\(", line)
        if match:
            shapes = re.findall(r"(f32|f64|bf16|s32|pred)\[([\d,]*)\]", match.group(1))
            volume = sum(
                sizes[t] * int(np.prod([int(d) for d in dims.split(",") if d]))
                for t, dims in shapes
            )
            found.append((match.group(2), volume))
    return found


def test_only_o_n_statistics_cross_devices():
    """Forward and backward together: all-reduces only, of O(local tokens) bytes (the row
    max, then Σ exp with the label's logit and the smoothing sum, then the global count);
    no all-gather, nothing of the logits' size."""
    logits, labels, _ = _problem()
    mesh = _mesh((2, 4))
    loss = _parallel(mesh, label_smoothing=0.1)
    hlo = jax.jit(jax.value_and_grad(lambda z: loss(z, labels))).lower(logits).compile().as_text()
    collectives = _collectives(hlo)
    kinds = {kind for kind, _ in collectives}
    assert kinds == {"all-reduce"}, collectives
    local_tokens = N // 2
    # pmax (6 f32) + psum of (6, 3) f32 + the loss and count over 'data'
    assert sum(v for _, v in collectives) <= 4 * (4 * local_tokens + 2), collectives


@pytest.mark.parametrize(
    "call, words",
    [
        (
            lambda: jaxloss.parallel.cross_entropy(
                jnp.zeros((2, 4)), jnp.zeros(2, int), axis_name="model"
            ),
            ["axis_name", "shard_map"],
        ),
        (
            lambda: jaxloss.parallel.cross_entropy(
                jnp.zeros((2, 4)), jnp.zeros(2, int), axis_name=3
            ),
            ["axis_name"],
        ),
    ],
)
def test_errors_outside_shard_map(call, words):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    for word in words:
        assert word in str(info.value)


def test_errors_inside_shard_map_name_the_argument():
    mesh = _mesh((8,))
    logits, labels, _ = _problem()

    def run(**options):
        return jax.shard_map(
            lambda z, y: jaxloss.parallel.cross_entropy(z, y, axis_name="model", **options),
            mesh=mesh,
            in_specs=(P(None, "model"), P()),
            out_specs=P(),
        )(jax.sharding.reshard(logits, NamedSharding(mesh, P(None, "model"))), labels)

    with pytest.raises(ValueError, match="num_classes"):
        run(num_classes=17)  # more than the 8 blocks of 2 hold
    with pytest.raises(ValueError, match="class_weights"):
        run(class_weights=jnp.ones(V))  # the whole table, not this device's block
    with pytest.raises(ValueError, match="reduction"):
        run(reduction="batchmean")
    # A label on a padding class (labels hold 15) raises with concrete labels, and makes
    # the loss nan under jit, where it cannot raise.
    with pytest.raises(ValueError, match="out of range"):
        run(num_classes=15)
    assert np.isnan(float(jax.jit(lambda: run(num_classes=15))()))


# The fused loss: (name, x's spec, w's spec) on the (2, 4) data x model mesh.
FUSED_LAYOUTS = {
    "data_parallel": (P("data"), P()),
    "tensor_parallel": (P(), P("model")),
    "data_and_tensor": (P("data"), P("model")),
    "fsdp": (P("data"), P("data")),
}
FUSED_OPTIONS = dict(label_smoothing=0.1, z_loss=1e-3, chunk_size=4)
ND, NV = 4, 16  # hidden size and vocabulary of the fused cases


def _fused_problem():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(N + 4, ND)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(NV, ND)), jnp.float32)
    bias = jnp.asarray(rng.normal(size=NV), jnp.float32)
    weight = jnp.asarray(rng.uniform(0.5, 2.0, size=NV), jnp.float32)
    # 16 tokens: the first data shard has 2 counted, labels on the model blocks' edges.
    labels = np.array([3, 12, -100, -100, -100, -100, -100, -100, 4, 7, 8, 11, 0, 15, 14, 14])
    return x, w, bias, weight, jnp.asarray(labels)


def _fused_expected(x, w, bias, weight, labels, **options):
    def loss(x, w, bias):
        return jaxloss.linear_cross_entropy(
            x, w, labels, bias=bias, class_weights=weight, **FUSED_OPTIONS, **options
        )

    return jax.value_and_grad(loss, argnums=(0, 1, 2))(x, w, bias)


def _collective_kinds(hlo):
    return {kind for kind, _ in _collectives(hlo)}


@pytest.mark.parametrize("axis_type", ["Explicit", pytest.param("Auto", marks=pytest.mark.slow)])
@pytest.mark.parametrize("layout", list(FUSED_LAYOUTS))
def test_fused_layouts_under_jit_equal_one_device(layout, axis_type):
    """jaxloss.linear_cross_entropy on sharded arrays: Explicit meshes run it as shard_map in
    the layout the shardings describe (gradients keep the inputs' shardings, no logits or
    vocabulary gathered outside FSDP, whose w is gathered and dW reduce-scattered); Auto
    meshes leave it to XLA's partitioner (values only)."""
    x, w, bias, weight, labels = _fused_problem()
    mesh = _mesh((2, 4), AxisType[axis_type])
    x_spec, w_spec = FUSED_LAYOUTS[layout]
    put = lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec))
    vocab_spec = P(*w_spec[:1])
    args = (put(x, x_spec), put(w, w_spec), put(bias, vocab_spec))
    weight_s, labels_s = put(weight, vocab_spec), put(labels, P(*x_spec[:1]))

    def loss(x, w, bias):
        return jaxloss.linear_cross_entropy(
            x, w, labels_s, bias=bias, class_weights=weight_s, **FUSED_OPTIONS
        )

    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
    with jax.set_mesh(mesh) if layout == "fsdp" else contextlib.nullcontext():
        value, grads = step(*args)
        hlo = step.lower(*args).compile().as_text()
    expected, expected_grads = _fused_expected(x, w, bias, weight, labels)
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    for got, want in zip(grads, expected_grads):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    if axis_type == "Explicit":
        for got, arg in zip(grads, args):
            assert got.sharding.is_equivalent_to(arg.sharding, got.ndim), (got.sharding, arg)
        kinds = _collective_kinds(hlo)
        if layout == "fsdp":
            assert "reduce-scatter" in kinds and "all-gather" in kinds, kinds
        else:
            assert kinds == {"all-reduce"}, kinds


def _fused_in_shard_map(mesh, scale=1.0, reduction="mean"):
    def local(x, w, bias, weight, labels):
        return jaxloss.parallel.linear_cross_entropy(
            x,
            w,
            labels,
            bias=bias,
            class_weights=weight,
            axis_name="model",
            batch_axis_name="data",
            reduction=reduction,
            **FUSED_OPTIONS,
        )

    specs = (P("data"), P("model"), P("model"), P("model"), P("data"))

    def loss(x, w, bias, weight, labels):
        args = [
            jax.sharding.reshard(a, NamedSharding(mesh, s))
            for a, s in zip((x, w, bias, weight, labels), specs)
        ]
        out_specs = (P(), P()) if reduction == "sum_and_count" else P()
        out = jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=out_specs)(*args)
        return out if reduction == "sum_and_count" else scale * out

    return loss


def test_fused_in_shard_map_and_an_outer_scale_scales_every_gradient():
    """Vocabulary over 'model', tokens over 'data' with uneven counted tokens per shard;
    x2 on the loss doubles the gradients of x, w and bias alike."""
    x, w, bias, weight, labels = _fused_problem()
    mesh = _mesh((2, 4))
    expected, expected_grads = _fused_expected(x, w, bias, weight, labels)
    grads = {}
    for scale in (1.0, 2.0):
        loss = _fused_in_shard_map(mesh, scale)
        value, grads[scale] = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(
            x, w, bias, weight, labels
        )
        np.testing.assert_allclose(value, scale * expected, rtol=1e-6)
    for one, two, want in zip(grads[1.0], grads[2.0], expected_grads):
        np.testing.assert_allclose(one, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(two, 2.0 * one, rtol=1e-6)
    # (Σ w·loss, Σ w) over micro-batches: each half of the tokens, pooled, gives the mean.
    pair = jax.jit(_fused_in_shard_map(mesh, reduction="sum_and_count"))
    halves = [pair(x[s], w, bias, weight, labels[s]) for s in (slice(0, 8), slice(8, 16))]
    pooled = sum(h[0] for h in halves) / sum(h[1] for h in halves)
    np.testing.assert_allclose(pooled, expected, rtol=1e-6)
