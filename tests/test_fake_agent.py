"""The fake agent CLIs themselves: they must replay what the scenarios say, or every test built
on them proves nothing."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.fakes.agent import STREAMS, Scenario
from tests.helpers import AGENT_CLIS, fake_agents

SCENARIOS = sorted(path.stem for path in STREAMS.glob("*.json"))


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_agents(tmp_path_factory.mktemp("bin"))


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIOS_")}
    return {**base, "AIOS_FAKE_SPEED": "0", **extra}


def run(bin_dir: Path, name: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / name), *args],
        env=env(**extra),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_scenario_is_complete_and_says_where_it_comes_from(name: str) -> None:
    scenario = Scenario(name)
    assert name.split("-", maxsplit=1)[0] in AGENT_CLIS
    assert isinstance(scenario.meta["synthetic"], bool)
    assert scenario.meta["source"] and scenario.meta["what"]
    assert scenario.exit == "hang" or scenario.exit.isdigit()
    assert scenario.out or scenario.err
    played = [(what, value) for what, value in scenario.steps() if what != "sleep"]
    expected = [("out", line) for line in scenario.out] + [("err", line) for line in scenario.err]
    assert sorted(played) == sorted(expected), "the script plays every line exactly once"
    assert [v for w, v in played if w == "out"] == scenario.out, "stdout in its order"
    if name.split("-", maxsplit=1)[0] != "aider":
        assert all(line.startswith("{") for line in scenario.out), "stdout is JSON lines"


@pytest.mark.parametrize("name", [n for n in SCENARIOS if Scenario(n).exit != "hang"], ids=str)
def test_a_scenario_replays_its_lines_and_exit_code(bin_dir: Path, name: str) -> None:
    cli = name.split("-", maxsplit=1)[0]
    scenario = Scenario(name)
    result = run(bin_dir, cli, "--", "a prompt", AIOS_FAKE_SCENARIO=name)
    assert result.returncode == int(scenario.exit), result.stderr
    assert result.stdout.splitlines() == scenario.out
    assert result.stderr.splitlines() == scenario.err


def test_argv_cwd_and_env_are_logged_per_invocation(bin_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "argv.jsonl"
    for prompt in ("--verbose flag is broken, fix it", "second"):
        result = subprocess.run(
            [str(bin_dir / "claude"), "-p", "--output-format", "stream-json", "--", prompt],
            env=env(AIOS_FAKE_ARGV_LOG=str(log), AIOS_RUN_ID="abc123", AIOS_PROMPT=prompt),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert result.stdout
    first, second = (json.loads(line) for line in log.read_text().splitlines())
    assert first["name"] == "claude"
    assert first["argv"] == [
        "-p",
        "--output-format",
        "stream-json",
        "--",
        first["env"]["AIOS_PROMPT"],
    ]
    assert first["cwd"] == str(tmp_path)
    assert first["env"]["AIOS_RUN_ID"] == "abc123"
    assert first["scenario"] == "claude-success"
    assert second["argv"][-1] == "second"


def test_the_default_scenario_is_the_clis_success(bin_dir: Path) -> None:
    for cli in AGENT_CLIS:
        result = run(bin_dir, cli, "--", "hi", AIOS_FAKE_SCENARIO="codex-untrusted-dir")
        expected = "codex-untrusted-dir" if cli == "codex" else f"{cli}-success"
        assert result.stdout.splitlines() == Scenario(expected).out, cli


def test_a_per_cli_scenario_wins_and_an_unknown_one_is_an_error(bin_dir: Path) -> None:
    chosen = run(
        bin_dir,
        "gemini",
        AIOS_FAKE_SCENARIO="gemini-denied",
        AIOS_FAKE_SCENARIO_GEMINI="gemini-not-logged-in",
    )
    assert chosen.returncode == 41
    unknown = run(bin_dir, "gemini", AIOS_FAKE_SCENARIO_GEMINI="gemini-nonsense")
    assert unknown.returncode == 97
    assert "gemini-nonsense" in unknown.stderr and "gemini-success" in unknown.stderr


def test_a_version_flag_before_the_prompt_is_an_option_after_it_a_prompt(bin_dir: Path) -> None:
    assert run(bin_dir, "claude", "-p", "--version").stdout.strip() == "2.1.332 (Claude Code)"
    after = run(bin_dir, "claude", "-p", "--", "--version")
    assert after.stdout.splitlines() == Scenario("claude-success").out


@pytest.mark.parametrize(
    ("command", "state", "code", "said"),
    [
        ("claude auth status", "logged_in", 0, '"loggedIn": true'),
        ("claude auth status", "not_logged_in", 1, '"loggedIn": false'),
        ("codex login status", "logged_in", 0, "Logged in using ChatGPT"),
        ("codex login status", "not_logged_in", 1, "Not logged in"),
    ],
)
def test_auth_status_answers_like_the_real_cli(
    bin_dir: Path, command: str, state: str, code: int, said: str
) -> None:
    result = run(bin_dir, *command.split(), AIOS_FAKE_AUTH=state)
    assert result.returncode == code
    assert said in result.stdout + result.stderr


def test_a_hang_replays_its_repeated_line_until_killed(bin_dir: Path) -> None:
    with subprocess.Popen(
        [str(bin_dir / "codex"), "exec", "--json", "--", "hi"],
        env=env(AIOS_FAKE_SCENARIO="codex-reconnect"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            recorded = Scenario("codex-reconnect").out
            lines = [proc.stdout.readline().rstrip("\n") for _ in range(len(recorded) + 3)]
            assert lines[: len(recorded)] == recorded
            assert lines[len(recorded) :] == [recorded[-1]] * 3
            assert proc.poll() is None
        finally:
            proc.kill()  # or leaving the with block would wait for ever


def test_a_silent_hang_stays_alive_after_its_last_line(bin_dir: Path) -> None:
    with subprocess.Popen(
        [str(bin_dir / "claude"), "-p", "--", "hi"],
        env=env(AIOS_FAKE_SCENARIO="claude-silent"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().rstrip("\n") == Scenario("claude-silent").out[0]
            assert proc.poll() is None
        finally:
            proc.kill()
