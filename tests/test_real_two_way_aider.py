"""The real-agents tier, two-way: Aider 0.86.2 (``make agents``) with ``approvals = "ask"``,
through a real daemon against the scripted Chat Completions server (tests/models). Its own
yes/no questions come to the user as approvals, from the API and on the run page in Chromium;
follow-ups go to its chat; Done ends it; a continued run restores its chat history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser import browser, signed_in_page
from tests.gitrepo import make_repo
from tests.harness import write_config
from tests.helpers import wait_until
from tests.models.base import Text
from tests.models.openai_chat import ChatModel, whole_file
from tests.realagents import RealAgents, pin, reported_version
from tests.test_real_agents import real, repo

pytestmark = [pytest.mark.daemon, pytest.mark.real_agents]
__all__ = ["browser", "real", "repo"]  # the fixtures

PROMPT = "Write hello.txt saying hello."
GITIGNORE = "Add .aider* to .gitignore (recommended)"
ASKING = '[agents.aider]\napprovals = "ask"\n'


@pytest.fixture(autouse=True)
def asking(home: Path) -> None:
    assert reported_version("aider") == pin("aider").version
    write_config(home, ASKING)


def get(real: RealAgents, run_id: str) -> dict[str, Any]:
    run = real.d.client.request("GET", f"/api/runs/{run_id}")
    assert isinstance(run, dict)
    return run


def call(real: RealAgents, run_id: str, action: str, body: dict[str, Any] | None = None) -> Any:
    return real.d.client.request("POST", f"/api/runs/{run_id}/{action}", body)


def asked(real: RealAgents, run_id: str, tool: str) -> dict[str, Any]:
    """The request the run waits on, once it is for ``tool``."""

    def pending() -> dict[str, Any] | None:
        run = get(real, run_id)
        approval = run["pending_approval"]
        if run["state"] not in ("starting", "running"):
            raise AssertionError(f"the run ended: {run['state']} {run['error']}")
        return approval if approval and approval["tool"] == tool else None

    approval: dict[str, Any] = wait_until(pending, 60, f"aider to ask {tool}")
    assert get(real, run_id)["activity"] == "awaiting_approval"
    return approval


def waiting(real: RealAgents, run_id: str) -> dict[str, Any]:
    """The run, once aider waits at its chat prompt for the next message."""
    try:
        run: dict[str, Any] = wait_until(
            lambda: (r := get(real, run_id))["activity"] == "waiting" and r, 60, "its prompt"
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {get(real, run_id)} {real.log(run_id)[-3000:]}") from None
    return run


def decide(real: RealAgents, run_id: str, approval_id: str, decision: str, note: str = "") -> None:
    body = {"id": approval_id, "decision": decision, **({"message": note} if note else {})}
    call(real, run_id, "approval", body)


def test_aider_asks_and_obeys_from_the_api_takes_follow_ups_and_continues_its_chat(
    real: RealAgents, repo: Path
) -> None:
    model = ChatModel(
        Text(whole_file("hello.txt", "hello from aider")),
        Text("Add hello.txt"),  # the commit message it asks for
        Text(whole_file("bye.txt", "bye")),
        Text("Understood, no bye.txt."),
    )
    with model:
        real.start(aider=model)
        run = real.launch("aider", PROMPT, repo)
        rid = run["id"]
        # Its own question first: the prompt waits for its chat prompt, or it would answer this.
        first = asked(real, rid, GITIGNORE)
        assert first == {"id": "q1", "tool": GITIGNORE, "summary": "", "always": False}
        assert not model.seen
        decide(real, rid, "q1", "allow")
        create = asked(real, rid, "Create new file")
        assert create == {"id": "q2", "tool": "Create new file", "summary": "hello.txt",
                          "always": False}  # fmt: skip
        assert not (repo / "hello.txt").exists()
        assert PROMPT in model.seen[0].text
        decide(real, rid, "q2", "allow")
        now = waiting(real, rid)
        assert (repo / "hello.txt").read_text() == "hello from aider\n"
        assert ".aider*" in (repo / ".gitignore").read_text()
        assert now["tokens"]["input"] > 0 and now["cost_usd"] > 0

        # A follow-up goes to its chat; a denied file is not written, and the model hears why.
        call(real, rid, "message", {"prompt": "Now write bye.txt."})
        bye = asked(real, rid, "Create new file")
        assert bye["id"] == "q3" and bye["summary"] == "bye.txt"
        decide(real, rid, "q3", "deny", "Not bye.txt, thanks.")
        waiting(real, rid)
        assert not (repo / "bye.txt").exists()
        assert len(model.seen) == 4
        assert "Not bye.txt, thanks." in model.seen[3].text

        # Done: at its prompt the input closes, and aider ends.
        call(real, rid, "done")
        ended = real.final(rid)
        assert ended["state"] == "succeeded", (ended["error"], real.log(rid)[-2000:])
        assert ended["pending_approval"] is None
        log = real.log(rid)
        # The transcript reads as the session went: each question with its answer.
        assert "Create new file? (Y)es/(N)o [Yes]: y\n" in log
        assert "Create new file? (Y)es/(N)o [Yes]: n\n" in log
        assert "> Now write bye.txt.\n" in log
        assert ended["tokens"]["input"] >= now["tokens"]["input"]

        # Continued: a new session that restores the chat history of the directory.
        model.then(Text("You asked for two files."))  # naming one, aider would ask to add it
        again = real.continue_(rid, "What did I ask for?")
        waiting(real, again["id"])
        assert len(model.seen) == 5
        assert all(t in model.seen[4].text for t in (PROMPT, "Now write bye.txt.", "What did I"))
        call(real, again["id"], "done")
        assert real.final(again["id"])["state"] == "succeeded"
        assert model.script.overrun == 0


def test_aider_done_while_it_asks_denies_the_question_and_ends(
    real: RealAgents, repo: Path
) -> None:
    model = ChatModel(Text(whole_file("hello.txt", "hello")))
    (repo / ".gitignore").write_text(".aider*\n")  # no question of its own first
    with model:
        real.start(aider=model)
        rid = real.launch("aider", PROMPT, repo)["id"]
        asked(real, rid, "Create new file")
        # The end of its input would answer "yes": Done answers "no", and ends it at its prompt.
        call(real, rid, "done")
        ended = real.final(rid)
        assert ended["state"] == "succeeded", (ended["error"], real.log(rid)[-2000:])
        assert ended["pending_approval"] is None
        assert not (repo / "hello.txt").exists()
        assert "Create new file? (Y)es/(N)o [Yes]: n\n" in real.log(rid)


def test_always_answers_all_of_a_batch_where_aider_offers_it(
    real: RealAgents, tmp_path: Path
) -> None:
    files = {".gitignore": ".aider*\n", "notes.md": "the notes\n", "todo.md": "the todo\n"}
    repo = make_repo(tmp_path / "batch", files)
    model = ChatModel(Text("Read them both."))
    with model:
        real.start(aider=model)
        rid = real.launch("aider", "Read notes.md and todo.md.", repo)["id"]
        # One question per file it mentions; (A)ll is yes to the rest, which aider answers itself.
        first = asked(real, rid, "Add file to the chat")
        assert first == {"id": "q1", "tool": "Add file to the chat", "summary": "notes.md",
                         "always": True}  # fmt: skip
        decide(real, rid, "q1", "always")
        waiting(real, rid)
        assert all(text in model.seen[0].text for text in ("the notes", "the todo"))
        assert "[Yes]: all" in real.log(rid)  # its own answer to todo.md
        call(real, rid, "done")
        assert real.final(rid)["state"] == "succeeded"


def test_aider_stopped_while_it_asks_ends_stopped_and_writes_nothing(
    real: RealAgents, repo: Path
) -> None:
    model = ChatModel(Text(whole_file("hello.txt", "hello")))
    (repo / ".gitignore").write_text(".aider*\n")
    with model:
        real.start(aider=model)
        rid = real.launch("aider", PROMPT, repo)["id"]
        asked(real, rid, "Create new file")
        call(real, rid, "stop")
        ended = real.final(rid)
        assert ended["state"] == "stopped" and ended["pending_approval"] is None
        assert not (repo / "hello.txt").exists()


def test_aider_asks_on_the_run_page_and_obeys_allow_and_deny_clicked_in_chromium(
    real: RealAgents, repo: Path, browser: Any
) -> None:
    model = ChatModel(
        Text(whole_file("hello.txt", "hello from aider")),
        Text("Add hello.txt"),
        Text(whole_file("bye.txt", "bye")),
    )
    (repo / ".gitignore").write_text(".aider*\n")
    with model:
        daemon = real.start(aider=model)
        rid = real.launch("aider", PROMPT, repo)["id"]
        with signed_in_page(browser, daemon.port, daemon.info.token, 800, 60_000) as (page, watch):
            page.goto(f"http://127.0.0.1:{daemon.port}/runs/{rid}")
            page.wait_for_selector("#conn.connected")
            approval = page.locator(".approval")
            approval.get_by_text("hello.txt").wait_for()
            approval.get_by_role("button", name="Allow").click()
            waiting(real, rid)
            assert (repo / "hello.txt").read_text() == "hello from aider\n"

            call(real, rid, "message", {"prompt": "Now write bye.txt."})
            approval.get_by_text("bye.txt").wait_for()
            approval.get_by_role("button", name="Deny").click()
            waiting(real, rid)
            assert not (repo / "bye.txt").exists()
            page.locator("#talk").get_by_role("button", name="Done").click()
            page.locator("#run-details .state", has_text="succeeded").wait_for()
            assert watch.errors == [] and watch.dialogs == []
        assert real.final(rid)["state"] == "succeeded"
