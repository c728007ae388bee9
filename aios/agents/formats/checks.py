"""What the login checks share: running a CLI's own status command with a hard time limit, and
finding the home directory the agent would see.

The checks run on a thread, off the event loop, and must come back within seconds whatever the
CLI does: a status command that hangs (waiting for a keychain, a network) is killed with its
whole process group, and the answer is then "unknown".
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["home_of", "run_check"]


def run_check(
    argv: Sequence[str], env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str] | None:
    """Run a status command with no input; None when it cannot start or takes too long."""
    posix = sys.platform != "win32"
    try:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=posix,  # its own group, so a timeout ends its children too
        )
    except (OSError, ValueError):
        return None
    try:
        out, err = proc.communicate(timeout=timeout)
    except Exception:  # the time limit, or anything else: the answer is "unknown"
        _kill(proc, posix)
        return None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _kill(proc: subprocess.Popen[str], posix: bool) -> None:
    with contextlib.suppress(OSError):
        if posix:
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows has no process groups to signal
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired, OSError, ValueError):
        proc.communicate(timeout=1)


def home_of(env: Mapping[str, str]) -> Path | None:
    """The home directory of the agent's environment (HOME, or USERPROFILE on Windows)."""
    home = env.get("HOME") or env.get("USERPROFILE")
    return Path(home) if home else None
