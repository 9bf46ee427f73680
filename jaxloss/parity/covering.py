"""Pairwise covering arrays: a few option combinations that hold every pair of option values.

The full product of a criterion's options grows multiplicatively (cross-entropy's is 216
combinations per regime); most bugs need at most two options to interact, and a pairwise array
covers every pair of values of every two options in roughly (largest option)² combinations.
`pairwise` builds one with the IPOG strategy (Lei et al., 2007): the product of the first
two options, then each further option is added to the existing rows, choosing the value that
covers the most uncovered pairs, and rows are appended for the pairs still missing. It is
deterministic, so a test id always names the same inputs.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any


def full_product(space: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the option values, in order."""
    names = list(space)
    return [dict(zip(names, values)) for values in itertools.product(*space.values())]


def pairwise(space: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Combinations covering every pair of values of every two options (and every value)."""
    names = list(space)
    sizes = [len(space[name]) for name in names]
    if not all(sizes):
        raise ValueError(f"every option needs at least one value; got {dict(space)!r}")
    if len(names) <= 2:
        return full_product(space)
    # Rows hold value positions (None: still free), so any value works, hashable or not.
    rows: list[list[int | None]] = [
        list(p) for p in itertools.product(range(sizes[0]), range(sizes[1]))
    ]
    for k in range(2, len(names)):
        # Pairs (earlier option i, its value a, this option's value b) not yet in any row.
        uncovered = {(i, a, b) for i in range(k) for a in range(sizes[i]) for b in range(sizes[k])}
        # Horizontal growth: extend each row with the value that covers most missing pairs.
        for row in rows:
            best = max(
                range(sizes[k]),
                key=lambda b: (sum((i, row[i], b) in uncovered for i in range(k)), -b),
            )
            row.append(best)
            uncovered -= {(i, row[i], best) for i in range(k)}
        # Vertical growth: rows with free slots for the pairs that remain.
        added: list[list[int | None]] = []
        for i, a, b in sorted(uncovered):
            for row in added:
                if row[k] == b and row[i] is None:
                    row[i] = a
                    break
            else:
                new_row: list[int | None] = [None] * (k + 1)
                new_row[i], new_row[k] = a, b
                added.append(new_row)
        rows.extend(added)
    # Free slots take each option's first value.
    return [
        {name: space[name][position or 0] for position, name in zip(row, names)} for row in rows
    ]
