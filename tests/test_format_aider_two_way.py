"""Aider's two-way session, pure: real exchanges recorded from aider 0.86.2 against the scripted
model (tests/fakes/streams/aider-two-way-*.json, ``exchange``: what was read from its pipe and
what was written to it) replayed through its reducer as the shell feeds it (lines, then the
unterminated tail after each read). What the reducer writes must be what was written."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from aios.agents.capture import LineSplitter
from aios.agents.formats.aider import FORMAT, AiderReducer
from aios.agents.formats.aider_chat import command, message_lines
from aios.agents.formats.base import Knowledge, SessionStart
from aios.runs import Activity, Approval, Tokens
from tests.fakes.agent import STREAMS

PROMPT = "Write hello.txt saying hello."
GITIGNORE = "Add .aider* to .gitignore (recommended)"


@dataclass
class Exchange:
    """A recorded exchange, played into a two-way reducer a read at a time."""

    name: str
    piece: int = 0  # bytes per read: 0 for the reads as recorded
    steps: list[list[str]] = field(default_factory=list)
    at: int = 0
    reducer: AiderReducer = field(default_factory=AiderReducer)
    splitter: LineSplitter = field(default_factory=LineSplitter)

    def __post_init__(self) -> None:
        meta: dict[str, Any] = json.loads((STREAMS / f"{self.name}.json").read_text())
        self.steps = meta["exchange"]
        self.reducer.two_way = True

    @property
    def knowledge(self) -> Knowledge:
        return self.reducer.knowledge

    def activity(self) -> Activity | None:
        return self.reducer.knowledge.activity

    def read(self) -> list[str]:
        """aider's output up to the next thing written to it: what the reducer wrote meanwhile
        on its own (its outbox)."""
        written: list[str] = []
        while self.at < len(self.steps) and self.steps[self.at][0] == "out":
            data = self.steps[self.at][1].encode()
            size = self.piece or len(data)
            for start in range(0, len(data), size):
                for line in self.splitter.feed(data[start : start + size]):
                    self.reducer.stdout(line)
                self.reducer.partial(self.splitter.tail)
                written += self.reducer.take_outbox()
            self.at += 1
        return written

    def asked(self) -> Approval:
        """The output up to the next question, which it asks, writing nothing."""
        assert self.read() == []
        asked, withdrawn = self.knowledge.drain()
        assert withdrawn == ()
        (approval,) = asked
        return approval

    def wrote(self, lines: list[str]) -> None:
        """``lines`` are what was written next (the output between them is read, and the
        reducer writes nothing there: aider's continuation prompts)."""
        for line in lines:
            if self.steps[self.at][0] == "out":
                assert self.read() == [], line
            assert self.steps[self.at] == ["in", line]
            self.at += 1

    def closed(self) -> None:
        assert self.steps[self.at][0] == "close"
        self.at += 1
        assert self.read() == []
        assert self.at == len(self.steps)

    def ended(self, exit_code: int = 0) -> str:
        self.reducer.exited(exit_code)
        return self.reducer.ending()


@pytest.mark.parametrize("piece", [0, 1, 7])
def test_a_chat_with_questions_a_follow_up_a_deny_and_the_end_of_input(piece: int) -> None:
    chat = Exchange("aider-two-way-chat", piece)
    r = chat.reducer
    # The prompt waits: aider asks about .gitignore first, and would take it for the answer.
    assert r.open(SessionStart(PROMPT, "/repo")) == []
    assert chat.asked() == Approval("q1", GITIGNORE, "", always=False)
    assert chat.activity() is not Activity.WAITING
    assert r.reply("q1", allow=True, message="", always=False) == ["y"]
    chat.wrote(["y"])
    # Its first chat prompt: the held prompt goes, and the run is working, not waiting.
    assert chat.read() == [PROMPT]
    chat.wrote([PROMPT])
    assert chat.activity() is Activity.WORKING
    assert chat.asked() == Approval("q2", "Create new file", "hello.txt")
    chat.wrote(r.reply("q2", allow=True, message="", always=False))
    # Applied, committed, and its prompt again: it waits for the user.
    assert chat.read() == []
    assert chat.activity() is Activity.WAITING
    assert chat.knowledge.model == "openai/aios-test"
    chat.wrote(r.say("Now write bye.txt."))
    assert chat.asked() == Approval("q3", "Create new file", "bye.txt")
    # A deny says "n"; its message goes as the next chat message (aider tells its model nothing).
    assert r.reply("q3", allow=False, message="Not bye.txt, thanks.", always=False) == ["n"]
    chat.wrote(["n"])
    assert chat.read() == ["Not bye.txt, thanks."]
    chat.wrote(["Not bye.txt, thanks."])
    assert chat.read() == []
    assert chat.activity() is Activity.WAITING
    # Done at its prompt: the input may close (aider ends at the end of its input).
    assert r.finish() is None
    chat.closed()
    assert chat.knowledge.drain() == ((), ())
    ending = chat.ended()
    assert "✓ done" in ending and chat.knowledge.failure is None
    # Its three chat calls, as it printed them (the commit message's call it does not print).
    assert chat.knowledge.tokens == Tokens(input=769 + 786 + 814, output=17 + 15 + 7)
    assert chat.knowledge.cost_usd == 0.0024


def test_a_message_of_several_lines_all_batch_and_a_denied_shell_command() -> None:
    shell = Exchange("aider-two-way-shell")
    r = shell.reducer
    assert r.open(SessionStart("Write hello.txt.\nRead notes.md and todo.md first.", "/r")) == []
    # At its first prompt, the whole block at once; its continuation prompts ask for nothing.
    lines = shell.read()
    assert lines == ["{aios", "Write hello.txt.", "Read notes.md and todo.md first.", "aios}"]
    shell.wrote(lines)
    # (A)ll offered: "always" answers a, and aider answers the batch's next question itself.
    assert shell.asked() == Approval("q1", "Add file to the chat", "notes.md", always=True)
    assert r.reply("q1", allow=True, message="", always=True) == ["a"]
    shell.wrote(["a"])
    assert shell.asked() == Approval("q2", "Create new file", "hello.txt")
    shell.wrote(r.reply("q2", allow=True, message="", always=False))
    command_asked = shell.asked()
    assert command_asked == Approval("q3", "Run shell command", "echo ran > ran.txt")
    shell.wrote(r.reply("q3", allow=False, message="", always=False))
    assert shell.read() == []
    assert shell.activity() is Activity.WAITING
    assert r.finish() is None
    shell.closed()
    assert "✓ done" in shell.ended()


def test_done_while_it_asks_answers_no_and_exits_at_its_prompt() -> None:
    done = Exchange("aider-two-way-done")
    r = done.reducer
    r.open(SessionStart(PROMPT, "/r"))
    done.wrote(done.read())
    assert done.asked() == Approval("q1", "Create new file", "hello.txt")
    # The end of its input would answer its default, yes: Done answers no and keeps it open.
    assert r.finish() == ["n"]
    assert done.knowledge.drain() == ((), ("q1",))
    done.wrote(["n"])
    assert done.read() == ["/exit"]
    done.wrote(["/exit"])
    assert done.read() == [] and done.at == len(done.steps)
    assert done.ended() and done.knowledge.failure is None


def test_an_answer_to_a_question_aider_has_left_writes_nothing_and_a_message_waits() -> None:
    done = Exchange("aider-two-way-done")
    r = done.reducer
    r.open(SessionStart(PROMPT, "/r"))
    done.wrote(done.read())
    done.asked()
    # A follow-up given while aider asks (or works) waits for its prompt: aider would take it
    # for the answer.
    assert r.say("and then?") == []
    done.at += 1  # someone else answered: aider moves on, and the request is withdrawn
    assert done.read() == ["and then?"]  # at its prompt
    assert done.knowledge.drain() == ((), ("q1",))
    assert r.reply("q1", allow=True, message="", always=False) == []


def test_the_one_way_command_becomes_a_chat_that_asks() -> None:
    one_way = ("aider", "--no-analytics", "{permission}", "{resume}", "--message={prompt}")
    assert command(one_way) == ("aider", "--no-analytics", "{permission}", "{resume}", "{prompt}")
    assert command(("aider", "--yes-always", "-m", "{prompt}")) == ("aider", "{prompt}")
    assert command(("aider", "--msg={prompt}")) == ("aider", "{prompt}")
    assert FORMAT.two_way is not None and FORMAT.two_way.permissions is not None
    assert not any("--yes-always" in flags for flags in FORMAT.two_way.permissions.values())
    assert message_lines("one line\n") == ["one line"]
    assert message_lines("a\r\nb") == ["{aios", "a", "b", "aios}"]
