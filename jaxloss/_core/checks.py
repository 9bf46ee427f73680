"""Argument, shape and dtype checks shared by every criterion.

Structural checks (shapes, dtypes, option values) run at call or trace time and raise
``ValueError``/``TypeError`` with a message that names the function, the argument, what was
expected and what arrived. Checks that need array *values* (a class index out of range, a
probability above 1) run only when the inputs are concrete; under ``jax.jit`` they are skipped
unless the caller opted into checked mode (see `jaxloss.checked`), in which case they
become ``checkify`` checks.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Sequence
from typing import Any, overload

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer
from jax.experimental import checkify
from jax.typing import ArrayLike

_state = threading.local()


def _checking_enabled() -> bool:
    return getattr(_state, "checking", False)


@contextlib.contextmanager
def checking_enabled():
    """While active, value checks on traced inputs are emitted as ``checkify.check``."""
    previous = _checking_enabled()
    _state.checking = True
    try:
        yield
    finally:
        _state.checking = previous


def describe(x: Any) -> str:
    """A short 'dtype[shape]' description of an array-like, for error messages."""
    if hasattr(x, "dtype") and hasattr(x, "shape"):
        return f"{x.dtype}{list(x.shape)}"
    return f"{type(x).__name__} {x!r}"


def is_concrete(x: Any) -> bool:
    return not isinstance(x, Tracer)


def concrete_value(x: Any) -> np.ndarray | None:
    """`x` as a NumPy array when its value is known now: a plain array, or a tracer over a
    known value (under ``jax.grad`` or ``jax.vjp`` without ``jit``); None under ``jit``."""
    if is_concrete(x):
        return np.asarray(x)
    try:
        from jax._src.core import to_concrete_value  # no public equivalent in jax 0.10
    except ImportError:  # pragma: no cover - older or newer jax: check concrete inputs only
        return None
    value = to_concrete_value(x)
    return None if value is None else np.asarray(value)


def as_array(fn: str, name: str, x: Any) -> jax.Array:
    """Converts array-likes to a JAX array; rejects things that are not numeric arrays."""
    if isinstance(x, jax.Array):
        return x
    try:
        arr = jnp.asarray(x)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{fn}: `{name}` must be an array; got {type(x).__name__}.") from err
    return arr


def _array_of_kind(fn: str, name: str, x: Any, kind: Any, expected: str, hint: str) -> jax.Array:
    arr = as_array(fn, name, x)
    if not jnp.issubdtype(arr.dtype, kind):
        raise TypeError(f"{fn}: `{name}` must {expected}; got {describe(arr)}.{hint}")
    return arr


def float_array(fn: str, name: str, x: Any, hint: str = "") -> jax.Array:
    return _array_of_kind(fn, name, x, jnp.floating, "be a floating-point array", hint)


def int_array(fn: str, name: str, x: Any, hint: str = "") -> jax.Array:
    return _array_of_kind(fn, name, x, jnp.integer, "hold integer class indices", hint)


def real_array(fn: str, name: str, x: Any) -> jax.Array:
    """Float or integer (or bool) array; integers are accepted where torch accepts them."""
    arr = as_array(fn, name, x)
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"{fn}: `{name}` must be a real array; got {describe(arr)}.")
    return arr


def reduction(fn: str, value: Any, allowed: Sequence[str] = ("none", "mean", "sum")) -> str:
    if not isinstance(value, str) or value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{fn}: `reduction` must be one of {options}; got {value!r}.")
    return value


def axis(fn: str, name: str, value: Any, ndim: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{fn}: `axis` must be an int; got {value!r}.")
    if not -ndim <= value < ndim:
        raise ValueError(
            f"{fn}: `axis`={value} is out of range for `{name}` with {ndim} dimension(s)."
        )
    return int(value) % ndim


def python_bool(fn: str, name: str, value: Any) -> bool:
    """A static flag: Python's True or False (numpy's bool too), nothing that merely tests
    true."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: `{name}` must be True or False; got {value!r}.")
    return bool(value)


def python_number(
    fn: str, name: str, value: Any, *, low=None, high=None, low_inclusive=True, high_inclusive=True
) -> Any:
    """Checks a scalar option; bounds are only enforced when the value is concrete."""
    if isinstance(value, Tracer):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{fn}: `{name}` must be a real number; got {value!r}.") from err
    too_low = low is not None and (number < low if low_inclusive else number <= low)
    too_high = high is not None and (number > high if high_inclusive else number >= high)
    if too_low or too_high:
        lo = "" if low is None else ("[" if low_inclusive else "(") + f"{low}"
        hi = "" if high is None else f"{high}" + ("]" if high_inclusive else ")")
        if low is not None and high is not None:
            expected = f"in {lo}, {hi}"
        elif low is not None:
            expected = f"{'>=' if low_inclusive else '>'} {low}"
        else:
            expected = f"{'<=' if high_inclusive else '<'} {high}"
        raise ValueError(f"{fn}: `{name}` must be {expected}; got {value!r}.")
    return value


def shapes_equal(fn: str, name_a: str, a, name_b: str, b, hint: str = "") -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"{fn}: `{name_b}` must have the same shape as `{name_a}` {list(a.shape)}; "
            f"got {list(b.shape)}.{hint}"
        )


def broadcast_shape(fn: str, names: Sequence[str], arrays: Sequence[Any]) -> tuple[int, ...]:
    try:
        return tuple(jnp.broadcast_shapes(*(tuple(a.shape) for a in arrays)))
    except ValueError:
        shapes = ", ".join(f"`{n}` {list(a.shape)}" for n, a in zip(names, arrays))
        raise ValueError(f"{fn}: shapes do not broadcast together: {shapes}.") from None


def warn_if_broadcasting(fn: str, predictions, targets) -> None:
    """torch warns (and still broadcasts) when a regression target's shape differs."""
    if tuple(predictions.shape) != tuple(targets.shape):
        warnings.warn(
            f"{fn}: `targets` shape {list(targets.shape)} differs from `predictions` shape "
            f"{list(predictions.shape)}; they will be broadcast, which is rarely what was meant.",
            UserWarning,
            stacklevel=4,
        )


def broadcasts_to(fn: str, name: str, x, shape: Sequence[int], what: str) -> None:
    """`x` must broadcast to `shape` without enlarging it (a weight or mask of a loss)."""
    try:
        out = jnp.broadcast_shapes(tuple(x.shape), tuple(shape))
    except ValueError:
        out = None
    if out != tuple(shape):
        raise ValueError(
            f"{fn}: `{name}` must broadcast to the shape of {what} {list(shape)}; "
            f"got {list(x.shape)}."
        )


@overload
def where_mask(
    fn: str, where: None, shape: Sequence[int], what: str = ..., *, name: str = ...
) -> None: ...
@overload
def where_mask(
    fn: str, where: ArrayLike, shape: Sequence[int], what: str = ..., *, name: str = ...
) -> jax.Array: ...
def where_mask(
    fn: str,
    where: ArrayLike | None,
    shape: Sequence[int],
    what: str = "the unreduced loss",
    *,
    name: str = "where",
) -> jax.Array | None:
    """Validates a boolean mask (`where`, or the argument `name`) that broadcasts to the
    per-element loss shape."""
    if where is None:
        return None
    mask = as_array(fn, name, where)
    if mask.dtype != jnp.bool_:
        raise TypeError(f"{fn}: `{name}` must be a boolean mask; got {describe(mask)}.")
    broadcasts_to(fn, name, mask, shape, what)
    return jnp.broadcast_to(mask, tuple(shape))


@overload
def class_mask(fn: str, mask: None, shape: Sequence[int], axis: int) -> None: ...
@overload
def class_mask(fn: str, mask: ArrayLike, shape: Sequence[int], axis: int) -> jax.Array: ...
def class_mask(
    fn: str, mask: ArrayLike | None, shape: Sequence[int], axis: int
) -> jax.Array | None:
    """Validates a boolean `class_mask` for scores of `shape` with classes on `axis`.

    Accepts ``(C,)`` (the same classes for every position) or any shape that broadcasts to
    the scores'. Returns ``(C,)`` when the mask is the same for every position (also for a
    broadcast ``(1, C)``), else the mask broadcast to the scores' shape.
    """
    if mask is None:
        return None
    m = as_array(fn, "class_mask", mask)
    if m.dtype != jnp.bool_:
        raise TypeError(
            f"{fn}: `class_mask` must be a boolean mask (True = the class takes part); got "
            f"{describe(m)}."
        )
    num_classes = shape[axis]
    if m.ndim == 1 and m.shape[0] == num_classes:
        return m
    broadcasts_to(
        fn, "class_mask", m, shape, f"the scores (or [{num_classes}], one mask for every row)"
    )
    lead = len(shape) - m.ndim
    if all(size == 1 for d, size in enumerate(m.shape) if d + lead != axis) and (
        axis >= lead and m.shape[axis - lead] == num_classes
    ):
        return m.reshape(num_classes)
    return jnp.broadcast_to(m, tuple(shape))


def class_weight(fn: str, weight: Any, num_classes: int, name: str = "class_weights"):
    """Per-class weights: a float ``(num_classes,)`` array, or None."""
    if weight is None:
        return None
    w = float_array(fn, name, weight)
    if w.shape != (num_classes,):
        raise ValueError(
            f"{fn}: `{name}` must hold one weight per class, shape [{num_classes}]; "
            f"got {list(w.shape)}."
        )
    return w


def value_check(fn: str, ok, message: str, *format_args) -> None:
    """Raises ValueError when `ok` (a boolean array) is not all true.

    Inputs whose values are known now (concrete, or under grad/vjp without jit) are checked
    now. Traced inputs are checked only in checked mode, through
    ``checkify.check``; otherwise the criterion's documented behaviour under jit applies.
    `message` may hold ``{}`` placeholders filled from `format_args` (arrays).
    """
    known = concrete_value(ok)
    if known is not None:
        if not bool(np.all(known)):
            values = [concrete_value(_forced(a)) for a in format_args]
            shown = ["?" if v is None else np.asarray(v).tolist() for v in values]
            raise ValueError(f"{fn}: " + message.format(*shown))
    elif _checking_enabled():
        checkify.check(jnp.all(ok), f"{fn}: " + message, *[_forced(a) for a in format_args])


def _forced(arg):
    """A format argument's value: `first_violation` passes a thunk, so that nothing is traced
    for the message unless a check can fail (under jit with sharded inputs, even an unused
    gather would need a sharding rule)."""
    return arg() if callable(arg) else arg


def first_violation(values, ok):
    """A thunk for the first element of `values` where `ok` is false (the first element if
    none), evaluated by `value_check` only when it reports a failure."""

    def first():
        flat_ok = jnp.ravel(ok)
        if not flat_ok.size:
            return jnp.zeros((), values.dtype)
        return jnp.ravel(values)[jnp.argmin(flat_ok)]

    return first


def known_zero(option: Any) -> bool:
    """True only for an option known to be 0 now; a traced option (under jit) may be anything,
    so code specialised to a zero option (skipped smoothing terms, plain L1) is not taken."""
    return is_concrete(option) and bool(np.all(np.asarray(option) == 0))


def multi_margin_options(fn: str, p: Any, weight: Any = None) -> None:
    """multi_margin_loss's p in {1, 2} and one-dimensional class weights (torch checks both
    when the module is built, so the compat module calls this too)."""
    if isinstance(p, bool) or p not in (1, 2):
        raise ValueError(f"{fn}: `p` must be 1 or 2; got {p!r}.")
    if weight is not None and np.ndim(weight) != 1:
        raise ValueError(
            f"{fn}: `class_weights` must be one-dimensional (one weight per class); got "
            f"shape {list(np.shape(weight))}."
        )


def head_options(fn: str, label_smoothing: Any, z_loss: Any, softcap: Any) -> None:
    """The softmax head's options: ε in [0, 1], z-loss λ >= 0, soft-cap c > 0 or None."""
    python_number(fn, "label_smoothing", label_smoothing, low=0.0, high=1.0)
    python_number(fn, "z_loss", z_loss, low=0.0)
    if softcap is not None:
        python_number(fn, "softcap", softcap, low=0.0, low_inclusive=False)


def int_in_range(fn: str, name: str, value: Any, low: int, high: int, what: str = "") -> int:
    """A Python int in [low, high] (bool excluded), else a ValueError naming `name`."""
    if (
        not isinstance(value, (int, np.integer))
        or isinstance(value, bool)
        or not (low <= value <= high)
    ):
        raise ValueError(f"{fn}: `{name}` must be an int in [{low}, {high}]{what}; got {value!r}.")
    return int(value)


def head_bias(fn: str, bias: Any, num_classes: int) -> jax.Array | None:
    """A linear head's optional ``(V,)`` bias, checked."""
    if bias is None:
        return None
    bias = float_array(fn, "bias", bias)
    if bias.shape != (num_classes,):
        raise ValueError(f"{fn}: `bias` must have shape [{num_classes}]; got {list(bias.shape)}.")
    return bias


def vocabulary_mask(
    fn: str, mask: Any, valid_vocab_size: Any, num_classes: int, what: str = " (V = w.shape[0])"
) -> jax.Array | None:
    """The (V,) mask of a vocabulary from `class_mask` (`mask`) or `valid_vocab_size` (None
    when neither is given); `what` says where V comes from."""
    if valid_vocab_size is not None:
        if mask is not None:
            raise ValueError(f"{fn}: give `class_mask` or `valid_vocab_size`, not both.")
        int_in_range(fn, "valid_vocab_size", valid_vocab_size, 1, num_classes, what)
        return jnp.arange(num_classes) < valid_vocab_size
    # One mask for every token: the shared check, with the vocabulary as the scores' shape.
    return class_mask(fn, mask, (num_classes,), 0)


def linear_head(
    fn: str, x: Any, w: Any, labels: Any, reduction_name: Any, chunk_size: Any
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The arguments of a linear-head loss: x (..., D), w (V, D) (or a vocabulary block of it)
    and labels x.shape[:-1], checked, with the reduction and the chunk size."""
    x = float_array(fn, "x", x)
    w = float_array(fn, "w", w)
    labels = int_array(fn, "labels", labels)
    reduction(fn, reduction_name, ("none", "mean", "sum", "sum_and_count"))
    if x.ndim < 1 or w.ndim != 2 or w.shape[1] != x.shape[-1]:
        raise ValueError(
            f"{fn}: `w` must be (V, D) with D = x.shape[-1] = "
            f"{x.shape[-1] if x.ndim else '?'}; got x {list(x.shape)} and w "
            f"{list(w.shape)}."
        )
    if labels.shape != x.shape[:-1]:
        raise ValueError(
            f"{fn}: `labels` must have shape x.shape[:-1] = {list(x.shape[:-1])}; "
            f"got {list(labels.shape)}."
        )
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"{fn}: `chunk_size` must be a positive int; got {chunk_size!r}.")
    return x, w, labels


def two_heads(
    fn: str, x_student: Any, w_student: Any, x_teacher: Any, w_teacher: Any, chunk_size: Any
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """The heads of a fused distillation loss, checked: x_student (..., D_s) with w_student
    (V, D_s), x_teacher (..., D_t) over the same tokens with w_teacher (V, D_t) (or vocabulary
    blocks of both), and the chunk size."""
    x_s, w_s = float_array(fn, "x_student", x_student), float_array(fn, "w_student", w_student)
    x_t, w_t = float_array(fn, "x_teacher", x_teacher), float_array(fn, "w_teacher", w_teacher)
    for who, x, w in (("student", x_s, w_s), ("teacher", x_t, w_t)):
        if x.ndim < 1 or w.ndim != 2 or w.shape[1] != x.shape[-1]:
            raise ValueError(
                f"{fn}: `w_{who}` must be (V, D) with D = x_{who}.shape[-1] = "
                f"{x.shape[-1] if x.ndim else '?'}; got x_{who} {list(x.shape)} and "
                f"w_{who} {list(w.shape)}."
            )
    if x_t.shape[:-1] != x_s.shape[:-1]:
        raise ValueError(
            f"{fn}: `x_teacher` must hold the student's tokens, leading shape "
            f"{list(x_s.shape[:-1])}; got {list(x_t.shape[:-1])}."
        )
    if w_t.shape[0] != w_s.shape[0]:
        raise ValueError(
            f"{fn}: the heads must share the vocabulary: `w_student` has {w_s.shape[0]} rows "
            f"and `w_teacher` {w_t.shape[0]}; pad the smaller head and pass valid_vocab_size."
        )
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"{fn}: `chunk_size` must be a positive int; got {chunk_size!r}.")
    return x_s, w_s, x_t, w_t
