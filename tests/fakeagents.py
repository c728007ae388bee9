"""A real daemon whose claude, codex, gemini and aider are the fake CLIs (tests/fakes)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.helpers import DaemonProcess, fake_agents, start_daemon, wait_until, write_config

FINAL = {"succeeded", "failed", "stopped", "interrupted"}


def final_run(daemon: DaemonProcess, run_id: str, timeout: float = 20) -> dict[str, Any]:
    """The run once it has ended."""

    def ended() -> dict[str, Any] | None:
        run = daemon.client.request("GET", f"/api/runs/{run_id}")
        assert isinstance(run, dict)
        return run if run["state"] in FINAL else None

    result: dict[str, Any] = wait_until(ended, timeout, f"run {run_id} to end")
    return result


class Fakes:
    """A daemon whose claude, codex, gemini and aider are the fakes."""

    def __init__(self, home: Path, tmp_path: Path) -> None:
        self.home = home
        self.bin = fake_agents(tmp_path / "bin")
        self.argv_log = tmp_path / "argv.jsonl"
        self.workdir = tmp_path / "work"
        self.workdir.mkdir()
        self.daemon: DaemonProcess | None = None

    def configure(self, extra: str = "", **scenarios: str) -> None:
        """Each CLI replays ``scenarios[cli]`` (its success by default), at full speed."""
        tables = []
        for cli in ("claude", "codex", "gemini", "aider"):
            env = {
                "AIOS_FAKE_SCENARIO": scenarios.get(cli, f"{cli}-success"),
                "AIOS_FAKE_SPEED": scenarios.get("speed", "0"),
                "AIOS_FAKE_ARGV_LOG": str(self.argv_log),
                "AIOS_FAKE_AUTH": scenarios.get(f"{cli}_auth", "not_logged_in"),
            }
            if cli == "codex":  # its login check reads ~/.codex/config.toml: not this machine's
                env["CODEX_HOME"] = str(self.home / "codex-home")
            inline = ", ".join(f"{k} = {json.dumps(v)}" for k, v in env.items())
            tables.append(f"[agents.{cli}]\nenv = {{ {inline} }}\n")
        write_config(self.home, "\n".join(tables) + extra)

    def start(self) -> DaemonProcess:
        self.daemon = start_daemon(self.home, PATH=f"{self.bin}{os.pathsep}{os.environ['PATH']}")
        return self.daemon

    @property
    def d(self) -> DaemonProcess:
        assert self.daemon is not None
        return self.daemon

    def launch(self, agent: str, prompt: str = "write hello.py", **extra: Any) -> dict[str, Any]:
        body = {"agent": agent, "prompt": prompt, "cwd": str(self.workdir), **extra}
        run = self.d.client.request("POST", "/api/runs", body)
        assert isinstance(run, dict)
        return run

    def final(self, run_id: str, timeout: float = 20) -> dict[str, Any]:
        return final_run(self.d, run_id, timeout)

    def invocations(self) -> list[dict[str, Any]]:
        if not self.argv_log.exists():
            return []
        return [json.loads(line) for line in self.argv_log.read_text().splitlines()]

    def log(self, run_id: str) -> str:
        text = self.d.client.request_bytes("GET", f"/api/runs/{run_id}/log").decode()
        return text
