"""What AIOS says to get an agent going, through a real daemon whose PATH is pinned: what to
install for a CLI that is missing, how codex is logged in through a model provider of its own,
and a config agent whose approvals cannot work. In the API, in ``aios agents`` through a real
pipe, and on the dashboard's overview over HTTP."""

from __future__ import annotations

import html
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aios.agents.setup import SETUP
from tests.helpers import (
    DaemonProcess,
    fake_agents,
    run_cli,
    start_daemon,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.daemon

CODEX_CONFIG = """\
model = "gpt-5.5"
model_provider = "mock"

[model_providers.mock]
base_url = "http://127.0.0.1:9/v1"
env_key = "MOCK_API_KEY"
wire_api = "responses"
"""

# Each codex agent is the fake codex with the same CODEX_HOME: one without the provider's key
# variable, one with it. "oneway" asks for approvals its command cannot hold.
CONFIG = """\
[agents.codex]
env = {{ CODEX_HOME = "{codex_home}", AIOS_FAKE_AUTH = "not_logged_in" }}

[agents.codex-mock]
command = ["codex", "exec", "--json", "--", "{{prompt}}"]
format = "codex-json"
env = {{ CODEX_HOME = "{codex_home}", MOCK_API_KEY = "sk-test", AIOS_FAKE_AUTH = "not_logged_in" }}

[agents.oneway]
command = ["claude", "-p", "--output-format", "stream-json", "--verbose"]
format = "claude-stream-json"
approvals = "ask"
"""

INSTALL = {
    "claude": "install Claude Code: npm install -g @anthropic-ai/claude-code",
    "gemini": "install Gemini CLI: npm install -g @google/gemini-cli",
    "aider": "install Aider: pipx install aider-chat",
}


@pytest.fixture
def only_codex(home: Path, tmp_path: Path) -> Iterator[DaemonProcess]:
    """A daemon whose PATH holds the fake codex and sh, and nothing else: whatever is installed
    on this machine, claude, gemini and aider are missing."""
    bin_dir = fake_agents(tmp_path / "bin", "codex")
    (bin_dir / "sh").symlink_to("/bin/sh")
    codex_home = tmp_path / "codex-home"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(CODEX_CONFIG, encoding="utf-8")
    write_config(home, CONFIG.format(codex_home=codex_home))
    d = start_daemon(home, PATH=str(bin_dir))
    try:
        yield d
    finally:
        d.close()


def settled_agents(d: DaemonProcess) -> dict[str, Any]:
    """/api/agents once every login check has answered (a listing waits only so long)."""

    def answered() -> dict[str, Any] | None:
        body = d.client.request("GET", "/api/agents")
        assert isinstance(body, dict)
        codexes = [a for a in body["agents"] if a["name"] in ("codex", "codex-mock")]
        return body if all(a["auth"] != "unknown" for a in codexes) else None

    result: dict[str, Any] = wait_until(answered, 30, "the login checks to answer")
    return result


def approvals_line(path: Path) -> int:
    lines = path.read_text().split("\n")
    return lines.index('approvals = "ask"') + 1


def test_the_api_says_what_to_install_and_how_codex_is_logged_in(
    only_codex: DaemonProcess,
) -> None:
    body = settled_agents(only_codex)
    agents = {agent["name"]: agent for agent in body["agents"]}
    for name, hint in INSTALL.items():
        agent = agents[name]
        assert agent["available"] is False
        assert agent["unavailable_reason"] == f"'{name}' not found on PATH"
        assert agent["install_hint"] == hint
        assert agent["login_hint"]
        assert agent["auth"] is None  # no check for a CLI that is not there
    assert agents["command"]["available"] and agents["command"]["install_hint"] is None
    codex, mock = agents["codex"], agents["codex-mock"]
    assert codex["available"] and codex["install_hint"] == (
        "install Codex CLI: npm install -g @openai/codex"
    )
    # codex login status says "Not logged in" to both; the provider's key variable decides.
    assert (codex["auth"], codex["auth_detail"]) == (
        "not_logged_in",
        'model provider "mock" reads its key from MOCK_API_KEY: set it where AIOS starts'
        " (~/.profile), then restart AIOS",
    )
    assert (mock["auth"], mock["auth_detail"]) == (
        "logged_in",
        'via model provider "mock" (key in MOCK_API_KEY)',
    )
    assert "sk-test" not in str(body)
    path = Path(body["config"]["path"])
    assert body["config"]["problems"] == [
        f'{path}:{approvals_line(path)}: warning: agents.oneway.approvals = "ask" is ignored: a'
        ' two-way session needs a whole "{prompt}" element in the command, which it replaces'
        ' with "--input-format stream-json --permission-prompt-tool stdio" (the prompt then goes'
        " in on stdin); without one, its runs are one-way and never ask for approval"
    ]
    assert agents["oneway"]["approvals"] == "never"


def test_aios_agents_prints_the_hints_under_the_table(only_codex: DaemonProcess) -> None:
    settled_agents(only_codex)
    listing = run_cli(only_codex.home, "agents")  # stdout is a pipe
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    row = next(line for line in lines if line.startswith("claude "))
    assert row.split()[:3] == ["claude", "preset", "no"]
    for name, hint in INSTALL.items():
        assert f"{name}: '{name}' not found on PATH — {hint}" in lines
    assert (
        'codex: not logged in — model provider "mock" reads its key from MOCK_API_KEY: set it'
        " where AIOS starts (~/.profile), then restart AIOS"
    ) in lines
    assert 'codex-mock: logged in — via model provider "mock" (key in MOCK_API_KEY)' in lines
    assert not any(line.startswith("command:") for line in lines)  # nothing to say about it
    path = only_codex.home / "config" / "config.toml"
    warning = next(line for line in lines if "agents.oneway.approvals" in line)
    assert warning.strip().startswith(f"{path}:{approvals_line(path)}: warning: ")
    assert "\x1b[" not in listing.stdout


def test_the_overview_shows_the_hints(only_codex: DaemonProcess) -> None:
    settled_agents(only_codex)
    page = html.unescape(only_codex.client.request_bytes("GET", "/").decode())
    for name, hint in INSTALL.items():
        assert f"unavailable: '{name}' not found on PATH — {hint}" in page
    assert 'model provider "mock" reads its key from MOCK_API_KEY' in page
    assert 'logged in — via model provider "mock" (key in MOCK_API_KEY)' in page
    assert 'agents.oneway.approvals = "ask" is ignored' in page


def test_a_missing_login_shows_how_to_log_in(home: Path, tmp_path: Path) -> None:
    bin_dir = fake_agents(tmp_path / "bin", "claude")
    write_config(home, '[agents.claude]\nenv = { AIOS_FAKE_AUTH = "not_logged_in" }\n')
    d = start_daemon(home, PATH=f"{bin_dir}{os.pathsep}{tmp_path / 'nothing'}")
    try:

        def claude() -> dict[str, Any] | None:
            body = d.client.request("GET", "/api/agents")
            found = next(a for a in body["agents"] if a["name"] == "claude")
            return found if found["auth"] == "not_logged_in" else None

        agent = wait_until(claude, 30, "claude's login check")
        assert "ANTHROPIC_API_KEY" in agent["login_hint"] and agent["auth_detail"] is None
        listing = run_cli(home, "agents")
        assert f"claude: not logged in — {agent['login_hint']}" in listing.stdout.splitlines()
        page = html.unescape(d.client.request_bytes("GET", "/").decode())
        assert agent["login_hint"] in page
    finally:
        d.close()


def test_the_install_commands_are_the_documented_ones() -> None:
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    agents = (root / "docs" / "agents.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Your first real agent run") :]
    for name, setup in SETUP.items():
        assert f"| `{setup.install}`" in section, name
        assert f"| `{setup.install}` |" in agents, name
    # The example listing (claude ready, codex not logged in, aider and gemini missing) is what
    # aios agents prints.
    for name in ("aider", "gemini"):
        assert f"{name}: '{name}' not found on PATH — {SETUP[name].install_hint}" in section
    assert f"codex: not logged in — {SETUP['codex'].login}" in section


def test_the_agents_list_says_which_agents_ask_and_how(home: Path, tmp_path: Path) -> None:
    """``can_ask`` (the two-way protocol's words) in the API, the ASKS column of ``aios agents``
    (yes: approvals = "ask"; can: its CLI could; empty: it cannot), and the dashboard."""
    bin_dir = fake_agents(tmp_path / "bin", "claude")
    write_config(
        home,
        '[agents.claude]\napprovals = "ask"\n'
        '[agents.mine]\ncommand = ["claude", "-p", "--output-format", "stream-json",'
        ' "--verbose", "--", "{prompt}"]\nformat = "claude-stream-json"\n',
    )
    d = start_daemon(home, PATH=f"{bin_dir}{os.pathsep}/usr/bin:/bin")
    try:
        body = d.client.request("GET", "/api/agents")
        agents = {agent["name"]: agent for agent in body["agents"]}
        how = agents["claude"]["can_ask"]
        assert how and agents["mine"]["can_ask"] == how and agents["command"]["can_ask"] is None
        listing = run_cli(home, "agents")
        assert listing.returncode == 0, listing.stderr
        lines = listing.stdout.splitlines()
        assert lines[0].split() == ["NAME", "SOURCE", "AVAILABLE", "LOGIN", "ASKS", "COMMAND"]
        column = lines[0].index("ASKS")
        asks = {
            line.split()[0]: line[column : column + 4].strip() for line in lines[1:] if line.strip()
        }
        assert (asks["claude"], asks["mine"], asks["command"]) == ("yes", "can", "")
        page = html.unescape(d.client.request_bytes("GET", "/").decode())
        assert f"asks before each tool: {how}" in page
        assert f'can ask (approvals = "ask"): {how}' in page
    finally:
        d.close()
