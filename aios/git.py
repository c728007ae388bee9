"""Running git: argv lists (never a shell), off the event loop, every call with a timeout.

git is an asyncio subprocess, so the daemon's loop never waits on it. Each call has a deadline;
a git that passes it (a hook that hangs, a filter waiting for a password, a huge checkout) is
killed together with whatever it started (it runs in a session of its own, and the whole group
goes), and the caller gets :class:`GitTimeout`. Output is read while git writes it, and what a
caller does not want (past ``limit``) is not kept: a diff of a whole tree cannot fill memory.

Exceptions::

    GitError          git said no; the message is git's own words
    ├── GitMissing    no git executable on PATH
    └── GitTimeout    it ran past its timeout and was killed
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

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
    env = {k: v for k, v in os.environ.items() if k not in _LOCATORS}
    # Never ask anyone anything (there is no terminal), never page, and let read-only commands
    # (status) leave the index alone rather than refresh it under the user's feet.
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "GIT_OPTIONAL_LOCKS": "0"})
    env.update(extra or {})
    return env


async def git(
    *args: str,
    cwd: Path,
    timeout: float = QUICK,  # noqa: ASYNC109
    check: bool = True,
    limit: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Result:
    """Run ``git ARGS`` in ``cwd``. With ``check``, a non-zero exit raises GitError carrying
    git's message; ``limit`` keeps at most that many bytes of stdout (and stops git there)."""
    command = ["git", *args]
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment(env),
            start_new_session=sys.platform != "win32",
        )
    except FileNotFoundError as exc:
        # The same error says "no such executable" and "no such directory": the name tells.
        if exc.filename in (None, "git"):
            raise GitMissing(command) from exc
        raise GitError(command, f"{cwd} does not exist") from exc
    except OSError as exc:
        raise GitError(command, f"cannot run git in {cwd}: {exc.strerror or exc}") from exc
    try:
        async with asyncio.timeout(timeout):
            result = await _communicate(process, limit)
    except TimeoutError:
        raise GitTimeout(command, timeout) from None
    finally:
        if process.returncode is None:  # timed out, cut at its limit, or we were cancelled
            _kill(process)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), KILL_WAIT)
    if check and result.code != 0 and not result.truncated:  # cut short by us: not git's fault
        raise GitError(command, _message(result), result.code)
    return result


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
    """SIGKILL to git and everything it started (hooks, filters): its own process group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if sys.platform == "win32":
            process.kill()
        else:
            os.killpg(process.pid, signal.SIGKILL)


def _message(result: Result) -> str:
    text = (result.err or result.out).decode("utf-8", errors="replace").strip()
    return text or f"git exited {result.code}"
