"""A real headless Chromium (Debian's package) driven by Playwright, for the dashboard tests.

Never ``playwright install``: it downloads a browser, which this project does not. The browser
is the system's ``chromium``; without it these tests skip on a developer machine and fail in CI.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from bench.harness import CHROMIUM_ARGS
from tests.helpers import require

__all__ = ["CHROMIUM_ARGS", "PageWatch", "browser", "chromium_path", "signed_in_page"]


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
    page.goto(f"http://127.0.0.1:{port}/login?token={token}")
    page.wait_for_selector("#conn.connected")
    try:
        yield page, watch
    finally:
        context.close()
