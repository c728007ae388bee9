"""Opening the dashboard in the user's browser without putting the token on a command line.

``webbrowser.open(url)`` ends up as ``xdg-open URL`` / ``open URL``, visible to every user in the
process list. Instead we write a 0600 HTML file in the private run dir and open *that file* (the
trick Jupyter uses). The file posts the token to ``/login`` in a form, so it is in no address at
all: not on a command line, not in the address bar, not in the browser's history. ``/login``
answers with a page that moves on to the dashboard by itself (see ``aios.server.pages.login`` for
why that, and not a redirect, is what makes the cookie stick).

Where no browser can be opened here (a server reached over SSH), :func:`login_url` is the
address to paste into a browser elsewhere: it carries the token, so it is printed, never logged.
"""

from __future__ import annotations

import html
import logging
import os
import sys
import webbrowser
from pathlib import Path
from urllib.parse import urlencode

from aios import private
from aios.paths import Paths, ensure_private_dir
from aios.runtime import RuntimeInfo

log = logging.getLogger("aios.browser")


def login_url(info: RuntimeInfo, next_path: str = "/", port: int | None = None) -> str:
    """The sign-in address; ``port``: the local end of a forwarded port, if not the daemon's."""
    query = {"token": info.token} if next_path == "/" else {"token": info.token, "next": next_path}
    return f"http://127.0.0.1:{port or info.port}/login?{urlencode(query)}"


def write_redirect_file(paths: Paths, info: RuntimeInfo, next_path: str = "/") -> Path:
    def attr(text: str) -> str:
        return html.escape(text, quote=True)

    # The script submits at once; the button is there for a browser with scripts off.
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='referrer' content='no-referrer'><title>AIOS</title></head><body>"
        f"<form method='post' action='{attr(f'http://127.0.0.1:{info.port}/login')}'>"
        f"<input type='hidden' name='token' value='{attr(info.token)}'>"
        f"<input type='hidden' name='next' value='{attr(next_path)}'>"
        "<p>Signing in to AIOS… <button type='submit'>Open the AIOS dashboard</button></p>"
        "</form><script>document.forms[0].submit();</script></body></html>\n"
    )
    path = paths.browser_file(info.port)
    ensure_private_dir(path.parent)
    private.write_text(path, page)
    return path


def can_open_browser() -> bool:
    """False where opening would fail or take over the terminal (a text browser over ssh)."""
    if os.environ.get("BROWSER"):
        return True
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def try_open(page: Path) -> str | None:
    """Open a local page in the default browser: None if it opened, else why it could not."""
    if not can_open_browser():
        return "no browser could be opened (no display, and BROWSER is not set)"
    try:
        if webbrowser.open(page.as_uri()):
            return None
    except webbrowser.Error as exc:
        return f"could not start a browser: {exc}"
    return "no browser could be opened"


def open_dashboard(paths: Paths, info: RuntimeInfo, next_path: str = "/") -> bool:
    """Open the dashboard; returns False (and logs how to open it by hand) if it could not."""
    page = write_redirect_file(paths, info, next_path)
    problem = try_open(page)
    if problem is None:
        return True
    log.warning(
        "%s; open %s in a browser on this machine, or run `aios open --print` for an address",
        problem,
        page.as_uri(),
    )
    return False
