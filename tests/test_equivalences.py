"""The optax equivalences that the docs pages claim (docs/migration.md and each family page):
each optax function named in an equivalence table must be compared numerically (by
`jaxloss.parity.libraries`, run in tests/test_libraries.py).
`test_every_claimed_equivalence_is_tested` reads the tables, so a new claim without a
comparison fails. Where the tables say the two differ, the tests here show the difference
with numbers.
"""

import pathlib
import re

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from jaxloss.parity import libraries

ROOT = pathlib.Path(__file__).resolve().parents[1]
TABLES = sorted((ROOT / "docs").glob("*.md"))
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
    weighted = jaxloss.cross_entropy(logits, labels, class_weights=jnp.linspace(0.5, 2, C))
    plain = jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels))
    assert abs(float(weighted - plain)) > 1e-3


def _claimed_optax_names():
    """The optax.losses names in the optax column of every equivalence table
    (``softmax_cross_entropy(_with_integer_labels)`` names both)."""
    names = set()
    for path in TABLES:
        column = None
        for line in path.read_text().splitlines():
            if not line.startswith("|"):
                column = None
                continue
            cells = [c.strip() for c in line.strip("|").split("|")]
            if column is None:
                lowered = [c.lower() for c in cells]
                column = next((i for i, c in enumerate(lowered) if c.startswith("optax")), -1)
                continue
            if column < 0 or column >= len(cells):
                continue
            for base, suffix in re.findall(r"`([a-z_]+)(?:\((_[a-z_]+)\))?", cells[column]):
                for name in (base, base + suffix) if suffix else (base,):
                    if hasattr(optax.losses, name):
                        names.add(name)
    return names


def test_every_claimed_equivalence_is_tested():
    claimed = _claimed_optax_names()
    assert claimed, "no equivalence tables found"
    compared = {
        c.reference.removeprefix("optax.losses.").split("(")[0]
        for c in libraries.comparisons()
        if c.library == "optax"
    }
    assert claimed <= compared, sorted(claimed - compared)
