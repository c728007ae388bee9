"""Aider's two-way session: its chat and its own yes/no questions, on a plain stdin.

Verified with Aider 0.86.2 against a scripted model (tests/test_real_two_way_aider.py;
aider/io.py ``confirm_ask`` and ``get_input``, aider/coders/base_coder.py):

- Started without ``--message`` and with ``--no-fancy-input``, aider reads its chat from a
  non-tty stdin with ``input()``: it prints its prompt (``> ``, or ``diff> `` when the edit
  format is not the model's default) with no newline and waits for one line; each line is one
  chat message. A message of several lines goes in as aider's own block, ``{aios`` … ``aios}``.
  End of input at the prompt ends aider (exit 0).
- Without ``--yes-always`` each question is also an ``input()``: ``Create new file? (Y)es/(N)o
  [Yes]: ``, again with no newline, after the line(s) naming its subject (the file, the shell
  command). Some offer ``(A)ll`` (yes to the rest of the batch: the files one message
  mentions), ``(S)kip all``, ``(D)on't ask again``. A shell command takes only an explicit
  ``y``. A question answered by aider itself (an earlier ``All``) is printed whole, with its
  answer and a newline: it is not asked again.
- Whatever is written to stdin while aider works waits in the pipe and answers its *next*
  ``input()``, question or prompt alike. So nothing is written but an answer to the question
  it waits on or a message at its prompt; follow-ups wait here (``_held``) for the prompt.
- End of input at a question answers it with its default, which is *yes* (even for a shell
  command). So Done does not close the input while aider could still ask: it answers a pending
  question "n", every later one too, and writes ``/exit`` at the next prompt.
- A "no" tells the model nothing; a deny's message goes to it as the next chat message.

The question and the prompt are the last, unterminated line of the output: the shell hands it
to :meth:`Chat.partial` after each read. The next output then completes that line, so a line
that starts with the question or prompt seen is cut to what follows (:meth:`Chat.line`).
"""

from __future__ import annotations

import re

from aios.agents.formats.base import Knowledge, one_line
from aios.runs import Activity, Approval, Permission

# The options of a yes/no question and its default, at the very end of the unterminated line.
QUESTION = re.compile(r"^(?P<question>.*?) ?(?P<options>\(Y\)es/\(N\)o[^\[\]]*) \[[^\]]*\]: $")
# Its chat prompt: "> ", "diff> ", "multi> ", "diff multi> "; several when lines came quickly.
_PREFIX = r"(?:[a-z][\w-]*(?: multi)?|multi)?> "
PROMPT = re.compile(rf"^(?:{_PREFIX})+$")
_PROMPT_START = re.compile(rf"^(?:{_PREFIX})+")
# Questions aider asks about a subject it prints on the line(s) just before: the tool's name.
SUBJECTS = {
    "Create new file?": "Create new file",
    "Allow edits to file that has not been added to the chat?": "Edit file not in the chat",
    "Run shell command?": "Run shell command",
    "Run shell commands?": "Run shell commands",
    "Add file to the chat?": "Add file to the chat",
    "Add URL to the chat?": "Add URL to the chat",
    "Run pip install?": "Run pip install",
}
BLOCK = "aios"  # the tag of a message of several lines: "{aios" … "aios}"
EXIT = "/exit"
SUBJECT_LINES = 20  # lines kept as the subject of the next question

# The command-line arguments of the two-way mode, in place of ``--message={prompt}``: the chat
# read with input() (prompt_toolkit on a pipe writes terminal codes), and no question about
# opening release notes in a browser on a first run.
ARGS = ("--no-fancy-input", "--no-show-release-notes")
# Every permission asks: --yes-always would answer each question itself. The level narrows what
# there is to ask about: read-only writes nothing (--dry-run) and proposes no commands.
PERMISSIONS = {
    Permission.READ_ONLY: ("--dry-run", "--no-suggest-shell-commands"),
    Permission.EDIT: ("--no-suggest-shell-commands",),
    Permission.FULL: (),
}
_MESSAGE = {"--message", "--msg", "-m"}
_MESSAGE_SPLICE = re.compile(r"^(?:--message|--msg|-m)=\{prompt\}$")


def command(template: tuple[str, ...]) -> tuple[str, ...]:
    """The one-way template (``… --message={prompt}``) as a chat on stdin: the message option
    becomes a whole ``{prompt}`` (which the two-way arguments replace), and a ``--yes-always``
    written into the command goes (the session is there to ask)."""
    out: list[str] = []
    for part in template:
        if part == "--yes-always":
            continue
        if part == "{prompt}" and out and out[-1] in _MESSAGE:
            out.pop()  # "--message", "{prompt}"
        out.append("{prompt}" if _MESSAGE_SPLICE.match(part) else part)
    return tuple(out)


def message_lines(text: str) -> list[str]:
    """One chat message as the lines aider reads: one line, or its block for several."""
    lines = text.strip("\n").split("\n")
    if len(lines) == 1:
        return lines
    return ["{" + BLOCK, *(line.rstrip("\r") for line in lines), BLOCK + "}"]


class Chat:
    """Where aider's conversation stands, and what to write to it. Pure, like its reducer."""

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge
        self._asked = 0
        self._question: str | None = None  # the unterminated question aider waits on
        self._pending: tuple[str, bool] | None = None  # (id, offers All) not yet answered
        self._at_prompt = False
        self._typing = False  # a message was written and aider has not shown it read it
        self._held: list[str] = []  # messages for the next prompts (the first is the prompt)
        self._subject: list[str] = []  # the lines since the last blank one
        self._done = False

    # -- what aider printed ----------------------------------------------------------------

    def line(self, line: str) -> str:
        """A complete line (its colours removed): what it says after the question or prompt it
        completes."""
        if self._question is not None and line.startswith(self._question):
            line = line[len(self._question) :]
            self._moved_on()
        elif self._at_prompt or self._typing:  # its prompt(s), and the newline after our line
            line = _PROMPT_START.sub("", line, count=1)
        self._question, self._at_prompt, self._typing = None, False, False
        plain = line.strip()
        if not plain:
            self._subject = []
        elif len(self._subject) < SUBJECT_LINES:
            self._subject.append(plain)
        return line

    def partial(self, tail: str) -> list[str]:
        """The unterminated last line after a read (a question, the prompt, or output still to
        come): what to write to aider now."""
        if not tail or tail == self._question:
            return []
        if (match := QUESTION.match(tail)) is not None:
            return self._ask(tail, match["question"], "(A)ll" in match["options"])
        if PROMPT.match(tail) and not self._typing and not self._at_prompt:
            return self._prompt()
        return []

    def _ask(self, tail: str, question: str, offers_all: bool) -> list[str]:
        self._moved_on()
        self._question = tail
        if self._done:  # the user is done: nothing more is allowed
            return ["n"]
        self._asked += 1
        approval_id = f"q{self._asked}"
        tool = SUBJECTS.get(question)
        if tool is None and question.startswith("Open ") and question.endswith("?"):
            tool = question.removesuffix("?")  # offer_url(): the subject is the address
        summary = " ; ".join(self._subject) if tool is not None else ""
        self._pending = (approval_id, offers_all)
        self.knowledge.ask(
            Approval(approval_id, tool or one_line(question.removesuffix("?"), 80),
                     one_line(summary, 300), always=offers_all)
        )  # fmt: skip
        return []

    def _moved_on(self) -> None:
        """The question aider waited on is behind it: unanswered here, it is withdrawn."""
        if self._pending is not None:
            self.knowledge.answered(self._pending[0])
            self._pending = None

    def _prompt(self) -> list[str]:
        self._moved_on()
        self._at_prompt = True
        k = self.knowledge
        if self._held:
            k.working()
            return self._write(self._held.pop(0))
        if self._done:
            return [EXIT]
        k.activity, k.activity_detail = Activity.WAITING, "waiting for your next message"
        return []

    def _write(self, message: str) -> list[str]:
        self._at_prompt, self._typing = False, True
        return message_lines(message)

    # -- what the user says ----------------------------------------------------------------

    def open(self, prompt: str) -> list[str]:
        # Not yet: aider may ask its own questions first (.gitignore), and would take the
        # prompt for their answer.
        self._held.append(prompt)
        return []

    def say(self, text: str) -> list[str]:
        # After Done too: it goes in at the next prompt, before /exit (nothing given is lost).
        if self._at_prompt and not self._held:
            return self._write(text)
        self._held.append(text)
        return []

    def reply(self, approval_id: str, allow: bool, message: str, always: bool) -> list[str]:
        if self._pending is None or self._pending[0] != approval_id:
            return []  # aider moved on: an answer now would answer something else
        offers_all, self._pending = self._pending[1], None
        if not allow and message.strip():
            self._held.insert(0, message)  # aider tells its model nothing of a "no"
        return ["a" if allow and always and offers_all else "y" if allow else "n"]

    def finish(self) -> list[str] | None:
        """Done: at the prompt the input may close; else aider would take the end of its input
        as "yes" to its next question, so the input stays open and the session ends itself."""
        if self._at_prompt and not self._held:
            return None
        self._done = True
        if self._pending is not None:
            approval_id, self._pending = self._pending[0], None
            self.knowledge.answered(approval_id)
            return ["n"]
        return []
