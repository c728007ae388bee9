"""Regenerate the dashboard screenshots in docs/ (light and dark): `python -m scripts.screenshots`.

Starts a real daemon in a scratch AIOS_HOME with a few demo agents and the fake agent CLIs of the
tests (which replay recorded streams: no real CLI, login or network is needed), runs them, and
photographs the overview, a run page with an agent's transcript and a request for approval in
Debian's Chromium at 1280 by 800, and on a phone (390 by 844).

The pictures show no one's real paths: HOME is /home/you (made for the occasion and removed
after, where it can be made; else a temporary directory, said on stderr), the runs work in
~/project, and the demo agents are `make test` and `make watch` there; the agent CLIs are the
presets, found on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from aios.client import DaemonClient
from aios.runtime import RuntimeInfo
from tests.browser import CHROMIUM_ARGS
from tests.helpers import fake_agents

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

BUILD = """import time
steps = ["collecting tests",
         "\\x1b[32mtest_api.py ....\\x1b[0m",
         "\\x1b[32mtest_cli.py ......\\x1b[0m",
         "\\x1b[31mtest_store.py F\\x1b[0m",
         "\\x1b[1;31m1 failed\\x1b[0m, 10 passed in 3.2s"]
for s in steps:
    print(s, flush=True); time.sleep(0.2)
raise SystemExit(1)
"""
WATCH = """import time
i = 0
while True:
    print(f"[{i:04d}] compiled 42 modules in 0.{i % 10}s, watching for changes", flush=True)
    i += 1; time.sleep(0.5)
"""

# A full-screen program for the terminal pictures: curses, colours, line drawing, a resize.
MONITOR = """import curses, time

JOBS = [("lint", "ok", 1.0), ("unit tests", "ok", 1.0), ("integration", "running", 0.62),
        ("docs", "queued", 0.0), ("package", "failed", 0.35)]

def main(screen):
    curses.curs_set(0)
    curses.start_color(); curses.use_default_colors()
    colours = {"ok": curses.COLOR_GREEN, "running": curses.COLOR_YELLOW,
               "queued": curses.COLOR_BLUE, "failed": curses.COLOR_RED}
    for i, colour in enumerate(colours.values(), 1):
        curses.init_pair(i, colour, -1)
    curses.init_pair(9, curses.COLOR_BLACK, curses.COLOR_CYAN)
    pair = {name: curses.color_pair(i) for i, name in enumerate(colours, 1)}
    screen.timeout(500)
    tick = 0
    while screen.getch() != ord("q"):
        screen.erase()
        rows, cols = screen.getmaxyx()
        screen.border()
        screen.addstr(0, 2, " build monitor ", curses.A_BOLD)
        screen.addstr(2, 3, f"{'job':<14}{'state':<10}progress", curses.A_UNDERLINE)
        width = max(10, min(40, cols - 34))
        for i, (name, state, done) in enumerate(JOBS):
            if state == "running":
                done = min(0.95, done + tick * 0.01)
            y = 3 + i
            attr = curses.color_pair(9) if i == 2 else 0
            screen.addstr(y, 3, f"{name:<14}", attr)
            screen.addstr(y, 17, f"{state:<10}", pair[state] | curses.A_BOLD)
            filled = int(done * width)
            screen.addstr(y, 27, "█" * filled, pair[state])
            screen.addstr(y, 27 + filled, "░" * (width - filled))
            screen.addstr(y, 28 + width, f"{int(done * 100):3d}%")
        screen.addstr(rows - 2, 3, f"{cols}x{rows}  ↑↓ select  q quit", curses.A_DIM)
        screen.refresh()
        tick += 1

curses.wrapper(main)
"""

# `make test`, `make watch` and `make monitor` in ~/project: the commands a reader would
# configure.
MAKEFILE = """test:
\t@"{python}" .demo/build.py
watch:
\t@"{python}" .demo/watch.py
monitor:
\t@"{python}" .demo/monitor.py
"""
NEUTRAL_HOME = Path("/home/you")


def scratch_home() -> Path:
    """A new, empty HOME for the demo: /home/you where it can be made, else a temporary one."""
    try:
        NEUTRAL_HOME.mkdir()  # never an existing one: it is removed afterwards
    except OSError as exc:
        print(f"screenshots: {exc}; the pictures will show a temporary path", file=sys.stderr)
        return Path(tempfile.mkdtemp(prefix="aios-shots-"))
    return NEUTRAL_HOME


def main() -> None:
    user_home = scratch_home()
    try:
        photograph(user_home)
    finally:
        shutil.rmtree(user_home, ignore_errors=True)
    print("wrote", ", ".join(sorted(p.name for p in DOCS.glob("*.png"))))


def photograph(user_home: Path) -> None:
    home = user_home / ".aios"
    project = user_home / "project"
    demo = project / ".demo"
    demo.mkdir(parents=True)
    for name, text in (("build.py", BUILD), ("watch.py", WATCH), ("monitor.py", MONITOR)):
        (demo / name).write_text(text)
    (project / "Makefile").write_text(MAKEFILE.format(python=sys.executable))
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text(
        '[agents.tests]\ncommand = ["make", "test"]\ncwd = "~/project"\n'
        'description = "Run the test suite"\n'
        '[agents.watch]\ncommand = ["make", "watch"]\ncwd = "~/project"\n'
        '[agents.monitor]\ncommand = ["make", "monitor"]\ncwd = "~/project"\nterminal = true\n'
        'description = "Watch the build in a terminal"\n'
        '[agents.claude]\nenv = { AIOS_FAKE_SCENARIO = "claude-success", AIOS_FAKE_SPEED = "0" }\n'
        '[agents.codex]\nenv = { AIOS_FAKE_SCENARIO = "codex-reconnect", AIOS_FAKE_SPEED = "1" }\n'
        '[agents.asker]\nlabel = "Claude Code (asks)"\n'
        'command = ["claude", "-p", "--output-format", "stream-json", "--verbose", "{permission}",'
        ' "{resume}", "--", "{prompt}"]\nformat = "claude-stream-json"\napprovals = "ask"\n'
    )
    bin_dir = fake_agents(home / "bin")
    env = {
        **os.environ,
        "HOME": str(user_home),
        "AIOS_HOME": str(home),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }
    env.pop("DISPLAY", None)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "aios", "serve", "--no-browser"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert daemon.stdout is not None
    port = int(daemon.stdout.readline().split(":")[1])
    token = json.loads((home / "run" / "aios.json").read_text())["token"]
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for scheme in ("light", "dark"):
                context = browser.new_context(
                    viewport={"width": 1280, "height": 800}, color_scheme=scheme
                )
                page = context.new_page()
                page.goto(f"{base}/login?token={token}")
                page.wait_for_selector("#conn.connected")
                if scheme == "light":
                    launch_demo(page)
                page.screenshot(path=str(DOCS / f"overview-{scheme}.png"))
                page.locator("#runs tr.run", has_text="Add hello.py").first.locator("a").click()
                page.wait_for_selector("#output .ansi-fg-6")  # a tool call, bold cyan
                page.screenshot(path=str(DOCS / f"run-{scheme}.png"))
                if scheme == "light":
                    page.goto(base + "/")
                    page.locator("#runs tr.run", has_text="ask: npm test").first.locator(
                        "a"
                    ).click()
                    page.wait_for_selector(".approval")
                    page.screenshot(path=str(DOCS / "approval-light.png"))
                context.close()
            # The same two pages on a phone (390 by 844), light.
            context = browser.new_context(viewport={"width": 390, "height": 844})
            page = context.new_page()
            page.goto(f"{base}/login?token={token}")
            page.wait_for_selector("#conn.connected")
            page.screenshot(path=str(DOCS / "overview-phone.png"))
            open_run(page, "Add hello.py", "#output .ansi-fg-6")
            page.screenshot(path=str(DOCS / "run-phone.png"))
            context.close()
            photograph_terminal(browser, home, base, token)
            browser.close()
    finally:
        daemon.terminate()
        daemon.wait(30)


# The monitor has drawn itself into the page's terminal at the page's size.
TUI_DRAWN = """() => {
  const term = document.getElementById('terminal')?.terminal?.term;
  if (!term) return false;
  const buffer = term.buffer.active;
  const last = buffer.getLine(buffer.viewportY + term.rows - 2)?.translateToString(true) ?? '';
  return last.includes(`${term.cols}x${term.rows}`);
}"""


def photograph_terminal(browser: Any, home: Path, base: str, token: str) -> None:
    """A full-screen program in a run's terminal, on a laptop and on a phone."""
    runtime = home / "run" / "aios.json"
    client = DaemonClient(RuntimeInfo.from_json(runtime, json.loads(runtime.read_text())))
    run = client.request("POST", "/api/runs", {"agent": "monitor", "prompt": ""})
    assert isinstance(run, dict)
    for name, (width, height) in (("terminal-light", (1280, 800)), ("terminal-phone", (390, 844))):
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.goto(f"{base}/login?token={token}")
        page.wait_for_selector("#conn.connected")
        page.goto(f"{base}/runs/{run['id']}")
        page.wait_for_function(TUI_DRAWN)
        time.sleep(1.5)  # its progress bar moves on: the picture waits for a redraw
        page.screenshot(path=str(DOCS / f"{name}.png"))
        context.close()


def launch_demo(page: Any) -> None:
    for agent, prompt in (
        ("claude", "Add hello.py, which prints hello, and run it; then add a test and run it"),
        ("command", "echo hello from AIOS"),
        ("tests", ""),
        ("codex", "Fix the flaky test in test_api.py"),
        ("watch", ""),
        ("asker", "ask: npm test"),
    ):
        page.get_by_label("Agent", exact=True).select_option(agent)
        page.get_by_label("Prompt").fill(prompt)
        page.get_by_label("Working directory").fill("~/project")
        page.get_by_role("button", name="Launch").click()
        time.sleep(0.4)
    time.sleep(4)  # codex goes offline after its reconnects; the asker waits for an answer


def open_run(page: Any, prompt: str, ready: str) -> None:
    page.locator("#runs tr.run", has_text=prompt).first.locator("a").click()
    page.wait_for_selector(ready)


if __name__ == "__main__":
    main()
