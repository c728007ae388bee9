"""The one table ``make bench`` prints: each figure beside its floor, the ratio, the goal, met.

A goal is judged on the figures of the same run only: the floor was measured minutes apart on
the same machine under the same load, so the ratio holds where absolute figures would not.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

MiB = 1024 * 1024


class Unit(Enum):
    SECONDS = "s"
    BYTES = "B"
    RATE = "B/s"
    COUNT = ""

    def format(self, value: float) -> str:
        if self is Unit.COUNT:
            return f"{value:,.0f}"
        if self is Unit.SECONDS:
            return f"{value:.3f} s" if value >= 1 else f"{value * 1000:.1f} ms"
        if self is Unit.BYTES:
            return f"{value / MiB:.1f} MiB"
        return f"{value / MiB:.0f} MiB/s"


@dataclass(frozen=True)
class Goal:
    """What the figure must satisfy, and how to say it.

    ``kind``: ``ratio_max`` (aios / floor ≤ limit), ``ratio_min`` (≥ limit), ``max``
    (aios ≤ limit, absolute) or ``delta_max`` (aios - floor ≤ limit).
    """

    kind: str
    limit: float
    unit: Unit

    def describe(self) -> str:
        if self.kind == "ratio_max":
            return f"≤ {self.limit:g}x"
        if self.kind == "ratio_min":
            return f"≥ {self.limit:g}x"
        if self.kind == "delta_max":
            return f"≤ floor + {self.unit.format(self.limit)}"
        return f"≤ {self.unit.format(self.limit)}"

    def met(self, aios: float, floor: float | None) -> bool | None:
        if self.kind == "max":
            return aios <= self.limit
        if floor is None or floor <= 0:
            return None
        if self.kind == "ratio_max":
            return aios / floor <= self.limit
        if self.kind == "ratio_min":
            return aios / floor >= self.limit
        return aios - floor <= self.limit


def ratio_max(limit: float, unit: Unit) -> Goal:
    return Goal("ratio_max", limit, unit)


def ratio_min(limit: float, unit: Unit) -> Goal:
    return Goal("ratio_min", limit, unit)


def at_most(limit: float, unit: Unit) -> Goal:
    return Goal("max", limit, unit)


def delta_max(limit: float, unit: Unit) -> Goal:
    return Goal("delta_max", limit, unit)


@dataclass
class Figure:
    name: str
    aios: float | None  # None: not measured (``why`` says why)
    floor: float | None
    goal: Goal | None  # None: shown for information
    floor_name: str = ""
    why: list[str] = field(default_factory=list)  # printed when the goal is not met
    wrong: str | None = None  # the figure is off: it measured something other than asked

    @property
    def met(self) -> bool | None:
        if self.wrong is not None:
            return False
        if self.goal is None or self.aios is None:
            return None
        return self.goal.met(self.aios, self.floor)


def percentile(samples: Sequence[float], p: float) -> float:
    """The nearest-rank percentile (p in 0..100) of ``samples``."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def unmeasured(name: str, goal: Goal | None, reason: str) -> Figure:
    return Figure(name, None, None, goal, why=[reason])


def render(figures: Sequence[Figure], write: Callable[[str], None] = print) -> None:
    rows = [("figure", "AIOS", "floor", "ratio", "goal", "met")]
    for f in figures:
        unit = f.goal.unit if f.goal is not None else Unit.SECONDS
        aios = "—" if f.aios is None else unit.format(f.aios)
        floor = "—" if f.floor is None else unit.format(f.floor)
        if f.floor_name and f.floor is not None:
            floor += f" ({f.floor_name})"
        ratio = "—" if f.aios is None or not f.floor else f"{f.aios / f.floor:.2f}x"
        met = {True: "yes", False: "NO", None: "—"}[f.met]
        if f.aios is None:
            met = "not measured"
        rows.append((f.name, aios, floor, ratio, f.goal.describe() if f.goal else "—", met))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        write(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
        if i == 0:
            write("  ".join("-" * width for width in widths))
    for f in figures:
        if f.wrong is not None:
            f.why.insert(0, f.wrong)
    notes = [f for f in figures if f.why and f.met is not True]
    if notes:
        write("")
        for f in notes:
            write(f"{f.name}:")
            for line in f.why:
                write(f"  {line}")
