"""Secrets hidden from what AIOS shows and logs of a hook: the settings page, the API, the CLI.

What counts as a secret in an address: the userinfo (a password, or a token passed as a user
name), the values of query parameters whose name says they are one (``token``, ``key``,
``secret``...), and path segments that look like generated credentials (Slack's and Discord's
webhook addresses carry theirs in the path). An ntfy topic of ordinary length is shown: it is
a name, not a password. Header values are always hidden; their names are shown.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

HIDDEN = "***"
# Query parameter names that carry credentials (matched as a part of the name, any case).
_SECRET_NAME = re.compile(r"token|key|secret|pass|pwd|auth|sig|session|credential", re.I)
# A path segment of 20+ characters mixing letters and digits: a generated token, not a word.
_GENERATED = re.compile(r"(?=.*[A-Za-z])(?=.*[0-9])[A-Za-z0-9_\-.~%]{20,}")


def mask_url(url: str) -> str:
    """``url`` with its secrets replaced by ``***``; a string that is not a URL is kept."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return HIDDEN
    if not parts.scheme or not parts.netloc:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = (f"{HIDDEN}@" if "@" in parts.netloc else "") + host
    if port is not None:
        netloc += f":{port}"
    path = "/".join(HIDDEN if _GENERATED.fullmatch(s) else s for s in parts.path.split("/"))
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, HIDDEN if _SECRET_NAME.search(k) else v) for k, v in pairs],
            safe="*",
            quote_via=quote,
        )
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def mask_headers(headers: dict[str, str] | None) -> dict[str, str]:
    return {name: HIDDEN for name in headers or {}}


def mask_argv(argv: tuple[str, ...]) -> list[str]:
    """A command as it is shown: any argument that is an address has its secrets hidden."""
    return [mask_url(a) if re.match(r"https?://", a, re.I) else a for a in argv]
