"""Opening the dashboard in the user's browser without putting the token on a command line.

``webbrowser.open(url)`` ends up as ``xdg-open URL`` / ``open URL``, visible to every user in the
process list. Instead we write a 0600 HTML file in the private run dir that redirects to
``/login?token=...`` and open *that file* (the trick Jupyter uses).
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


def login_url(info: RuntimeInfo, next_path: str = "/") -> str:
    query = {"token": info.token} if next_path == "/" else {"token": info.token, "next": next_path}
    return f"http://127.0.0.1:{info.port}/login?{urlencode(query)}"


def write_redirect_file(paths: Paths, info: RuntimeInfo, next_path: str = "/") -> Path:
    target = html.escape(login_url(info, next_path), quote=True)
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='referrer' content='no-referrer'>"
        f"<meta http-equiv='refresh' content='0;url={target}'>"
        "<title>AIOS</title></head>"
        f"<body><p><a href='{target}'>Open the AIOS dashboard</a></p></body></html>\n"
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
    log.warning("%s; open %s in a browser on this machine", problem, page.as_uri())
    return False
