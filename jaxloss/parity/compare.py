"""Runs one parity case through torch and through jaxloss.compat and measures the gap.

Values and gradients (vector-Jacobian products with one random positive cotangent, so 'none'
reductions are checked element by element) are compared with nan and inf treated as values:
where torch gives nan, jaxloss must give nan too.
"""

from __future__ import annotations

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ..compat import functional as jaxloss_functional
from ..compat import torchvision as jaxloss_torchvision
from .cases import Case, Distance
from .references import torchvision_ops

# float64 must agree to rounding; float32 to a few ulps of the accumulated sums. The absolute
# tolerance scales with the largest input magnitude: a loss such as d(a,p) - d(a,n) of inputs
# near 50 cancels, and its rounding error is a few ulps of 50, not of the (small) result.
TOLERANCES = {
    np.dtype(np.float64): dict(rtol=1e-9, atol=1e-12),
    np.dtype(np.float32): dict(rtol=2e-5, atol=2e-6),
}


@dataclasses.dataclass
class Outcome:
    """How far jaxloss is from torch on one case.

    ``*_error`` is scale-aware: the largest absolute difference divided by the largest
    magnitude of torch's array (so a CTC gradient of 1e30 that agrees to 1e-16 relative reads
    1e-16, not an absolute 1e14), or by atol / rtol where torch's array is smaller than that
    (a gradient that is zero up to rounding has noise, not a relative error).
    ``tolerance_used`` is the worst ratio of a difference to the tolerance it was allowed
    (atol + rtol·|torch|); the case passes when it is <= 1 and every nan/inf matches.
    Either is inf on a nan/inf mismatch.
    """

    case: Case
    value_error: float
    grad_error: float
    tolerance_used: float
    ok: bool
    detail: str = ""


def _torch_distance(distance: Distance):
    import torch

    return {
        "cosine": lambda u, v: 1.0 - torch.nn.functional.cosine_similarity(u, v, dim=-1),
        "pairwise_module": torch.nn.PairwiseDistance(p=1.5),
        "l1": lambda u, v: torch.nn.functional.pairwise_distance(u, v, p=1),
        "squared_euclidean": lambda u, v: ((u - v) ** 2).sum(-1),
    }[distance.name]


def _jax_distance(distance: Distance):
    from ..compat import nn as jaxloss_nn

    return {
        "cosine": lambda u, v: 1.0 - jaxloss_functional.cosine_similarity(u, v, dim=-1),
        "pairwise_module": jaxloss_nn.PairwiseDistance(p=1.5),
        "l1": lambda u, v: jaxloss_functional.pairwise_distance(u, v, p=1),
        "squared_euclidean": lambda u, v: jnp.sum((u - v) ** 2, -1),
    }[distance.name]


def _convert(value, to_array, distance_fn):
    if isinstance(value, np.ndarray):
        return to_array(value)
    if isinstance(value, Distance):
        return distance_fn(value)
    return value


def run_torch(case: Case, cotangent_seed: int = 0):
    """Returns (value, grads, cotangent) from torch as NumPy arrays."""
    import torch

    args = []
    for i, a in enumerate(case.args):
        if isinstance(a, np.ndarray):
            t = torch.from_numpy(a.copy())
            if i in case.grad_argnums:
                t.requires_grad_(True)
            args.append(t)
        else:
            args.append(a)
    kwargs = {k: _convert(v, torch.from_numpy, _torch_distance) for k, v in case.kwargs.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = reference_function(case.criterion, case.library)(*args, **kwargs)
    rng = np.random.default_rng(cotangent_seed)
    # Positive weights: each element's gradient is still checked on its own, and random signs
    # cannot cancel large terms (e.g. 1/var^2 near a clamped variance) into float32 noise.
    cotangent = rng.uniform(0.5, 1.5, tuple(out.shape)).astype(out.detach().numpy().dtype)
    differentiable = [args[i] for i in case.grad_argnums]
    grads = torch.autograd.grad(out, differentiable, torch.from_numpy(cotangent), allow_unused=True)
    grads = [
        np.zeros(a.shape, a.detach().numpy().dtype) if g is None else g.numpy()
        for a, g in zip(differentiable, grads)
    ]
    return out.detach().numpy(), grads, cotangent


def reference_function(criterion: str, library: str = "torch"):
    """The reference implementation: torch.nn.functional's, or torchvision.ops' (loaded by
    `references.torchvision_ops`, since torchvision does not import beside the CPU torch)."""
    if library == "torchvision":
        return getattr(torchvision_ops(), criterion)
    import torch

    return getattr(torch.nn.functional, criterion)


def compat_function(criterion: str, library: str = "torch"):
    """jaxloss's function with the reference's signature."""
    module = jaxloss_torchvision if library == "torchvision" else jaxloss_functional
    return getattr(module, criterion)


def jaxloss_function(case: Case):
    """The jaxloss.compat call of a case as a function of its differentiable arguments."""
    fn = compat_function(case.criterion, case.library)
    kwargs = {k: _convert(v, jnp.asarray, _jax_distance) for k, v in case.kwargs.items()}
    fixed = [jnp.asarray(a) if isinstance(a, np.ndarray) else a for a in case.args]

    def call(*differentiable):
        args = list(fixed)
        for i, value in zip(case.grad_argnums, differentiable):
            args[i] = value
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)

    primals = [fixed[i] for i in case.grad_argnums]
    return call, primals


def run_jax(case: Case, cotangent, *, jit: bool = True):
    """(value, grads) of the jaxloss call. With `jit` (default) forward and backward compile
    as one program: the code users run under jit, and 2-3x faster than op-by-op dispatch,
    which compiles every primitive of every new shape (tests/test_transformations.py checks that
    eager equals jit). ``jit=False`` runs eagerly, where value checks on concrete inputs raise
    as they do for a user's eager call."""
    call, primals = jaxloss_function(case)

    def value_and_vjp(primals, cotangent):
        out, vjp = jax.vjp(call, *primals)
        return out, vjp(cotangent.astype(out.dtype))

    run = jax.jit(value_and_vjp) if jit else value_and_vjp
    out, grads = run(primals, jnp.asarray(cotangent))
    return np.asarray(out), [np.asarray(g) for g in grads]


def array_errors(expected, actual, rtol, atol):
    """(scale-aware error, fraction of the tolerance used, all close); nan/inf as values."""
    expected = np.asarray(expected, np.float64)
    actual = np.asarray(actual, np.float64)
    if expected.shape != actual.shape:
        return np.inf, np.inf, False
    same_special = (np.isnan(expected) & np.isnan(actual)) | (
        np.isinf(expected) & (expected == actual)
    )
    finite = np.isfinite(expected) & np.isfinite(actual)
    if np.any(~(same_special | finite)):
        return np.inf, np.inf, False
    with np.errstate(invalid="ignore"):  # inf - inf outside `finite` is discarded below
        diff = np.where(finite, np.abs(expected - actual), 0.0)
    magnitude = np.where(finite, np.abs(expected), 0.0)
    # Relative to the array's largest magnitude, or to the magnitude below which the absolute
    # tolerance rules (atol / rtol): an all-but-zero gradient's noise is not a relative error.
    scale = max(float(magnitude.max(initial=0.0)), atol / rtol, np.finfo(np.float64).tiny)
    used = float(np.max(diff / (atol + rtol * magnitude), initial=0.0))
    return float(diff.max(initial=0.0)) / scale, used, used <= 1.0


def compare(case: Case) -> Outcome:
    dtype = next(a.dtype for a in case.args if isinstance(a, np.ndarray) and a.dtype.kind == "f")
    tol = dict(TOLERANCES[np.dtype(dtype)])
    magnitudes = [
        np.abs(a[np.isfinite(a)]).max(initial=0.0)
        for a in case.args
        if isinstance(a, np.ndarray) and a.dtype.kind == "f"
    ]
    tol["atol"] *= max([1.0] + magnitudes) * case.atol_scale
    t_value, t_grads, cotangent = run_torch(case)
    j_value, j_grads = run_jax(case, cotangent)
    value_error, used, ok = array_errors(t_value, j_value, **tol)
    detail = []
    if not ok:
        detail.append(f"value torch={t_value!r} jaxloss={j_value!r}")
    if np.asarray(j_value).dtype != np.asarray(t_value).dtype:
        ok = False
        detail.append(f"dtype torch={t_value.dtype} jaxloss={j_value.dtype}")
    grad_error = 0.0
    for argnum, tg, jg in zip(case.grad_argnums, t_grads, j_grads):
        error, grad_used, grad_ok = array_errors(tg, jg, **tol)
        grad_error, used, ok = max(grad_error, error), max(used, grad_used), ok and grad_ok
        if not grad_ok:
            detail.append(f"grad[{argnum}] torch={tg!r} jaxloss={jg!r}")
    return Outcome(case, value_error, grad_error, used, ok, "; ".join(detail))
