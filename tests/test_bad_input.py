"""Bad input gets a 4xx that names the field, never a 500: tried over real HTTP on a real daemon.

Each request here once answered "internal error"; the daemon's log must hold no unhandled error
at the end, which is what a 500 leaves behind.
"""

from __future__ import annotations

import html
import http.client
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.helpers import DaemonProcess, EventCollector, start_daemon, wait_until

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
    *,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """Status, headers and body (decoded if JSON); an event stream's body is not read."""
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    sent = {"Authorization": f"Bearer {d.info.token}", **(headers or {})}
    if body is not None:
        sent["Content-Type"] = content_type
    try:
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        kind = response.getheader("Content-Type", "")
        got = {k.lower(): v for k, v in response.getheaders()}
        if kind.startswith("text/event-stream"):
            return response.status, got, None
        raw = response.read()
        data = json.loads(raw) if kind.startswith("application/json") else raw
        return response.status, got, data
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


@pytest.fixture
def finished(served: DaemonProcess) -> str:
    events = EventCollector(served.port, served.info.token)
    try:
        run = served.client.request("POST", "/api/runs", {"agent": "command", "prompt": "echo hi"})
        events.wait(lambda k, d: k == "run" and d["id"] == run["id"] and d["state"] == "succeeded")
    finally:
        events.close()
    return str(run["id"])


def test_log_offsets_past_the_end(served: DaemonProcess, finished: str) -> None:
    run = {"id": finished}
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


# -- bad numbers and undecodable JSON, on every route (issue 18) ---------------------------------

# Bodies Python's json would choke on, or take for more than JSON means: each is a 400 that says
# what was wrong, on every route that takes a body, before the route does anything.
BAD_BODIES = [
    (b'{"agent": ' + b"1" * 4301 + b"}", "is out of range: integers must be from -2^63"),
    (b'{"id": 99999999999999999999}', "JSON number 99999999999999999999 is out of range"),
    (b'{"prompt": -9223372036854775809}', "is out of range"),
    (b'{"agent": 1e400}', "JSON number 1e400 is out of range for a 64-bit float"),
    (b'{"agent": -1' + b"0" * 400 + b".5}", "is out of range for a 64-bit float"),
    (b'{"agent": NaN}', "NaN is not a JSON value"),
    (b'{"agent": Infinity}', "Infinity is not a JSON value"),
    (b'{"prompt": [-Infinity]}', "-Infinity is not a JSON value"),
    (b"[" * 30_000 + b"]" * 30_000, "malformed JSON: nested too deeply"),
    (b'{"prompt": ' + b"[" * 100 + b"]" * 100 + b"}", "nested too deeply (more than 32 levels)"),
    (b'{"prompt": "caf\xe9"}', "the body is not valid UTF-8 (byte 0xe9 at 15)"),
    (b'{"prompt": "\xed\xa0\x80"}', "the body is not valid UTF-8 (byte 0xed at 12)"),
    (b'{"agent": "command", "agent": "shell"}', "the key 'agent' appears twice"),
    (b'\xef\xbb\xbf{"agent": "command"}', "malformed JSON: Unexpected UTF-8 BOM"),
    (b'{"agent": "command"', "malformed JSON: Expecting"),
]
# Values no numeric query parameter takes: not digits 0-9, negative, or past any range.
BAD_NUMBERS = [
    "-1", "", "abc", "1.5", "1e3", " 5", "+5", "1_000", "0x10", "\u0663", "NaN", "inf",
    "9" * 25, str(2**63), "9" * 4301, "\udcff",
]  # fmt: skip


def routes() -> list[tuple[str, str]]:
    """(method, rule) for every route of the real app: a new route is fuzzed without a word."""
    from aios.credentials import Secrets
    from aios.facade import Daemon
    from aios.paths import Paths
    from aios.server.app import create_app

    paths = Paths.from_env({"AIOS_HOME": "/nonexistent/aios-routes"})  # never touched
    app = create_app(Daemon(paths, 1, Secrets.generate(), request_shutdown=lambda: None))
    return sorted(
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
    )


def numeric_parameters() -> list[str]:
    """Every query parameter the server reads as a number (each goes through ``int_arg``),
    and the stream's resume id."""
    import aios.server

    folder = Path(aios.server.__file__).parent
    source = "\n".join(p.read_text() for p in folder.glob("*.py"))
    found = set(re.findall(r'int_arg\(\s*"(\w+)"', source))
    assert {"limit", "offset", "wraps"} <= found, found
    return sorted(found | {"after"})


def concrete(rule: str, run_id: str) -> str:
    values = {"run_id": run_id, "filename": "app.css", "action": "merge"}
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values.get(m.group(1), "x"), rule)


def message_of(data: Any) -> str | None:
    """The message of an error answer (``{"error": ...}`` and nothing else), or None."""
    if isinstance(data, dict) and set(data) == {"error"} and isinstance(data["error"], str):
        return data["error"]
    return None


def test_undecodable_json_is_a_400_on_every_route(served: DaemonProcess, finished: str) -> None:
    unsafe = [(m, r) for m, r in routes() if m in ("POST", "PUT", "PATCH", "DELETE")]
    assert ("POST", "/api/runs/<run_id>/approval") in unsafe and len(unsafe) > 20
    wrong = []
    for method, rule in unsafe:
        for body, words in BAD_BODIES:
            status, _, data = send(served, method, concrete(rule, finished), body)
            if status != 400 or words not in (message_of(data) or ""):
                wrong.append(f"{method} {rule} {body[:30]!r}: {status} {data!r:.200}")
    assert not wrong, "\n".join(wrong)
    # None of them did anything: the run is still there, and so is the daemon.
    assert served.client.request("GET", f"/api/runs/{finished}")["state"] == "succeeded"
    assert len(served.client.request("GET", "/api/runs")) == 1


@pytest.mark.parametrize(
    ("route", "field"),
    [("continue", "prompt"), ("message", "prompt"), ("approval", "id")],
)
def test_a_lone_surrogate_in_a_text_field_is_named(
    served: DaemonProcess, finished: str, route: str, field: str
) -> None:
    body = json.dumps({field: "\ud800", "decision": "allow"} if route == "approval" else
                      {field: "\ud800"}).encode()  # fmt: skip
    status, _, data = send(served, "POST", f"/api/runs/{finished}/{route}", body)
    assert status == 422 and f"field {field!r} is not valid Unicode" in data["error"]


def test_numeric_query_parameters_are_checked_on_every_route(
    served: DaemonProcess, finished: str
) -> None:
    gets = [r for m, r in routes() if m == "GET"]
    # Where each parameter is read, its bad values are a 422 that names it.
    reads = {
        ("/api/runs", "limit"),
        ("/api/runs/<run_id>/log", "offset"),
        ("/api/runs/<run_id>/events", "offset"),
        ("/ui/events", "offset"),
        ("/ui/events", "wraps"),
    }
    wrong = []
    for name in numeric_parameters():
        for value in BAD_NUMBERS:
            # Everything a stream needs to read a run's position; other routes ignore it.
            query = urlencode({"view": "run", "run": finished, name: value}, errors="surrogatepass")
            resume = {"Last-Event-ID": value} if value.isascii() else None
            for rule in gets:
                path = f"{concrete(rule, finished)}?{query}"
                status, _, data = send(served, "GET", path, headers=resume)
                error = message_of(data)
                named = error is not None and f"query parameter {name!r}" in error
                fine = (
                    status == 422 and named
                    if (rule, name) in reads
                    else status < 400 or (status < 500 and error is not None)
                )
                if not fine:
                    wrong.append(f"GET {rule} {name}={value[:20]!r}: {status} {data!r:.200}")
    assert not wrong, "\n".join(wrong)


def test_numeric_query_parameters_say_what_they_take(served: DaemonProcess, finished: str) -> None:
    status, _, data = send(served, "GET", "/api/runs?limit=%2B5")
    assert (status, data) == (422, {"error": "query parameter 'limit' must be an integer "
                                             "(digits 0-9), not '+5'"})  # fmt: skip
    status, _, data = send(served, "GET", "/api/runs?limit=-1")
    assert (status, data) == (422, {"error": "query parameter 'limit' must be 1..500"})
    status, _, data = send(served, "GET", f"/api/runs/{finished}/log?offset={'9' * 4301}")
    assert (status, data) == (422, {"error": f"query parameter 'offset' must be 0..{2**63 - 1}"})
    status, _, data = send(served, "GET", f"/api/runs/{finished}/log?offset={'0' * 30}2")
    assert (status, data) == (200, b"\n")  # leading zeros are still a number: byte 2
    status, _, data = send(served, "GET", "/api/runs?limit=" + "x" * 5000)
    assert status == 422 and len(data["error"]) < 150  # a long value is not echoed whole


def test_a_directory_removed_after_a_launch_in_it_still_gets_a_clear_answer(
    served: DaemonProcess, tmp_path: Path
) -> None:
    """A directory found usable is trusted for a moment (a burst of launches in it costs one
    look): one removed meanwhile is refused, or fails its run's start, saying why either way."""
    work = tmp_path / "going"
    work.mkdir()
    body = json.dumps({"agent": "command", "prompt": "true", "cwd": str(work)}).encode()
    status, _, data = send(served, "POST", "/api/runs", body)
    assert status == 201, data
    work.rmdir()
    status, _, data = send(served, "POST", "/api/runs", body)
    if status == 422:  # the moment had passed: looked at again
        assert data["error"] == f"cwd {str(work)!r} does not exist"
        return
    assert status == 201, data

    def ended() -> Any:
        _, _, run = send(served, "GET", f"/api/runs/{data['id']}")
        return run if run["state"] in ("succeeded", "failed") else None

    run = wait_until(ended, what="the run in the removed directory to end")
    assert run["state"] == "failed"
    assert f"working directory {str(work)!r}" in run["error"], run["error"]
