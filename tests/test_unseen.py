"""What called for the user since they last looked (``aios.unseen``): the ledger fed events, then
the daemon's own, over HTTP (``/api/status``, ``POST /ui/seen``, the ``unseen`` event)."""

from __future__ import annotations

import http.client
import json
import re
from itertools import count
from typing import Any
from urllib.parse import urlencode

import pytest

from aios.events import Event
from aios.unseen import Unseen, UnseenCounts, since_last_looked
from tests.helpers import DaemonProcess, wait_until

_ids = count(1)


def run_event(run_id: str, state: str) -> Event:
    return Event(next(_ids), "run", {"id": run_id, "state": state})


def attention(run_id: str, reason: str) -> Event:
    return Event(next(_ids), "attention", {"run": run_id, "reason": reason})


def life(ledger: Unseen, run_id: str, *states: str) -> list[bool]:
    return [ledger.observe(run_event(run_id, s)) for s in states]


def test_a_run_that_becomes_failed_counts_once() -> None:
    ledger = Unseen()
    assert life(ledger, "a", "queued", "starting", "running", "failed") == [False] * 3 + [True]
    # Published again (its worktree merged, discarded): old news, whether seen or not.
    assert not ledger.observe(run_event("a", "failed"))
    assert ledger.counts().failed == 1
    assert ledger.seen()
    assert not ledger.observe(run_event("a", "failed"))
    assert ledger.counts() == UnseenCounts()


def test_runs_that_succeed_are_stopped_or_were_interrupted_are_not_counted() -> None:
    ledger = Unseen()
    life(ledger, "a", "queued", "running", "succeeded")
    life(ledger, "b", "queued", "running", "stopping", "stopped")
    ledger.observe(run_event("c", "interrupted"))  # found at start-up, never live here
    ledger.observe(run_event("d", "failed"))  # nor this one: it did not fail under our eyes
    assert ledger.counts().total == 0


def test_a_call_for_the_user_counts_and_a_failure_outranks_it() -> None:
    ledger = Unseen()
    life(ledger, "a", "queued", "running")
    assert ledger.observe(attention("a", "needs_login"))
    assert not ledger.observe(attention("a", "stalled"))  # the same run counts once
    assert ledger.counts() == UnseenCounts(0, 1, ("a",), ledger.counts().latest)
    assert ledger.observe(run_event("a", "failed"))
    assert not ledger.observe(attention("a", "hidden_failure"))
    assert (ledger.counts().failed, ledger.counts().needs_you) == (1, 0)


def test_a_request_for_approval_is_its_own_question() -> None:
    ledger = Unseen()
    assert not ledger.observe(attention("a", "awaiting_approval"))
    assert ledger.counts().total == 0


def test_seen_clears_what_the_page_showed_and_keeps_what_came_after() -> None:
    ledger = Unseen()
    life(ledger, "a", "queued", "running", "failed")
    shown = ledger.counts()
    life(ledger, "b", "queued", "running", "failed")
    assert ledger.counts().runs == ("b", "a")  # newest first
    assert ledger.seen(up_to=shown.latest)
    assert ledger.counts().runs == ("b",)
    assert not ledger.seen(up_to=shown.latest)  # nothing more to clear: no change to publish
    assert ledger.seen()
    assert ledger.counts().total == 0


def test_a_deleted_run_leaves_the_ledger() -> None:
    ledger = Unseen()
    life(ledger, "a", "queued", "running", "failed")
    assert ledger.observe(Event(next(_ids), "deleted", {"id": "a"}))
    assert ledger.counts().total == 0


def test_counts_round_trip_through_json() -> None:
    counts = UnseenCounts(2, 1, ("c", "b", "a"), 42)
    data = counts.to_json()
    assert data == {"failed": 2, "needs_you": 1, "total": 3, "runs": ["c", "b", "a"], "latest": 42}
    assert UnseenCounts.from_json(json.loads(json.dumps(data))) == counts


@pytest.mark.parametrize(
    ("failed", "needs_you", "text"),
    [
        (0, 0, ""),
        (1, 0, "1 failed since you last looked"),
        (0, 2, "2 need you since you last looked"),
        (3, 1, "3 failed, 1 needs you since you last looked"),
    ],
)
def test_the_words(failed: int, needs_you: int, text: str) -> None:
    assert since_last_looked(failed, needs_you) == text


# -- the daemon's ledger over HTTP --------------------------------------------------------------


def post_seen(
    daemon: DaemonProcess, fields: dict[str, str], headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """``POST /ui/seen`` as a form, with the token unless ``headers`` say otherwise."""
    body = urlencode(fields).encode()
    sent = {
        "Host": daemon.base,
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": str(len(body)),
        **(headers if headers is not None else {"Authorization": f"Bearer {daemon.info.token}"}),
    }
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    try:
        conn.request("POST", "/ui/seen", body, sent)
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None
    finally:
        conn.close()


def unseen_of(daemon: DaemonProcess) -> dict[str, Any]:
    status: dict[str, Any] = daemon.client.request("GET", "/api/status")
    return dict(status["unseen"])


@pytest.mark.daemon
def test_status_counts_a_failure_until_a_page_says_it_was_seen(daemon: DaemonProcess) -> None:
    assert unseen_of(daemon) == UnseenCounts().to_json()
    client = daemon.client
    events = client.events()
    next(events)  # the stream is open: the `unseen` event cannot be missed
    run = client.request("POST", "/api/runs", {"agent": "command", "prompt": "exit 3"})
    event = next(e for e in events if e.event == "unseen")
    events.close()
    published = json.loads(event.data)
    assert published["failed"] == 1 and published["runs"] == [run["id"]]
    assert unseen_of(daemon) == published

    for bad in ("x", "-1", "1.5"):
        status, body = post_seen(daemon, {"up_to": bad})
        assert status == 422 and "up_to" in body["error"], (bad, body)
    # Seen up to an event before the failure: the failure stays.
    assert post_seen(daemon, {"up_to": str(published["latest"] - 1)}) == (204, None)
    assert unseen_of(daemon)["failed"] == 1
    assert post_seen(daemon, {"up_to": str(published["latest"])}) == (204, None)
    assert unseen_of(daemon)["total"] == 0


@pytest.mark.daemon
def test_seen_is_a_guarded_post(daemon: DaemonProcess) -> None:
    """Looking changes state: no token is a 401, a foreign page a 403, a GET a 405."""
    client = daemon.client
    run = client.request("POST", "/api/runs", {"agent": "command", "prompt": "exit 1"})
    wait_until(lambda: unseen_of(daemon)["runs"] == [run["id"]], what="the failure to count")
    assert post_seen(daemon, {}, headers={})[0] == 401
    foreign = {"Authorization": f"Bearer {daemon.info.token}", "Origin": "http://evil.example"}
    assert post_seen(daemon, {}, headers=foreign)[0] == 403
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    try:
        token = {"Authorization": f"Bearer {daemon.info.token}"}
        conn.request("GET", "/ui/seen", headers={"Host": daemon.base, **token})
        assert conn.getresponse().status == 405
    finally:
        conn.close()
    # The dashboard's way: its session cookie, and the CSRF header from the page's <meta>.
    cookie, csrf = session(daemon)
    assert post_seen(daemon, {}, headers={"Cookie": cookie})[0] == 403
    assert unseen_of(daemon)["total"] == 1
    signed_in = {"Cookie": cookie, "X-AIOS-CSRF": csrf, "Origin": f"http://{daemon.base}"}
    assert post_seen(daemon, {}, headers=signed_in) == (204, None)  # no up_to: everything
    assert unseen_of(daemon)["total"] == 0


def session(daemon: DaemonProcess) -> tuple[str, str]:
    """A signed-in browser's cookie and the CSRF value its pages carry."""
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    try:
        conn.request("GET", f"/login?token={daemon.info.token}", headers={"Host": daemon.base})
        response = conn.getresponse()
        response.read()
        cookie = str(response.getheader("Set-Cookie")).split(";")[0]
        conn.request("GET", "/", headers={"Host": daemon.base, "Cookie": cookie})
        page = conn.getresponse().read().decode()
    finally:
        conn.close()
    match = re.search(r'<meta name="aios-csrf" content="([^"]+)">', page)
    assert match is not None
    return cookie, match.group(1)
