"""The values ``config.toml`` may hold, one check each: a TOML value in, the typed value out, or
:class:`Invalid` with the words the user reads. ``aios.config`` walks the file and places each
problem on its line; the tables of fields here say which keys an agent or a hook may have.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from aios.agents.definitions import RestartPolicy
from aios.agents.formats import FORMATS
from aios.hooks.spec import EVENTS as HOOK_EVENTS
from aios.hooks.spec import FORMATS as HOOK_FORMATS

AGENT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_SECONDS = 3600.0  # for stop_timeout and start_seconds
MAX_RESTARTS = 100


class Invalid(Exception):
    """A field value that cannot be used; ``key`` narrows where it is (an env variable)."""

    def __init__(self, message: str, *key: str) -> None:
        super().__init__(message)
        self.message = message
        self.key = key


LIST_HINT = 'an argv list like ["pytest", "-x"]'


def _command(full: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        raise Invalid(f"{full} must be {LIST_HINT}, not a shell string")
    if not isinstance(value, list) or not all(map(is_arg, value)) or not value or not value[0]:
        raise Invalid(f"{full} must be a non-empty list of strings")
    return tuple(value)


def _text(full: str, value: object) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{full} must be a string, not {show(value)}")
    return value


def _cwd(full: str, value: object) -> str:
    if not (text := _text(full, value)):
        raise Invalid(f"{full} must not be empty")
    return text


def _env(full: str, value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise Invalid(f'{full} must be a table of strings, like {{ PYTHONUNBUFFERED = "1" }}')
    for key, item in value.items():
        if not key or "=" in key or "\0" in key:
            raise Invalid(f"{full} has an invalid variable name {key!r}", key)
        if not is_arg(item):
            raise Invalid(f"{full}.{key} must be a string, not {show(item)}", key)
    return value


def _seconds(full: str, value: object, *, zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"{full} must be a number of seconds, not {show(value)}")
    # The comparisons also refuse nan and inf, which TOML allows.
    low_ok = value >= 0 if zero else value > 0
    if not low_ok or not value <= MAX_SECONDS:
        floor = "at least 0" if zero else "above 0"
        raise Invalid(f"{full} must be {floor} and at most {MAX_SECONDS:g}, not {value}")
    return float(value)


def _choice(full: str, value: object, choices: Mapping[str, object]) -> str:
    if not isinstance(value, str) or value not in choices:
        names = " | ".join(f'"{name}"' for name in choices)
        raise Invalid(f"{full} must be one of {names}, not {show(value)}")
    return value


def _boolean(full: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"{full} must be true or false, not {show(value)}")
    return value


def _restart(full: str, value: object) -> RestartPolicy:
    if not isinstance(value, str) or value not in {str(policy) for policy in RestartPolicy}:
        raise Invalid(f'{full} must be "no" or "on-failure", not {show(value)}')
    return RestartPolicy(value)


# The keys an [agents.NAME] table may hold, each with what checks and converts its value.
AGENT_FIELDS: dict[str, Callable[[str, object], object]] = {
    "command": _command,
    "terminal_command": _command,
    "cwd": _cwd,
    "description": _text,
    "label": _text,
    "env": _env,
    "stop_timeout": _seconds,
    "start_seconds": lambda full, value: _seconds(full, value, zero=True),
    "stall_after": lambda full, value: _seconds(full, value, zero=True),
    "format": lambda full, value: _choice(full, value, FORMATS),
    "approvals": lambda full, value: _choice(full, value, {"never": 0, "ask": 0}),
    "approval_timeout": lambda full, value: _seconds(full, value, zero=True),
    "restart": _restart,
    "max_restarts": lambda full, value: integer(full, value, 0, MAX_RESTARTS),
    "worktree": _boolean,
    "terminal": _boolean,
}


def _events(full: str, value: object) -> frozenset[str]:
    names = " | ".join(f'"{name}"' for name in HOOK_EVENTS)
    if not isinstance(value, list) or not value:
        raise Invalid(f'{full} must be a non-empty list of events, like ["failed"], from {names}')
    for item in value:
        if item not in HOOK_EVENTS:
            hint = suggest(item, [*HOOK_EVENTS]) if isinstance(item, str) else ""
            raise Invalid(f"{full}: unknown event {show(item)}{hint}; events are {names}")
    return frozenset(value)


def _agent_names(full: str, value: object) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Invalid(f'{full} must be a list of agent names, like ["claude"]')
    for item in value:
        if not AGENT_NAME.fullmatch(item):
            raise Invalid(f"{full}: {item!r} is not an agent name")
    return frozenset(value)


MAX_URL = 2048


def _url(full: str, value: object) -> str:
    from urllib.parse import urlsplit  # noqa: PLC0415 - only for a file with hooks

    url = _text(full, value)
    if len(url) > MAX_URL or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise Invalid(f"{full} must be an address with no spaces, at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError as exc:
        raise Invalid(f"{full} is not a valid address: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"{full} must be an http:// or https:// address with a host")
    return url


# Headers http.client sets from the request itself; one written by hand would contradict it.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _headers(full: str, value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise Invalid(f'{full} must be a table of strings, like {{ Priority = "high" }}')
    for key, item in value.items():
        if not _TOKEN.fullmatch(key) or key.lower() in _OWN_HEADERS:
            raise Invalid(f"{full} cannot set a header named {key!r}", key)
        if not isinstance(item, str) or any(c in item for c in "\r\n\0"):
            raise Invalid(f"{full}.{key} must be a one-line string", key)
        try:
            item.encode("latin-1")
        except UnicodeEncodeError:
            raise Invalid(f"{full}.{key} must be Latin-1 text (HTTP headers are)", key) from None
    return value


# The keys a [[hooks]] table may hold (aios.hooks.spec.Hook).
HOOK_FIELDS: dict[str, Callable[[str, object], object]] = {
    "on": _events,
    "agents": _agent_names,
    "command": _command,
    "url": _url,
    "timeout": _seconds,
    "headers": _headers,
    "format": lambda full, value: _choice(full, value, dict.fromkeys(HOOK_FORMATS)),
}


def is_arg(value: object) -> bool:
    """A string with no NUL, which no argv element or environment value can hold."""
    return isinstance(value, str) and "\0" not in value


def integer(name: str, value: object, minimum: int, maximum: int) -> int:
    # bool is an int subclass in Python; ``true`` for a count is a mistake, not 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(f"{name} must be an integer, not {show(value)}")
    if not minimum <= value <= maximum:
        raise Invalid(f"{name} must be between {minimum} and {maximum}, not {value}")
    return value


def show(value: object) -> str:
    """A value as the user wrote it, short enough for one line of a message."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    kinds: dict[type, str] = {dict: "a table", list: "a list"}
    return kinds.get(type(value), str(value))


def suggest(word: str, choices: list[str]) -> str:
    import difflib  # noqa: PLC0415 - only for a config file with a typo in it

    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
