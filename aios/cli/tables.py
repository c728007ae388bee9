"""How the commands print lists: aligned columns for people, streamed JSON for programs."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    print_rows([header, *rows], column_widths(header, rows))


def column_widths(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    return [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]


def print_rows(rows: Iterable[Sequence[str]], widths: Sequence[int]) -> None:
    for row in rows:
        cells = (str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


def one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def print_json_list(items: Iterable[object]) -> None:
    """What ``print(json.dumps(list(items), indent=2))`` prints, one item at a time."""
    import textwrap  # noqa: PLC0415

    out = sys.stdout
    opened = False
    for item in items:
        out.write(",\n" if opened else "[\n")
        out.write(textwrap.indent(json.dumps(item, indent=2), "  "))
        opened = True
    out.write("\n]\n" if opened else "[]\n")
