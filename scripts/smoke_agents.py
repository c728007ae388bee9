"""``make smoke-agents``: run the real agent CLIs installed here through AIOS; print what it saw.

Not part of the test suite (CI has no agent CLI, no login and no network): a way to check the
presets against the CLIs as they are installed today. Each available preset gets one harmless,
read-only prompt in a scratch git repository, in a daemon of its own (a scratch AIOS_HOME), and
the report says what AIOS understood: login state, activities as they came, the outcome, its
hint, session, model, tokens and cost. A run still going after ``SMOKE_TIMEOUT`` seconds (default
180) is stopped. An agent whose CLI says it is not logged in is not tried (the reason and what
to do are printed instead); with none installed, or none logged in, there is nothing to try:
it says so and exits 0, as it does after trying (the report is for reading, not a verdict).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aios.client import DaemonClient
from aios.runtime import RuntimeInfo

AGENTS = ("claude", "codex", "gemini", "aider")
PROMPT = "Reply with the single word: hello. Do not read, create or change any file."
FINAL = {"succeeded", "failed", "stopped", "interrupted"}
LOGIN_CHECKS = 20  # seconds to wait for the CLIs' own login checks (claude auth status …)


def main() -> int:
    timeout = float(os.environ.get("SMOKE_TIMEOUT", "180"))
    with tempfile.TemporaryDirectory(prefix="aios-smoke-") as scratch:
        home, repo = Path(scratch) / "home", Path(scratch) / "repo"
        repo.mkdir()
        for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "smoke"]):
            subprocess.run(
                ["git", "-c", "user.name=aios", "-c", "user.email=aios@localhost", *args],
                cwd=repo,
                check=True,
            )
        env = {**os.environ, "AIOS_HOME": str(home)}
        daemon = subprocess.Popen(
            [sys.executable, "-m", "aios", "serve", "--no-browser"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert daemon.stdout is not None
            daemon.stdout.readline()  # AIOS_PORT:<port>: the runtime file is written
            runtime = home / "run" / "aios.json"
            client = DaemonClient(RuntimeInfo.from_json(runtime, json.loads(runtime.read_text())))
            found = installed(client)
            if not found:
                print("none of claude, codex, gemini, aider is on PATH: nothing to try")
                return 0
            ready = [a for a in found if a["auth"] != "not_logged_in"]
            for agent in found:
                if agent not in ready:
                    print(f"{agent['name']}: not logged in, not tried — {login_hint(agent)}")
            if not ready:
                print(f"none of {', '.join(a['name'] for a in found)} is logged in: nothing to try")
                return 0
            for agent in ready:
                smoke(client, agent, str(repo), timeout)
        finally:
            daemon.terminate()
            daemon.wait(60)
    return 0


def installed(client: DaemonClient) -> list[dict[str, Any]]:
    """The agent CLIs on PATH, once their login checks have answered (``unknown`` until then;
    a check that never answers stays unknown, and its agent is tried)."""
    deadline = time.monotonic() + LOGIN_CHECKS
    while True:
        listed = client.request("GET", "/api/agents")
        assert isinstance(listed, dict)
        found = [a for a in listed["agents"] if a["name"] in AGENTS and a["available"]]
        if time.monotonic() > deadline or all(a["auth"] != "unknown" for a in found):
            return found
        time.sleep(0.5)


def login_hint(agent: dict[str, Any]) -> str:
    return str(agent.get("auth_detail") or agent.get("login_hint") or "log in to it first")


def smoke(client: DaemonClient, agent: dict[str, Any], cwd: str, timeout: float) -> None:
    name = agent["name"]
    print(f"\n=== {name}: {' '.join(agent['command'])}")
    print(f"login: {agent.get('auth')}")
    started = time.monotonic()
    run = client.request(
        "POST",
        "/api/runs",
        {"agent": name, "prompt": PROMPT, "cwd": cwd, "permission": "read-only"},
    )
    assert isinstance(run, dict)
    seen: list[str] = []
    events = client.events()
    try:
        for event in events:
            if time.monotonic() - started > timeout:
                print(f"still going after {timeout:g} s: stopping it")
                client.request("POST", f"/api/runs/{run['id']}/stop")
                timeout = float("inf")
            data = json.loads(event.data)
            if event.event == "attention" and data.get("run") == run["id"]:
                print(f"attention: {data['reason']}: {data['message']}")
            if event.event != "run" or data.get("id") != run["id"]:
                continue
            activity = f"{data['activity']}: {data['activity_detail'] or ''}".rstrip(": ")
            if data["activity"] and (not seen or seen[-1] != activity):
                seen.append(activity)
                print(f"{time.monotonic() - started:6.1f} s  {activity}")
            if data["state"] in FINAL:
                report(data, time.monotonic() - started)
                return
    finally:
        events.close()


def report(run: dict[str, Any], elapsed: float) -> None:
    print(f"ended {run['state']} (exit {run['exit_code']}) after {elapsed:.1f} s")
    for key in ("error", "error_kind", "hint", "session_id", "model", "tokens", "cost_usd"):
        print(f"  {key}: {run.get(key)}")
    if run.get("denials"):
        print(f"  denials: {run['denials']}")


if __name__ == "__main__":
    sys.exit(main())
