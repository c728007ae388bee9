"""The real-agents tier: Claude Code, Codex CLI, Gemini CLI and Aider at their pinned versions
(``make agents``), run through AIOS's presets by a real daemon against scripted model servers
on 127.0.0.1 (tests/models). No fake CLI and no live service takes part.

``make agents && .venv/bin/python -m pytest -m real_agents``; without the CLIs (no Node 20, no
Python for aider) the tier skips outside CI and fails in CI.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aios.agents.formats.aider import tokens_count
from scripts.install_agents import BIN
from tests.gitrepo import make_repo
from tests.helpers import EventCollector, wait_until
from tests.models.anthropic import AnthropicModel
from tests.models.base import Fail, ScriptedModel, Text, Tool
from tests.models.gemini import GeminiModel
from tests.models.openai_chat import ChatModel, whole_file
from tests.models.openai_responses import ResponsesModel, add_file
from tests.realagents import (
    KEY,
    KEY_VARIABLE,
    PINNED,
    RealAgents,
    path,
    pin,
    reported_version,
)

pytestmark = [pytest.mark.daemon, pytest.mark.real_agents]

PROMPT = "Write hello.txt saying hello."
FOLLOW_UP = "Now say goodbye."


@pytest.fixture
def real(home: Path, tmp_path: Path) -> Iterator[RealAgents]:
    made = RealAgents(home, tmp_path)
    try:
        yield made
    finally:
        if made.daemon is not None:
            made.daemon.terminate()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def check_version(cli: str) -> None:
    assert reported_version(cli) == pin(cli).version


def tokens_of(model: ScriptedModel) -> dict[str, int]:
    """The tokens the server reported over the run, as AIOS records them (nothing cached)."""
    usages = model.script.usages
    return {
        "input": sum(u.input for u in usages),
        "output": sum(u.output for u in usages),
        "cached": 0,
    }


def mentions(model: ScriptedModel, request: int, *texts: str) -> bool:
    """Whether the model's ``request``-th conversation call carried each of ``texts``."""
    body = model.seen[request].text
    return all(text in body for text in texts)


def assert_succeeded(run: dict[str, Any]) -> None:
    assert run["state"] == "succeeded", (run["error"], run["error_kind"], run["hint"])


def test_the_daemons_path_finds_the_pinned_clis_and_never_a_fake(real: RealAgents) -> None:
    """Whatever this process's PATH holds (CI puts fake CLIs first), the tier's daemon gets
    ``.agents/bin`` and the system's basics only."""
    for cli in PINNED:
        found = shutil.which(cli, path=path())
        assert found is not None and Path(found).parent == BIN, found
        # .agents may itself be a link (a worktree sharing another checkout's CLIs).
        assert Path(found).resolve().is_relative_to(BIN.parent.resolve())


def test_claude_writes_a_file_reports_its_session_and_continues(
    real: RealAgents, repo: Path
) -> None:
    check_version("claude")
    model = AnthropicModel(
        Tool("Write", {"file_path": str(repo / "hello.txt"), "content": "hello from claude\n"}),
        Text("Wrote hello.txt."),
    )
    with model:
        real.start(claude=model)
        run = real.final(real.launch("claude", PROMPT, repo)["id"])
        assert_succeeded(run)
        assert (repo / "hello.txt").read_text() == "hello from claude\n"
        result = next(e for e in real.events(run["id"]) if e["type"] == "result")
        assert run["session_id"] == result["session_id"]
        assert run["tokens"] == tokens_of(model)
        assert run["cost_usd"] == pytest.approx(result["total_cost_usd"]) and run["cost_usd"] > 0
        assert run["num_turns"] == 2
        assert len(model.seen) == 2 and model.script.overrun == 0
        # The changes of a run in a plain checkout are recorded too.
        assert [f["path"] for f in run["changes"]["files"]] == ["hello.txt"]

        model.then(Text("Goodbye."))
        again = real.final(real.continue_(run["id"], FOLLOW_UP)["id"])
        assert_succeeded(again)
        assert again["session_id"] == run["session_id"]
        # The resumed session sent the whole earlier conversation: prompt, tool call, result.
        assert mentions(model, 2, PROMPT, "hello from claude", FOLLOW_UP)
        assert "tool_result" in model.seen[2].text


def test_claude_shows_it_is_retrying_an_overloaded_api_then_succeeds(
    real: RealAgents, repo: Path
) -> None:
    model = AnthropicModel(Fail(529, "Overloaded"), Text("Nothing to do."))
    with model:
        real.start(claude=model)
        events = EventCollector(real.d.port, real.d.info.token)
        try:
            run = real.launch("claude", "Say hi.", repo)
            _, retrying = events.wait(
                lambda kind, data: (
                    kind == "run" and data["id"] == run["id"] and data["activity"] == "retrying"
                ),
                timeout=60,
            )
        finally:
            events.close()
        assert "529" in retrying["activity_detail"] and "1/1" in retrying["activity_detail"]
        ended = real.final(run["id"])
        assert_succeeded(ended)
        assert ended["activity"] is None and len(model.seen) == 2


def test_codex_in_a_worktree_records_its_changes_and_continues(
    real: RealAgents, repo: Path
) -> None:
    check_version("codex")
    model = ResponsesModel(
        Tool("apply_patch", add_file("hello.txt", "hello from codex")), Text("Wrote hello.txt.")
    )
    with model:
        real.start(codex=model)
        run = real.final(real.launch("codex", PROMPT, repo, worktree=True)["id"])
        assert_succeeded(run)
        worktree = Path(run["worktree"]["path"])
        assert worktree != repo and not (repo / "hello.txt").exists()
        assert (worktree / "hello.txt").read_text() == "hello from codex\n"
        started = next(e for e in real.events(run["id"]) if e["type"] == "thread.started")
        assert run["session_id"] == started["thread_id"]
        assert run["tokens"] == tokens_of(model)
        assert run["cost_usd"] is None  # codex reports none
        changes = run["changes"]["files"]
        assert [(f["path"], f["status"]) for f in changes] == [("hello.txt", "added")]
        diff = real.d.client.request_bytes("GET", f"/api/runs/{run['id']}/diff").decode()
        assert "+hello from codex" in diff

        model.then(Text("Goodbye."))
        again = real.final(real.continue_(run["id"], FOLLOW_UP)["id"])
        assert_succeeded(again)
        assert again["session_id"] == run["session_id"]
        assert again["worktree"]["path"] == str(worktree)  # continued where it ran
        assert mentions(model, 2, PROMPT, "Wrote hello.txt.", FOLLOW_UP)


def test_gemini_writes_a_file_reports_its_session_and_continues(
    real: RealAgents, repo: Path
) -> None:
    check_version("gemini")
    model = GeminiModel(
        Tool(
            "write_file", {"file_path": str(repo / "hello.txt"), "content": "hello from gemini\n"}
        ),
        Text("Wrote hello.txt."),
    )
    with model:
        real.start(gemini=model)
        run = real.final(real.launch("gemini", PROMPT, repo)["id"])
        assert_succeeded(run)
        assert (repo / "hello.txt").read_text() == "hello from gemini\n"
        init = next(e for e in real.events(run["id"]) if e["type"] == "init")
        assert run["session_id"] == init["session_id"]
        assert run["tokens"] == tokens_of(model)
        assert [f["path"] for f in run["changes"]["files"]] == ["hello.txt"]

        model.then(Text("Goodbye."))
        again = real.final(real.continue_(run["id"], FOLLOW_UP)["id"])
        assert_succeeded(again)
        assert again["session_id"] == run["session_id"]
        conversation = model.calls(":streamGenerateContent")
        assert len(conversation) == 3
        assert all(t in conversation[2].text for t in (PROMPT, "Wrote hello.txt.", FOLLOW_UP))


def test_aider_writes_a_file_in_a_worktree_and_reports_tokens_and_cost(
    real: RealAgents, repo: Path
) -> None:
    check_version("aider")
    # Its edit in the "whole" format, then the commit message it asks for.
    model = ChatModel(Text(whole_file("hello.txt", "hello from aider")), Text("Add hello.txt"))
    with model:
        real.start(aider=model)
        run = real.final(real.launch("aider", PROMPT, repo, worktree=True)["id"])
        assert_succeeded(run)
        worktree = Path(run["worktree"]["path"])
        assert (worktree / "hello.txt").read_text() == "hello from aider\n"
        # aider counts tokens itself and prints them: the run has what it printed.
        log = real.log(run["id"])
        assert "Applied edit to hello.txt" in log
        printed = re.search(r"^Tokens: (\S+) sent, (\S+) received\.", log, re.M)
        assert printed is not None, log
        assert run["tokens"]["input"] == tokens_count(printed[1])  # "594", or "1.2k"
        assert run["tokens"]["output"] == tokens_count(printed[2])
        assert run["cost_usd"] is not None and run["cost_usd"] > 0
        assert "hello.txt" in [f["path"] for f in run["changes"]["files"]]
        assert model.script.overrun == 0


@pytest.mark.parametrize("cli", ["claude", "codex", "gemini", "aider"])
def test_a_refused_key_fails_the_run_as_auth_with_a_hint(
    real: RealAgents, repo: Path, cli: str
) -> None:
    refusal = Fail(401, "Incorrect API key provided: sk-aios-test.")  # OpenAI's words
    model: ScriptedModel = {
        "claude": AnthropicModel,
        "codex": ResponsesModel,
        "gemini": GeminiModel,
        "aider": ChatModel,
    }[cli](*[refusal] * 8)
    with model:
        real.start(**{cli: model})
        run = real.final(real.launch(cli, PROMPT, repo)["id"])
        assert run["state"] == "failed"
        assert run["error_kind"] == "auth", (run["error"], real.log(run["id"])[-2000:])
        assert run["hint"]
        assert model.seen  # it did ask the scripted server, and nothing else


def test_codex_without_its_key_is_not_logged_in_and_fails_as_auth(
    real: RealAgents, repo: Path
) -> None:
    with ResponsesModel(Text("never asked")) as model:
        env = real.environment(codex=model)
        del env[KEY_VARIABLE]
        real.start_with(env)
        listed = real.d.client.request("GET", "/api/agents")
        codex = next(a for a in listed["agents"] if a["name"] == "codex")
        assert codex["auth"] == "not_logged_in", codex["auth_detail"]
        run = real.final(real.launch("codex", PROMPT, repo)["id"])
        assert run["state"] == "failed"
        assert run["error_kind"] == "auth", (run["error"], real.log(run["id"])[-2000:])
        assert run["hint"]
        assert not model.seen


def test_aider_chats_in_a_terminal_with_the_prompt_typed_in_as_its_first_message(
    real: RealAgents, repo: Path
) -> None:
    """aider's own chat on a terminal run (docs/agents.md, "In a terminal"): its interface is
    drawn, the prompt typed in is its first message, its answer is shown, and it waits for the
    next one until the run is stopped."""
    check_version("aider")
    model = ChatModel(Text("HELLO-FROM-THE-MODEL"))
    with model:
        real.start(aider=model)
        run = real.launch("aider", "Say hello, please.", repo, terminal=True)
        assert run["terminal"] is True
        wait_until(
            lambda: "HELLO-FROM-THE-MODEL" in real.log(run["id"]), 120, "aider's answer on screen"
        )
        assert mentions(model, 0, "Say hello, please.")
        assert f"Aider v{pin('aider').version}" in real.log(run["id"])  # its own interface
        real.d.client.request("POST", f"/api/runs/{run['id']}/stop", {})
        ended = real.final(run["id"])
        assert ended["state"] == "stopped"
        assert model.script.overrun == 0


def test_claude_runs_its_own_interface_in_a_terminal_with_the_prompt_as_first_message(
    real: RealAgents, repo: Path
) -> None:
    """Claude Code without -p on a terminal run: its interface is drawn, in the run's
    permission mode (edit: "accept edits on"), the prompt is its first message, the answer is
    drawn, and it waits for the next message until the run is stopped. Its first-run screens
    (theme, this folder's trust, the API key's approval) are answered in its own settings file
    beforehand, as a user who has run it once has them."""
    check_version("claude")
    (real.user_home / ".claude.json").write_text(
        json.dumps(
            {
                "hasCompletedOnboarding": True,
                "theme": "dark",
                "customApiKeyResponses": {"approved": [KEY[-20:]], "rejected": []},
                "projects": {str(repo): {"hasTrustDialogAccepted": True}},
            }
        )
    )
    # Its one call is the conversation (2.1.197 named the session in a call of its own first).
    model = AnthropicModel(Text("HELLO-FROM-CLAUDE"))
    with model:
        real.start(claude=model)
        run = real.launch("claude", "Say hello, please.", repo, terminal=True)
        wait_until(lambda: "HELLO-FROM-CLAUDE" in real.log(run["id"]), 120, "claude's answer")
        assert any(mentions(model, i, "Say hello, please.") for i in range(len(model.seen)))
        screen = re.sub(r"\x1b\[[0-9;?<>=]*[A-Za-z]", "", real.log(run["id"])).replace(" ", "")
        assert "acceptedits" in screen  # --permission-mode acceptEdits, as its status line says
        real.d.client.request("POST", f"/api/runs/{run['id']}/stop", {})
        assert real.final(run["id"])["state"] == "stopped"
