"""Launch click → the new row shows ``failed``, in Debian's Chromium (for information only).

From the Launch click to the new row showing ``failed`` for an agent that exits 3 at once (form
post, spawn, exit, SSE partial, swap). Needs Playwright (a test tool) and ``chromium``: without
them the figure is left out, and nothing else depends on it.
"""

from __future__ import annotations

import importlib.util
import shutil
import time

from bench.table import Figure, median, unmeasured
from tests.harness import CHROMIUM_ARGS, DaemonProcess

CLICKS = 10
NAME = "Launch click → row shows failed (Chromium)"


def measure(daemon: DaemonProcess) -> list[Figure]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if importlib.util.find_spec("playwright") is None or chromium is None:
        return [
            unmeasured(
                NAME, None, "not measured: needs playwright (make test installs it) and chromium"
            )
        ]
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"http://127.0.0.1:{daemon.port}/login?token={daemon.info.token}")
        page.wait_for_selector("#conn.connected")
        page.get_by_label("Agent", exact=True).select_option("command")
        for i in range(CLICKS):
            page.get_by_label("Prompt").fill(f"exit 3 # {i}")
            before = page.locator("#runs tr.run .state-failed").count()
            began = time.perf_counter()
            page.get_by_role("button", name="Launch").click()
            page.locator("#runs tr.run .state-failed").nth(before).wait_for()
            times.append(time.perf_counter() - began)
        browser.close()
    return [Figure(NAME, median(times), None, None, why=[f"median of {CLICKS}"])]
