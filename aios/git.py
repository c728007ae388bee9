"""Running git: argv lists (never a shell), off the event loop, every call with a timeout, and
never a program that the repository names.

git is an asyncio subprocess, so the daemon's loop never waits on it. Each call has a deadline;
a git that passes it (a huge checkout, a lock held elsewhere) is killed together with whatever it
started (it runs in a session of its own, and the whole group goes), and the caller gets
:class:`GitTimeout`. Output is read while git writes it, and what a caller does not want (past
``limit``) is not kept: a diff of a whole tree cannot fill memory.

A repository's configuration and attributes can make git start programs: hooks, a file-system
monitor, clean/smudge filters, diff and merge drivers, a pager, an editor, a credential helper, a
signing program. Whoever could write into a repository (an unpacked archive, a shared folder, an
earlier agent run) would then run code as the user the moment AIOS looks at it, before anything
is launched. So every git AIOS starts goes through :func:`git`, which sets, on every call and
with no way to opt out, settings that switch each of those off (:data:`SAFE_SETTINGS`), and, for
the commands that read files' contents, neutralises every filter, merge driver and configured
hook that the configuration in force defines, whatever its name (:func:`drivers`). Settings
given with ``-c`` are read after every configuration file, so they win over the repository's
own, and git hands them down to the git processes it starts itself. What these settings are,
and why, is in docs/security.md ("The git that AIOS runs"). What an agent runs in the
repository is the agent's business, under its permission.

Exceptions::

    GitError              git said no; the message is git's own words
    ├── GitMissing        no git executable on PATH
    ├── GitTimeout        it ran past its timeout and was killed
    └── UnsafeRepository  git's ownership check (safe.directory) refused the repository
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

QUICK = 10.0  # seconds for a question (rev-parse, status, branch, rev-list)
SLOW = 120.0  # for work over the whole tree (worktree add, add -A, diff, merge)
STDERR_KEPT = 64 * 1024
KILL_WAIT = 5.0  # for a killed git to be reaped

# Variables that would point git at another repository or index than the one we name: a daemon
# started from inside a git hook inherits them.
_LOCATORS = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_NAMESPACE",
        "GIT_PREFIX",
    }
)
# Variables that name a program git would start, and settings a git command hands down to what
# it starts (a daemon started from a hook inherits them): AIOS gives its own or none.
_PROGRAMS = frozenset(
    {
        "GIT_EXTERNAL_DIFF",
        "GIT_ASKPASS",
        "SSH_ASKPASS",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_PROXY_COMMAND",
        "GIT_CONFIG_PARAMETERS",
        "GIT_CONFIG_COUNT",
    }
)
_CONFIG_ENTRY = re.compile(r"GIT_CONFIG_(KEY|VALUE)_\d+")

# Set on every git AIOS starts (docs/security.md lists them with the reason for each).
SAFE_SETTINGS: Final[tuple[tuple[str, str], ...]] = (
    ("core.hooksPath", os.devnull),  # no hook at all: commit --no-verify skips only two of them
    ("core.fsmonitor", ""),  # no file-system monitor (empty: off for every git since 2.16)
    ("core.pager", "cat"),
    ("core.editor", ":"),  # ":" is git's own word for "no editor"
    ("sequence.editor", ":"),
    ("core.askPass", ""),
    ("credential.helper", ""),  # an empty value empties the list of helpers
    ("protocol.allow", "never"),  # AIOS never fetches or pushes: no transport (ext:: runs one)
    ("commit.gpgSign", "false"),  # no signing program
    ("tag.gpgSign", "false"),
    ("merge.verifySignatures", "false"),  # nor one to check signatures
    ("log.showSignature", "false"),
    ("gc.auto", "0"),  # no automatic gc after a commit or a merge
    ("maintenance.auto", "false"),
    ("merge.stat", "false"),  # no diffstat after a merge (it could convert text with a driver)
    ("submodule.recurse", "false"),  # nothing done in submodules, whose config is their own
    ("status.submoduleSummary", "false"),
)
# What neutralises each kind of driver a configuration can define under a name of its own:
# a filter that does nothing (and may: not required), a merge driver that always fails (its
# files are a conflict, never merged by it), a hook defined in configuration (git 2.54 and
# later) switched off.
NEUTRAL: Final[Mapping[str, tuple[tuple[str, str], ...]]] = {
    "filter": (("clean", ""), ("smudge", ""), ("process", ""), ("required", "false")),
    "merge": (("driver", "false"),),
    "hook": (("enabled", "false"),),
}
# Options always added to some commands. A diff driver's external program and text conversion
# cannot be emptied by a setting (an empty one is a program named ""): the commands that show
# diffs switch both off. A status would look into submodules' work trees by running git there,
# under their own configuration, which the settings here do not cover: it reports only the
# commits they are at instead.
COMMAND_OPTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "diff": ("--no-ext-diff", "--no-textconv"),
    "log": ("--no-ext-diff", "--no-textconv"),
    "show": ("--no-ext-diff", "--no-textconv"),
    "status": ("--ignore-submodules=dirty",),
}
# Commands that never read a file's contents through its attributes (no filter, no driver): they
# get the fixed settings only, and no ``git config`` beforehand to list the drivers. (Not
# write-tree: writing an index checks racily clean entries by reading the files.)
_NO_CONTENT = frozenset({"rev-parse", "symbolic-ref", "rev-list", "var", "config", "branch"})
_DRIVER_KEYS = r"^(filter|merge|hook)\..+\."
_DUBIOUS = re.compile(r"detected dubious ownership in repository at '(.*)'")


class GitError(Exception):
    def __init__(self, command: Sequence[str], message: str, code: int | None = None) -> None:
        self.command = list(command)
        self.message = message
        self.code = code
        super().__init__(message)


class GitMissing(GitError):
    def __init__(self, command: Sequence[str]) -> None:
        super().__init__(command, "git is not installed (no git on PATH)")


class GitTimeout(GitError):
    def __init__(self, command: Sequence[str], timeout: float) -> None:
        what = " ".join(command[:2])
        super().__init__(command, f"git {what} did not finish within {timeout:g} s; it was stopped")


class UnsafeRepository(GitError):
    """The repository belongs to another user, and git will not work in it until told to."""

    def __init__(self, command: Sequence[str], repository: str) -> None:
        self.repository = repository
        super().__init__(
            command,
            f"git refuses to work in {repository}: the repository belongs to another user "
            f"(git's safe.directory check). If you trust it, allow it with: "
            f"git config --global --add safe.directory {repository}",
            128,
        )


@dataclass(frozen=True)
class Result:
    code: int
    out: bytes
    err: bytes
    truncated: bool = False  # stdout went past the caller's limit and was cut there

    @property
    def text(self) -> str:
        return self.out.decode("utf-8", errors="replace").strip()


def environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a git AIOS starts: the daemon's, without what would aim git elsewhere,
    start a program or carry settings of its own, with ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _LOCATORS and k not in _PROGRAMS and not _CONFIG_ENTRY.fullmatch(k)
    }
    env.update(extra or {})
    # Never ask anyone anything (there is no terminal), never page or edit, and let read-only
    # commands (status) leave the index alone rather than refresh it under the user's feet.
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_PAGER": "cat",
            "GIT_EDITOR": ":",
            "GIT_SEQUENCE_EDITOR": ":",
            "GIT_OPTIONAL_LOCKS": "0",
        }
    )
    for key in [k for k in env if k in _PROGRAMS or _CONFIG_ENTRY.fullmatch(k)]:
        del env[key]  # from ``extra``: the ``-c`` settings are the only ones given
    return env


def options(settings: Sequence[tuple[str, str]]) -> list[str]:
    """``-c KEY=VALUE`` for each setting (understood by every git, unlike settings given in
    the environment, which need git 2.31)."""
    argv: list[str] = []
    for key, value in settings:
        if "=" in key:
            # git reads "-c a=b.c=d" as the key "a": a driver named so cannot be switched off.
            raise GitError(
                ["config"],
                f"the configuration names {key!r}, which AIOS cannot switch off (a name with "
                f"'='): git is not run here",
            )
        argv += ["-c", f"{key}={value}"]
    return argv


def neutralised(names: Sequence[str]) -> list[tuple[str, str]]:
    """The settings that switch off every driver named by ``names``, configuration keys such
    as ``filter.lfs.clean`` (the part between the first and the last dot is the driver's
    name, and may hold dots itself)."""
    settings: dict[tuple[str, str], None] = {}
    for key in names:
        section, _, rest = key.partition(".")
        name, _, _ = rest.rpartition(".")
        for variable, value in NEUTRAL.get(section.lower(), ()):
            settings[(f"{section.lower()}.{name}.{variable}", value)] = None
    return list(settings)


async def drivers(cwd: Path, timeout: float = QUICK) -> list[tuple[str, str]]:  # noqa: ASYNC109
    """Settings neutralising every filter, merge driver and configured hook that the
    configuration in force in ``cwd`` defines (its includes read, as git reads them)."""
    argv = ["git", "--no-pager", "config", "--null", "--name-only", "--get-regexp", _DRIVER_KEYS]
    listed = await _run([*argv[:2], *options(SAFE_SETTINGS), *argv[2:]], cwd, environment(),
                        timeout, None)  # fmt: skip
    if listed.code not in (0, 1):  # 1: none; anything else (a broken config): no git at all
        raise _refusal(argv, listed)
    names = listed.out.decode("utf-8", errors="surrogateescape").split("\0")
    return neutralised([name for name in names if name])


async def git(
    *args: str,
    cwd: Path,
    timeout: float = QUICK,  # noqa: ASYNC109
    check: bool = True,
    limit: int | None = None,
    env: Mapping[str, str] | None = None,
    settings: Mapping[str, str] | None = None,
) -> Result:
    """Run ``git ARGS`` in ``cwd``: ``ARGS[0]`` is the command, and ``settings`` (``-c``
    ones) cannot undo AIOS's. With ``check``, a non-zero exit raises GitError carrying git's
    message; ``limit`` keeps at most that many bytes of stdout (and stops git there)."""
    if not args or args[0].startswith("-"):
        raise ValueError(f"git's command comes first, settings go in settings=: {args!r}")
    command = ["git", *args]
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        neutral = [] if args[0] in _NO_CONTENT else await drivers(cwd, timeout)
        # AIOS's settings last: a later one wins, so nothing the caller chose undoes them.
        given = options([*(settings or {}).items(), *SAFE_SETTINGS, *neutral])
        argv = ["git", "--no-pager", *given, args[0], *COMMAND_OPTIONS.get(args[0], ()), *args[1:]]
        left = deadline - asyncio.get_running_loop().time()
        result = await _run(argv, cwd, environment(env), left, limit)
    except TimeoutError:
        raise GitTimeout(command, timeout) from None
    except GitError as exc:
        exc.command = command
        raise
    if check and result.code != 0 and not result.truncated:  # cut short by us: not git's fault
        raise _refusal(command, result)
    return result


async def _run(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    timeout: float,  # noqa: ASYNC109
    limit: int | None,
) -> Result:
    """Start git and read it; TimeoutError when it runs past ``timeout`` (it is killed)."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=sys.platform != "win32",
        )
    except FileNotFoundError as exc:
        # The same error says "no such executable" and "no such directory": the name tells.
        if exc.filename in (None, "git"):
            raise GitMissing(argv) from exc
        raise GitError(argv, f"{cwd} does not exist") from exc
    except OSError as exc:
        raise GitError(argv, f"cannot run git in {cwd}: {exc.strerror or exc}") from exc
    try:
        async with asyncio.timeout(max(timeout, 0.0)):
            return await _communicate(process, limit)
    finally:
        if process.returncode is None:  # timed out, cut at its limit, or we were cancelled
            _kill(process)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), KILL_WAIT)


async def _communicate(process: asyncio.subprocess.Process, limit: int | None) -> Result:
    assert process.stdout is not None and process.stderr is not None
    stdout, stderr = process.stdout, process.stderr

    async def read_out() -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        while chunk := await stdout.read(256 * 1024):
            chunks.append(chunk)
            size += len(chunk)
            if limit is not None and size > limit:
                _kill(process)  # what follows is not wanted: stop git producing it
                return b"".join(chunks)[:limit], True
        return b"".join(chunks), False

    async def read_err() -> bytes:
        kept = bytearray()
        while chunk := await stderr.read(64 * 1024):
            kept += chunk[: max(0, STDERR_KEPT - len(kept))]
        return bytes(kept)

    (out, truncated), err = await asyncio.gather(read_out(), read_err())
    code = await process.wait()
    return Result(code, out, err, truncated)


def _kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL to git and everything it started: its own process group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if sys.platform == "win32":
            process.kill()
        else:
            os.killpg(process.pid, signal.SIGKILL)


def refused(command: Sequence[str], result: Result) -> UnsafeRepository | None:
    """git's ownership check in ``result``'s words, if that is why git said no."""
    found = _DUBIOUS.search(result.err.decode("utf-8", errors="replace"))
    return UnsafeRepository(command, found.group(1)) if found else None


def _refusal(command: Sequence[str], result: Result) -> GitError:
    return refused(command, result) or GitError(command, _message(result), result.code)


def _message(result: Result) -> str:
    text = (result.err or result.out).decode("utf-8", errors="replace").strip()
    return text or f"git exited {result.code}"
