"""The per-start secrets of one daemon."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from aios import private


@dataclass(frozen=True)
class Secrets:
    """Fresh per daemon start; only ``token`` leaves the process (in the 0600 runtime file)."""

    token: str
    session: str  # the cookie's value: the browser never stores the API token itself
    csrf: str  # rendered into pages in a <meta>, echoed back by htmx in a header

    @classmethod
    def generate(cls) -> Secrets:
        return cls(secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(32))

    @classmethod
    def for_start(cls, session_file: Path) -> Secrets:
        """A fresh API token, and the browser session's secrets from the last start if any.

        The token changes at every start (it goes to the runtime file, and from there to any
        client). The cookie and CSRF values are kept in a 0600 file in the private run dir, so a
        dashboard left open across a restart reconnects still signed in.
        """
        fresh = cls.generate()
        try:
            saved = json.loads(session_file.read_text(encoding="utf-8"))
            session, csrf = saved["session"], saved["csrf"]
            if isinstance(session, str) and isinstance(csrf, str) and len(session) >= 43:
                private.tighten(session_file)  # as an older version may have left it
                return cls(fresh.token, session, csrf)
        except (OSError, ValueError, KeyError, TypeError):
            pass
        with contextlib.suppress(OSError):
            fd = os.open(session_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"session": fresh.session, "csrf": fresh.csrf}, handle)
            os.chmod(session_file, 0o600)
        return fresh
