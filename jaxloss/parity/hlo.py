"""What a compiled XLA program moves between devices, read from its HLO text: each
collective's kind and bytes per device, counted once per execution (a collective in a while
loop's body counts as often as XLA's known trip count says the loop runs). Used by the
sharded benchmarks and by the tests that check a loss's communication."""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
_BYTES = {
    "f64": 8, "f32": 4, "bf16": 2, "f16": 2, "s64": 8, "u64": 8, "s32": 4, "u32": 4, "s16": 2,
    "u16": 2, "s8": 1, "u8": 1, "pred": 1,
}  # fmt: skip
_SHAPE = re.compile(r"(" + "|".join(_BYTES) + r")\[([\d,]*)\]")
_OP = re.compile(r"= (.*?) (" + "|".join(COLLECTIVES) + r")(?:-start)?\(")


class Collective(NamedTuple):
    kind: str
    elements: int  # per execution, summed over the op's result arrays
    bytes: int
    executions: int  # how many times it runs per call of the program


def _computations(hlo: str) -> dict[str, list[str]]:
    """Computation name -> its instruction lines."""
    bodies: dict[str, list[str]] = {}
    name = None
    for line in hlo.splitlines():
        header = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
        if header and not line.startswith(" "):
            name = header.group(1)
            bodies[name] = []
        elif name is not None and line.startswith(" "):
            bodies[name].append(line)
    return bodies


def _executions(hlo: str, bodies: dict[str, list[str]]) -> dict[str, int]:
    """How many times each computation runs per call of the entry computation: a while body
    its loop's known trip count times its caller's, a called computation its caller's."""
    entry = re.search(r"^ENTRY %?([\w.\-]+)", hlo, re.MULTILINE)
    runs = {entry.group(1) if entry else next(iter(bodies)): 1}
    pending = list(runs)
    while pending:
        caller = pending.pop()
        for line in bodies.get(caller, []):
            trips = 1
            if " while(" in line:
                known = re.search(r'"known_trip_count":\{"n":"(\d+)"\}', line)
                trips = int(known.group(1)) if known else 1
            for key, callee in re.findall(r"\b(body|condition|calls|to_apply)=%?([\w.\-]+)", line):
                count = runs[caller] * (trips if key == "body" else 1)
                if runs.get(callee, 0) < count:
                    runs[callee] = count
                    pending.append(callee)
    return runs


def collectives(hlo: str) -> list[Collective]:
    """Every collective of a compiled program (``jitted.lower(...).compile().as_text()``)."""
    bodies = _computations(hlo)
    runs = _executions(hlo, bodies)
    found = []
    for name, lines in bodies.items():
        for line in lines:
            match = _OP.search(line)
            if not match:
                continue
            shapes = _SHAPE.findall(match.group(1))
            sizes = [int(np.prod([int(d) for d in dims.split(",") if d], dtype=np.int64))
                     for _, dims in shapes]  # fmt: skip
            size_bytes = sum(_BYTES[t] * n for (t, _), n in zip(shapes, sizes))
            found.append(Collective(match.group(2), sum(sizes), size_bytes, runs.get(name, 1)))
    return found


def bytes_by_kind(found: list[Collective]) -> dict[str, int]:
    """Bytes moved per call of the program, by collective kind."""
    totals: dict[str, int] = {}
    for c in found:
        totals[c.kind] = totals.get(c.kind, 0) + c.bytes * c.executions
    return totals
