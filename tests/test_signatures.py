"""jaxloss.compat mirrors torch 2.13's names, argument order, kinds and defaults."""

import inspect

import pytest
import torch

from jaxloss.compat import functional, nn
from jaxloss.compat import torchvision as torchvision_compat
from jaxloss.parity.cases import MODULE_NAMES

FUNCTIONS = sorted(MODULE_NAMES)
MODULES = sorted(MODULE_NAMES.values())


def _shape(signature):
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def test_all_twenty_one_criteria_are_exposed():
    assert len(FUNCTIONS) == 21 and len(MODULES) == 21
    for name in FUNCTIONS:
        assert callable(getattr(functional, name))
    for name in MODULES:
        assert isinstance(getattr(nn, name), type)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_functional_signature(name):
    ours = inspect.signature(getattr(functional, name))
    theirs = inspect.signature(getattr(torch.nn.functional, name))
    assert _shape(ours) == _shape(theirs)


@pytest.mark.parametrize("name", MODULES)
def test_module_signatures(name):
    ours, theirs = getattr(nn, name), getattr(torch.nn, name)
    assert _shape(inspect.signature(ours.__init__)) == _shape(inspect.signature(theirs.__init__))
    assert _shape(inspect.signature(ours.forward)) == _shape(inspect.signature(theirs.forward))


def test_pairwise_distance_signature_matches_torch_docstring():
    # torch's pairwise_distance is a builtin without an inspectable signature; its docstring
    # reads "pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False) -> Tensor".
    assert "pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False)" in (
        torch.nn.functional.pairwise_distance.__doc__
    )
    ours = inspect.signature(functional.pairwise_distance)
    assert [(p.name, p.default) for p in ours.parameters.values()] == [
        ("x1", inspect.Parameter.empty),
        ("x2", inspect.Parameter.empty),
        ("p", 2.0),
        ("eps", 1e-6),
        ("keepdim", False),
    ]


@pytest.mark.parametrize("name", ["PairwiseDistance", "CosineSimilarity"])
def test_distance_module_signatures(name):
    """The distance modules torch's docs pass to TripletMarginWithDistanceLoss."""
    ours, theirs = getattr(nn, name), getattr(torch.nn, name)
    assert _shape(inspect.signature(ours.__init__)) == _shape(inspect.signature(theirs.__init__))
    assert _shape(inspect.signature(ours.forward)) == _shape(inspect.signature(theirs.forward))


@pytest.mark.parametrize("name", sorted(torchvision_compat.__all__))
def test_torchvision_signature(name):
    """jaxloss.compat.torchvision mirrors torchvision 0.28's names, order and defaults."""
    from jaxloss.parity.references import torchvision_ops

    ours = inspect.signature(getattr(torchvision_compat, name))
    theirs = inspect.signature(getattr(torchvision_ops(), name))
    assert _shape(ours) == _shape(theirs)
