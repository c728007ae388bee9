"""Signing in the way people do it: the page AIOS opens, in real Chromium and Firefox.

A desktop opens the default browser with the address on its command line; so do these tests.
AIOS is given a stand-in ``BROWSER`` that only records what it was asked to open (as
``xdg-open`` hands it on), and a real browser with a fresh profile is then started on that
address. Each test follows one of the ways in: ``aios open``, the tray's menu, a second ``aios``
launch, the address ``aios open --print`` prints, and that address through a forwarded port.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sqlite3
import threading
import time
import webbrowser
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aios.desktop.menu import find
from aios.paths import Paths
from tests.browser import started_chromium
from tests.firefox import Marionette, started_firefox
from tests.helpers import DaemonProcess, free_port, run_cli, wait_until, write_config

BROWSERS = ("chromium", "firefox")


@pytest.fixture
def desktop_opener(tmp_path: Path) -> tuple[str, Path]:
    """A ``BROWSER`` that writes down what it was asked to open, as xdg-open hands it on."""
    opened = tmp_path / "opened.txt"
    script = tmp_path / "xdg-open.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    script.chmod(0o755)
    return str(script), opened


def last_opened(record: Path) -> str:
    lines: list[str] = wait_until(
        lambda: record.exists() and record.read_text().split(), what="AIOS to open a browser"
    )
    return lines[-1]


# -- what the browser shows ------------------------------------------------------------------


def landing_in_chromium(profile: Path, address: str, origin: str) -> tuple[str, list[str]]:
    """Start Chromium on ``address``; the path it lands on once signed in and its tab history."""
    with started_chromium(profile, [address]) as instance:
        page = wait_until(
            lambda: _page_at(instance, origin), timeout=30, what=f"a page at {origin}"
        )
        page.wait_for_selector("#conn.connected", timeout=15_000)  # signed in: the stream is up
        session = page.context.new_cdp_session(page)
        history = session.send("Page.getNavigationHistory")
        entries = [entry["url"] for entry in history["entries"]]
        return location(page).removeprefix(origin), entries


def _page_at(instance: Any, origin: str) -> Any:
    for context in instance.contexts:
        for page in context.pages:
            url = location(page)
            if url.startswith(origin + "/") and not url.startswith(origin + "/login"):
                return page
    return None


def location(page: Any) -> str:
    """Where the page is, asked of the page: over CDP, Playwright's ``page.url`` can miss a
    navigation that happened before it attached."""
    try:
        return str(page.evaluate("location.href"))
    except Exception:  # navigating: ask again
        return ""


def landing_in_firefox(profile: Path, address: str, origin: str) -> tuple[str, list[str]]:
    """The same in Firefox; the history is the profile's own (places.sqlite), read after it
    has closed."""
    with started_firefox(profile, [address]) as firefox:
        url = wait_until(
            lambda: _firefox_signed_in(firefox, origin), timeout=30, what=f"a page at {origin}"
        )
    return url.removeprefix(origin), visited_in_firefox(profile)


def _firefox_signed_in(firefox: Marionette, origin: str) -> str | None:
    url = firefox.url()
    if not url.startswith(origin + "/") or url.startswith(origin + "/login"):
        return None
    connected = firefox.script("return document.querySelector('#conn.connected') !== null")
    return url if connected else None


def visited_in_firefox(profile: Path) -> list[str]:
    places = profile / "places.sqlite"
    if not places.exists():
        return []
    with sqlite3.connect(f"file:{places}?mode=ro", uri=True) as db:
        return [url for (url,) in db.execute("SELECT url FROM moz_places")]


def land(which: str, tmp_path: Path, address: str, origin: str) -> tuple[str, list[str]]:
    profile = tmp_path / f"{which}-profile"
    if which == "chromium":
        return landing_in_chromium(profile, address, origin)
    return landing_in_firefox(profile, address, origin)


def assert_token_nowhere(token: str, final_path: str, history: list[str]) -> None:
    assert token not in final_path
    assert not [url for url in history if token in url], history


# -- the ways in -----------------------------------------------------------------------------


@pytest.mark.parametrize("which", BROWSERS)
def test_aios_open_signs_in(
    which: str, daemon: DaemonProcess, desktop_opener: tuple[str, Path], tmp_path: Path
) -> None:
    opener, record = desktop_opener
    result = run_cli(daemon.home, "open", BROWSER=opener)
    assert result.returncode == 0, result.stderr
    address = last_opened(record)
    assert address.startswith("file://") and daemon.info.token not in address

    path, history = land(which, tmp_path, address, f"http://{daemon.base}")

    assert path == "/"
    assert_token_nowhere(daemon.info.token, path, history)


@pytest.fixture
def tray(
    home: Path, desktop_opener: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """The tray's menu with its real service (no icon: the menu entries are what a panel
    calls)."""
    opener, _ = desktop_opener
    monkeypatch.setenv("BROWSER", opener)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg"))
    # webbrowser reads BROWSER once per process, at its first use: make it read this one.
    monkeypatch.setattr(webbrowser, "_tryorder", None)
    write_config(home, '[agents.sleeper]\ncommand = ["sleep", "300"]\nstop_timeout = 2\n')
    from aios.tray import Tray

    instance = Tray(Paths.from_env({"AIOS_HOME": str(home)}), open_browser=False)
    instance.service.start()
    instance._follow_service()
    try:
        yield instance
    finally:
        instance.shutdown()


@pytest.mark.parametrize("which", BROWSERS)
def test_the_trays_open_dashboard_and_a_runs_page_sign_in(
    which: str, tray: Any, desktop_opener: tuple[str, Path], tmp_path: Path
) -> None:
    _, record = desktop_opener
    info = tray.service.info
    origin = f"http://127.0.0.1:{info.port}"
    run = tray.service.submit(tray.service.daemon.launch("sleeper")).result(10)
    wait_until(lambda: find(tray.menu_entries(), "Recent runs").items, what="a recent run")

    find(tray.menu_entries(), "Recent runs").items[0].activate()  # opens the run's page
    path, history = land(which, tmp_path / "run", last_opened(record), origin)
    assert path == f"/runs/{run.id}"
    assert_token_nowhere(info.token, path, history)

    find(tray.menu_entries(), "Open Dashboard").activate()
    path, history = land(which, tmp_path / "overview", last_opened(record), origin)
    assert path == "/"
    assert_token_nowhere(info.token, path, history)


def test_a_second_launch_opens_a_signed_in_dashboard(
    daemon: DaemonProcess, desktop_opener: tuple[str, Path], tmp_path: Path
) -> None:
    opener, record = desktop_opener
    # `aios` again (no display here, so the headless path): it finds the running daemon.
    result = run_cli(daemon.home, BROWSER=opener)
    assert result.returncode == 0, result.stderr
    assert "already running" in result.stderr

    path, history = land("chromium", tmp_path, last_opened(record), f"http://{daemon.base}")
    assert path == "/"
    assert_token_nowhere(daemon.info.token, path, history)


# -- headless and remote ---------------------------------------------------------------------


def test_the_printed_address_signs_in_and_leaves_the_address_bar(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    result = run_cli(daemon.home, "open", "--print")
    assert result.returncode == 0, result.stderr
    address = result.stdout.strip()
    assert address == f"http://{daemon.base}/login?token={daemon.info.token}"

    with started_chromium(tmp_path / "profile", [address]) as instance:
        page = wait_until(lambda: _page_at(instance, f"http://{daemon.base}"), timeout=30)
        page.wait_for_selector("#conn.connected")
        assert location(page) == f"http://{daemon.base}/"
        entries = page.context.new_cdp_session(page).send("Page.getNavigationHistory")
        # The sign-in page replaced itself: Back cannot bring the address with the token back.
        assert [e["url"] for e in entries["entries"]] == [f"http://{daemon.base}/"]


class Forwarder:
    """A plain TCP forwarder from another local port to the daemon's, as ``ssh -L`` is."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.closed = False
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += (client, upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        for end in self.sockets:
            end.close()


def test_a_forwarded_port_reaches_a_working_dashboard(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    """ssh -L <local>:127.0.0.1:<daemon's port>: the address says the local port, the Host and
    Origin rules accept it, and the dashboard works there, state changes included."""
    forward = Forwarder(daemon.port)
    try:
        assert forward.port != daemon.port
        result = run_cli(daemon.home, "open", "--print", "--forwarded-port", str(forward.port))
        assert result.returncode == 0, result.stderr
        address = result.stdout.strip()
        origin = f"http://127.0.0.1:{forward.port}"
        assert address.startswith(f"{origin}/login?token=")

        with started_chromium(tmp_path / "profile", [address]) as instance:
            page = wait_until(lambda: _page_at(instance, origin), timeout=30)
            page.wait_for_selector("#conn.connected")
            page.select_option("#launch-agent", "command")
            page.fill("#launch-prompt", "echo through the tunnel")
            page.click("#launch button[type=submit]")  # a POST: Origin and CSRF checked
            page.wait_for_selector("text=through the tunnel", timeout=15_000)
        runs = daemon.client.request("GET", "/api/runs")
        assert [r["prompt"] for r in runs] == ["echo through the tunnel"]
    finally:
        forward.close()


def test_serve_tells_a_terminal_how_to_sign_in(home: Path) -> None:
    """At a terminal, `aios serve` prints an address that signs in (as Jupyter does); into a
    pipe or a log it names the command instead, never the token."""
    import pty
    import subprocess
    import sys

    from tests.helpers import aios_env

    main, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aios", "serve", "--no-browser"],
        env=aios_env(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=secondary,
        text=True,
    )
    os.close(secondary)
    try:
        seen = b""
        deadline = time.monotonic() + 30
        whole_line = re.compile(rb"(?m)^aios: to sign in, open [^\r\n]*\r?\n")
        while (found := whole_line.search(seen)) is None:
            assert time.monotonic() < deadline, seen
            seen += os.read(main, 4096)
        line = found.group().decode().rstrip("\r\n")
        info = DaemonProcess(home, proc, 0, "").info
        assert (
            line == f"aios: to sign in, open http://127.0.0.1:{info.port}/login?token={info.token}"
        )
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
        os.close(main)


def test_serve_into_a_pipe_names_the_command_not_the_token(daemon: DaemonProcess) -> None:
    token = daemon.info.token
    assert daemon.terminate() == 0
    assert "to sign in, run `aios open` (or `aios open --print` for an address)" in daemon.err
    assert token not in daemon.err


def test_open_print_usage(daemon: DaemonProcess) -> None:
    result = run_cli(daemon.home, "open", "--forwarded-port", str(free_port()))
    assert result.returncode == 2
    assert result.stderr == "aios: --forwarded-port goes with --print\n"
