"""A two-way session of a ``text`` agent through the real daemon, fast: a small agent that asks
on stdin the way aider does (``input()``: its question and prompt with no newline) stands in for
it, so the shell's side is tested without the real CLI (tests/test_real_two_way_aider.py has
the real one): the unterminated tail reaches the reducer, answers and messages go in at the right
moments, the transcript shows them, and Done never closes an input that would answer "yes"."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakeagents import Fakes
from tests.helpers import wait_until

pytestmark = pytest.mark.daemon

# aider's ways, in small: a question about .gitignore first, then its chat prompt; "write F" makes
# it ask to create F; the end of its input at a question answers the default, yes.
ASKER = r"""
import sys
from pathlib import Path

assert sys.argv[1:] == ["--no-fancy-input", "--no-show-release-notes"], sys.argv


def ask(question):
    try:
        answer = input(question + " (Y)es/(N)o [Yes]: ")
    except EOFError:
        answer = "y"  # as aider does: the default
    return (answer or "y")[0].lower() == "y"


if ask("Add .aider* to .gitignore (recommended)?"):
    print("Added .aider* to .gitignore")
while True:
    print()
    try:
        message = input("> ")
    except EOFError:
        sys.exit(0)
    print()
    if message == "/exit":
        sys.exit(0)
    if message.startswith("write "):
        name = message.removeprefix("write ")
        print()
        print(name)
        if ask("Create new file?"):
            Path(name).write_text("hello\n")
            print(f"Applied edit to {name}")
        else:
            print(f"Skipping edits to {name}")
    else:
        print(f"You said: {message}")
    print("Tokens: 1.2k sent, 20 received. Cost: $0.0010 message, $0.0020 session.")
"""


def start(fakes: Fakes, tmp_path: Path) -> None:
    script = tmp_path / "asker.py"
    script.write_text(ASKER)
    command = json.dumps([sys.executable, str(script), "--message={prompt}"])
    fakes.configure(f'[agents.asker]\ncommand = {command}\nformat = "aider"\napprovals = "ask"\n')
    fakes.start()


def get(fakes: Fakes, run_id: str) -> dict[str, Any]:
    run = fakes.d.client.request("GET", f"/api/runs/{run_id}")
    assert isinstance(run, dict)
    return run


def call(fakes: Fakes, run_id: str, action: str, body: dict[str, Any] | None = None) -> Any:
    return fakes.d.client.request("POST", f"/api/runs/{run_id}/{action}", body)


def asked(fakes: Fakes, run_id: str, approval_id: str) -> dict[str, Any]:
    approval: dict[str, Any] = wait_until(
        lambda: (a := get(fakes, run_id)["pending_approval"]) and a["id"] == approval_id and a,
        what=f"request {approval_id}",
    )
    return approval


def waiting(fakes: Fakes, run_id: str) -> None:
    wait_until(lambda: get(fakes, run_id)["activity"] == "waiting", what="its prompt")


def test_a_text_agents_questions_and_chat_go_through_its_stdin(
    fakes: Fakes, tmp_path: Path
) -> None:
    start(fakes, tmp_path)
    rid = fakes.launch("asker", "write hello.txt")["id"]
    assert asked(fakes, rid, "q1")["tool"] == "Add .aider* to .gitignore (recommended)"
    call(fakes, rid, "message", {"prompt": "early"})  # waits for its prompt: not an answer
    call(fakes, rid, "approval", {"id": "q1", "decision": "allow"})
    assert asked(fakes, rid, "q2") == {
        "id": "q2", "tool": "Create new file", "summary": "hello.txt", "always": False
    }  # fmt: skip
    call(fakes, rid, "approval", {"id": "q2", "decision": "deny", "message": "not that one"})
    waiting(fakes, rid)
    assert not (fakes.workdir / "hello.txt").exists()
    call(fakes, rid, "message", {"prompt": "write bye.txt"})
    asked(fakes, rid, "q3")
    call(fakes, rid, "approval", {"id": "q3", "decision": "allow"})
    waiting(fakes, rid)
    assert (fakes.workdir / "bye.txt").read_text() == "hello\n"
    call(fakes, rid, "done")
    run = fakes.final(rid)
    assert run["state"] == "succeeded" and run["cost_usd"] == 0.002
    assert run["tokens"]["input"] == 4 * 1200  # a "Tokens:" line for each of 4 messages
    log = fakes.log(rid)
    # The transcript: each question and prompt with what AIOS wrote there, in order.
    order = [
        "(recommended)? (Y)es/(N)o [Yes]: y\n",
        "> write hello.txt\n",
        "Create new file? (Y)es/(N)o [Yes]: n\n",
        "> not that one\n",  # a deny's message goes to the model as the next message
        "You said: not that one",
        "> early\n",
        "You said: early",
        "> write bye.txt\n",
        "Create new file? (Y)es/(N)o [Yes]: y\n",
    ]
    at = [log.find(piece) for piece in order]
    assert -1 not in at and at == sorted(at), (at, log)


def test_done_while_a_text_agent_asks_answers_no_and_ends_it_at_its_prompt(
    fakes: Fakes, tmp_path: Path
) -> None:
    start(fakes, tmp_path)
    rid = fakes.launch("asker", "write hello.txt")["id"]
    call(fakes, rid, "approval", {"id": asked(fakes, rid, "q1")["id"], "decision": "allow"})
    asked(fakes, rid, "q2")
    call(fakes, rid, "done")  # closing its input would answer "yes"
    run = fakes.final(rid)
    assert run["state"] == "succeeded" and run["pending_approval"] is None
    assert not (fakes.workdir / "hello.txt").exists()
    assert "Create new file? (Y)es/(N)o [Yes]: n\n" in fakes.log(rid)
    assert "> /exit\n" in fakes.log(rid)
