"""The compat modules as a ported training script uses them: torch's state dicts, from_torch,
check_port on the user's inputs, the scalar shapes torch accepts, and NaN propagation."""

import numpy as np
import pytest
import torch

import jaxloss
from jaxloss.compat import functional as F
from jaxloss.compat import nn
from jaxloss.parity import check_port
from jaxloss.parity.cases import MODULE_NAMES, cases
from jaxloss.parity.compare import _jax_distance, _torch_distance, run_jax, run_torch

pytestmark = pytest.mark.usefixtures("x64")

W3 = np.array([0.5, 1.0, 2.0])

# (module, constructor options) for every loss module, with and without its buffers.
BUFFERED = [
    ("CrossEntropyLoss", {}),
    ("CrossEntropyLoss", dict(weight=W3)),
    ("NLLLoss", dict(weight=W3)),
    ("BCELoss", dict(weight=W3)),
    ("BCEWithLogitsLoss", {}),
    ("BCEWithLogitsLoss", dict(weight=W3)),
    ("BCEWithLogitsLoss", dict(pos_weight=W3)),
    ("BCEWithLogitsLoss", dict(weight=W3, pos_weight=W3)),
    ("MultiMarginLoss", dict(weight=W3)),
    ("MultiLabelSoftMarginLoss", dict(weight=W3)),
    ("L1Loss", {}),
    ("CTCLoss", {}),
    ("TripletMarginLoss", {}),
    ("HuberLoss", {}),
]


def _torch_options(options):
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}


@pytest.mark.parametrize(
    "name,options", BUFFERED, ids=[f"{n}-{'+'.join(o) or 'plain'}" for n, o in BUFFERED]
)
def test_state_dict_holds_torchs_keys_and_round_trips(name, options):
    theirs = getattr(torch.nn, name)(**_torch_options(options))
    ours = getattr(nn, name)(**options)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    changed = {k: v * 3 for k, v in theirs.state_dict().items()}
    ours.load_state_dict(changed)
    for key, value in ours.state_dict().items():
        np.testing.assert_array_equal(value, changed[key].numpy())
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})
    if options:
        with pytest.raises(ValueError, match="missing keys"):
            ours.load_state_dict({})
        key = next(iter(options))
        with pytest.raises(ValueError, match="shape"):
            ours.load_state_dict(dict(changed, **{key: torch.ones(7)}))
    else:
        with pytest.raises(ValueError, match="unexpected keys"):
            ours.load_state_dict({"weight": torch.ones(3)})


def test_linear_cross_entropy_state_dict_has_the_weight_buffer():
    torch.manual_seed(0)
    theirs = torch.nn.LinearCrossEntropyLoss(5, 4, weight=torch.rand(4) + 0.5, bias=True).double()
    ours = nn.LinearCrossEntropyLoss(5, 4, weight=np.ones(4), bias=True, dtype=np.float64)
    assert (
        list(ours.state_dict())
        == list(theirs.state_dict())
        == ["weight", "linear.weight", "linear.bias"]
    )
    ours.load_state_dict(theirs.state_dict())
    x, y = np.random.default_rng(0).normal(size=(6, 5)), np.array([0, 1, 2, 3, 1, -100])
    assert check_port(theirs, x, y, jax_module=ours).ok


DEFAULT_PORTS = {
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy_with_logits",
    "multi_margin_loss",
    "gaussian_nll_loss",
    "ctc_loss",
    "triplet_margin_with_distance_loss",
    "kl_div",
}


def _module_cases(criterion, count):
    """Cases whose options are all constructor options of torch's module (l1/mse/huber take a
    per-element `weight` only in the functional form)."""
    import inspect

    module = getattr(torch.nn, MODULE_NAMES[criterion])
    accepted = set(inspect.signature(module.__init__).parameters)
    drawn = [
        c
        for c in cases(criterion, seed=5, dtypes=("float64",), regimes=("normal",))
        if set(c.kwargs) <= accepted
    ]
    return drawn[:: max(1, len(drawn) // count)][:count]


def pytest_generate_tests(metafunc):
    """One case per criterion by default (the parity suite covers the options), more with
    --full."""
    full = metafunc.config.getoption("--full")
    count = 3 if full else 1
    if "port_case" in metafunc.fixturenames:
        # The default tier ports the modules whose state differs in kind (buffers, a distance
        # function, lengths, legacy options); --full ports every module.
        ported = MODULE_NAMES if full else [c for c in MODULE_NAMES if c in DEFAULT_PORTS]
        drawn = [c for criterion in ported for c in _module_cases(criterion, count)]
        metafunc.parametrize("port_case", drawn, ids=[c.id for c in drawn])
    if "nan_case" in metafunc.fixturenames:
        drawn = list(_nan_cases(count))
        metafunc.parametrize("nan_case", drawn, ids=[c.id for c in drawn])


def test_from_torch_ports_every_module_and_check_port_agrees(port_case):
    case = port_case
    torch_options, overrides = {}, {}
    for key, value in case.kwargs.items():
        if key == "distance_function" and value is not None:
            torch_options[key] = _torch_distance(value)
            overrides[key] = _jax_distance(value)
        elif key == "distance_function":
            continue
        else:
            torch_options[key] = torch.from_numpy(value) if isinstance(value, np.ndarray) else value
    theirs = getattr(torch.nn, MODULE_NAMES[case.criterion])(**torch_options)
    ours = nn.from_torch(theirs, **overrides)
    assert type(ours).__name__ == type(theirs).__name__
    assert ours.reduction == theirs.reduction
    result = check_port(theirs, *case.args, jax_module=ours, grad_argnums=case.grad_argnums)
    assert result.ok, str(result)
    assert "agrees with torch" in str(result)


def test_from_torch_heads_and_distances():
    torch.manual_seed(2)
    adaptive = torch.nn.AdaptiveLogSoftmaxWithLoss(
        8, 12, [3, 7], div_value=2.0, head_bias=True
    ).double()
    ported = nn.from_torch(adaptive)
    x, y = np.random.default_rng(1).normal(size=(5, 8)), np.array([0, 4, 11, 7, 2])
    np.testing.assert_allclose(
        ported(x, y).loss, adaptive(torch.tensor(x), torch.tensor(y)).loss.item(), rtol=1e-12
    )
    head = torch.nn.LinearCrossEntropyLoss(
        8, 6, bias=True, label_smoothing=0.2, weight=torch.rand(6) + 0.5
    ).double()
    assert check_port(head, x, np.array([0, 1, 5, 3, 2]), jax_module=nn.from_torch(head)).ok
    distance = nn.from_torch(torch.nn.PairwiseDistance(p=1.5, keepdim=True))
    assert (distance.norm, distance.keepdim) == (1.5, True)
    triplet = nn.from_torch(torch.nn.TripletMarginWithDistanceLoss(margin=0.5))
    assert isinstance(triplet.distance_function, nn.PairwiseDistance)
    with pytest.raises(TypeError, match="cannot be translated"):
        nn.from_torch(
            torch.nn.TripletMarginWithDistanceLoss(
                distance_function=lambda u, v: (u - v).abs().sum(-1)
            )
        )
    with pytest.raises(TypeError, match="no jaxloss counterpart of Linear"):
        nn.from_torch(torch.nn.Linear(2, 2))


def test_check_port_reports_a_difference():
    x, y = np.random.default_rng(0).normal(size=(4, 3)), np.array([0, 1, 2, 1])
    wrong = nn.CrossEntropyLoss(label_smoothing=0.2)
    result = check_port(torch.nn.CrossEntropyLoss(), x, y, jax_module=wrong)
    assert not result.ok and "DIFFERS" in str(result) and result.value_error > 1e-3


# 'none' (the per-sample shapes) by default; the scalar reductions with --full (~5 s each).
@pytest.mark.parametrize(
    "reduction", ["none", *(pytest.param(r, marks=pytest.mark.slow) for r in ("mean", "sum"))]
)
def test_margin_losses_take_torchs_scalar_shapes(reduction):
    t = torch.tensor
    for ours, theirs in [
        (
            F.multi_margin_loss(np.float64(0.7), np.int64(0), reduction=reduction),
            torch.nn.functional.multi_margin_loss(
                t(0.7, dtype=torch.float64), t(0), reduction=reduction
            ),
        ),
        (
            F.multi_margin_loss(np.float64(0.7), np.array([0]), reduction=reduction),
            torch.nn.functional.multi_margin_loss(
                t(0.7, dtype=torch.float64), t([0]), reduction=reduction
            ),
        ),
        (
            F.multi_margin_loss(np.array([0.7, 0.1, 0.4]), np.array([2]), reduction=reduction),
            torch.nn.functional.multi_margin_loss(
                t([0.7, 0.1, 0.4], dtype=torch.float64), t([2]), reduction=reduction
            ),
        ),
        (
            F.multilabel_margin_loss(np.float64(0.7), np.int64(0), reduction=reduction),
            torch.nn.functional.multilabel_margin_loss(
                t(0.7, dtype=torch.float64), t(0), reduction=reduction
            ),
        ),
        (
            F.multilabel_margin_loss(np.float64(0.7), np.array([-1]), reduction=reduction),
            torch.nn.functional.multilabel_margin_loss(
                t(0.7, dtype=torch.float64), t([-1]), reduction=reduction
            ),
        ),
    ]:
        assert ours.shape == tuple(theirs.shape)
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-12)


def test_k_dimensional_fused_loss_refuses_an_unbatched_input():
    w = np.random.default_rng(0).normal(size=(2, 4, 3))
    with pytest.raises(ValueError, match="requires a batched `input`"):
        F.linear_cross_entropy(np.ones(3), w, np.array([1, 0, 1, 1]))
    with pytest.raises(RuntimeError, match="requires batched input"):
        torch.nn.functional.linear_cross_entropy(
            torch.ones(3, dtype=torch.float64), torch.from_numpy(w), torch.tensor([1, 0, 1, 1])
        )


def _nan_cases(count):
    for criterion in MODULE_NAMES:
        for case in _module_cases(criterion, count):
            first = next(
                i
                for i, a in enumerate(case.args)
                if isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.size
            )
            args = list(case.args)
            args[first] = args[first].copy()
            args[first].flat[0] = np.nan
            yield type(case)(
                case.criterion,
                tuple(args),
                case.kwargs,
                case.grad_argnums,
                case.label + "/nan-in-input",
                case.regime,
            )


def test_nan_propagates_wherever_torch_propagates_it(nan_case):
    """A NaN input gives a NaN loss wherever torch's is NaN (where both are finite they
    agree), and a NaN gradient wherever torch's is: a loss that hides a NaN hides a diverging
    run. torch's margin kernels count a NaN term as 0, and so does jaxloss. (Where torch raises
    on the NaN, e.g. BCE's probabilities outside [0, 1], jaxloss raises too; CTC may give NaN
    where torch steps around a NaN in an unreachable state.)"""
    case = nan_case
    try:
        torch_value, torch_grads, cotangent = run_torch(case)
    except RuntimeError as torch_error:
        assert "between 0 and 1" in str(torch_error)
        with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
            run_jax(case, np.ones(()), jit=False)  # eager: concrete inputs raise
        return
    value, grads = run_jax(case, cotangent)
    assert np.all(np.isnan(value[np.isnan(torch_value)])), (value, torch_value)
    finite = np.isfinite(torch_value) & np.isfinite(value)
    np.testing.assert_allclose(value[finite], torch_value[finite], rtol=1e-9, atol=1e-12)
    if case.criterion != "ctc_loss":
        assert np.array_equal(np.isnan(value), np.isnan(torch_value)), (value, torch_value)
    for ours, theirs in zip(grads, torch_grads):
        assert np.all(np.isnan(ours[np.isnan(theirs)])), (ours, theirs)


def test_margin_ranking_hinge_and_triplet_losses_propagate_nan():
    nan = np.array([np.nan])
    assert np.isnan(F.margin_ranking_loss(nan, np.zeros(1), np.ones(1)))
    assert np.isnan(F.hinge_embedding_loss(nan, -np.ones(1)))
    assert np.isnan(
        jaxloss.triplet_margin_loss(np.array([[np.nan, 0.0]]), np.zeros((1, 2)), np.ones((1, 2)))
    )


def test_broadcast_warnings_name_torchs_arguments():
    with pytest.warns(UserWarning, match=r"`target` shape \[3\] differs from `input` shape"):
        F.mse_loss(np.ones((4, 3)), np.ones(3))
    with pytest.warns(UserWarning, match=r"`targets` shape \[3\] differs from `predictions`"):
        jaxloss.mse_loss(np.ones((4, 3)), np.ones(3))
