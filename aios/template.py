"""Command templates: how an agent's argv list takes the run's prompt and permission.

Three placeholders, each only in a form that cannot be misread:

* ``"{prompt}"`` as a whole element: replaced by the prompt, as one argument. Put ``"--"``
  before it, so a prompt such as ``--verbose flag is broken`` stays a prompt for the CLI's
  option parser instead of becoming an option (the config check warns when it is not).
* ``"--flag={prompt}"``: the one splice form; the prompt follows ``=`` so it can never be an
  option of its own. Any other text around ``{prompt}`` is left literal (and warned about):
  splicing text into strings is how quoting bugs start.
* ``"{permission}"`` as a whole element: replaced by zero or more arguments, the run's
  permission as the agent's format spells it (aios.agents.formats).
* ``"{resume}"`` as a whole element: nothing for a new run; for a run that continues another,
  the arguments that make the CLI resume its session (``--resume ID``, codex's ``resume ID``).

A two-way session (the prompt and follow-ups written to the agent's stdin) drops ``"--"`` and
``"{prompt}"`` and puts its format's arguments where they were.

Never a shell string: the result is an argv list for ``exec``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

PROMPT = "{prompt}"
PERMISSION = "{permission}"
RESUME = "{resume}"
END_OF_OPTIONS = "--"
SPLICE = re.compile(r"(--?[A-Za-z0-9][A-Za-z0-9_.-]*=)\{prompt\}")


def takes_prompt(command: Sequence[str]) -> bool:
    return any(part == PROMPT or SPLICE.fullmatch(part) for part in command)


def expand(
    command: Sequence[str],
    prompt: str,
    permission: Sequence[str] = (),
    resume: Sequence[str] = (),
    two_way: Sequence[str] | None = None,
) -> list[str]:
    """The argv for ``command``; with ``two_way``, the prompt is not on it: those arguments
    (which tell the CLI to read it from stdin) take the place of ``-- {prompt}``."""
    argv: list[str] = []
    for part in command:
        if part == PROMPT:
            argv.extend([prompt] if two_way is None else two_way)
        elif part == END_OF_OPTIONS and two_way is not None:
            continue
        elif part == PERMISSION:
            argv.extend(permission)
        elif part == RESUME:
            argv.extend(resume)
        elif splice := SPLICE.fullmatch(part):
            argv.append(splice[1] + prompt)
        else:
            argv.append(part)
    return argv


def without_prompt(command: Sequence[str]) -> tuple[str, ...]:
    """``command`` with no prompt: ``"{prompt}"`` and the ``"--"`` before it, and any
    ``"--flag={prompt}"``, left out (an interactive CLI started without a first message)."""
    parts = list(command)
    return tuple(
        part
        for i, part in enumerate(parts)
        if part != PROMPT
        and not SPLICE.fullmatch(part)
        and not (part == END_OF_OPTIONS and parts[i + 1 : i + 2] == [PROMPT])
    )


def warnings(command: Sequence[str]) -> list[str]:
    """What in ``command`` could misread a prompt (each a sentence; empty when all is well)."""
    found: list[str] = []
    if any(part == PROMPT for part in command[: _end_of_options(command)]):
        found.append(
            'the prompt could be read as an option when it starts with "-": put "--" before '
            '"{prompt}", or pass it as "--flag={prompt}"'
        )
    literal = [p for p in command if PROMPT in p and p != PROMPT and not SPLICE.fullmatch(p)]
    if literal:
        found.append(
            f'{literal[0]!r} stays literal: only a whole "{{prompt}}" element or '
            '"--flag={prompt}" is replaced by the prompt'
        )
    return found


def _end_of_options(command: Sequence[str]) -> int:
    """Index of the first ``--`` element (``len`` if none)."""
    try:
        return list(command).index(END_OF_OPTIONS)
    except ValueError:
        return len(command)
