"""Settings and agent definitions, loaded from real config.toml files in tmp_path."""

from __future__ import annotations

import dataclasses
import os
import stat
import textwrap
from pathlib import Path

import pytest

from aios import template
from aios.agents.definitions import AgentDef, RestartPolicy
from aios.agents.presets import PRESETS
from aios.config import SETTINGS, Config, ConfigProblem, Setting, Settings, load_config
from aios.runs import Permission

PRESET_NAMES = ["claude", "codex", "aider", "gemini", "command"]

# The example from DESIGN.md section 4, verbatim.
DESIGN_EXAMPLE = """\
max_concurrent = 4            # runs beyond this wait in a queue

[agents.tests]                # a user-defined agent
command = ["pytest", "-x"]    # argv list, never a shell string
cwd = "~/src/app"             # default working directory
description = "Run the test suite"
stop_timeout = 10             # seconds between SIGTERM and SIGKILL
restart = "no"                # "no" | "on-failure" (with exponential backoff, max_restarts)
env = { PYTHONUNBUFFERED = "1" }
"""


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_config(path)


def only_problem(config: Config) -> ConfigProblem:
    assert len(config.problems) == 1, config.problems
    return config.problems[0]


def executable(directory: Path, name: str, mode: int = 0o755) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(mode)
    return path


def test_missing_file_gives_presets_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "config.toml"
    config = load_config(path)
    assert config.problems == ()
    assert config.settings == Settings()
    assert list(config.agents) == PRESET_NAMES
    assert all(agent.source == "preset" for agent in config.agents.values())
    assert config.path == path
    assert not path.exists()


def test_presets_table() -> None:
    commands = {agent.name: (agent.label, agent.format, agent.command) for agent in PRESETS}
    assert commands == {
        "claude": (
            "Claude Code",
            "claude-stream-json",
            ("claude", "-p", "--output-format", "stream-json", "--verbose", "{permission}",
             "{resume}", "--", "{prompt}"),
        ),
        "codex": (
            "Codex CLI", "codex-json",
            ("codex", "exec", "--json", "{permission}", "{resume}", "--", "{prompt}"),
        ),
        "aider": (
            "Aider",
            "aider",
            ("aider", "--no-analytics", "--no-check-update", "{permission}", "{resume}",
             "--message={prompt}"),
        ),
        "gemini": (
            "Gemini CLI",
            "gemini-stream-json",
            ("gemini", "--skip-trust", "-o", "stream-json", "{permission}", "{resume}",
             "--prompt={prompt}"),
        ),
        "command": ("Command", "text", ("sh", "-c", "--", "{prompt}")),
    }  # fmt: skip
    assert all(agent.takes_prompt and agent.description for agent in PRESETS)
    # No preset lets a prompt that starts with "-" become an option.
    assert all(template.warnings(agent.command) == [] for agent in PRESETS)


@pytest.mark.parametrize(
    ("name", "permission", "flags"),
    [
        ("claude", Permission.READ_ONLY, ["--permission-mode", "plan"]),
        ("claude", Permission.EDIT, ["--permission-mode", "acceptEdits"]),
        ("claude", Permission.FULL, ["--dangerously-skip-permissions"]),
        ("codex", Permission.READ_ONLY, ["--sandbox", "read-only"]),
        ("codex", Permission.EDIT, ["--sandbox", "workspace-write"]),
        ("codex", Permission.FULL, ["--dangerously-bypass-approvals-and-sandbox"]),
        ("gemini", Permission.READ_ONLY, ["--approval-mode", "plan"]),
        ("gemini", Permission.EDIT, ["--approval-mode", "auto_edit"]),
        ("gemini", Permission.FULL, ["--approval-mode", "yolo"]),
        (
            "aider",
            Permission.READ_ONLY,
            ["--dry-run", "--yes-always", "--no-suggest-shell-commands"],
        ),
        ("aider", Permission.EDIT, ["--yes-always", "--no-suggest-shell-commands"]),
        ("aider", Permission.FULL, ["--yes-always"]),
    ],
)
def test_preset_argv_puts_the_permission_flags_in_and_the_prompt_out_of_reach(
    name: str, permission: Permission, flags: list[str]
) -> None:
    agent = next(agent for agent in PRESETS if agent.name == name)
    assert agent.default_permission is Permission.EDIT
    assert set(agent.permissions) == set(Permission)
    argv = agent.argv("--version", permission)
    if name in ("aider", "gemini"):
        assert argv[-1] == ("--message=--version" if name == "aider" else "--prompt=--version")
        assert argv[-1 - len(flags) : -1] == flags
    else:
        assert argv[-2:] == ["--", "--version"]
        assert argv[-2 - len(flags) : -2] == flags
    assert agent.argv("x") == agent.argv("x", Permission.EDIT)


@pytest.mark.parametrize(
    ("name", "session", "tail"),
    [
        ("claude", "s-1", ["--resume", "s-1", "--", "go on"]),
        ("codex", "t-1", ["resume", "t-1", "--", "go on"]),
        ("gemini", "g-1", ["--resume", "g-1", "--prompt=go on"]),
        ("aider", "", ["--restore-chat-history", "--message=go on"]),
    ],
)
def test_resuming_puts_the_session_where_the_cli_wants_it(
    name: str, session: str, tail: list[str]
) -> None:
    agent = next(agent for agent in PRESETS if agent.name == name)
    assert agent.can_resume
    assert agent.argv("go on", resume=session)[-len(tail) :] == tail
    assert "--resume" not in agent.argv("go on") and "resume" not in agent.argv("go on")


def test_a_two_way_claude_takes_its_prompt_on_stdin(tmp_path: Path) -> None:
    config = load(tmp_path, '[agents.claude]\napprovals = "ask"\napproval_timeout = 60\n')
    claude = config.agents["claude"]
    assert claude.two_way and claude.approval_timeout == 60
    argv = claude.argv("ignored", resume="s-1")
    assert "--" not in argv and "ignored" not in argv
    assert argv[-6:] == [
        "--resume", "s-1", "--input-format", "stream-json", "--permission-prompt-tool", "stdio"
    ]  # fmt: skip
    bad = load(tmp_path, '[agents.command]\napprovals = "ask"\n')
    assert bad.agents["command"].source == "preset"  # the broken override is left out
    assert 'approvals = "ask" needs a format that can hold a conversation' in str(bad.problems[0])
    assert "codex-json" in str(bad.problems[0])


def test_a_two_way_codex_runs_app_server_with_the_options_it_takes(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [agents.codex]
        approvals = "ask"

        [agents.tuned]
        command = ["codex", "-c", "a=1", "exec", "--json", "--skip-git-repo-check", "-m", "o3",
                   "--sandbox", "read-only", "--enable", "x", "--config=b=2", "-C", "/x",
                   "{permission}", "{resume}", "--", "{prompt}"]
        format = "codex-json"
        approvals = "ask"

        [agents.wrapped]
        command = ["my-codex", "--", "{prompt}"]
        format = "codex-json"
        approvals = "ask"
        """,
    )
    codex = config.agents["codex"]
    assert codex.two_way and codex.can_resume
    assert codex.permissions == (Permission.READ_ONLY, Permission.EDIT, Permission.FULL)
    # Permission and resume go in the handshake, the prompt on stdin: none on the command line.
    assert codex.argv("--hi", Permission.FULL, resume="t-1") == ["codex", "app-server"]
    assert config.agents["tuned"].argv("hi") == [
        "codex", "app-server", "-c", "a=1", "-c", "model=o3", "--enable", "x", "--config", "b=2"
    ]  # fmt: skip
    # A command with no ``exec`` for app-server to take the place of stays one-way.
    wrapped = config.agents["wrapped"]
    assert not wrapped.two_way and wrapped.argv("hi") == ["my-codex", "--", "hi"]
    assert [str(problem) for problem in config.problems] == [
        f'{tmp_path / "config.toml"}:15: warning: agents.wrapped.approvals = "ask" is ignored: '
        "its command is not one that format 'codex-json' can turn into a two-way session "
        f"({codex.output.two_way and codex.output.two_way.how}); its runs are one-way and never "
        "ask for approval"
    ]


def test_a_two_way_aider_chats_on_stdin_and_every_permission_asks(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [agents.aider]
        approvals = "ask"

        [agents.my-aider]
        command = ["aider", "--yes-always", "{permission}", "--message", "{prompt}"]
        format = "aider"
        approvals = "ask"

        [agents.one-shot]
        command = ["aider", "--message-file", "task.md"]
        format = "aider"
        approvals = "ask"
        """,
    )
    aider = config.agents["aider"]
    assert aider.two_way
    # No --message (the chat goes in on stdin) and no --yes-always at any permission.
    chat = ["--no-fancy-input", "--no-show-release-notes"]
    start = ["aider", "--no-analytics", "--no-check-update"]
    assert aider.argv("ignored", Permission.EDIT) == [*start, "--no-suggest-shell-commands", *chat]
    assert aider.argv("ignored", Permission.FULL, resume="") == [
        *start, "--restore-chat-history", *chat
    ]  # fmt: skip
    assert aider.argv("x", Permission.READ_ONLY) == [
        *start, "--dry-run", "--no-suggest-shell-commands", *chat
    ]  # fmt: skip
    assert config.agents["my-aider"].argv("x", Permission.FULL) == ["aider", *chat]
    # A command with no message to replace cannot chat: one-way, and the file says so.
    (problem,) = [p for p in config.problems if "approvals" in str(p)]
    assert problem.warning and 'agents.one-shot.approvals = "ask" is ignored' in str(problem)
    assert not config.agents["one-shot"].two_way


def test_approvals_ask_without_a_whole_prompt_is_a_warning_and_runs_one_way(
    tmp_path: Path,
) -> None:
    config = load(
        tmp_path,
        """
        [agents.wrapped]
        command = ["my-claude", "--output-format", "stream-json"]
        format = "claude-stream-json"
        approvals = "ask"

        [agents.spliced]
        command = ["my-claude", "--prompt={prompt}"]
        format = "claude-stream-json"
        approvals = "ask"

        [agents.spelled-out]
        command = ["c", "--input-format", "stream-json", "--permission-prompt-tool", "stdio"]
        format = "claude-stream-json"
        approvals = "ask"
        """,
    )
    path = tmp_path / "config.toml"
    assert [str(problem) for problem in config.problems] == [
        f'{path}:{line}: warning: agents.{name}.approvals = "ask" is ignored: a two-way session'
        ' needs a whole "{prompt}" element in the command, which it replaces with'
        ' "--input-format stream-json --permission-prompt-tool stdio" (the prompt then goes in'
        " on stdin); without one, its runs are one-way and never ask for approval"
        for name, line in (("wrapped", 5), ("spliced", 10))
    ]
    # Kept, as one-way agents: no open stdin of JSON lines for a CLI that was never told to read
    # them; the API says what it will do.
    for name in ("wrapped", "spliced"):
        agent = config.agents[name]
        assert agent.approvals == "never" and not agent.two_way
        assert agent.to_json()["approvals"] == "never"
    assert config.agents["spliced"].argv("hi") == ["my-claude", "--prompt=hi"]
    # The session's arguments written out by hand work: the prompt goes in on stdin.
    assert config.agents["spelled-out"].two_way


def test_every_cli_preset_says_how_to_install_and_log_in(tmp_path: Path) -> None:
    for agent in PRESETS:
        data = agent.to_json(path=str(tmp_path))
        if agent.name == "command":
            assert (data["install_hint"], data["login_hint"]) == (None, None)
            continue
        assert str(data["install_hint"]).startswith(f"install {agent.label}: ")
        assert data["login_hint"]
    claude = next(agent for agent in PRESETS if agent.name == "claude").to_json(str(tmp_path))
    assert claude["install_hint"] == "install Claude Code: npm install -g @anthropic-ai/claude-code"
    assert "ANTHROPIC_API_KEY" in str(claude["login_hint"])
    # By executable: an agent of your own running claude gets claude's; a wrapper does not.
    config = load(
        tmp_path,
        """
        [agents.sonnet]
        command = ["claude", "-p", "--", "{prompt}"]
        [agents.claude]
        command = ["my-wrapper", "--", "{prompt}"]
        """,
    )
    assert config.agents["sonnet"].to_json()["install_hint"] == claude["install_hint"]
    assert config.agents["claude"].to_json()["install_hint"] is None


def test_the_command_preset_has_no_permissions() -> None:
    command = next(agent for agent in PRESETS if agent.name == "command")
    assert (command.permissions, command.default_permission) == ((), None)
    assert command.argv("-x; echo hi") == ["sh", "-c", "--", "-x; echo hi"]


def test_format_and_stall_after_and_prompt_warnings(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [agents.mine]
        command = ["my-claude", "-p", "--output-format", "stream-json", "{permission}", "{prompt}"]
        format = "claude-stream-json"
        stall_after = 30

        [agents.spliced]
        command = ["tool", "--msg={prompt}", "x{prompt}"]

        [agents.badformat]
        command = ["tool"]
        format = "yaml"

        [agents.noperm]
        command = ["tool", "{permission}"]
        """,
    )
    mine = config.agents["mine"]
    assert (mine.format, mine.stall_after, mine.default_permission) == (
        "claude-stream-json",
        30.0,
        Permission.EDIT,
    )
    assert mine.argv("hi", Permission.READ_ONLY)[-3:] == ["--permission-mode", "plan", "hi"]
    assert config.agents["spliced"].argv("a b") == ["tool", "--msg=a b", "x{prompt}"]
    assert "badformat" not in config.agents and "noperm" not in config.agents
    messages = [(p.line, p.warning, p.message) for p in config.problems]
    assert messages[0][:2] == (3, True) and '"--" before "{prompt}"' in messages[0][2]
    assert messages[1][:2] == (8, True) and "'x{prompt}' stays literal" in messages[1][2]
    assert messages[2][:2] == (12, False) and 'must be one of "text"' in messages[2][2]
    assert messages[3][:2] == (15, False) and "has no permission modes" in messages[3][2]
    assert str(config.problems[0]).startswith(f"{config.path}:3: warning: ")


def test_design_example_loads(tmp_path: Path) -> None:
    override = (
        '\n[agents.claude]\ncommand = ["claude", "--model", "opus", "-p", "--", "{prompt}"]\n'
    )
    config = load(tmp_path, DESIGN_EXAMPLE + override)
    assert config.problems == ()
    assert config.settings == Settings(max_concurrent=4)
    # Presets keep their places (an override included); new agents follow in file order.
    assert list(config.agents) == [*PRESET_NAMES, "tests"]
    tests = config.agent("tests")
    assert tests == AgentDef(
        name="tests",
        command=("pytest", "-x"),
        source="config",
        description="Run the test suite",
        cwd="~/src/app",
        env={"PYTHONUNBUFFERED": "1"},
        stop_timeout=10.0,
        restart=RestartPolicy.NO,
    )
    assert isinstance(tests.stop_timeout, float)
    claude = config.agents["claude"]
    assert claude.source == "config"
    assert claude.command == ("claude", "--model", "opus", "-p", "--", "{prompt}")
    assert claude.label == "Claude Code"  # what the file leaves out comes from the preset
    assert config.agents["codex"].source == "preset"
    assert config.agent("nope") is None


def test_every_field_of_an_agent(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        retention = 10
        log_cap_mib = 10240

        [agents."deploy.v2"]
        command = ["./deploy.sh", "--msg={prompt}", "--", "{prompt}"]
        label = "Deploy"
        restart = "on-failure"
        max_restarts = 0
        stop_timeout = 0.5
        worktree = true
        """,
    )
    assert config.problems == ()
    agent = config.agents["deploy.v2"]
    assert (agent.label, agent.restart, agent.max_restarts, agent.stop_timeout) == (
        "Deploy",
        RestartPolicy.ON_FAILURE,
        0,
        0.5,
    )
    assert agent.worktree and not config.agents["claude"].worktree
    assert config.settings == Settings(retention=10, log_cap_mib=10240)


def test_overriding_a_preset_inherits_what_is_left_out(tmp_path: Path) -> None:
    config = load(tmp_path, '[agents.aider]\ncwd = "~/src"\nenv = { OPENAI_API_KEY = "sk-1" }\n')
    assert config.problems == ()
    aider = config.agents["aider"]
    assert aider.source == "config"
    assert aider.command == next(p.command for p in PRESETS if p.name == "aider")
    assert (aider.cwd, dict(aider.env)) == ("~/src", {"OPENAI_API_KEY": "sk-1"})


def test_available_when_on_path(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    claude = next(agent for agent in PRESETS if agent.name == "claude")
    assert claude.availability(str(bin_dir)) == (False, "'claude' not found on PATH")
    executable(bin_dir, "claude")
    assert claude.availability(str(bin_dir)) == (True, None)
    data = claude.to_json(str(bin_dir))
    assert (data["available"], data["unavailable_reason"]) == (True, None)


@pytest.mark.skipif(os.name == "nt", reason="execute bits are a POSIX notion")
def test_available_when_given_as_a_path(tmp_path: Path) -> None:
    def check(command: str, cwd: str | None = None) -> tuple[bool, str | None]:
        return AgentDef("x", (command,), "config", cwd=cwd).availability(path="")

    tool = executable(tmp_path, "tool")
    plain = executable(tmp_path, "plain", mode=0o644)
    assert check(str(tool)) == (True, None)
    assert check(str(plain)) == (False, f"'{plain}' is not executable")
    assert check(str(tmp_path / "gone")) == (False, f"'{tmp_path / 'gone'}' does not exist")
    assert check(str(tmp_path)) == (False, f"'{tmp_path}' does not exist")
    # A relative path is where the agent starts: its working directory.
    assert check("./tool", cwd=str(tmp_path)) == (True, None)


def test_argv_replaces_whole_elements_and_one_splice_form_only() -> None:
    command = ("tool", "--msg={prompt}", "{prompt}", "x{prompt}", "-m={prompt}y", "{prompt}")
    agent = AgentDef("a", command, "config")
    prompt = "fix it; echo \"$(rm -rf ~)\" 'q' `id` {prompt}"
    assert agent.argv(prompt) == [
        "tool", f"--msg={prompt}", prompt, "x{prompt}", "-m={prompt}y", prompt
    ]  # fmt: skip
    assert agent.takes_prompt
    assert AgentDef("b", ("tool", "--message={prompt}"), "config").takes_prompt
    plain = AgentDef("c", ("pytest", "-x{prompt}"), "config")
    assert not plain.takes_prompt
    assert plain.argv("ignored") == ["pytest", "-x{prompt}"]


def test_to_json_lists_env_names_but_never_values(tmp_path: Path) -> None:
    agent = AgentDef("a", ("zzz-not-here",), "config", env={"TOKEN": "s3cret", "A": "1"})
    data = agent.to_json(path=str(tmp_path))
    assert data == {
        "name": "a",
        "label": "a",
        "command": ["zzz-not-here"],
        "terminal_command": None,
        "description": "",
        "source": "config",
        "available": False,
        "unavailable_reason": "'zzz-not-here' not found on PATH",
        "cwd": None,
        "env": ["A", "TOKEN"],
        "stop_timeout": 10.0,
        "restart": "no",
        "max_restarts": 5,
        "start_seconds": 1.0,
        "stall_after": 120.0,
        "worktree": False,
        "terminal": False,
        "format": "text",
        "approvals": "never",
        "approval_timeout": 0.0,
        "can_ask": None,
        "can_continue": False,
        "permissions": [],
        "default_permission": None,
        "takes_prompt": False,
        "install_hint": None,
        "login_hint": None,
    }
    assert "s3cret" not in repr(data)


def test_agent_definitions_are_frozen_and_hashable() -> None:
    env = {"A": "1"}
    agent = AgentDef("a", ("x",), "config", env=env)
    env["A"] = "changed"
    assert agent.env == {"A": "1"}
    with pytest.raises(TypeError):
        agent.env["B"] = "2"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        agent.name = "b"  # type: ignore[misc]
    assert len({agent, AgentDef("a", ("x",), "config", env={"A": "1"})}) == 1
    with pytest.raises(ValueError, match="empty command"):
        AgentDef("a", (), "config")


T = '[agents.t]\ncommand = ["x"]\n'  # a good start for an agent; its bad line is line 3

# Each case: the bad lines, placed after a good setting and before a good agent; the line of the
# problem counted within those bad lines; the exact message.
PROBLEMS = [
    ("max_concurent = 3", 1, "unknown setting 'max_concurent' (did you mean 'max_concurrent'?)"),
    ("colour = 3", 1, "unknown setting 'colour'"),
    ('max_concurrent = "four"', 1, "max_concurrent must be an integer, not 'four'"),
    ("max_concurrent = true", 1, "max_concurrent must be an integer, not true"),
    ("log_cap_mib = 1.5", 1, "log_cap_mib must be an integer, not 1.5"),
    ("max_concurrent = [1]", 1, "max_concurrent must be an integer, not a list"),
    ("max_concurrent = 0", 1, "max_concurrent must be between 1 and 64, not 0"),
    ("log_cap_mib = 10241", 1, "log_cap_mib must be between 1 and 10240, not 10241"),
    ('[agents."my agent"]\ncommand = ["x"]', 1, "agent name 'my agent' is invalid"),
    (f'[agents.{"a" * 65}]\ncommand = ["x"]', 1, f"agent name '{'a' * 65}' is invalid"),
    ("[agents]\nbad = 1", 2, "agents.bad must be a table of agent settings"),
    ('[agents.t]\ncwd = "/"', 1, 'agents.t.command is missing: give an argv list like ["pytest"'),
    ("[agents.t]\ncommand = []", 2, "agents.t.command must be a non-empty list of strings"),
    ('[agents.t]\ncommand = ["a", 1]', 2, "agents.t.command must be a non-empty list of strings"),
    ('[agents.t]\ncommand = ["", "a"]', 2, "agents.t.command must be a non-empty list of strings"),
    ('[agents.t]\ncommand = ["a\\u0000"]', 2, "agents.t.command must be a non-empty list of"),
    (
        '[agents.t]\n\ncommand = "pytest -x"',
        3,
        'agents.t.command must be an argv list like ["pytest", "-x"], not a shell string',
    ),
    ('[agents]\nt.command = "pytest -x"', 2, "agents.t.command must be an argv list like"),
    (T + 'env = "A=1"', 3, "agents.t.env must be a table of strings"),
    (T + "env = { A = 1 }", 3, "agents.t.env.A must be a string, not 1"),
    (T + '[agents.t.env]\nA = "1"\nB = 2', 5, "agents.t.env.B must be a"),
    (T + 'env = { "A=B" = "1" }', 3, "invalid variable name 'A=B'"),
    (T + "stop_timeout = 0", 3, "agents.t.stop_timeout must be above 0"),
    (T + "stop_timeout = 3601", 3, "at most 3600, not 3601"),
    (T + "stop_timeout = nan", 3, "at most 3600, not nan"),
    (T + "stop_timeout = inf", 3, "at most 3600, not inf"),
    (T + 'stop_timeout = "10"', 3, "must be a number of seconds, not '10'"),
    (T + "stop_timeout = true", 3, "must be a number of seconds, not true"),
    (
        T + 'restart = "always"',
        3,
        'agents.t.restart must be "no" or "on-failure", not \'always\'',
    ),
    (T + 'restart = ["no"]', 3, 'must be "no" or "on-failure", not a list'),
    (T + "max_restarts = 101", 3, "between 0 and 100, not 101"),
    (T + "max_restarts = -1", 3, "between 0 and 100, not -1"),
    (T + "max_restarts = false", 3, "must be an integer, not false"),
    (T + 'worktree = "yes"', 3, "agents.t.worktree must be true or false, not 'yes'"),
    (T + "worktree = 1", 3, "agents.t.worktree must be true or false, not 1"),
    (T + "cwd = 1", 3, "agents.t.cwd must be a string, not 1"),
    (T + 'cwd = ""', 3, "agents.t.cwd must not be empty"),
    (T + "label = {}", 3, "agents.t.label must be a string, not a table"),
    (
        T + 'comand = ["y"]',
        3,
        "unknown key 'comand' in agents.t (did you mean 'command'?)",
    ),
    # A multi-line string that looks like keys must not throw the line count off.
    (
        T + 'description = """\nrestart = 1\n"""\nrestart = 1',
        6,
        'agents.t.restart must be "no" or "on-failure", not 1',
    ),
]


@pytest.mark.parametrize(("bad", "line", "message"), PROBLEMS)
def test_each_problem_is_reported_and_the_rest_loads(
    tmp_path: Path, bad: str, line: int, message: str
) -> None:
    text = f'retention = 20\n{bad}\n\n[agents.good]\ncommand = ["ok"]\n'
    config = load(tmp_path, text)
    problem = only_problem(config)
    assert message in problem.message
    assert problem.line == line + 1
    assert str(problem) == f"{tmp_path / 'config.toml'}:{line + 1}: {problem.message}"
    assert config.settings.retention == 20
    assert config.agents["good"].command == ("ok",)
    # The bad agent is left out entirely; the bad setting keeps its default.
    assert list(config.agents) == [*PRESET_NAMES, "good"]
    assert (config.settings.max_concurrent, config.settings.log_cap_mib) == (4, 50)


def test_a_bad_override_leaves_the_preset_alone(tmp_path: Path) -> None:
    config = load(tmp_path, '[agents.claude]\nrestart = "always"\n')
    assert only_problem(config).line == 2
    assert config.agents["claude"] == PRESETS[0]


def test_agents_not_a_table(tmp_path: Path) -> None:
    config = load(tmp_path, 'max_concurrent = 2\nagents = ["claude"]\n')
    problem = only_problem(config)
    assert (problem.line, problem.message) == (
        2,
        "agents must be a table, with one [agents.NAME] per agent",
    )
    assert list(config.agents) == PRESET_NAMES
    assert config.settings.max_concurrent == 2


def test_several_problems_come_in_file_order(tmp_path: Path) -> None:
    text = 'max_concurrent = 0\n[agents.a]\ncommand = "a"\n[agents.b]\nrestart = 1\n'
    config = load(tmp_path, text + "[agents.c]\nretart = 1\n")
    assert [problem.line for problem in config.problems] == [1, 3, 4, 5, 6, 7]


def test_syntax_error_has_its_line_and_nothing_else_loads(tmp_path: Path) -> None:
    config = load(tmp_path, 'max_concurrent = 8\n\n[agents.t\ncommand = ["x"]\n')
    problem = only_problem(config)
    assert problem.line == 3
    assert problem.message.startswith("TOML syntax error: ")
    assert "(at line" not in problem.message
    assert config.settings == Settings()
    assert list(config.agents) == PRESET_NAMES


def test_syntax_error_at_end_of_file(tmp_path: Path) -> None:
    problem = only_problem(load(tmp_path, 'max_concurrent = 8\ncommand = ["x",\n'))
    assert problem.line == 2
    assert "end of document" in problem.message


def test_absurd_nesting_is_one_problem(tmp_path: Path) -> None:
    problem = only_problem(load(tmp_path, "a = " + "[" * 5000 + "]" * 5000 + "\n"))
    assert problem.message.startswith("TOML syntax error")


def test_a_directory_at_the_path_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.mkdir()
    config = load_config(path)
    problem = only_problem(config)
    assert problem.line is None
    assert str(problem).startswith(f"{path}: cannot read it")
    assert list(config.agents) == PRESET_NAMES


def test_bad_utf8_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'max_concurrent = 8\ndescription = "caf\xe9"\n')
    config = load_config(path)
    problem = only_problem(config)
    assert (problem.line, problem.message) == (2, "not valid UTF-8 (TOML must be)")
    assert config.settings == Settings()


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b"\xef\xbb\xbfmax_concurrent = 8\n")
    config = load_config(path)
    assert config.problems == ()
    assert config.settings.max_concurrent == 8


def test_the_file_is_never_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    original = (DESIGN_EXAMPLE + "colour = 1\n[agents.x]\ncommand = 'x'\n").encode()
    path.write_bytes(original)
    path.chmod(0o600)
    before = path.stat()
    config = load_config(path)
    assert len(config.problems) == 2
    after = path.stat()
    assert path.read_bytes() == original
    assert (after.st_mtime_ns, stat.S_IMODE(after.st_mode)) == (before.st_mtime_ns, 0o600)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_settings_table_documents_every_setting() -> None:
    fields = dataclasses.fields(Settings)
    assert [setting.name for setting in SETTINGS] == [f.name for f in fields]
    defaults = Settings()
    for setting in SETTINGS:
        assert setting.help
        assert getattr(defaults, setting.name) == setting.default
        assert setting.minimum <= setting.default <= setting.maximum


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda setting: setting.name)
def test_settings_bounds_are_inclusive(tmp_path: Path, setting: Setting) -> None:
    for value, ok in (
        (setting.minimum, True),
        (setting.maximum, True),
        (setting.minimum - 1, False),
        (setting.maximum + 1, False),
    ):
        config = load(tmp_path, f"{setting.name} = {value}\n")
        assert (config.problems == ()) is ok
        assert setting.check(value) is None if ok else setting.check(value)
        expected = value if ok else setting.default
        assert getattr(config.settings, setting.name) == expected


def test_problem_text_without_a_line() -> None:
    assert str(ConfigProblem(Path("/x/config.toml"), None, "m")) == "/x/config.toml: m"
    assert str(ConfigProblem(Path("/x/config.toml"), 7, "m")) == "/x/config.toml:7: m"


# -- in a terminal: the CLIs' own interactive interfaces (docs/agents.md, "In a terminal") --------


@pytest.mark.parametrize(
    ("name", "permission", "argv"),
    [
        ("claude", Permission.EDIT, ["claude", "--permission-mode", "acceptEdits", "--", "-x go"]),
        ("claude", Permission.FULL, ["claude", "--dangerously-skip-permissions", "--", "-x go"]),
        ("codex", Permission.READ_ONLY, ["codex", "--sandbox", "read-only", "--", "-x go"]),
        (
            "codex",
            Permission.FULL,
            ["codex", "--dangerously-bypass-approvals-and-sandbox", "--", "-x go"],
        ),
        (
            "gemini",
            Permission.READ_ONLY,
            ["gemini", "--skip-trust", "--approval-mode", "plan", "--prompt-interactive=-x go"],
        ),
        (
            "aider",
            Permission.EDIT,
            [
                "aider",
                "--no-analytics",
                "--no-check-update",
                "--yes-always",
                "--no-suggest-shell-commands",
            ],
        ),
    ],
)
def test_a_terminal_run_of_a_preset_uses_its_interactive_interface(
    name: str, permission: Permission, argv: list[str]
) -> None:
    agent = next(agent for agent in PRESETS if agent.name == name)
    assert agent.argv("-x go", permission, terminal=True) == argv
    # Not "-p", "exec", "--prompt=" or "--message=": those answer one prompt and exit.
    assert agent.argv("-x go", permission) != argv
    assert agent.to_json()["terminal_command"] == list(agent.terminal_command)


@pytest.mark.parametrize(
    ("name", "argv"),
    [
        ("claude", ["claude", "--permission-mode", "acceptEdits"]),
        ("codex", ["codex", "--sandbox", "workspace-write"]),
        ("gemini", ["gemini", "--skip-trust", "--approval-mode", "auto_edit"]),
    ],
)
def test_with_no_prompt_an_interactive_cli_starts_with_no_first_message(
    name: str, argv: list[str]
) -> None:
    agent = next(agent for agent in PRESETS if agent.name == name)
    assert agent.argv("", terminal=True) == argv
    assert agent.typed_prompt("anything") is None  # the prompt is on its command line


@pytest.mark.parametrize(
    ("name", "session", "tail"),
    [
        ("claude", "s-1", ["--resume", "s-1", "--", "go on"]),
        ("codex", "t-1", ["resume", "t-1", "--", "go on"]),
        ("gemini", "g-1", ["--resume", "g-1", "--prompt-interactive=go on"]),
        ("aider", "", ["--restore-chat-history"]),
    ],
)
def test_a_terminal_run_that_continues_another_resumes_its_session(
    name: str, session: str, tail: list[str]
) -> None:
    agent = next(agent for agent in PRESETS if agent.name == name)
    argv = agent.argv("go on", resume=session, terminal=True)
    assert argv[-len(tail) :] == tail
    assert argv[0] == name and not {"-p", "exec", "--message=go on"} & set(argv)


def test_aider_chat_gets_its_prompt_typed_in() -> None:
    aider = next(agent for agent in PRESETS if agent.name == "aider")
    assert aider.typed_prompt("") is None
    assert aider.typed_prompt("fix it") == "fix it\r"
    # aider reads a multi-line message between "{" and "}" lines.
    assert aider.typed_prompt("one\r\ntwo\n") == "{\rone\rtwo\r}\r"


def test_an_agent_without_a_terminal_command_runs_its_command_in_a_terminal(
    tmp_path: Path,
) -> None:
    config = load(
        tmp_path,
        '[agents.shell]\ncommand = ["sh", "-c", "--", "{prompt}"]\n'
        '[agents.repl]\ncommand = ["python3", "-c", "--", "{prompt}"]\n'
        'terminal_command = ["python3", "-i", "-c", "--", "{prompt}"]\n',
    )
    shell, repl = config.agents["shell"], config.agents["repl"]
    assert shell.argv("ls", terminal=True) == shell.argv("ls") == ["sh", "-c", "--", "ls"]
    assert repl.argv("x = 1", terminal=True) == ["python3", "-i", "-c", "--", "x = 1"]
    assert repl.argv("", terminal=True) == ["python3", "-i", "-c"]
    assert repl.typed_prompt("x") is None


def test_a_terminal_command_is_checked_like_a_command(tmp_path: Path) -> None:
    config = load(tmp_path, '[agents.bad]\ncommand = ["true"]\nterminal_command = "vim"\n')
    assert "bad" not in config.agents
    assert any("terminal_command must be" in p.message for p in config.problems)
    config = load(
        tmp_path, '[agents.risky]\ncommand = ["true"]\nterminal_command = ["tool", "{prompt}"]\n'
    )
    assert any(
        "terminal_command" in p.message and '"--" before' in p.message for p in config.problems
    )
