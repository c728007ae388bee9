"""The per-start secrets of one daemon."""

from __future__ import annotations

import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class Secrets:
    """Fresh per daemon start; only ``token`` leaves the process (in the 0600 runtime file)."""

    token: str
    session: str  # the cookie's value: the browser never stores the API token itself
    csrf: str  # rendered into pages in a <meta>, echoed back by htmx in a header

    @classmethod
    def generate(cls) -> Secrets:
        return cls(secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(32))
