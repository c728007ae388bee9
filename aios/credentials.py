"""The per-start secrets of one daemon, and the browser session's cookie.

A session cookie is ``<issued>.<mac>``: the Unix time of the login that issued it and an
HMAC-SHA256 of that time under the session key. The browser is told to drop it after
``SESSION_LIFETIME`` and the server refuses it after that too, whatever the browser does. The key
is kept across daemon restarts (so an open dashboard reconnects still signed in), which is why the
cookie must carry its own expiry.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from aios import private

SESSION_LIFETIME = 7 * 24 * 3600  # seconds a login lasts in the browser
CLOCK_SKEW = 300  # a cookie "issued" this far in the future is still accepted (clock steps)


@dataclass(frozen=True)
class Secrets:
    """Fresh per daemon start; only ``token`` leaves the process (in the 0600 runtime file)."""

    token: str
    session: str  # the key that signs session cookies: the browser never holds the API token
    csrf: str  # rendered into pages in a <meta>, echoed back by htmx in a header

    def _mac(self, issued: int) -> str:
        return hmac.new(self.session.encode(), str(issued).encode(), hashlib.sha256).hexdigest()

    def issue_cookie(self, now: float) -> str:
        """The value of a session cookie for a login at ``now`` (Unix time)."""
        issued = int(now)
        return f"{issued}.{self._mac(issued)}"

    def cookie_valid(self, value: str | None, now: float) -> bool:
        """Signed by our key, and issued less than ``SESSION_LIFETIME`` before ``now``."""
        issued_text, _, mac = (value or "").partition(".")
        if not (issued_text.isascii() and issued_text.isdigit() and len(issued_text) <= 12):
            return False
        issued = int(issued_text)
        if not hmac.compare_digest(mac.encode(), self._mac(issued).encode()):
            return False
        return now - SESSION_LIFETIME < issued <= now + CLOCK_SKEW

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
            private.write_text(
                session_file, json.dumps({"session": fresh.session, "csrf": fresh.csrf})
            )
        return fresh
