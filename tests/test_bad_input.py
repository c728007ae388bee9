"""Bad input gets a 4xx that names the field, never a 500: tried over real HTTP on a real daemon.

Each request here once answered "internal error"; the daemon's log must hold no unhandled error
at the end, which is what a 500 leaves behind.
"""

from __future__ import annotations

import html
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.helpers import DaemonProcess, EventCollector, start_daemon

pytestmark = pytest.mark.daemon


@pytest.fixture
def served(home: Path) -> Iterator[DaemonProcess]:
    d = start_daemon(home)
    try:
        yield d
        assert d.terminate() == 0  # and it still shuts down cleanly
    finally:
        d.close()
        log = (home / "state" / "aios.log").read_text()
        assert "unhandled error" not in log and "Traceback" not in log, log


def send(
    d: DaemonProcess,
    method: str,
    path: str,
    body: bytes | None = None,
    content_type: str = "application/json",
) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    headers = {"Authorization": f"Bearer {d.info.token}"}
    if body is not None:
        headers["Content-Type"] = content_type
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        kind = response.getheader("Content-Type", "")
        data = json.loads(raw) if kind.startswith("application/json") else raw
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def launch_error(d: DaemonProcess, raw_json: str | bytes) -> tuple[int, str]:
    body = raw_json.encode() if isinstance(raw_json, str) else raw_json
    status, _, data = send(d, "POST", "/api/runs", body)
    assert isinstance(data, dict) and set(data) == {"error"}, data
    return status, data["error"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ('{"agent": "command", "prompt": "true", "cwd": "/tmp/a\\u0000b"}', 422, "cwd"),
        ('{"agent": "command", "prompt": "true", "cwd": "~no-such-user-here/x"}', 422,
         "cwd '~no-such-user-here/x': unknown user 'no-such-user-here'"),
        ('{"agent": "command", "prompt": "true", "cwd": "/tmp/\\ud800"}', 422, "cwd"),
        ('{"agent": "command", "prompt": "\\ud800"}', 422,
         "field 'prompt' is not valid Unicode: a lone surrogate at position 0"),
        ('{"agent": "command", "prompt": "echo a\\u0000b"}', 422,
         "field 'prompt' contains a NUL character"),
        ('{"agent": "\\udfff", "prompt": "x"}', 422, "field 'agent' is not valid Unicode"),
        (b'{"agent": "command", "prompt": "caf\xe9"}', 400,
         "the body is not valid UTF-8 (byte 0xe9 at 35)"),
        ("[" * 30_000 + "]" * 30_000, 400, "malformed JSON: nested too deeply"),
        ('{"agent": "command", "prompt": "x", "cwd": "/etc/passwd"}', 422,
         "cwd '/etc/passwd' is not a directory"),
        ('{"agent": "command", "prompt": "x", "cwd": "/etc/passwd/x"}', 422,
         "cwd '/etc/passwd/x' does not exist"),
    ],
)  # fmt: skip
def test_launch_with_bad_input(
    served: DaemonProcess, body: str | bytes, status: int, words: str
) -> None:
    got_status, message = launch_error(served, body)
    assert got_status == status
    assert words in message
    assert served.client.request("GET", "/api/runs") == []  # nothing was saved


def test_log_offsets_past_the_end(served: DaemonProcess) -> None:
    events = EventCollector(served.port, served.info.token)
    try:
        run = served.client.request("POST", "/api/runs", {"agent": "command", "prompt": "echo hi"})
        events.wait(lambda k, d: k == "run" and d["id"] == run["id"] and d["state"] == "succeeded")
    finally:
        events.close()
    base = f"/api/runs/{run['id']}/log"
    status, headers, data = send(served, "GET", f"{base}?offset=0")
    assert (status, data) == (200, b"hi\n")
    for offset in (3, 4, 10**18, 2**63 - 1):  # nothing there (yet): empty, and where to go on
        status, headers, data = send(served, "GET", f"{base}?offset={offset}")
        assert (status, data) == (200, b"")
        assert headers["x-aios-log-next-offset"] == str(offset)
    for offset in (2**63, 10**19, 10**40):
        for path in (base, f"/api/runs/{run['id']}/events"):
            status, _, data = send(served, "GET", f"{path}?offset={offset}")
            assert status == 422
            assert data == {"error": f"query parameter 'offset' must be 0..{2**63 - 1}"}
    status, headers, data = send(served, "GET", f"/api/runs/{run['id']}/events?offset={10**18}")
    assert (status, data) == (200, b"")
    status, _, data = send(served, "GET", f"/ui/events?view=run&run={run['id']}&offset=4")
    assert status == 422 and "'offset' is past the end" in data["error"]
    status, _, data = send(served, "GET", f"/ui/events?view=run&run={run['id']}&offset={10**19}")
    assert status == 422 and "'offset' must be 0.." in data["error"]


@pytest.mark.parametrize(
    "style",
    [
        '["\\"><b>x</b>", null, false]',  # was reflected into a class attribute
        '["1", null, "yes"]',
        '["16", null, false]',
        "[[[[[[",
        "not json",
        '{"fg": 1}',
    ],
)
def test_dashboard_stream_style_is_validated(served: DaemonProcess, style: str) -> None:
    run = served.client.request("POST", "/api/runs", {"agent": "command", "prompt": ":"})
    query = urlencode({"view": "run", "run": run["id"], "style": style})
    status, _, data = send(served, "GET", f"/ui/events?{query}")
    assert status == 422
    assert data["error"].startswith("query parameter 'style' is invalid")


def test_form_launch_and_older_rows(served: DaemonProcess) -> None:
    form = "application/x-www-form-urlencoded"
    status, _, data = send(served, "POST", "/ui/runs", b"agent=command&prompt=a%00b", form)
    assert status == 422 and "field 'prompt' contains a NUL character" in data["error"]
    status, _, data = send(
        served, "POST", "/ui/runs", b"agent=command&prompt=x&cwd=/etc/passwd", form
    )
    assert status == 422 and data["error"] == "cwd '/etc/passwd' is not a directory"
    status, _, data = send(served, "GET", "/ui/rows?before=ffffffffffff")
    assert status == 422 and data["error"] == "invalid 'before': no run matches 'ffffffffffff'"


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/runs/abc", "/runs/abc"),
        ("/?filter=failed", "/?filter=failed"),
        ("/\\evil.example", "/"),
        ("/\\/evil.example", "/"),
        ("//evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("evil.example", "/"),
    ],
)
def test_login_redirects_only_to_a_path_here(
    served: DaemonProcess, target: str, location: str
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    try:
        query = urlencode({"token": served.info.token, "next": target})
        conn.request("GET", f"/login?{query}")
        response = conn.getresponse()
        assert response.status == 200  # a page that moves on by itself (pages.login says why)
        refresh = f'<meta http-equiv="refresh" content="0;url={html.escape(location)}">'
        assert refresh in response.read().decode()
    finally:
        conn.close()
