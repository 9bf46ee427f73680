"""The pairwise covering array holds every pair of option values, deterministically."""

import itertools

import numpy as np
import pytest

from jaxloss.parity.covering import full_product, pairwise


def _spaces():
    rng = np.random.default_rng(0)
    for n_options in range(1, 7):
        for _ in range(5):
            yield {
                f"o{i}": [f"v{j}" for j in range(int(rng.integers(1, 5)))] for i in range(n_options)
            }


@pytest.mark.parametrize(
    "space", list(_spaces()), ids=lambda s: "x".join(str(len(v)) for v in s.values())
)
def test_every_pair_is_covered(space):
    rows = pairwise(space)
    for a, b in itertools.combinations(space, 2):
        assert {(r[a], r[b]) for r in rows} == set(itertools.product(space[a], space[b]))
    for name, values in space.items():
        assert {r[name] for r in rows} == set(values)
    assert len(rows) <= len(full_product(space))
    assert pairwise(space) == rows  # deterministic


def test_much_smaller_than_the_product():
    space = dict(a=range(4), b=range(2), c=range(3), d=range(3), e=range(3))
    assert len(full_product(space)) == 216
    assert len(pairwise(space)) <= 16


def test_unhashable_values_and_empty_options():
    space = dict(a=[[1], [2]], b=[{}, None], c=[np.zeros(2), np.ones(2)])
    rows = pairwise(space)
    for a, b in itertools.combinations(space, 2):
        pairs = {(id(r[a]), id(r[b])) for r in rows}
        assert pairs == {(id(x), id(y)) for x in space[a] for y in space[b]}
    with pytest.raises(ValueError, match="at least one value"):
        pairwise(dict(a=[], b=[1], c=[2]))
