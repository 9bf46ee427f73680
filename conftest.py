"""Doctests of the package's docstrings: each example runs with these names imported."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    doctest_namespace.update(jax=jax, jnp=jnp, np=np, jaxloss=jaxloss)
