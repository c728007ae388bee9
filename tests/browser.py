"""A real headless Chromium (Debian's package) driven by Playwright, for the dashboard tests.

Never ``playwright install``: it downloads a browser, which this project does not. The browser
is the system's ``chromium``; without it these tests skip on a developer machine and fail in CI.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from tests.harness import CHROMIUM_ARGS
from tests.helpers import end_process, free_port, require, wait_until

__all__ = [
    "CHROMIUM_ARGS",
    "PageWatch",
    "browser",
    "chromium_path",
    "free_port",
    "sign_in",
    "signed_in_page",
    "started_chromium",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    require(path is not None, "Debian's chromium is not installed (apt-get install chromium)")
    assert path is not None
    return path


@dataclass
class PageWatch:
    """Everything a page said that a user should never see: console errors, dialogs, crashes."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

        def dialog(d: Any) -> None:
            if d.type == "confirm":  # our own "Delete this run?": the user says yes
                d.accept()
                return
            self.dialogs.append(d.message)  # an alert() would mean injected script ran
            d.dismiss()

        page.on("dialog", dialog)


# Module scope, not session: Playwright's sync API keeps an event loop running while it is
# open, and the asyncio tests of other modules need the thread to themselves.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "the playwright package is not installed")
        raise
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def sign_in(page: Any, port: int, token: str, next_path: str = "/") -> None:
    """Sign ``page`` in with the address ``aios open --print`` gives, and wait until it has
    moved on from the sign-in page to ``next_path``."""
    query = urlencode({"token": token} if next_path == "/" else {"token": token, "next": next_path})
    page.goto(f"http://127.0.0.1:{port}/login?{query}")
    page.wait_for_url(lambda url: urlsplit(url).path != "/login")


@contextmanager
def signed_in_page(
    browser: Any, port: int, token: str, height: int = 800, timeout_ms: int = 15_000
) -> Iterator[tuple[Any, PageWatch]]:
    """A fresh context signed in to the daemon on ``port``, its live stream connected."""
    context = browser.new_context(viewport={"width": 1280, "height": height})
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    watch = PageWatch()
    watch.attach(page)
    sign_in(page, port, token)
    page.wait_for_selector("#conn.connected")
    try:
        yield page, watch
    finally:
        context.close()


@contextmanager
def started_chromium(profile: Path, urls: Sequence[str] = ()) -> Iterator[Any]:
    """Chromium started as a desktop starts the default browser: a fresh profile and ``urls``
    on its command line; yields the Playwright browser connected to it over CDP."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    argv = [
        chromium_path(),
        "--headless",
        *CHROMIUM_ARGS,
        f"--user-data-dir={profile}",
        f"--remote-debugging-port={port}",
        *urls,
    ]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with sync_playwright() as playwright:
            instance = wait_until(
                lambda: _connect(playwright, port), timeout=30, what="Chromium's debugging port"
            )
            try:
                yield instance
            finally:
                instance.close()
    finally:
        end_process(process)


def _connect(playwright: Any, port: int) -> Any:
    try:
        return playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{port}", timeout=5_000)
    except Exception:  # not listening yet
        return None
