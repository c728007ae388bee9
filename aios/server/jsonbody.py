"""Request bodies as JSON: decoded in one place, strictly, before any route runs.

Python's ``json`` takes more than JSON means and more than AIOS can hold, and fails in ways that
are not a ``JSONDecodeError``: ``NaN`` and ``Infinity`` literals, numbers that overflow to
``inf`` (``1e400``), integers of any length (past 4300 digits ``int()`` raises a plain
``ValueError``), duplicate keys (the last silently wins, where another parser may take the
first), nesting deep enough to exhaust the stack. Each of these, and a body that is not UTF-8,
is refused with a 400 that says what was wrong.

Every JSON body is decoded by a hook that runs after the security checks and before the route,
so the rule holds on every route, also those that ignore their body (a 400 there comes before
anything is done).
"""

from __future__ import annotations

import json
from typing import Any, Final

from quart import Quart, g, request

from aios.server.errors import ApiError
from aios.server.security import UNSAFE_METHODS

# Integers as SQLite and every other 64-bit consumer hold them.
INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**63 - 1
# Deeper than anything AIOS reads (its bodies are flat objects); far below the recursion limit,
# so an error message that shows a value can never recurse out of the stack either.
MAX_DEPTH: Final = 32
_INT_DIGITS: Final = len(str(INT_MAX))


class BadJson(ValueError):
    """A body that is not JSON AIOS accepts; the message says why."""


def decode(raw: bytes) -> Any:
    """The JSON value in ``raw``; BadJson for anything but UTF-8 JSON within AIOS's limits."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadJson(
            f"the body is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at {exc.start})"
        ) from exc
    try:
        value = json.loads(
            text,
            parse_int=_integer,
            parse_float=_float,
            parse_constant=_constant,
            object_pairs_hook=_object,
        )
    except json.JSONDecodeError as exc:
        raise BadJson(f"malformed JSON: {exc}") from exc
    except RecursionError as exc:  # [[[[...: the parser recurses once per level
        raise BadJson(f"malformed JSON: nested too deeply (more than {MAX_DEPTH} levels)") from exc
    if _depth(value) > MAX_DEPTH:
        raise BadJson(f"malformed JSON: nested too deeply (more than {MAX_DEPTH} levels)")
    return value


def body() -> Any:
    """The request's JSON body as the hook decoded it; ApiError 400 if it is missing."""
    if "json_body" not in g:
        raise ApiError(400, "malformed JSON: the body is empty")
    return g.json_body


def install(app: Quart) -> None:
    """Decode every JSON body up front (after the security hooks, which ``create_app`` installs
    first: nothing from an unauthenticated request is ever parsed)."""
    app.before_request(_decode_body)


async def _decode_body() -> None:
    if request.method not in UNSAFE_METHODS or request.mimetype != "application/json":
        return  # a GET's body means nothing: it is never read
    raw = await request.get_data(cache=True, as_text=False, parse_form_data=False)
    if not raw:
        return  # no body (``aios stop`` posts none): a route that needs one says so
    try:
        g.json_body = decode(raw)
    except BadJson as exc:
        raise ApiError(400, str(exc)) from exc


def _integer(literal: str) -> int:
    digits = literal.lstrip("-")
    if len(digits) <= _INT_DIGITS:
        value = int(literal)
        if INT_MIN <= value <= INT_MAX:
            return value
    raise BadJson(
        f"JSON number {shown(literal)} is out of range: integers must be from -2^63 to 2^63-1"
    )


def _float(literal: str) -> float:
    value = float(literal)
    if value in (float("inf"), float("-inf")):
        raise BadJson(f"JSON number {shown(literal)} is out of range for a 64-bit float")
    return value


def _constant(name: str) -> Any:
    raise BadJson(f"malformed JSON: {name} is not a JSON value (JSON has no NaN or Infinity)")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise BadJson(f"the key {shown(repr(key))} appears twice in one JSON object")
        result[key] = value
    return result


def shown(text: str) -> str:
    """A literal as an error message quotes it: a long one by its ends and its length."""
    if len(text) <= 40:
        return text
    return f"{text[:12]}…{text[-6:]} ({len(text)} characters)"


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level + 1)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest
