"""How the fused loss multiplies 16-bit operands: natively (bf16/f16 operands, float32
accumulation) or as float32 (operands upcast, float32 matmuls), whichever is faster here.

On GPUs and TPUs, and on CPUs with native bf16 arithmetic (AVX-512 BF16, AMX), the native
form is several times faster than float32. On CPUs without it (AVX2-only machines) XLA's
16-bit matmul with float32 accumulation has no fast kernel and was measured slower than
float32's: a fused bf16 loss there ran at 1.3-1.5x the time of the naive loss. Which form is
faster is a property of the CPU and the shape, so on CPU it is measured once per (dtype,
chunk rows, depth, width) and cached for the process: both forms of one chunk's matmul, a few
interleaved runs each, the faster kept. Either form accumulates in float32, so the choice
changes speed, not accuracy (float32 keeps the logits' gradient in float32 too).

``JAXLOSS_MATMUL_16BIT=native`` or ``=float32`` fixes the choice (no measurement).
"""

from __future__ import annotations

import functools
import os
import time
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

MatmulForm = Literal["native", "float32"]
_ENVIRONMENT = "JAXLOSS_MATMUL_16BIT"
_MEASURED_WIDTH = 8192  # columns of the measured matmul: enough to reach a kernel's speed


def matmul(a, b, contract, form: MatmulForm = "native"):
    """a·b contracting the given axes, accumulating (and returning) float32 or wider."""
    out = jnp.promote_types(jnp.promote_types(a.dtype, b.dtype), jnp.float32)
    if form == "float32":
        a, b = a.astype(out), b.astype(out)
    return lax.dot_general(a, b, (contract, ((), ())), preferred_element_type=out)


def form_for(dtype, rows: int, depth: int, width: int) -> MatmulForm:
    """The matmul form of a (rows, depth) x (depth, width) product of `dtype` operands."""
    dtype = jnp.dtype(dtype)
    if dtype.itemsize != 2 or not jnp.issubdtype(dtype, jnp.floating):
        return "native"
    chosen = os.environ.get(_ENVIRONMENT)
    if chosen:
        if chosen not in ("native", "float32"):
            raise ValueError(f"{_ENVIRONMENT} must be 'native' or 'float32'; got {chosen!r}.")
        return chosen  # type: ignore[return-value]
    if jax.default_backend() != "cpu":
        return "native"
    return _measured(dtype.name, rows, depth, min(width, _MEASURED_WIDTH))


@functools.cache
def _measured(dtype: str, rows: int, depth: int, width: int) -> MatmulForm:
    """Times both forms of one chunk's logits matmul on this CPU; the faster one."""
    with jax.ensure_compile_time_eval():  # runs now, also when called while tracing
        rng = np.random.default_rng(0)
        a = jnp.asarray(rng.normal(size=(rows, depth)), dtype)
        b = jnp.asarray(rng.normal(size=(width, depth)), dtype)
        forms: tuple[MatmulForm, ...] = ("native", "float32")
        runs = {
            form: jax.jit(functools.partial(matmul, contract=((1,), (1,)), form=form))
            for form in forms
        }
        for run in runs.values():
            jax.block_until_ready(run(a, b))  # compile
        times: dict[str, list[float]] = {form: [] for form in forms}
        for _ in range(3):
            for form, run in runs.items():
                start = time.perf_counter()
                jax.block_until_ready(run(a, b))
                times[form].append(time.perf_counter() - start)
    return min(forms, key=lambda form: float(np.median(times[form])))
