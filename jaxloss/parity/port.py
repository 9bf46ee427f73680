"""Checks a ported criterion on the user's own inputs: torch's module against jaxloss's."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .compare import TOLERANCES, array_errors


@dataclasses.dataclass
class PortCheck:
    """Both sides' value and gradients, and how far apart they are.

    ``value_error`` and ``grad_errors`` are scale-aware (the largest difference over the
    largest magnitude of torch's array); ``ok`` says whether every array agrees within
    ``rtol``/``atol`` (nan and inf compared as values). ``str()`` gives a small table.
    """

    module: str
    torch_value: np.ndarray
    jax_value: np.ndarray
    torch_grads: list[np.ndarray]
    jax_grads: list[np.ndarray]
    grad_argnums: tuple[int, ...]
    value_error: float
    grad_errors: list[float]
    ok: bool

    def __str__(self) -> str:
        def summary(a: np.ndarray) -> str:
            if a.size == 1:
                return f"{float(a.reshape(())):.9g}"
            return f"{list(a.shape)} sum {float(np.sum(a)):.9g}"

        rows = [("value", self.torch_value, self.jax_value, self.value_error)] + [
            (f"grad of input {i}", t, j, e)
            for i, t, j, e in zip(
                self.grad_argnums, self.torch_grads, self.jax_grads, self.grad_errors
            )
        ]
        lines = [
            f"{self.module}: {'agrees with' if self.ok else 'DIFFERS from'} torch",
            f"  {'':<16} {'torch':>28} {'jaxloss':>28} {'error':>9}",
        ]
        lines += [
            f"  {name:<16} {summary(t):>28} {summary(j):>28} {e:9.1e}" for name, t, j, e in rows
        ]
        return "\n".join(lines)


def check_port(
    torch_module: Any,
    *inputs: Any,
    jax_module: Any = None,
    grad_argnums: Sequence[int] = (0,),
    rtol: float | None = None,
    atol: float | None = None,
) -> PortCheck:
    """Runs a torch loss module and its jaxloss port on the same inputs and compares the
    values and the gradients with respect to the inputs in `grad_argnums`.

    The jaxloss module defaults to `jaxloss.compat.nn.from_torch` of the torch one.
    Inputs are NumPy arrays (or anything ``np.asarray`` takes) in torch's layout; float64
    inputs are compared in float64 (rtol 1e-9), float32 ones at rtol 2e-5. Both sides are
    differentiated with the same random positive cotangent, so a 'none' reduction is checked
    element by element.

    Args:
      torch_module: the torch criterion (e.g. ``torch.nn.CrossEntropyLoss(weight=w)``).
      *inputs: its forward's positional inputs.
      jax_module: the port to check (default: ``from_torch(torch_module)``).
      grad_argnums: which inputs to differentiate (they must be floating point).
      rtol: relative tolerance (default by dtype, as the parity suite's).
      atol: absolute tolerance (default by dtype).

    Returns:
      A `PortCheck`; ``print()`` it for both sides' figures.

    Examples:
      >>> import numpy as np, torch
      >>> from jaxloss.parity import check_port
      >>> logits = np.random.default_rng(0).normal(size=(8, 5))
      >>> labels = np.arange(8) % 5
      >>> check_port(torch.nn.CrossEntropyLoss(label_smoothing=0.1), logits, labels).ok
      True
    """
    import torch

    from ..compat import nn as jax_nn

    if jax_module is None:
        jax_module = jax_nn.from_torch(torch_module)
    # Python numbers and tuples (a float variance, CTC lengths) pass to both sides as they are.
    arrays = [a if isinstance(a, (int, float, tuple)) else np.asarray(a) for a in inputs]
    float_dtypes = [a.dtype for a in arrays if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    double = any(d == np.float64 for d in float_dtypes)
    tolerance = TOLERANCES[np.dtype(np.float64 if double else np.float32)]
    rtol = tolerance["rtol"] if rtol is None else rtol
    atol = tolerance["atol"] if atol is None else atol
    with jax.enable_x64(double):
        tensors: list[Any] = [
            torch.from_numpy(a.copy()) if isinstance(a, np.ndarray) else a for a in arrays
        ]
        for i in grad_argnums:
            tensors[i].requires_grad_(True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch_out = torch_module(*tensors)
        torch_value = torch_out.detach().numpy()
        cotangent = (
            np.random.default_rng(0).uniform(0.5, 1.5, torch_value.shape).astype(torch_value.dtype)
        )
        torch_grads = torch.autograd.grad(
            torch_out,
            [tensors[i] for i in grad_argnums],
            torch.from_numpy(cotangent),
            allow_unused=True,
        )
        torch_grads = [
            np.zeros(arrays[i].shape, arrays[i].dtype) if g is None else g.numpy()
            for i, g in zip(grad_argnums, torch_grads)
        ]

        fixed = [jnp.asarray(a) if isinstance(a, np.ndarray) else a for a in arrays]

        def call(*differentiable):
            args = list(fixed)
            for i, value in zip(grad_argnums, differentiable):
                args[i] = value
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return jax_module(*args)

        jax_out, vjp = jax.vjp(call, *[fixed[i] for i in grad_argnums])
        jax_grads = [np.asarray(g) for g in vjp(jnp.asarray(cotangent, jax_out.dtype))]
        jax_value = np.asarray(jax_out)
    value_error, _, ok = array_errors(torch_value, jax_value, rtol, atol)
    grad_errors = []
    for t, j in zip(torch_grads, jax_grads):
        error, _, close = array_errors(t, j, rtol, atol)
        grad_errors.append(error)
        ok = ok and close
    return PortCheck(
        type(torch_module).__name__,
        torch_value,
        jax_value,
        torch_grads,
        jax_grads,
        tuple(grad_argnums),
        value_error,
        grad_errors,
        ok,
    )
