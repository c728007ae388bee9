"""``parse``: the command line's words as arguments, with the prompt of ``run`` and ``continue``
wherever it stands among their options."""

from __future__ import annotations

import argparse
import itertools
import re
import sys
from typing import NoReturn

from aios.cli.common import EXIT_USAGE
from aios.cli.parser import build_parser

PROMPT_COMMANDS = ("run", "continue")  # their words after the first are the prompt
WORD, UNKNOWN = "word", "unknown"
NEGATIVE_NUMBER = re.compile(r"-\d+$|-\d*\.\d+$")  # argparse's: a word, not an option


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``. For ``run`` and ``continue``, the words after the agent (or run) are the
    prompt wherever they stand among the options, and everything after ``--`` is prompt too,
    options included.

    argparse alone cannot do either (it settles a ``*`` positional at its first chance, and
    once options come between the agent and ``--``, it has settled the prompt by then), so
    the words are sorted out first, the way argparse itself tells an option from a word.
    """
    parser = build_parser()
    cut = argv.index("--") if "--" in argv else len(argv)
    head, tail = argv[:cut], argv[cut + 1 :]
    # Options before the command take no values: the first word is the command.
    at = next((i for i, token in enumerate(head) if not token.startswith("-")), len(head))
    if at == len(head) or head[at] not in PROMPT_COMMANDS:
        args = parser.parse_args(head)
        if cut < len(argv):
            parser.error(f"unrecognized arguments: {' '.join(argv[cut:])}")
        return args
    command = command_parser(parser, head[at])
    options, words = sort_out(command, head[at + 1 :])
    unknown = [token for token, kind in words if kind == UNKNOWN]
    plain = [i for i, (_, kind) in enumerate(words) if kind == WORD]
    if unknown and plain:
        first = plain[0]
        prompt = [token for i, (token, _) in enumerate(words) if i != first]
        suggest_dashes(unknown, [*head[: at + 1], words[first][0], *options, "--", *prompt, *tail])
    if unknown or not plain:  # argparse says what is wrong (no agent, say) and exits
        return parser.parse_args(head)
    args = parser.parse_args([*head[: at + 1], *options, words[0][0]])
    args.prompt = [token for token, _ in words[1:]] + tail  # all words: none is unknown
    warn_options_in_prompt(command, tail)
    return args


def command_parser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    actions = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    choices: dict[str, argparse.ArgumentParser] = next(actions).choices
    return choices[name]


def option_of(parser: argparse.ArgumentParser, arg: str) -> argparse.Action | str:
    """What argparse makes of ``arg`` among ``parser``'s arguments: the action of the option
    it names (abbreviated or with ``=value``), ``WORD`` (a positional) or ``UNKNOWN``."""
    actions = parser._option_string_actions
    if not arg.startswith("-") or arg == "-":
        return WORD
    name = arg.split("=", 1)[0] if arg.startswith("--") else arg
    if name in actions:
        return actions[name]
    if arg.startswith("--"):
        found = [action for option, action in actions.items() if option.startswith(name)]
        if found:  # more than one: ambiguous, which argparse will say
            return found[0]
    if NEGATIVE_NUMBER.match(arg) or " " in arg:
        return WORD
    return UNKNOWN


def sort_out(
    parser: argparse.ArgumentParser, tokens: list[str]
) -> tuple[list[str], list[tuple[str, str]]]:
    """``tokens`` as the options ``parser`` knows (with their values), and the rest in order:
    words, and options it does not know, each with its kind (``WORD``, ``UNKNOWN``)."""
    options: list[str] = []
    words: list[tuple[str, str]] = []
    rest = iter(tokens)
    for token in rest:
        kind = option_of(parser, token)
        if isinstance(kind, str):
            words.append((token, kind))
            continue
        options.append(token)
        if "=" not in token and kind.nargs != 0:
            options.extend(itertools.islice(rest, 1))
    return options, words


def suggest_dashes(unknown: list[str], suggestion: list[str]) -> NoReturn:
    """An option this command does not know: the line that puts it in the prompt instead."""
    import shlex  # noqa: PLC0415 - only on this path

    them = "them" if len(unknown) > 1 else "it"
    names = f"arguments {', '.join(unknown)}" if len(unknown) > 1 else f"argument {unknown[0]}"
    print(
        f"aios: unrecognized {names}; to pass {them} in the prompt, put {them} after '--': "
        f"{shlex.join(['aios', *suggestion])}",
        file=sys.stderr,
    )
    raise SystemExit(EXIT_USAGE)


def warn_options_in_prompt(parser: argparse.ArgumentParser, prompt: list[str]) -> None:
    """``aios run command -- 'x' --wait``: the prompt ends in ``--wait``, as asked, but that
    is seldom what was meant. Help flags are left alone: ``ls -h`` is a fine prompt."""
    known = {o for o in parser._option_string_actions if o not in ("-h", "--help")}
    found = [t for t in prompt if t in known or ("=" in t and t.split("=", 1)[0] in known)]
    if not found:
        return
    quoted = ", ".join(f"'{token}'" for token in found)
    verb = "are" if len(found) > 1 else "is"
    print(
        f"aios: warning: {quoted} after '--' {verb} part of the prompt; "
        "put AIOS options before '--'",
        file=sys.stderr,
    )
