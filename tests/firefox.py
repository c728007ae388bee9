"""A real headless Firefox (Debian's ``firefox-esr``), started the way a desktop starts the
default browser, and read through Marionette, the remote protocol every Firefox build has.

Playwright drives only its own patched Firefox, which this project never downloads; Marionette
needs no driver binary: it is a length-prefixed JSON protocol on a local TCP port, a few
commands of which are all these tests need (where the page is, what it says).

Every profile is fresh and routes all traffic but loopback into a dead proxy, so a test never
reaches the network whatever Firefox would fetch in the background.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers import end_process, free_port, require

__all__ = ["Marionette", "firefox_path", "firefox_prefs", "started_firefox"]

# Quiet, offline, and no first-run pages: a fresh profile as a test wants it.
PREFS: dict[str, object] = {
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.aboutwelcome.enabled": False,
    "startup.homepage_welcome_url": "about:blank",
    "startup.homepage_welcome_url.additional": "",
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "toolkit.telemetry.enabled": False,
    "app.update.enabled": False,
    "app.normandy.enabled": False,
    "extensions.update.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "browser.newtabpage.enabled": False,
    "browser.tabs.warnOnClose": False,
    # Everything that is not loopback goes to a port nothing listens on.
    "network.proxy.type": 1,
    "network.proxy.http": "127.0.0.1",
    "network.proxy.http_port": 9,
    "network.proxy.ssl": "127.0.0.1",
    "network.proxy.ssl_port": 9,
    "network.proxy.no_proxies_on": "localhost, 127.0.0.1, [::1]",
    "network.proxy.allow_hijacking_localhost": False,
}


def firefox_path() -> str:
    path = shutil.which("firefox-esr") or shutil.which("firefox")
    require(path is not None, "Debian's firefox-esr is not installed (apt-get install firefox-esr)")
    assert path is not None
    return path


def firefox_prefs(profile: Path, marionette_port: int) -> None:
    """Write a fresh profile's ``user.js``."""
    prefs = {**PREFS, "marionette.port": marionette_port}
    lines = [f"user_pref({json.dumps(k)}, {json.dumps(v)});" for k, v in prefs.items()]
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "user.js").write_text("\n".join(lines) + "\n", encoding="utf-8")


class Marionette:
    """The few Marionette commands the tests use, over one connection."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.buffer = b""
        self.next_id = 0
        self._read()  # the server's greeting
        self.command("WebDriver:NewSession", {"capabilities": {}})

    def _read(self) -> Any:
        while b":" not in self.buffer:
            self._fill()
        size, _, rest = self.buffer.partition(b":")
        length = int(size)
        self.buffer = rest
        while len(self.buffer) < length:
            self._fill()
        message, self.buffer = self.buffer[:length], self.buffer[length:]
        return json.loads(message)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("Marionette closed the connection")
        self.buffer += chunk

    def command(self, name: str, params: dict[str, Any] | None = None) -> Any:
        self.next_id += 1
        body = json.dumps([0, self.next_id, name, params or {}]).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body)
        while True:
            kind, message_id, error, result = self._read()
            if kind == 1 and message_id == self.next_id:
                if error:
                    raise RuntimeError(f"Marionette {name}: {error}")
                return result

    def url(self) -> str:
        return str(self.command("WebDriver:GetCurrentURL")["value"])

    def script(self, source: str, args: Sequence[object] = ()) -> Any:
        return self.command("WebDriver:ExecuteScript", {"script": source, "args": list(args)})[
            "value"
        ]

    def close(self) -> None:
        self.sock.close()


@contextmanager
def started_firefox(profile: Path, urls: Sequence[str] = ()) -> Iterator[Marionette]:
    """Firefox headless on a fresh ``profile`` with ``urls`` on its command line, as a desktop
    starts it, and a Marionette connection to it."""
    port = free_port()
    firefox_prefs(profile, port)
    argv = [firefox_path(), "--headless", "--no-remote", "--marionette", "--profile", str(profile)]
    process = subprocess.Popen([*argv, *urls], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = Marionette(port)
        try:
            yield client
        finally:
            client.close()
    finally:
        end_process(process)
