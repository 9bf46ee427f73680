"""Keywords renamed in the native API, kept working for a while: the old name still works and
warns once per call site with a `DeprecationWarning` that names the new one.

The native vocabulary (docs/conventions.md) gives each name one meaning across families:
``class_weights`` are per-class ``(C,)`` weights, ``weights`` are per-element weights
broadcast against the unreduced loss, and ``log_targets`` says targets are given in log space.
The compat layers keep their references' names exactly (torch's ``weight``, ``log_target``).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def renamed_keywords(**old_to_new: str) -> Callable[[F], F]:
    """Accepts each old keyword as an alias of its new name, with a DeprecationWarning."""

    def decorate(function: F) -> F:
        name = function.__name__

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(
                            f"{name}: give `{new}` (the new name of `{old}`), not both."
                        )
                    warnings.warn(
                        f"{name}: `{old}` is renamed `{new}`; `{old}` will be removed.",
                        DeprecationWarning,
                        stacklevel=2,
                    )
                    kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        wrapper.renamed_keywords = dict(old_to_new)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
