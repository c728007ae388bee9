"""Dashboard figures: rendering `/` with 1,000 runs in history, and Launch click → final state.

Render: the history is seeded with 1,000 finished runs through the real Store, then `GET /` is
timed over loopback (whole request: auth, history query, templates; the page shows 50 rows).

Click to final state: in Debian's Chromium, from the Launch click to the new row showing
``failed`` for an agent that exits 3 at once (form post, spawn, exit, SSE partial, swap).
"""

from __future__ import annotations

import asyncio
import http.client
import statistics
import tempfile
import time
from pathlib import Path

from aios.paths import Paths
from aios.runs import Run, RunState, new_run_id
from aios.store import Store
from tests.browser import CHROMIUM_ARGS
from tests.helpers import DaemonProcess, start_daemon

HISTORY = 1000
RENDERS = 30
CLICKS = 10


async def seed_history(paths: Paths, count: int = HISTORY) -> None:
    """Finished runs written straight into the history, as a daemon would have left them."""
    store = Store(paths.database, paths.run_logs_dir, retention=count * 2)
    await store.open()
    now = time.time()
    for i in range(count):
        run = Run(new_run_id(), "command", f"echo run {i}", "/tmp")
        run.state = RunState.FAILED if i % 7 == 0 else RunState.SUCCEEDED
        run.created_at = run.started_at = now - 10_000 + i
        run.ended_at = run.started_at + 2.5
        run.exit_code = 1 if run.state is RunState.FAILED else 0
        await store.save(run)
    await store.close()


def render_times(d: DaemonProcess) -> list[float]:
    times = []
    for _ in range(RENDERS):
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        began = time.perf_counter()
        conn.request("GET", "/", headers={"Authorization": f"Bearer {d.info.token}"})
        response = conn.getresponse()
        body = response.read()
        times.append(time.perf_counter() - began)
        conn.close()
        assert response.status == 200 and body.count(b'class="run"') == 50
    return sorted(times)


def click_times(d: DaemonProcess) -> list[float]:
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"http://127.0.0.1:{d.port}/login?token={d.info.token}")
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
    return sorted(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        asyncio.run(seed_history(Paths.from_env({"AIOS_HOME": str(home)})))
        d = start_daemon(home)
        try:
            renders = render_times(d)
            clicks = click_times(d)
        finally:
            d.terminate()
    print(f"dashboard: GET / with {HISTORY} runs in history, {RENDERS} requests")
    print(
        f"  median {statistics.median(renders) * 1000:.1f} ms"
        f"  (min {renders[0] * 1000:.1f}, max {renders[-1] * 1000:.1f})"
    )
    print(f"dashboard: Launch click → row shows `failed` in Chromium, {CLICKS} launches")
    print(
        f"  median {statistics.median(clicks) * 1000:.0f} ms"
        f"  (min {clicks[0] * 1000:.0f}, max {clicks[-1] * 1000:.0f})"
    )


if __name__ == "__main__":
    main()
