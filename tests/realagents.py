"""A real daemon whose claude, codex, gemini and aider are the pinned CLIs in ``.agents/bin``
(``make agents``), each pointed at a scripted model server of the test's (tests/models).

The daemon's PATH is built here, never inherited: ``.agents/bin`` (the four CLIs and the node
they run with) and the system's basics, so neither a CLI installed on this machine nor the fakes
CI puts first on PATH (``AIOS_TEST_FAKE_AGENTS=1``) can stand in for a pinned one. HOME is a
fresh directory holding only what each CLI needs to work offline (docs/agents.md, "Verified
versions and the real-agents tier"), so no user's login or settings take part either.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from scripts.install_agents import BIN, Pin, installed, pins
from tests.fakeagents import final_run
from tests.helpers import DaemonProcess, free_port, require, start_daemon, wait_until
from tests.models.base import ScriptedModel

# Enough of the system for the CLIs, their tools and AIOS's own git: nothing that could hold
# an agent CLI of its own (no /usr/local/bin, no ~/.local/bin).
SYSTEM_PATH = ("/usr/bin", "/bin")
PINNED = {pin.cli: pin for pin in pins()}
AIDER_MODEL = "openai/aios-test"
KEY_VARIABLE = "SCRIPTED_MODEL_KEY"  # where codex's provider reads its key
KEY = "sk-aios-test"  # any key: the scripted servers take every one (unless scripted to refuse)


def path() -> str:
    return os.pathsep.join((str(BIN), *SYSTEM_PATH))


def require_installed() -> None:
    require(
        installed(),
        "the pinned agent CLIs are not installed: run `make agents` (it needs Node.js and npm, "
        "and Python 3.10 to 3.12 for aider)",
    )


def reported_version(cli: str) -> str:
    """The version ``cli --version`` says, run as the daemon will run it."""
    env = {"PATH": path(), "HOME": "/nonexistent"}
    said = subprocess.run(
        [cli, "--version"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    match = re.search(r"\d+\.\d+\.\d+", said.stdout)
    assert match is not None, f"{cli} --version: {said.stdout!r} {said.stderr!r}"
    return match[0]


def pin(cli: str) -> Pin:
    return PINNED[cli]


class RealAgents:
    """A daemon-to-be whose agent CLIs are the pinned real ones: give it models, start, launch."""

    def __init__(self, home: Path, tmp_path: Path) -> None:
        require_installed()
        self.home = home
        self.user_home = tmp_path / "user-home"  # the CLIs' HOME
        self.user_home.mkdir()
        self.daemon: DaemonProcess | None = None

    def start(self, **models: ScriptedModel) -> DaemonProcess:
        """A daemon whose CLIs talk to ``models`` (keyed by CLI name: claude, codex, gemini,
        aider)."""
        return self.start_with(self.environment(**models))

    def environment(self, **models: ScriptedModel) -> dict[str, str]:
        """The daemon's environment for :meth:`start` (the CLIs' files are written now).

        Every CLI is set up, those without a model with no key and a loopback port nothing
        listens on: listing the agents runs their login checks (``claude auth status``), and
        a CLI left to its defaults would look up its provider's real address.
        """
        env = {"PATH": path(), "HOME": str(self.user_home)}
        (self.user_home / ".gitconfig").write_text(
            "[user]\n\tname = Test User\n\temail = test@example.com\n"  # aider commits its edits
        )
        closed = f"http://127.0.0.1:{free_port()}"
        for cli in PINNED:
            model = models.get(cli)
            env.update(
                getattr(self, f"_{cli}")(model.url if model else closed, KEY if model else "")
            )
        return {name: value for name, value in env.items() if value}

    def start_with(self, env: dict[str, str]) -> DaemonProcess:
        self.daemon = start_daemon(self.home, **env)
        return self.daemon

    def _claude(self, url: str, key: str) -> dict[str, str]:
        return {
            "ANTHROPIC_BASE_URL": url,
            "ANTHROPIC_API_KEY": key,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "DISABLE_AUTOUPDATER": "1",
            # One retry, not ten with backoff: a refused key fails in seconds, not minutes.
            "CLAUDE_CODE_MAX_RETRIES": "1",
        }

    def _codex(self, url: str, key: str) -> dict[str, str]:
        codex_home = self.user_home / ".codex"
        codex_home.mkdir()
        # A provider of its own (a known model slug, so codex offers apply_patch), and none of
        # its own look-ups (update check, analytics, plugins, apps).
        (codex_home / "config.toml").write_text(
            'model = "gpt-5.5"\nmodel_provider = "scripted"\n'
            "check_for_update_on_startup = false\n"
            "[analytics]\nenabled = false\n"
            "[features]\nplugins = false\napps = false\n"
            "[model_providers.scripted]\n"
            f'name = "scripted"\nbase_url = "{url}/v1"\n'
            f'env_key = "{KEY_VARIABLE}"\nwire_api = "responses"\n'
            # One retry, as for claude: a refused key fails in seconds.
            "request_max_retries = 1\nstream_max_retries = 1\n"
        )
        return {KEY_VARIABLE: key}

    def _gemini(self, url: str, key: str) -> dict[str, str]:
        settings = {
            # Without an auth type gemini exits 41 before it calls anything.
            "security": {"auth": {"selectedType": "gemini-api-key"}},
            "privacy": {"usageStatisticsEnabled": False},
            "telemetry": {"enabled": False},
            "general": {
                "enableAutoUpdate": False,
                "enableAutoUpdateNotification": False,
                # Two attempts, not ten with backoff up to 30 s: an API error fails in seconds.
                "maxAttempts": 2,
            },
        }
        (self.user_home / ".gemini").mkdir()
        (self.user_home / ".gemini" / "settings.json").write_text(json.dumps(settings))
        return {"GEMINI_API_KEY": key, "GOOGLE_GEMINI_BASE_URL": url}

    def _aider(self, url: str, key: str) -> dict[str, str]:
        # The model's size and prices: without them aider fetches litellm's price list.
        metadata = self.user_home / "aider-models.json"
        prices = {
            "max_input_tokens": 100_000, "max_output_tokens": 4096, "max_tokens": 4096,
            "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6,
            "litellm_provider": "openai", "mode": "chat",
        }  # fmt: skip
        metadata.write_text(json.dumps({AIDER_MODEL: prices}))
        return {
            "AIDER_MODEL": AIDER_MODEL,
            "AIDER_OPENAI_API_BASE": f"{url}/v1",
            "AIDER_OPENAI_API_KEY": key,
            "AIDER_MODEL_METADATA_FILE": str(metadata),
            "AIDER_SHOW_MODEL_WARNINGS": "false",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }

    @property
    def d(self) -> DaemonProcess:
        assert self.daemon is not None
        return self.daemon

    def launch(self, agent: str, prompt: str, cwd: Path, **extra: Any) -> dict[str, Any]:
        body = {"agent": agent, "prompt": prompt, "cwd": str(cwd), "permission": "edit", **extra}
        run = self.d.client.request("POST", "/api/runs", body)
        assert isinstance(run, dict)
        return run

    def continue_(self, run_id: str, prompt: str) -> dict[str, Any]:
        run = self.d.client.request("POST", f"/api/runs/{run_id}/continue", {"prompt": prompt})
        assert isinstance(run, dict)
        return run

    def final(self, run_id: str, timeout: float = 60) -> dict[str, Any]:
        return final_run(self.d, run_id, timeout)

    def now(self, run_id: str) -> dict[str, Any]:
        run = self.d.client.request("GET", f"/api/runs/{run_id}")
        assert isinstance(run, dict)
        return run

    def waiting(self, run_id: str, timeout: float = 90) -> dict[str, Any]:
        """A two-way run once its turn is over and it waits for the user's next message."""

        def between_turns() -> dict[str, Any] | None:
            run = self.now(run_id)
            assert run["state"] in ("starting", "running"), (run["error"], self.log(run_id)[-3000:])
            return run if run["activity"] == "waiting" else None

        run: dict[str, Any] = wait_until(between_turns, timeout, "the turn to end")
        return run

    def log(self, run_id: str) -> str:
        return self.d.client.request_bytes("GET", f"/api/runs/{run_id}/log").decode()

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """The raw JSON lines the CLI wrote on stdout."""
        raw = self.d.client.request_bytes("GET", f"/api/runs/{run_id}/events").decode()
        return [json.loads(line) for line in raw.splitlines() if line.strip()]
