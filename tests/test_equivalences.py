"""Every optax equivalence that the README and the docs pages claim, compared numerically.

`EQUIVALENCES` maps each optax function named in an equivalence table to the jaxloss call
that the table says matches it; each is checked on random inputs, values and gradients, in
float64 and float32 (`TESTED_ELSEWHERE` names the claims compared by another module's test,
CTC's in test_sequence.py). Where the tables say the two differ, the last tests show the
difference with numbers. `test_every_claimed_equivalence_is_tested` reads the tables, so a new
claim without a test fails.
"""

import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss

ROOT = pathlib.Path(__file__).resolve().parents[1]
TABLES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
N, C, D = 6, 5, 4


def _inputs(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(N, C)) * 2
    return {
        "logits": logits,
        "labels": rng.integers(0, C, size=N),
        "probs": np.exp(logits) / np.exp(logits).sum(-1, keepdims=True),
        "targets": rng.dirichlet(np.ones(C), size=N),
        "binary": (rng.uniform(size=(N, C)) < 0.5).astype(float),
        "x": rng.normal(size=(N, D)),
        "y": rng.normal(size=(N, D)),
        "z": rng.normal(size=(N, D)),
        "mask": rng.uniform(size=(N, C)) < 0.7,
    }


# optax name -> (jaxloss call, optax call, which input is differentiated); both calls take the
# dict of inputs and the array being differentiated.
EQUIVALENCES = {
    "softmax_cross_entropy": (
        lambda v, a: jaxloss.cross_entropy(a, v["targets"], reduction="none"),
        lambda v, a: optax.losses.softmax_cross_entropy(a, v["targets"]),
        "logits",
    ),
    "softmax_cross_entropy_with_integer_labels": (
        lambda v, a: jaxloss.cross_entropy(a, v["labels"], reduction="none"),
        lambda v, a: optax.losses.softmax_cross_entropy_with_integer_labels(a, v["labels"]),
        "logits",
    ),
    "kl_divergence": (  # optax sums over classes per example; batchmean averages those sums
        lambda v, a: jaxloss.kl_div(a, v["targets"], reduction="batchmean"),
        lambda v, a: jnp.mean(optax.losses.kl_divergence(a, v["targets"])),
        "log_probs",
    ),
    "kl_divergence_with_log_targets": (
        lambda v, a: jaxloss.kl_div(
            a, jnp.log(v["targets"]), log_target=True, reduction="batchmean"
        ),
        lambda v, a: jnp.mean(
            optax.losses.kl_divergence_with_log_targets(a, jnp.log(v["targets"]))
        ),
        "log_probs",
    ),
    "sigmoid_binary_cross_entropy": (
        lambda v, a: jaxloss.binary_cross_entropy_with_logits(a, v["binary"], reduction="none"),
        lambda v, a: optax.losses.sigmoid_binary_cross_entropy(a, v["binary"]),
        "logits",
    ),
    "squared_error": (
        lambda v, a: jaxloss.mse_loss(a, v["y"], reduction="none"),
        lambda v, a: optax.losses.squared_error(a, v["y"]),
        "x",
    ),
    "huber_loss": (
        lambda v, a: jaxloss.huber_loss(a, v["y"], delta=0.7, reduction="none"),
        lambda v, a: optax.losses.huber_loss(a, v["y"], delta=0.7),
        "x",
    ),
    "cosine_distance": (  # positive pairs (label 1) only: 1 - cos
        lambda v, a: jaxloss.cosine_embedding_loss(a, v["y"], jnp.ones(N), reduction="none"),
        lambda v, a: optax.losses.cosine_distance(a, v["y"]),
        "x",
    ),
    "cosine_similarity": (
        lambda v, a: jaxloss.cosine_similarity(a, v["y"]),
        lambda v, a: optax.losses.cosine_similarity(a, v["y"]),
        "x",
    ),
    "triplet_margin_loss": (  # equal with eps = 0 (see DIFFERENCES for the default eps)
        lambda v, a: jaxloss.triplet_margin_loss(a, v["y"], v["z"], eps=0.0, reduction="none"),
        lambda v, a: optax.losses.triplet_margin_loss(a, v["y"], v["z"], eps=0.0),
        "x",
    ),
}
# Claims compared by a test elsewhere (with the inputs they need), named here so that the
# claim check below finds them.
TESTED_ELSEWHERE = {
    "ctc_loss": ("test_sequence.py", "test_matches_optax_values_and_gradients"),
}
TOLERANCES = {"float64": 1e-12, "float32": 2e-6}


def _array(values, name, dtype):
    if name == "log_probs":
        return jnp.asarray(np.log(values["probs"]), dtype)
    return jnp.asarray(values[name], dtype)


@pytest.mark.parametrize("dtype", ["float64", pytest.param("float32", marks=pytest.mark.slow)])
@pytest.mark.parametrize("optax_name", sorted(EQUIVALENCES))
def test_equivalent_to_optax(optax_name, dtype, x64):
    ours_call, theirs_call, name = EQUIVALENCES[optax_name]
    values = {
        k: (np.asarray(v, dtype) if np.asarray(v).dtype.kind == "f" else v)
        for k, v in _inputs(0).items()
    }
    first = _array(values, name, dtype)

    def ours(a):
        return ours_call(values, a)

    def theirs(a):
        return theirs_call(values, a)

    tol = TOLERANCES[dtype]
    np.testing.assert_allclose(jax.jit(ours)(first), jax.jit(theirs)(first), rtol=tol, atol=tol)
    np.testing.assert_allclose(
        jax.jit(jax.grad(lambda a: jnp.sum(ours(a))))(first),
        jax.jit(jax.grad(lambda a: jnp.sum(theirs(a))))(first),
        rtol=tol * 10,
        atol=tol * 10,
    )


def test_class_mask_equals_optax_where(x64):
    """optax's `where` on the softmax cross-entropies masks classes: jaxloss's `class_mask`
    (its `where` masks positions)."""
    v = _inputs(1)
    logits, mask = jnp.asarray(v["logits"]), jnp.asarray(v["mask"])
    labels = jnp.argmax(jnp.where(mask, logits, -jnp.inf), axis=-1)
    np.testing.assert_allclose(
        jaxloss.cross_entropy(logits, labels, class_mask=mask, reduction="none"),
        optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels, where=mask),
        rtol=1e-12,
    )


# The differences the tables state, with numbers.
def test_multi_margin_is_not_multiclass_hinge():
    """torch's multi-margin averages the hinge over the classes; optax's multiclass hinge takes
    the max (and its margin term differs): scores [10, 3], label 1 give 4 and 8."""
    scores, labels = jnp.array([[10.0, 3.0]]), jnp.array([1])
    assert float(jaxloss.multi_margin_loss(scores, labels)) == pytest.approx(4.0)
    assert float(optax.losses.multiclass_hinge_loss(scores, labels)[0]) == pytest.approx(8.0)


def test_differences_the_tables_state(x64):
    v = _inputs(2)
    x, y, z = (jnp.asarray(v[k]) for k in "xyz")
    # triplet: torch (and jaxloss) add eps to the difference, ||a - p + eps||; optax adds it
    # under the root, sqrt(||a - p||² + eps): with the default eps they differ by O(eps).
    ours = jaxloss.triplet_margin_loss(x, y, z, reduction="none")
    theirs = optax.losses.triplet_margin_loss(x, y, z)
    gap = float(jnp.max(jnp.abs(ours - theirs)))
    assert 0 < gap < 1e-4
    # cosine similarity: a zero vector gives 0 here (torch's eps), nan in optax (epsilon=0).
    zero = x.at[0].set(0.0)
    assert float(jaxloss.cosine_similarity(zero, y)[0]) == 0.0
    assert np.isnan(float(optax.losses.cosine_similarity(zero, y)[0]))
    # kl: optax returns per-example sums; jaxloss 'mean' is torch's mean over every element.
    log_p, t = jnp.log(jnp.asarray(v["probs"])), jnp.asarray(v["targets"])
    per_example = optax.losses.kl_divergence(log_p, t)
    np.testing.assert_allclose(
        jaxloss.kl_div(log_p, t, reduction="mean"), jnp.sum(per_example) / (N * C), rtol=1e-12
    )
    # optax's cross-entropies take no class weights, ignore_index or smoothing: the unweighted,
    # unsmoothed loss is what they give.
    logits, labels = jnp.asarray(v["logits"]), jnp.asarray(v["labels"])
    weighted = jaxloss.cross_entropy(logits, labels, weight=jnp.linspace(0.5, 2, C))
    plain = jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels))
    assert abs(float(weighted - plain)) > 1e-3


def _claimed_optax_names():
    """Backticked optax names in the optax column of every equivalence table."""
    names = set()
    for path in TABLES:
        header_columns = None
        for line in path.read_text().splitlines():
            if not line.startswith("|"):
                header_columns = None
                continue
            cells = [c.strip() for c in line.strip("|").split("|")]
            if header_columns is None:
                lowered = [c.lower() for c in cells]
                header_columns = next(
                    (i for i, c in enumerate(lowered) if c.startswith("optax")), -1
                )
                continue
            if header_columns < 0 or header_columns >= len(cells):
                continue
            cell = cells[header_columns]
            if cell.startswith("none") or cell in ("—", "---"):
                continue
            first = re.match(r"`([a-z_()]+)`", cell)
            if first:
                name = first.group(1)
                if "(" in name:  # softmax_cross_entropy(_with_integer_labels): both
                    base, extra = name.rstrip(")").split("(")
                    names.update({base, base + extra})
                else:
                    names.add(name)
    return names


def test_every_claimed_equivalence_is_tested():
    claimed = _claimed_optax_names()
    assert claimed, "no equivalence tables found"
    covered = set(EQUIVALENCES) | set(TESTED_ELSEWHERE)
    assert claimed <= covered, sorted(claimed - covered)
    for module, test_name in TESTED_ELSEWHERE.values():
        assert f"def {test_name}(" in (ROOT / "tests" / module).read_text(), (module, test_name)
