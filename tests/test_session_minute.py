"""A continuation of a CLI that loses a session resumed in the minute it was last written (Gemini
CLI 0.61.0 over ACP: docs/agents.md) holds its handshake until the minute after its parent
ended, says so in its log, and still stops at once. A small ACP agent stands in for gemini here;
tests/test_real_two_way_gemini.py continues the real one without waiting itself."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from aios.agents.attempt import session_opens_at
from aios.agents.presets import PRESETS
from aios.runs import Run
from tests.fakeagents import Fakes
from tests.helpers import wait_until

pytestmark = pytest.mark.daemon

# ACP in small: each method it is sent is written to METHODS, one line each, as it arrives.
ACP = r"""
import json, sys

METHODS = {methods!r}
assert sys.argv[1:] == ["--acp"], sys.argv
prompts = 0
for line in sys.stdin:
    message = json.loads(line)
    method = message.get("method")
    with open(METHODS, "a") as out:
        out.write(f"{{method}}\n")
    result = None
    if method == "initialize":
        result = {{"protocolVersion": 1, "agentCapabilities": {{"loadSession": True}},
                  "agentInfo": {{"name": "acp", "version": "0.0.1"}}}}
    elif method == "session/new":
        result = {{"sessionId": "s-1"}}
    elif method == "session/load":
        result = {{}}
    elif method == "session/prompt":
        result = {{"stopReason": "end_turn"}}
    if "id" in message and result is not None:
        print(json.dumps({{"jsonrpc": "2.0", "id": message["id"], "result": result}}), flush=True)
"""


def start(fakes: Fakes, tmp_path: Path) -> Path:
    methods = tmp_path / "methods.txt"
    script = tmp_path / "acp.py"
    script.write_text(ACP.format(methods=str(methods)))
    command = json.dumps([sys.executable, str(script), "{resume}", "--prompt={prompt}"])
    fakes.configure(
        f'[agents.acp]\ncommand = {command}\nformat = "gemini-stream-json"\napprovals = "ask"\n'
    )
    fakes.start()
    return methods


def get(fakes: Fakes, run_id: str) -> dict[str, Any]:
    run = fakes.d.client.request("GET", f"/api/runs/{run_id}")
    assert isinstance(run, dict)
    return run


def test_a_continuation_in_the_minute_its_parent_ended_waits_and_stops_at_once(
    fakes: Fakes, tmp_path: Path
) -> None:
    methods = start(fakes, tmp_path)
    if time.time() % 60 > 50:  # the parent must end, and the child start, in the same minute
        wait_until(lambda: time.time() % 60 < 50, 15, "the start of a minute")
    rid = fakes.launch("acp", "hello")["id"]
    wait_until(lambda: get(fakes, rid)["activity"] == "waiting", what="the first turn's end")
    fakes.d.client.request("POST", f"/api/runs/{rid}/done")
    parent = fakes.final(rid)
    assert parent["state"] == "succeeded" and parent["session_id"] == "s-1"
    assert methods.read_text().split() == ["initialize", "session/new", "session/prompt"]

    child = fakes.d.client.request("POST", f"/api/runs/{rid}/continue", {"prompt": "again"})
    next_minute = (datetime.fromisoformat(parent["ended_at"]).timestamp() // 60 + 1) * 60
    opens = time.strftime("%H:%M", time.gmtime(next_minute))
    wait_until(
        lambda: f"the session opens at {opens} UTC" in fakes.log(child["id"]), what="the note"
    )
    assert get(fakes, child["id"])["state"] in ("starting", "running")
    assert len(methods.read_text().split()) == 3  # nothing sent yet, not even the handshake
    fakes.d.client.request("POST", f"/api/runs/{child['id']}/stop")
    stopped = fakes.final(child["id"])  # at once: the wait ends with the process
    assert stopped["state"] == "stopped"
    assert time.time() < next_minute  # stopped long before it could have loaded
    assert "session/load" not in methods.read_text()


def test_only_the_two_way_session_of_a_later_minute_cli_waits() -> None:
    agents = {agent.name: agent for agent in PRESETS}
    ended = 1_700_000_050.5  # 50.5 s into its minute
    parent = Run(id="r", agent="gemini", prompt="p", cwd="/", ended_at=ended, session_id="s")
    gemini = agents["gemini"]
    assert session_opens_at(gemini, parent) is None  # one-way: its --resume loads it fine
    assert session_opens_at(replace(gemini, approvals="ask"), parent) == 1_700_000_100.0
    assert session_opens_at(replace(agents["claude"], approvals="ask"), parent) is None
    assert (
        session_opens_at(replace(gemini, approvals="ask"), replace(parent, ended_at=None)) is None
    )
