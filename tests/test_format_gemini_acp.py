"""Gemini CLI's two-way sessions (ACP), pure: the exchanges recorded from the real CLI through
AIOS (tests/fakes/streams/gemini-acp-*) replayed through the reducer, which must write what the
real CLI was written, and read what it said as the run's knowledge and transcript."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aios.agents.formats import FORMATS
from aios.agents.formats.base import SessionStart
from aios.agents.formats.gemini import HINTS
from aios.agents.formats.gemini_acp import FORMAT, GeminiAcpReducer, acp_command
from aios.agents.presets import PRESETS
from aios.config import Config, load_config
from aios.runs import Activity, Approval, FailureKind, Permission, Tokens
from aios.server.ansi import strip
from tests.fakes.agent import Scenario

CWD = "/tmp/pytest-of-root/repo"  # any: the recordings' paths are in commands, not locations
Decide = Callable[[Approval], tuple[bool, bool]]  # (allow, always)


@dataclass
class Exchange:
    reducer: GeminiAcpReducer
    sent: list[dict[str, Any]] = field(default_factory=list)
    asked: list[Approval] = field(default_factory=list)
    log: str = ""

    def write(self, lines: list[str]) -> None:
        self.sent.extend(json.loads(line) for line in lines)

    @property
    def plain(self) -> str:
        return strip(self.log)

    def requests(self, method: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("method") == method]


def session_of(name: str) -> str:
    """The session a recording speaks of (each recording has its own)."""
    for line in Scenario(name).out:
        message = json.loads(line)
        found = message.get("result", {}).get("sessionId") or message.get("params", {}).get(
            "sessionId"
        )
        if found:
            return str(found)
    raise AssertionError(f"no session in {name}")


SESSION = session_of("gemini-acp-allow-deny")
RESUMED = session_of("gemini-acp-resumed")


def replay(
    name: str,
    start: SessionStart,
    decide: Decide = lambda approval: (True, False),
    follow_ups: tuple[str, ...] = (),
) -> Exchange:
    """Feed a recording's stdout (and stderr) to a new reducer as the shell does, answering its
    requests with ``decide`` and saying each of ``follow_ups`` once a turn has ended."""
    scenario = Scenario(name)
    exchange = Exchange(GeminiAcpReducer())
    reducer, waiting = exchange.reducer, list(follow_ups)
    exchange.write(reducer.open(start))
    for line in scenario.out:
        exchange.log += reducer.stdout(line)
        exchange.write(reducer.take_outbox())
        asked, _ = reducer.knowledge.drain()
        for approval in asked:
            exchange.asked.append(approval)
            allow, always = decide(approval)
            exchange.write(reducer.reply(approval.id, allow, "" if allow else "not now", always))
        if reducer.knowledge.activity is Activity.WAITING and waiting:
            exchange.write(reducer.say(waiting.pop(0)))
    for line in scenario.err:
        exchange.log += reducer.stderr(line)
    reducer.exited(int(scenario.exit))
    exchange.log += reducer.ending()
    return exchange


def test_the_handshake_the_requests_and_the_turns_are_the_recorded_ones() -> None:
    deny_second: Decide = lambda approval: (approval.id == "0", False)  # noqa: E731
    x = replay(
        "gemini-acp-allow-deny",
        SessionStart("Write allowed.txt with a shell command.", CWD, Permission.EDIT),
        deny_second,
        ("Now write denied.txt the same way.",),
    )
    k = x.reducer.knowledge
    # What AIOS wrote: initialize, session/new, the prompt, the answers, the follow-up.
    assert [m.get("method") or "answer" for m in x.sent] == [
        "initialize", "session/new", "session/prompt", "answer", "session/prompt", "answer"
    ]  # fmt: skip
    initialize = x.sent[0]["params"]
    assert initialize["protocolVersion"] == 1
    assert initialize["clientCapabilities"] == {
        "fs": {"readTextFile": False, "writeTextFile": False},
        "terminal": False,
    }
    assert x.sent[1]["params"] == {"cwd": CWD, "mcpServers": []}
    prompts = x.requests("session/prompt")
    assert [p["params"]["sessionId"] for p in prompts] == [SESSION, SESSION]
    assert prompts[1]["params"]["prompt"] == [
        {"type": "text", "text": "Now write denied.txt the same way."}
    ]
    # Each request is asked, and answered with the option of the user's choice.
    assert x.asked == [
        Approval("0", "run_shell_command", "echo allowed > allowed.txt", always=True),
        Approval("1", "run_shell_command", "echo denied > denied.txt", always=True),
    ]
    answers = [m for m in x.sent if "result" in m]
    assert answers == [
        {"jsonrpc": "2.0", "id": 0, "result": {"outcome": {"outcome": "selected",
                                                           "optionId": "proceed_once"}}},
        {"jsonrpc": "2.0", "id": 1, "result": {"outcome": {"outcome": "selected",
                                                           "optionId": "cancel"}}},
    ]  # fmt: skip
    # What the run knows: its session, two turns, their tokens summed, the model that answered.
    assert k.session_id == SESSION and k.num_turns == 2
    assert k.tokens == Tokens(input=1100 + 1200 + 1300 + 1400, output=11 + 12 + 13 + 14)
    assert k.model == "gemini-3.8-flash"  # not the alias "auto" also listed in model_usage
    assert k.activity is Activity.WAITING and k.failure is None and k.malformed == 0
    # A transcript like the one-way mode's.
    assert "● run_shell_command(echo allowed > allowed.txt)\n  ? needs your approval\n" in x.plain
    assert "  └ done\nRan it.\n✓ done · turn 1 · 1 tool call · 2,300 tokens in, 23 out\n" in x.plain
    assert "  └ ⊘ denied: not run (not now)\nIt was refused.\n✓ done · turn 2" in x.plain
    assert f"session {SESSION} (new)" in x.plain and "Ripgrep is not available" in x.plain


def test_always_picks_the_session_option_and_a_follow_up_waits_for_the_running_turn() -> None:
    reducer = GeminiAcpReducer()
    scenario = Scenario("gemini-acp-allow-deny")
    reducer.open(SessionStart("first", CWD))
    for line in scenario.out[:3]:  # initialize's and session/new's answers, the commands list
        reducer.stdout(line)
    opened = [json.loads(line)["method"] for line in reducer.take_outbox()]
    assert opened == ["session/new", "session/prompt"]
    assert reducer.say("meanwhile") == []  # a turn runs: held
    reducer.stdout(scenario.out[3])  # the request
    (approval,), _ = reducer.knowledge.drain()
    assert reducer.knowledge.activity is Activity.WORKING  # the core says awaiting_approval
    answer = json.loads(reducer.reply(approval.id, True, "", True)[0])
    assert answer["result"]["outcome"] == {"outcome": "selected", "optionId": "proceed_always"}
    assert reducer.reply(approval.id, True, "", True) == []  # answered once only
    for line in scenario.out[4:7]:  # the tool's result, the words, the turn's answer
        reducer.stdout(line)
    held = [json.loads(line) for line in reducer.take_outbox()]
    assert [m["params"]["prompt"][0]["text"] for m in held] == ["meanwhile"]
    assert reducer.knowledge.activity is Activity.WORKING  # the held prompt's turn runs


def test_a_stop_answers_what_is_pending_and_cancels_the_turn() -> None:
    reducer = GeminiAcpReducer()
    scenario = Scenario("gemini-acp-allow-deny")
    reducer.open(SessionStart("first", CWD))
    for line in scenario.out[:4]:
        reducer.stdout(line)
    reducer.say("never sent")
    reducer.knowledge.drain()
    sent = [json.loads(line) for line in reducer.interrupt()]
    assert sent == [
        {"jsonrpc": "2.0", "id": 0, "result": {"outcome": {"outcome": "cancelled"}}},
        {"jsonrpc": "2.0", "method": "session/cancel", "params": {"sessionId": SESSION}},
    ]
    assert reducer.knowledge.drain() == ((), ("0",))
    assert reducer.reply("0", True, "", False) == []


def test_a_continuation_loads_its_session_and_does_not_show_the_replay_again() -> None:
    x = replay("gemini-acp-resumed", SessionStart("Say goodbye.", CWD, resume=RESUMED))
    assert [m["method"] for m in x.sent] == ["initialize", "session/load", "session/prompt"]
    assert x.sent[1]["params"] == {"sessionId": RESUMED, "cwd": CWD, "mcpServers": []}
    assert x.reducer.knowledge.session_id == RESUMED and x.reducer.knowledge.num_turns == 1
    assert f"session {RESUMED} (resumed)" in x.plain and "Goodbye.\n✓ done" in x.plain
    for earlier in ("Ran it.", "It was refused.", "session_context", "Function Response"):
        assert earlier not in x.plain


def test_a_session_that_cannot_open_ends_the_run_with_the_one_way_kinds_and_hints() -> None:
    cases = {
        "gemini-acp-no-key": (FailureKind.AUTH, "Gemini API key is missing or not configured."),
        "gemini-acp-refused-key": (
            FailureKind.AUTH, "API key not valid. Please pass a valid API key."
        ),
        "gemini-acp-load-gone": (
            FailureKind.SESSION_GONE, "No previous sessions found for this project."
        ),
    }  # fmt: skip
    for name, (kind, message) in cases.items():
        resume = RESUMED if name.endswith("load-gone") else None
        x = replay(name, SessionStart("go", CWD, resume=resume))
        k = x.reducer.knowledge
        assert (k.failure_kind, k.failure) == (kind, message), name
        assert x.reducer.ended, "nothing more can be said: the shell closes its stdin"
        assert FORMAT.hint(k, 0) == HINTS[kind]
        assert k.activity is Activity.WORKING and k.num_turns is None
        assert "\x1b[31m" + message in x.log and "✓ done" not in x.plain  # said, no verdict
        assert x.reducer.say("more") == []


def test_requests_aios_does_not_serve_are_refused_at_once() -> None:
    """Synthetic (gemini 0.61 makes none with our capabilities): the JSON-RPC shape of ACP's
    client methods, from its schema."""
    reducer = GeminiAcpReducer()
    reducer.open(SessionStart("go", CWD))
    ask = {"jsonrpc": "2.0", "id": 7, "method": "fs/read_text_file", "params": {"path": "/x"}}
    assert "refused fs/read_text_file" in strip(reducer.stdout(json.dumps(ask)))
    (answer,) = [json.loads(line) for line in reducer.take_outbox()]
    assert answer["id"] == 7 and answer["error"]["code"] == -32601


def test_the_preset_asks_through_acp(tmp_path: Path) -> None:
    assert FORMATS["gemini-stream-json"] is FORMAT and FORMAT.two_way is not None
    (tmp_path / "config.toml").write_text('[agents.gemini]\napprovals = "ask"\n')
    config: Config = load_config(tmp_path / "config.toml")
    gemini = config.agents["gemini"]
    assert gemini.two_way and not config.problems
    # The prompt goes in on stdin, the session is loaded over ACP, the permission stays.
    assert gemini.argv("ignored", Permission.EDIT, resume="s-1") == [
        "gemini", "--skip-trust", "--approval-mode", "auto_edit", "--acp"
    ]  # fmt: skip
    assert "--acp" in str(gemini.to_json()["can_ask"])
    one_way = next(agent for agent in PRESETS if agent.name == "gemini")
    assert one_way.argv("hi", Permission.EDIT, resume="s-1")[-3:] == [
        "--resume", "s-1", "--prompt=hi"
    ]  # fmt: skip
    assert acp_command(("gemini", "--output-format=json", "-o", "text", "--prompt={prompt}")) == (
        "gemini", "{prompt}"
    )  # fmt: skip


def test_a_gemini_command_that_cannot_hold_a_session_runs_one_way(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[agents.bare]\ncommand = ["gemini", "-o", "stream-json"]\n'
        'format = "gemini-stream-json"\napprovals = "ask"\n'
        '[agents.spliced]\ncommand = ["my-gemini", "-o", "stream-json", "--prompt={prompt}"]\n'
        'format = "gemini-stream-json"\napprovals = "ask"\n'
    )
    config = load_config(tmp_path / "config.toml")
    assert [p.warning for p in config.problems] == [True]
    assert 'agents.bare.approvals = "ask" is ignored' in str(config.problems[0])
    assert '"--acp"' in str(config.problems[0])
    assert not config.agents["bare"].two_way
    assert config.agents["spliced"].argv("hi") == ["my-gemini", "--acp"]


def test_a_turn_the_api_refuses_fails_that_turn_and_the_session_goes_on() -> None:
    reducer = GeminiAcpReducer()
    scenario = Scenario("gemini-acp-turn-fails")
    reducer.open(SessionStart("go", CWD))
    for line in scenario.out[:4]:  # the handshake, the commands list, the refused turn
        reducer.stdout(line)
    k = reducer.knowledge
    assert (k.failure_kind, k.failure) == (FailureKind.API, "Request contains an invalid argument.")
    assert FORMAT.hint(k, None) == HINTS[FailureKind.API]
    assert k.activity is Activity.WAITING and not reducer.ended and k.num_turns == 1
    assert [json.loads(line)["method"] for line in reducer.take_outbox()] == [
        "session/new", "session/prompt"
    ]  # fmt: skip
    assert [json.loads(line)["id"] for line in reducer.say("again")] == [4]
    for line in scenario.out[4:]:
        reducer.stdout(line)
    assert k.failure is None and k.num_turns == 2 and k.activity is Activity.WAITING
    assert k.tokens == Tokens(input=1200, output=12)


def test_a_continuation_fails_at_once_where_gemini_offers_no_load() -> None:
    """The recorded initialize answer, its loadSession capability taken away (as an older or
    newer gemini might)."""
    answer = json.loads(Scenario("gemini-acp-allow-deny").out[0])
    answer["result"]["agentCapabilities"]["loadSession"] = False
    reducer = GeminiAcpReducer()
    reducer.open(SessionStart("go", CWD, resume=SESSION))
    text = strip(reducer.stdout(json.dumps(answer)))
    assert reducer.take_outbox() == [] and reducer.ended
    assert reducer.knowledge.failure_kind is FailureKind.SESSION_GONE
    assert "cannot resume session" in text
