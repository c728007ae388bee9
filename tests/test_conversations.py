"""Conversations with agents: continuing a run, a session that is gone, and two-way sessions
with approvals and follow-ups, against the real daemon and the fake CLIs."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aios.client import ApiCallError
from tests.fakeagents import Fakes
from tests.gitrepo import make_repo
from tests.helpers import EventCollector, run_cli, start_daemon, wait_until, write_config

pytestmark = pytest.mark.daemon

TWO_WAY = '[agents.claude]\napprovals = "ask"\napproval_timeout = {timeout}\nenv = {{ {env} }}\n'


def call(fakes: Fakes, run_id: str, action: str, body: dict[str, Any] | None = None) -> Any:
    return fakes.d.client.request("POST", f"/api/runs/{run_id}/{action}", body)


def expect_error(status: int, fn: Any, *args: Any) -> str:
    with pytest.raises(ApiCallError) as caught:
        fn(*args)
    assert caught.value.status == status, caught.value.message
    return caught.value.message


RESUMED: dict[str, Callable[[str], list[str]]] = {
    "claude": lambda sid: ["--resume", sid, "--", "--and then?"],
    "codex": lambda sid: ["resume", sid, "--", "--and then?"],
    "gemini": lambda sid: ["--resume", sid, "--prompt=--and then?"],
    "aider": lambda sid: ["--restore-chat-history", "--message=--and then?"],
}


def test_continue_resumes_each_agents_session_in_the_same_directory(fakes: Fakes) -> None:
    fakes.configure()
    fakes.start()
    for agent, tail in RESUMED.items():
        first = fakes.final(fakes.launch(agent, permission="read-only")["id"])
        assert first["state"] == "succeeded"
        assert first["session_id"] or agent == "aider"  # aider keeps its history per directory
        new = call(fakes, first["id"], "continue", {"prompt": "--and then?"})
        assert (new["parent"], new["agent"], new["cwd"]) == (first["id"], agent, first["cwd"])
        assert (new["permission"], new["session_id"]) == ("read-only", first["session_id"])
        assert fakes.final(new["id"])["state"] == "succeeded"
        launched = next(c for c in fakes.invocations() if c["env"]["AIOS_RUN_ID"] == new["id"])
        assert launched["argv"][-len(tail(first["session_id"])) :] == tail(first["session_id"])
        assert launched["cwd"] == first["cwd"]
    # The run page shows the chain as one conversation, with a box to continue it.
    page = fakes.d.client.request_bytes("GET", f"/runs/{new['id']}").decode()
    assert page.count('turn"') == 2 and "--and then?" in page  # the earlier turn and this one
    assert 'id="continue"' in page


def test_continuing_a_worktree_run_whose_worktree_went_works_where_the_parent_did(
    fakes: Fakes,
) -> None:
    """claude keeps its sessions per directory: the worktree AIOS removed (nothing changed in
    it) is made again at the same path, so the session is found there."""
    repo = make_repo(fakes.workdir / "app")
    fakes.configure()
    fakes.start()
    first = fakes.final(fakes.launch("claude", cwd=str(repo), worktree=True)["id"])
    tree = first["worktree"]
    assert first["state"] == "succeeded" and tree["path"] != str(repo)
    ran = next(c for c in fakes.invocations() if c["env"]["AIOS_RUN_ID"] == first["id"])
    assert ran["cwd"] == tree["path"]

    def removed() -> bool:
        run = fakes.d.client.request("GET", f"/api/runs/{first['id']}")
        return bool(run["worktree"]["state"] == "removed")

    wait_until(removed, 20, "the unchanged worktree to be removed")
    assert not Path(tree["path"]).exists()
    new = call(fakes, first["id"], "continue", {"prompt": "and then?"})
    assert new["worktree"]["path"] == tree["path"] and new["worktree"]["state"] == "open"
    assert fakes.final(new["id"])["state"] == "succeeded"
    resumed = next(c for c in fakes.invocations() if c["env"]["AIOS_RUN_ID"] == new["id"])
    assert resumed["cwd"] == tree["path"]
    assert resumed["argv"][-4:] == ["--resume", first["session_id"], "--", "and then?"]


def test_what_cannot_be_continued_says_why(fakes: Fakes, tmp_path: Path) -> None:
    fakes.configure(codex="codex-reconnect")
    fakes.start()
    live = fakes.launch("codex")
    wait_until(lambda: fakes.d.client.request("GET", f"/api/runs/{live['id']}")["session_id"])
    assert "still" in expect_error(409, call, fakes, live["id"], "continue", {"prompt": "x"})
    shell = fakes.final(fakes.launch("command", "true")["id"])
    assert "cannot resume" in expect_error(
        422, call, fakes, shell["id"], "continue", {"prompt": "x"}
    )
    call(fakes, live["id"], "stop")
    assert fakes.final(live["id"])["state"] == "stopped"
    assert "required" in expect_error(422, call, fakes, live["id"], "continue", {})
    assert "unknown field" in expect_error(
        422, call, fakes, live["id"], "continue", {"prompt": "x", "cwd": "/"}
    )
    assert "no run matches" in expect_error(
        404, call, fakes, "ffffffffffff", "continue", {"prompt": "x"}
    )
    # A stopped run keeps its session: continuing it resumes there.
    resumed = call(fakes, live["id"], "continue", {"prompt": "go on"})
    assert (
        resumed["session_id"]
        == fakes.d.client.request("GET", f"/api/runs/{live['id']}")["session_id"]
    )
    call(fakes, resumed["id"], "stop")


@pytest.mark.parametrize(
    ("agent", "scenario"), [("claude", "claude-resume-missing"), ("codex", "codex-resume-missing")]
)
def test_a_session_that_is_gone_ends_session_gone_with_an_offer_to_start_afresh(
    fakes: Fakes, agent: str, scenario: str
) -> None:
    fakes.configure()
    fakes.start()
    first = fakes.final(fakes.launch(agent, "the task")["id"])
    fakes.configure(**{agent: scenario})  # re-read at the next launch
    gone = fakes.final(call(fakes, first["id"], "continue", {"prompt": "go on"})["id"])
    assert (gone["state"], gone["error_kind"], gone["restarts"]) == ("failed", "session_gone", 0)
    assert gone["hint"]
    page = fakes.d.client.request_bytes("GET", f"/runs/{gone['id']}").decode()
    assert "Start afresh" in page
    # Starting afresh launches the same prompt as a new conversation.
    fakes.configure()
    fresh = fakes.launch(agent, gone["prompt"])
    assert fresh["parent"] is None and fakes.final(fresh["id"])["state"] == "succeeded"


def two_way(fakes: Fakes, tmp_path: Path, timeout: float = 0, env: str = "") -> Path:
    stdin_log = tmp_path / "stdin.jsonl"
    env += f'AIOS_FAKE_STDIN_LOG = "{stdin_log}", AIOS_FAKE_ARGV_LOG = "{fakes.argv_log}"'
    write_config(fakes.home, TWO_WAY.format(timeout=timeout, env=env))
    return stdin_log


def received(stdin_log: Path) -> list[dict[str, Any]]:
    if not stdin_log.exists():
        return []
    # Whole lines only: the fake may be halfway through writing the last one.
    return [json.loads(line) for line in stdin_log.read_text().split("\n")[:-1] if line]


def first_answer(stdin_log: Path) -> dict[str, Any]:
    """The first answer to a request, once the agent has read it."""
    answer: dict[str, Any] = wait_until(
        lambda: next((m for m in received(stdin_log) if m["type"] == "control_response"), None),
        what="the agent to read the answer",
    )
    return answer


def test_approvals_and_follow_ups_in_a_two_way_session(fakes: Fakes, tmp_path: Path) -> None:
    stdin_log = two_way(fakes, tmp_path)
    fakes.start()
    events = EventCollector(fakes.d.port, fakes.d.info.token)
    try:
        run = fakes.launch("claude", "ask: npm test")
        _, data = events.wait(lambda k, d: k == "attention" and d["run"] == run["id"])
        assert data["reason"] == "awaiting_approval"
        assert data["message"] == "claude wants to run Bash: npm test"
        assert data["approval"] == {
            "id": "req-1", "tool": "Bash", "summary": "npm test", "always": True
        }  # fmt: skip
        now = fakes.d.client.request("GET", f"/api/runs/{run['id']}")
        assert now["activity"] == "awaiting_approval"
        assert now["pending_approval"] == data["approval"]
        argv = next(c for c in fakes.invocations() if c["env"]["AIOS_RUN_ID"] == run["id"])["argv"]
        assert argv[-4:] == ["--input-format", "stream-json", "--permission-prompt-tool", "stdio"]
        assert "ask: npm test" not in argv  # the prompt went in on stdin

        decided = call(fakes, run["id"], "approval", {"id": "req-1", "decision": "always"})
        assert decided["pending_approval"] is None
        # The answer is written to the agent's stdin; the fake logs it when it reads it. The
        # rule claude suggested is applied for the session, never kept in a settings file.
        answer = first_answer(stdin_log)
        assert answer["response"]["request_id"] == "req-1"
        rule = {"toolName": "Bash", "ruleContent": "npm test"}
        assert answer["response"]["response"] == {
            "behavior": "allow",
            "updatedInput": {"command": "npm test"},
            "updatedPermissions": [
                {"type": "addRules", "rules": [rule], "behavior": "allow", "destination": "session"}
            ],
        }
        # Deciding again is harmless; an id that is not pending is refused.
        assert call(fakes, run["id"], "approval", {"id": "req-1", "decision": "deny"})
        assert "no pending approval" in expect_error(
            409, call, fakes, run["id"], "approval", {"id": "req-9", "decision": "allow"}
        )
        assert "decision" in expect_error(
            422, call, fakes, run["id"], "approval", {"id": "req-1", "decision": "maybe"}
        )
        wait_until(lambda: "ran: npm test" in fakes.log(run["id"]), what="the tool to run")
        wait_until(
            lambda: fakes.d.client.request("GET", f"/api/runs/{run['id']}")["activity"] == "waiting"
        )

        # A follow-up goes to the live process; a second request is denied with a message.
        call(fakes, run["id"], "message", {"prompt": "ask: rm -rf build"})
        events.wait(lambda k, d: k == "attention" and d.get("approval", {}).get("id") == "req-2")
        call(
            fakes, run["id"], "approval", {"id": "req-2", "decision": "deny", "message": "not now"}
        )
        wait_until(lambda: "I was not allowed" in fakes.log(run["id"]), what="the denial")
        call(fakes, run["id"], "message", {"prompt": "--thanks"})
        wait_until(lambda: "You said: --thanks" in fakes.log(run["id"]), what="the follow-up")
        lines = received(stdin_log)
        deny = [m for m in lines if m["type"] == "control_response"][-1]["response"]["response"]
        assert deny == {"behavior": "deny", "message": "not now"}
        assert [m["message"]["content"] for m in lines if m["type"] == "user"] == [
            "ask: npm test", "ask: rm -rf build", "--thanks"
        ]  # fmt: skip
        # The user says it is done: input closes, the agent ends.
        call(fakes, run["id"], "done")
        final = fakes.final(run["id"])
        assert final["state"] == "succeeded" and final["pending_approval"] is None
        assert final["num_turns"] == 3
        assert "has ended" in expect_error(409, call, fakes, run["id"], "message", {"prompt": "x"})
    finally:
        events.close()


def test_always_only_where_the_agent_offers_it(fakes: Fakes, tmp_path: Path) -> None:
    """A claude that suggests no permission updates (an older one) can only allow once."""
    stdin_log = two_way(fakes, tmp_path, env='AIOS_FAKE_NO_SUGGESTIONS = "1", ')
    fakes.start()
    run = fakes.launch("claude", "ask: npm test")
    pending = wait_until(
        lambda: fakes.d.client.request("GET", f"/api/runs/{run['id']}")["pending_approval"],
        what="the request",
    )
    assert pending["always"] is False
    assert "only be allowed once" in expect_error(
        422, call, fakes, run["id"], "approval", {"id": "req-1", "decision": "always"}
    )
    call(fakes, run["id"], "approval", {"id": "req-1", "decision": "allow"})
    answer = first_answer(stdin_log)
    assert answer["response"]["response"] == {
        "behavior": "allow",
        "updatedInput": {"command": "npm test"},
    }
    call(fakes, run["id"], "done")
    assert fakes.final(run["id"])["state"] == "succeeded"


def test_an_unanswered_request_is_denied_when_its_time_passes(fakes: Fakes, tmp_path: Path) -> None:
    """End to end, with a short timeout: the rule itself is the core's, tested with a fake clock
    (tests/test_run_hearing.py)."""
    stdin_log = two_way(fakes, tmp_path, timeout=0.2)
    fakes.start()
    run = fakes.launch("claude", "ask: make deploy")
    wait_until(
        lambda: any(m["type"] == "control_response" for m in received(stdin_log)),
        timeout=15,
        what="the timeout to deny",
    )
    answer = next(m for m in received(stdin_log) if m["type"] == "control_response")
    assert answer["response"]["response"]["behavior"] == "deny"
    assert "No answer within 0.2 s" in answer["response"]["response"]["message"]
    wait_until(lambda: "I was not allowed" in fakes.log(run["id"]), what="the agent to hear it")
    call(fakes, run["id"], "done")
    assert fakes.final(run["id"])["state"] == "succeeded"


def test_after_the_daemon_is_killed_continue_resumes_the_interrupted_session(
    fakes: Fakes,
) -> None:
    fakes.configure(codex="codex-reconnect")
    d = fakes.start()
    events = EventCollector(d.port, d.info.token)
    try:
        run = fakes.launch("codex")
        # Published only once it is in history: from here a crash loses nothing.
        _, data = events.wait(lambda k, d: k == "run" and d["session_id"] is not None)
        session = data["session_id"]
    finally:
        events.close()
    d.proc.send_signal(signal.SIGKILL)
    d.finish()
    fakes.configure()
    fakes.daemon = start_daemon(fakes.home, PATH=f"{fakes.bin}{os.pathsep}{os.environ['PATH']}")
    interrupted = fakes.d.client.request("GET", f"/api/runs/{run['id']}")
    assert interrupted["state"] == "interrupted" and interrupted["session_id"] == session
    result = run_cli(fakes.home, "continue", run["id"][:6], "--wait", "--", "--where were we?")
    assert result.returncode == 0, result.stderr
    new_id = result.stdout.splitlines()[0]
    launched = next(c for c in fakes.invocations() if c["env"]["AIOS_RUN_ID"] == new_id)
    assert launched["argv"][-4:] == ["resume", session, "--", "--where were we?"]
