"""One vocabulary of names in the native API (docs/conventions.md, "Names"): the renamed
keywords still work as deprecated aliases, warn with the new name, and give the same numbers;
the compat layers keep their references' names."""

import inspect

import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from jaxloss.compat import functional as F

RNG = np.random.default_rng(0)
LOGITS = jnp.asarray(RNG.normal(size=(6, 5)))
LABELS = jnp.asarray(RNG.integers(0, 5, size=6))
PROBS = jnp.asarray(RNG.uniform(0.05, 0.95, size=(6, 5)))
PER_CLASS = jnp.linspace(0.5, 2.0, 5)
PER_ELEMENT = jnp.asarray(RNG.uniform(0.5, 2.0, size=(6, 5)))
X, W = jnp.asarray(RNG.normal(size=(6, 3))), jnp.asarray(RNG.normal(size=(5, 3)))

# (function, positional inputs, old keyword, new keyword, value)
RENAMED = [
    (jaxloss.cross_entropy, (LOGITS, LABELS), "weight", "class_weights", PER_CLASS),
    (jaxloss.nll_loss, (LOGITS, LABELS), "weight", "class_weights", PER_CLASS),
    (jaxloss.multi_margin_loss, (LOGITS, LABELS), "weight", "class_weights", PER_CLASS),
    (jaxloss.softmax_focal_loss, (LOGITS, LABELS), "weight", "class_weights", PER_CLASS),
    (jaxloss.poly1_cross_entropy, (LOGITS, LABELS), "weight", "class_weights", PER_CLASS),
    (jaxloss.generalized_cross_entropy, (LOGITS, LABELS), "weight", "class_weights", PER_CLASS),
    (jaxloss.linear_cross_entropy, (X, W, LABELS), "weight", "class_weights", PER_CLASS),
    (jaxloss.binary_cross_entropy, (PROBS, PROBS), "weight", "weights", PER_ELEMENT),
    (jaxloss.binary_cross_entropy_with_logits, (LOGITS, PROBS), "weight", "weights", PER_ELEMENT),
    (jaxloss.multilabel_soft_margin_loss, (LOGITS, PROBS), "weight", "weights", PER_CLASS),
    (jaxloss.l1_loss, (LOGITS, PROBS), "weight", "weights", PER_ELEMENT),
    (jaxloss.mse_loss, (LOGITS, PROBS), "weight", "weights", PER_ELEMENT),
    (jaxloss.huber_loss, (LOGITS, PROBS), "weight", "weights", PER_ELEMENT),
    (jaxloss.kl_div, (jnp.log(PROBS), jnp.log(PROBS[::-1])), "log_target", "log_targets", True),
]


@pytest.mark.parametrize(
    "function, inputs, old, new, value", RENAMED, ids=[f"{r[0].__name__}-{r[2]}" for r in RENAMED]
)
def test_a_renamed_keyword_still_works_and_warns(function, inputs, old, new, value):
    expected = function(*inputs, **{new: value})
    with pytest.warns(DeprecationWarning, match=f"`{old}` is renamed `{new}`"):
        got = function(*inputs, **{old: value})
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(TypeError, match=f"give `{new}`"):
        function(*inputs, **{old: value, new: value})
    assert new in inspect.signature(function).parameters
    assert old not in inspect.signature(function).parameters


def test_every_native_function_uses_the_vocabulary():
    """No native function takes the ambiguous `weight` or `log_target` any more."""
    for name in jaxloss.__all__:
        function = getattr(jaxloss, name)
        if callable(function) and not inspect.isclass(function):
            parameters = inspect.signature(function).parameters
            assert "weight" not in parameters and "log_target" not in parameters, name


def test_compat_keeps_torch_names_and_their_errors():
    assert "weight" in inspect.signature(F.cross_entropy).parameters
    assert "log_target" in inspect.signature(F.kl_div).parameters
    with pytest.raises(ValueError, match="`weight`"):
        F.cross_entropy(LOGITS, LABELS, weight=jnp.ones(3))
    with pytest.raises(ValueError, match="`class_weights`"):
        jaxloss.cross_entropy(LOGITS, LABELS, class_weights=jnp.ones(3))
