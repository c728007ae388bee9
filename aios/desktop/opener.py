"""Opening a folder in the user's file manager, the way the desktop opens things.

``xdg-open`` on Linux and the BSDs, ``open`` on macOS, ``os.startfile`` on Windows: the same
doors ``webbrowser`` goes through for the dashboard (``aios.browser``). The program is looked up
on ``PATH``, which is also how tests watch it: a stand-in ``xdg-open`` first on the daemon's
``PATH`` records what it was asked to open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

from aios.tasks import TaskSet

ANSWER_WAIT = 5.0  # an opener that has not exited by then is the file manager itself: leave it


class OpenError(Exception):
    pass


def has_desktop() -> bool:
    """False where a file manager cannot appear (a headless Linux box, an ssh session)."""
    if sys.platform.startswith("linux") or "bsd" in sys.platform:
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


async def open_folder(path: Path, tasks: TaskSet) -> None:
    """Show ``path`` in the file manager; OpenError says why it could not be."""
    if sys.platform == "win32":
        try:
            await asyncio.to_thread(os.startfile, path)  # type: ignore[attr-defined,unused-ignore]
        except OSError as exc:
            raise OpenError(f"Windows could not open {path}: {exc}") from exc
        return
    if not has_desktop():
        raise OpenError(
            f"there is no desktop here to open a file manager on (no DISPLAY or "
            f"WAYLAND_DISPLAY); the folder is {path}"
        )
    program = "open" if sys.platform == "darwin" else "xdg-open"
    try:
        process = await asyncio.create_subprocess_exec(
            program,
            str(path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # not in the daemon's group: it may outlive a restart
        )
    except OSError as exc:
        raise OpenError(f"cannot run {program} to open {path}: {exc.strerror or exc}") from exc
    waiting = tasks.spawn(process.wait(), f"{program} {path}")
    done, _ = await asyncio.wait({waiting}, timeout=ANSWER_WAIT)
    if not done:
        return  # still going (some openers stay with what they opened): reaped when it ends
    code = waiting.result()
    if code != 0:
        assert process.stderr is not None
        err = b""
        # What it left behind may hold the pipe open: take what is there, do not wait for EOF.
        with contextlib.suppress(TimeoutError, OSError):
            err = await asyncio.wait_for(process.stderr.read(4096), 1.0)
        words = err.decode("utf-8", errors="replace").strip() or f"it exited {code}"
        raise OpenError(f"{program} could not open {path}: {words}")
