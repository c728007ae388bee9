"""What the server's routes share: finding a run, reading a request's fields, and the limits.

The JSON API, the pages and the live parts all take these from here, so no route module
imports another.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from quart import request

from aios.runs import Permission, Run
from aios.server.context import daemon
from aios.server.errors import ApiError
from aios.server.jsonbody import body as json_body
from aios.server.jsonbody import shown

# Byte offsets into a log: the largest a file offset can be (signed 64 bits).
MAX_OFFSET = 2**63 - 1
DECISIONS = ("allow", "always", "deny")  # the answers to a request ("always" where offered)
GRACEFUL_TIMEOUT = 5.0  # Hypercorn's grace for open requests (aios.host sets it from this)


def parse_permission(value: str | None) -> Permission | None:
    if value is None:
        return None
    try:
        return Permission(value)
    except ValueError:
        choices = ", ".join(p.value for p in Permission)
        raise ApiError(422, f"field 'permission' must be one of {choices}, not {value!r}") from None


async def find_run(run_id: str) -> Run:
    """The run an id or unambiguous prefix names (else 404 or 400, by ``errors.STATUS``)."""
    return await daemon().find_run(run_id)


def json_object() -> dict[str, Any]:
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(422, f"the body must be a JSON object, not {type(body).__name__}")
    return body


def only_fields(body: dict[str, Any], fields: set[str]) -> None:
    unknown = sorted(set(body) - fields)
    if unknown:
        expected = ", ".join(sorted(fields))
        raise ApiError(422, f"unknown field {shown(repr(unknown[0]))}; expected {expected}")


def required_string(body: dict[str, Any], name: str) -> str:
    value = optional_string(body, name)
    if value is None or not value.strip():
        raise ApiError(422, f"field {name!r} is required and must be a non-empty string")
    return value


def optional_string(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise ApiError(422, f"field {name!r} must be a string, not {type(value).__name__}")
    if value is not None:
        check_text(name, value)
    return value


def optional_bool(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise ApiError(422, f"field {name!r} must be true or false, not {shown(json.dumps(value))}")
    return value


def bool_arg(name: str) -> bool:
    raw = request.args.get(name)
    if raw is None:
        return False
    if raw.lower() not in ("true", "false", "1", "0"):
        raise ApiError(422, f"query parameter {name!r} must be true or false, not {raw!r}")
    return raw.lower() in ("true", "1")


def check_text(name: str, value: str) -> None:
    """Text that can reach an agent's argv, its environment and the history database."""
    if "\x00" in value:
        raise ApiError(
            422, f"field {name!r} contains a NUL character, which a process argument cannot hold"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # JSON's "\ud800": a lone surrogate, not a character
        raise ApiError(
            422, f"field {name!r} is not valid Unicode: a lone surrogate at position {exc.start}"
        ) from exc
