"""Codex's two-way protocol (``codex app-server``), replayed from exchanges recorded with the
pinned CLI through AIOS (tests/fakes/streams/codex-app-server-*, from
tests/test_real_two_way_codex.py): what AIOS writes, and what the run learns."""

from __future__ import annotations

import json
import random
from typing import Any

from aios.agents.formats import codex, codex_app_server, get
from aios.agents.formats.base import SessionStart
from aios.runs import Activity, Approval, Denial, FailureKind, Permission, Tokens
from tests.fakes.agent import STREAMS, Scenario
from tests.replay import raw_json_in, replay
from tests.test_formats import assert_well_typed, variants


def messages(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


def test_codex_json_holds_its_conversations_through_app_server() -> None:
    fmt = get("codex-json")
    assert fmt.two_way is codex_app_server.TWO_WAY and fmt.reducer is codex.CodexReducer
    assert fmt.two_way.reducer is codex_app_server.AppServerReducer


def test_allow_deny_follow_up_the_exchange_and_what_the_run_knows() -> None:
    run = replay("codex-app-server-allow-deny")
    thread = "01a24581-d22a-7cd1-9bbc-3199b43ae443"
    cwd = "/tmp/pytest-of-root/pytest-422/test_codex_asks_and_obeys_an_a0/repo"

    def turn(text: str) -> dict[str, Any]:
        return {"threadId": thread, "input": [{"type": "text", "text": text}]}

    # The handshake step by step (each after the answer to the one before), the prompt, the
    # answers, and the follow-up as a new turn once the first one ended.
    assert messages(run.written) == [
        {"id": 0, "method": "initialize",
         "params": {"clientInfo": {"name": "aios", "title": "AIOS", "version": "0.1.0"}}},
        {"method": "initialized"},
        {"id": 1, "method": "thread/start",
         "params": {"cwd": cwd, "approvalPolicy": "untrusted", "sandbox": "workspace-write"}},
        {"id": 2, "method": "turn/start", "params": turn("Run a command, then write a file.")},
        {"id": 0, "result": {"decision": "accept"}},
        {"id": 1, "result": {"decision": "decline"}},
        {"id": 3, "method": "turn/start", "params": turn("Now say goodbye.")},
    ]  # fmt: skip
    # A command's request offers no "for the session" in 0.171.0; a patch's does.
    assert run.asked == [
        Approval("0", "shell", "echo allowed > ran.txt", always=False),
        Approval("1", "apply_patch", "denied.txt", always=True),
    ]
    k = run.knowledge
    assert (k.session_id, k.model, k.num_turns) == (thread, "gpt-5.5", 2)
    assert k.tokens == Tokens(input=5000, output=50, cached=0)  # the thread's total, all ours
    assert k.denials == (Denial("apply_patch", "denied.txt"),)
    assert (k.activity, k.failure) == (Activity.WAITING, None)
    assert run.after('"turn/started"').activity is Activity.WORKING
    assert run.after('"turn/completed"').activity is Activity.WAITING  # between turns
    assert run.after('"turn/completed"').num_turns == 1
    plain = run.plain
    for said in (
        "codex app-server · gpt-5.5 · session " + thread,
        "approvals untrusted · sandbox workspace-write",
        "$ echo allowed > ran.txt",
        "? shell(echo allowed > ran.txt) needs your approval",
        "● Add(denied.txt)\n  └ declined: you declined it",
        "One ran, one was refused.\n✓ done · 1 turn · 3,600 tokens in, 36 out",
        "» Now say goodbye.\nGoodbye.\n✓ done · 2 turns · 5,000 tokens in, 50 out",
    ):
        assert said in plain, said
    assert "Run a command, then write a file." not in plain  # the prompt is the run's own
    assert not raw_json_in(run.text) and k.malformed == 0


def test_a_resumed_thread_counts_only_this_runs_tokens() -> None:
    run = replay("codex-app-server-resume")
    thread = "01a24581-d911-71e0-a195-4eb6d0fa7db2"
    resume = messages(run.written)[2]
    assert resume["method"] == "thread/resume"
    assert resume["params"]["threadId"] == thread and resume["params"]["excludeTurns"] is True
    assert messages(run.written)[3]["params"]["input"][0]["text"] == "Now say goodbye."
    # It first repeats the thread's total (1,100 in and 11 out from the run before).
    assert "tokenUsage" in run.steps[next(i for i, s in enumerate(run.steps) if "1111" in s[1])][1]
    k = run.knowledge
    assert k.session_id == thread and k.num_turns == 1
    assert k.tokens == Tokens(input=1200, output=12, cached=0)


def test_a_thread_codex_lost_ends_the_conversation_as_session_gone() -> None:
    run = replay("codex-app-server-resume-missing")
    k = run.knowledge
    assert k.failure_kind is FailureKind.SESSION_GONE and "no rollout found" in (k.failure or "")
    assert run.reducer.ended  # the shell closes its input: it exits
    assert run.hint and "start afresh" in run.hint
    assert run.plain.count("no rollout found") == 1
    assert [m.get("method") for m in messages(run.written)][-1] == "thread/resume"


def test_a_refused_key_fails_the_turn_as_auth_and_the_session_waits() -> None:
    run = replay("codex-app-server-auth")
    retrying = run.after("Reconnecting")
    assert (retrying.activity, retrying.activity_detail) == (Activity.RETRYING, "reconnecting 1/1")
    k = run.knowledge
    assert k.failure_kind is FailureKind.AUTH and "401" in (k.failure or "")
    assert k.activity is Activity.WAITING and k.num_turns is None  # no answer, no turn
    assert run.plain.count("Incorrect API key") == 2  # the retry, and the verdict once
    assert run.hint and "codex login" in run.hint


def test_offline_then_stopped_keeps_the_wait() -> None:
    run = replay("codex-app-server-offline")
    offline = run.after("waiting for network")
    assert (offline.activity, offline.activity_detail) == (Activity.OFFLINE, "waiting for network")
    assert codex.hint(offline, None) and "cannot reach its API" in (codex.hint(offline, None) or "")
    interrupt = messages(run.written)[-1]
    turn = "01a24581-ede8-7142-89e6-0def297397f2"
    assert interrupt == {
        "id": 3,
        "method": "turn/interrupt",
        "params": {"threadId": run.knowledge.session_id, "turnId": turn},
    }
    # The interrupted turn leaves the wait it was in: a stop says "stopped while offline".
    assert run.knowledge.activity is Activity.OFFLINE
    assert "⏹ interrupted" in run.plain


def test_a_request_withdrawn_by_an_interrupt_is_handed_on_and_never_answered() -> None:
    run = replay("codex-app-server-interrupted")
    assert run.asked == [Approval("0", "shell", "echo allowed > ran.txt", always=False)]
    assert run.withdrawn == ["0"]
    assert "· the request was withdrawn" in run.plain
    assert run.reducer.reply("0", True, "", False) == []  # nothing sent for it any more


def test_the_answers_and_what_a_stop_or_an_early_message_writes() -> None:
    reducer = codex_app_server.AppServerReducer()
    start = SessionStart("--go", "/w", Permission.FULL)
    assert messages(reducer.open(start))[0]["method"] == "initialize"
    assert reducer.interrupt() == []  # no turn yet
    assert reducer.say("--early") == []  # before the thread: it follows the prompt
    reducer.stdout('{"id":0,"result":{}}')
    thread_start = messages(reducer.take_outbox())[1]
    assert thread_start["params"] == {
        "cwd": "/w", "approvalPolicy": "never", "sandbox": "danger-full-access"
    }  # fmt: skip
    reducer.stdout('{"id":1,"result":{"thread":{"id":"t-1"},"model":"m"}}')
    turns = messages(reducer.take_outbox())
    assert [t["params"]["input"][0]["text"] for t in turns] == ["--go", "--early"]
    # Every permission asks for what it does not already allow (none for full).
    policies = codex_app_server.POLICIES
    assert policies[Permission.READ_ONLY] == {"approvalPolicy": "untrusted", "sandbox": "read-only"}
    assert policies[Permission.EDIT]["approvalPolicy"] == "untrusted"


def test_always_is_accept_for_the_session() -> None:
    reducer = codex_app_server.AppServerReducer()
    reducer.open(SessionStart("go", "/w"))
    for line in Scenario("codex-app-server-allow-deny").out:
        reducer.stdout(line)
        if "item/fileChange/requestApproval" in line:
            break
    assert [a.always for a in reducer.knowledge.drain()[0]] == [False, True]
    assert messages(reducer.reply("1", True, "", True)) == [
        {"id": 1, "result": {"decision": "acceptForSession"}}
    ]
    assert reducer.reply("1", True, "", True) == []  # answered: never sent twice


def test_a_request_aios_cannot_answer_is_refused_at_once() -> None:
    """Shape from ``codex app-server generate-json-schema`` (0.171.0): not recorded, since the
    scripted model cannot make codex ask it."""
    reducer = codex_app_server.AppServerReducer()
    ask = {"method": "item/tool/requestUserInput", "id": 7, "params": {"questions": []}}
    assert "not answered" in reducer.stdout(json.dumps(ask))
    refusal = {"code": -32601, "message": "AIOS does not answer item/tool/requestUserInput"}
    assert messages(reducer.take_outbox()) == [{"id": 7, "error": refusal}]
    assert reducer.knowledge.drain() == ((), ())


def test_mistyped_and_missing_fields_never_raise_nor_break_the_conversation() -> None:
    """Every recorded line with one part of another type or missing: read without an exception
    (none counted as malformed), what the run knows well typed, what AIOS writes JSON lines."""
    rng = random.Random("aios-codex-app-server")
    count = 0
    for name in sorted(p.stem for p in STREAMS.glob("codex-app-server-*.json")):
        for line in Scenario(name).out:
            for variant in variants(json.loads(line), rng):
                reducer = codex_app_server.AppServerReducer()
                reducer.two_way = True
                written = reducer.open(SessionStart("go", "/w", Permission.EDIT, "t-0"))
                for answer in ('{"id":0,"result":{}}', '{"id":1,"result":{"thread":{"id":"t"}}}'):
                    reducer.stdout(answer)  # the handshake: requests 2 and 3 are turns
                written += [*reducer.take_outbox(), *reducer.say("and")]
                assert isinstance(reducer.stdout(json.dumps(variant)), str)
                assert reducer.knowledge.malformed == 0, variant
                for approval in reducer.knowledge.drain()[0]:
                    written += reducer.reply(approval.id, True, "", approval.always)
                written += [*reducer.take_outbox(), *reducer.say("more"), *reducer.interrupt()]
                assert all(isinstance(json.loads(line), dict) for line in written)
                reducer.exited(0)
                assert isinstance(reducer.ending(), str)
                assert_well_typed(reducer.knowledge)
                count += 1
    assert count > 1000
