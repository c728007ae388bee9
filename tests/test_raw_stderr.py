"""A structured agent's stderr, kept raw beside its raw events: served by the API, linked from the
run page, private like every log, and deleted with the run."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.fakeagents import Fakes
from tests.fakes.agent import STREAMS

pytestmark = pytest.mark.daemon


def test_stderr_is_kept_raw_served_and_deleted_with_the_run(fakes: Fakes) -> None:
    fakes.configure(gemini="gemini-offline")
    fakes.start()
    run = fakes.final(fakes.launch("gemini")["id"])
    assert run["state"] == "failed" and run["error_kind"] == "offline"
    written = (STREAMS / "gemini-offline.stderr").read_text()
    client = fakes.d.client
    served = client.request_bytes("GET", f"/api/runs/{run['id']}/stderr").decode()
    assert served == written  # as the CLI wrote it: no colours, no arrows
    assert "\x1b[" in fakes.log(run["id"]) and "↻ Attempt 1 failed" in fakes.log(run["id"])
    later = client.request_bytes("GET", f"/api/runs/{run['id']}/stderr?offset=10").decode()
    assert later == written[10:]
    assert client.request_bytes("GET", f"/api/runs/{run['id']}/stderr?offset=99999") == b""
    # Its own stream, not the events: those stay the JSON lines of stdout.
    events = client.request_bytes("GET", f"/api/runs/{run['id']}/events").decode()
    assert "Attempt" not in events and '"type":"result"' in events

    page = client.request_bytes("GET", f"/runs/{run['id']}").decode()
    assert f'href="/runs/{run["id"]}/stderr.txt"' in page and "Raw stderr" in page
    assert client.request_bytes("GET", f"/runs/{run['id']}/stderr.txt").decode() == written

    (kept,) = list(fakes.home.rglob(f"{run['id']}.stderr"))
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    client.request("DELETE", f"/api/runs/{run['id']}")
    assert not kept.exists()


def test_an_agent_that_wrote_nothing_on_stderr_has_no_link(fakes: Fakes) -> None:
    fakes.configure()
    fakes.start()
    run = fakes.final(fakes.launch("claude")["id"])
    assert run["state"] == "succeeded"
    assert fakes.d.client.request_bytes("GET", f"/api/runs/{run['id']}/stderr") == b""
    page = fakes.d.client.request_bytes("GET", f"/runs/{run['id']}").decode()
    assert "Raw events" in page and "Raw stderr" not in page
    assert not list(Path(fakes.home).rglob(f"{run['id']}.stderr"))
