"""Every native and compat criterion on sharded inputs, under jit, on 8 CPU devices
(tests/conftest.py).

Inputs are sharded along the batch axis (all criteria) and, for the classification criteria,
along the class axis too, over Explicit and Auto meshes (8,), (2, 4) and (4, 2), inside a
``jax.set_mesh`` context and without one. Each value and gradient equals the unsharded call
(float32 rtol 1e-6, float64 1e-12 under --full); on Explicit meshes, whose types fix shardings, the
gradient keeps its input's sharding and per-example losses the batch sharding; the compiled
program gathers neither the logits nor a sharded
class axis. The default tier runs each criterion in a rotation of meshes and contexts, the
full tier (``--full``) every combination.
"""

import contextlib
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxloss
from jaxloss.compat import functional

pytestmark = pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (CPU) devices")

N, C, D = 8, 8, 4
MESHES = {
    "8": ((8,), ("data",)),
    "2x4": ((2, 4), ("data", "model")),
    "4x2": ((4, 2), ("data", "model")),
}


def _inputs():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(N, C))
    probs = 1 / (1 + np.exp(-logits))
    x, y, z = (rng.normal(size=(N, D)) for _ in range(3))
    return dict(
        logits=logits,
        labels=rng.integers(0, C, size=N),
        probs=probs,
        binary=np.round(probs),
        targets=probs / probs.sum(-1, keepdims=True),
        signs=np.where(rng.uniform(size=N) < 0.5, -1.0, 1.0),
        x=x,
        y=y,
        z=z,
        var=np.exp(z),
        counts=np.abs(np.round(y * 3)),
        multilabels=np.concatenate(
            [rng.integers(0, C, size=(N, 3)), -np.ones((N, C - 3), int)], axis=1
        ),
        sequences=rng.normal(size=(N, 6, 5)),
        seq_labels=rng.integers(1, 5, size=(N, 2)),
        head=rng.normal(size=(C, D)),
    )


p = functools.partial
W = np.linspace(0.5, 2.0, C)
# name -> (loss, names of its inputs (the first is differentiated), class axis sharded too?)
CRITERIA = {
    "cross_entropy": (
        p(jaxloss.cross_entropy, class_weights=W, label_smoothing=0.1),
        ("logits", "labels"),
        True,
    ),
    "cross_entropy_probs": (jaxloss.cross_entropy, ("logits", "targets"), True),
    "cross_entropy_class_mask": (
        p(jaxloss.cross_entropy, class_mask=np.arange(C) < 7, reduction="none"),
        ("logits", "labels_below_7"),
        True,
    ),
    "nll_loss": (p(jaxloss.nll_loss, class_weights=W), ("logits", "labels"), True),
    "kl_div": (p(jaxloss.kl_div, reduction="batchmean"), ("logits", "targets"), True),
    "binary_cross_entropy": (jaxloss.binary_cross_entropy, ("probs", "binary"), False),
    "binary_cross_entropy_with_logits": (
        p(jaxloss.binary_cross_entropy_with_logits, pos_weight=W),
        ("logits", "binary"),
        True,
    ),
    "soft_margin_loss": (jaxloss.soft_margin_loss, ("x", "sign_matrix"), False),
    "multilabel_soft_margin_loss": (
        jaxloss.multilabel_soft_margin_loss,
        ("logits", "binary"),
        True,
    ),
    "multi_margin_loss": (
        p(jaxloss.multi_margin_loss, p=2, class_weights=W),
        ("logits", "labels"),
        True,
    ),
    "multilabel_margin_loss": (jaxloss.multilabel_margin_loss, ("logits", "multilabels"), False),
    "l1_loss": (jaxloss.l1_loss, ("x", "y"), False),
    "mse_loss": (jaxloss.mse_loss, ("x", "y"), False),
    "huber_loss": (p(jaxloss.huber_loss, delta=0.5), ("x", "y"), False),
    "smooth_l1_loss": (p(jaxloss.smooth_l1_loss, beta=0.5), ("x", "y"), False),
    "poisson_nll_loss": (p(jaxloss.poisson_nll_loss, full=True), ("x", "counts"), False),
    "gaussian_nll_loss": (jaxloss.gaussian_nll_loss, ("x", "y", "var"), False),
    "margin_ranking_loss": (jaxloss.margin_ranking_loss, ("x0", "y0", "signs"), False),
    "hinge_embedding_loss": (jaxloss.hinge_embedding_loss, ("x0", "signs"), False),
    "cosine_embedding_loss": (jaxloss.cosine_embedding_loss, ("x", "y", "signs"), False),
    "triplet_margin_loss": (p(jaxloss.triplet_margin_loss, swap=True), ("x", "y", "z"), False),
    "triplet_margin_with_distance_loss": (
        jaxloss.triplet_margin_with_distance_loss,
        ("x", "y", "z"),
        False,
    ),
    "pairwise_distance": (jaxloss.pairwise_distance, ("x", "y"), False),
    "cosine_similarity": (jaxloss.cosine_similarity, ("x", "y"), False),
    "ctc_loss": (jaxloss.ctc_loss, ("sequences", "seq_labels"), False),
    "linear_cross_entropy": (
        p(jaxloss.linear_cross_entropy, chunk_size=4, label_smoothing=0.1),
        ("x", "head", "labels"),
        False,
    ),
    "linear_cross_entropy_none": (
        p(jaxloss.linear_cross_entropy, chunk_size=4, reduction="none"),
        ("x", "head", "labels"),
        False,
    ),
}


F = functional
# The compat layer (torch's signatures) on the same inputs: name -> (loss, inputs, classes?).
COMPAT_CRITERIA = {
    "compat.cross_entropy": (
        p(F.cross_entropy, weight=W, label_smoothing=0.1),
        ("logits", "labels"),
        True,
    ),
    "compat.nll_loss": (p(F.nll_loss, weight=W), ("logits", "labels"), True),
    "compat.kl_div": (p(F.kl_div, reduction="batchmean"), ("logits", "targets"), True),
    "compat.binary_cross_entropy": (F.binary_cross_entropy, ("probs", "binary"), False),
    "compat.binary_cross_entropy_with_logits": (
        p(F.binary_cross_entropy_with_logits, pos_weight=W),
        ("logits", "binary"),
        True,
    ),
    "compat.soft_margin_loss": (F.soft_margin_loss, ("x", "sign_matrix"), False),
    "compat.multilabel_soft_margin_loss": (
        F.multilabel_soft_margin_loss,
        ("logits", "binary"),
        True,
    ),
    "compat.multi_margin_loss": (p(F.multi_margin_loss, p=2, weight=W), ("logits", "labels"), True),
    "compat.multilabel_margin_loss": (F.multilabel_margin_loss, ("logits", "multilabels"), False),
    "compat.l1_loss": (F.l1_loss, ("x", "y"), False),
    "compat.mse_loss": (F.mse_loss, ("x", "y"), False),
    "compat.huber_loss": (p(F.huber_loss, delta=0.5), ("x", "y"), False),
    "compat.smooth_l1_loss": (p(F.smooth_l1_loss, beta=0.5), ("x", "y"), False),
    "compat.poisson_nll_loss": (p(F.poisson_nll_loss, full=True), ("x", "counts"), False),
    "compat.gaussian_nll_loss": (F.gaussian_nll_loss, ("x", "y", "var"), False),
    "compat.margin_ranking_loss": (F.margin_ranking_loss, ("x0", "y0", "signs"), False),
    "compat.hinge_embedding_loss": (F.hinge_embedding_loss, ("x0", "signs"), False),
    "compat.cosine_embedding_loss": (F.cosine_embedding_loss, ("x", "y", "signs"), False),
    "compat.triplet_margin_loss": (p(F.triplet_margin_loss, swap=True), ("x", "y", "z"), False),
    "compat.triplet_margin_with_distance_loss": (
        F.triplet_margin_with_distance_loss,
        ("x", "y", "z"),
        False,
    ),
    "compat.ctc_loss": (
        lambda lp, targets, lengths, target_lengths: F.ctc_loss(
            lp, targets, lengths, target_lengths, reduction="sum"
        ),
        ("time_major_log_probs", "seq_labels", "frame_counts", "label_counts"),
        False,
    ),
}
CRITERIA.update(COMPAT_CRITERIA)
COMPAT_DEFAULT = {"compat.cross_entropy", "compat.ctc_loss"}
CLASS_SHARDED_DEFAULT = {"cross_entropy", "nll_loss", "kl_div", "compat.cross_entropy"}


def _array(values, name):
    derived = {
        "sign_matrix": lambda: np.where(values["x"] > 0, 1.0, -1.0),
        "x0": lambda: values["x"][:, 0],
        "y0": lambda: values["y"][:, 0],
        "labels_below_7": lambda: values["labels"] % 7,
        "time_major_log_probs": lambda: np.swapaxes(
            values["sequences"] - np.log(np.exp(values["sequences"]).sum(-1, keepdims=True)), 0, 1
        ),
        "frame_counts": lambda: np.full(N, 6),
        "label_counts": lambda: np.full(N, 2),
    }
    return derived[name]() if name in derived else values[name]


def _spec(array, name, mesh_axes, shard_classes):
    """Batch axis on 'data'; with `shard_classes`, the class axis of (N, C) scores on 'model'."""
    if name == "head":  # the fused head (V, D) replicated here (its layouts: test_parallel.py)
        return P()
    spec = [None] * np.ndim(array)
    spec[1 if name == "time_major_log_probs" else 0] = "data"  # torch's CTC is (T, N, C)
    if shard_classes and "model" in mesh_axes and np.ndim(array) == 2 and array.shape[1] == C:
        spec[1] = "model"
    return P(*spec)


def _check(name, dtype, mesh_name, axis_type, in_context, shard_classes):
    fn, names, _ = CRITERIA[name]
    values = _inputs()
    arrays = [_array(values, n) for n in names]
    arrays = [
        jnp.asarray(a, dtype) if np.asarray(a).dtype.kind == "f" else jnp.asarray(a) for a in arrays
    ]
    shape, axes = MESHES[mesh_name]
    mesh = jax.make_mesh(shape, axes, axis_types=(axis_type,) * len(axes))
    specs = [_spec(a, n, axes, shard_classes) for a, n in zip(arrays, names)]
    sharded = [jax.device_put(a, NamedSharding(mesh, s)) for a, s in zip(arrays, specs)]

    def value_and_grad(*args):
        return jax.value_and_grad(lambda first: jnp.sum(fn(first, *args[1:])))(args[0])

    def loss(*args):
        return fn(*args)

    expected_value, expected_grad = jax.jit(value_and_grad)(*arrays)
    context = jax.set_mesh(mesh) if in_context else contextlib.nullcontext()
    with context:
        value, grad = jax.jit(value_and_grad)(*sharded)
        per_example = jax.jit(loss)(*sharded) if axis_type == AxisType.Explicit else None
        compiled = jax.jit(loss).lower(*sharded).compile().as_text() if shard_classes else ""
    tol = 1e-12 if dtype == jnp.float64 else 1e-6
    np.testing.assert_allclose(value, expected_value, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad, expected_grad, rtol=tol, atol=tol)
    # Explicit meshes fix every array's sharding in its type; under Auto meshes the
    # partitioner chooses (pass out_shardings to jit to insist), so only values are compared.
    if axis_type == AxisType.Explicit:
        assert grad.sharding.is_equivalent_to(sharded[0].sharding, grad.ndim), (
            grad.sharding,
            specs[0],
        )
        assert per_example is not None
        if per_example.ndim >= 1 and per_example.shape[0] == N:
            assert per_example.sharding.spec[0] == "data", per_example.sharding
    if shard_classes:
        assert "all-gather" not in compiled, "the sharded class axis was gathered"


COMBINATIONS = list(itertools.product(MESHES, (AxisType.Explicit, AxisType.Auto), (True, False)))


def _cases():
    """Each criterion, batch-sharded and (classification) class-sharded, in a rotation of
    the mesh / axis type / context combinations; the rest under --full."""
    out = []
    for i, name in enumerate(CRITERIA):
        layouts = ["batch", "classes"] if CRITERIA[name][2] else ["batch"]
        for j, layout in enumerate(layouts):
            # a one-axis mesh has no model axis to shard the classes over
            combinations = [c for c in COMBINATIONS if layout == "batch" or c[0] != "8"]
            for k, (mesh, axis_type, ctx) in enumerate(combinations):
                default = k == (i + 3 * j) % len(combinations)
                # The compat layer only maps arguments: a few of it in the default tier; the
                # class-sharded layout by default for the softmax criteria.
                default = default and (not name.startswith("compat.") or name in COMPAT_DEFAULT)
                default = default and (layout == "batch" or name in CLASS_SHARDED_DEFAULT)
                params = (name, layout, mesh, axis_type.name, ctx)
                case_id = (
                    f"{name}-{layout}-{mesh}-{axis_type.name}-{'set_mesh' if ctx else 'no_mesh'}"
                )
                marks = [] if default else [pytest.mark.slow]
                out.append(pytest.param(*params, id=case_id, marks=marks))
    return out


@pytest.mark.parametrize("name,layout,mesh_name,axis_type,in_context", _cases())
def test_sharded_equals_unsharded(name, layout, mesh_name, axis_type, in_context, full_tier):
    axis_type = AxisType[axis_type]
    _check(name, jnp.float32, mesh_name, axis_type, in_context, layout == "classes")
    if full_tier:  # float64 in --full (the default tier checks float32)
        with jax.enable_x64(True):
            _check(name, jnp.float64, mesh_name, axis_type, in_context, layout == "classes")
