"""Numbers in query parameters, read strictly: digits 0-9 and a range, or a 422 that says so.

``int()`` takes more than a query parameter should mean (``" 5"``, ``"+5"``, ``"1_000"``, other
scripts' digits such as ``"٣"``) and raises for more than 4300 digits; here only ASCII digits
are a number, and a number past the range is refused by its length before it is converted.
"""

from __future__ import annotations

import re

from quart import request

from aios.server.errors import ApiError
from aios.server.jsonbody import shown

_NUMBER = re.compile(r"-?[0-9]+")


def int_arg(name: str, default: int, minimum: int, maximum: int) -> int:
    """Query parameter ``name`` as an integer from ``minimum`` to ``maximum``; ``default`` when
    it is absent."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not _NUMBER.fullmatch(raw):
        raise ApiError(
            422,
            f"query parameter {name!r} must be an integer (digits 0-9), not {shown(repr(raw))}",
        )
    # A number with more digits than the bounds is out of range: refused without converting it.
    digits = raw.lstrip("-").lstrip("0")
    widest = max(len(str(abs(minimum))), len(str(abs(maximum))))
    value = int(raw) if len(digits) <= widest else None
    if value is None or not minimum <= value <= maximum:
        raise ApiError(422, f"query parameter {name!r} must be {minimum}..{maximum}")
    return value
