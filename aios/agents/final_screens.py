"""The final screens of ended terminal runs: what a viewer of an ended run sees.

When a terminal run ends, its screen is drawn to the end, its viewers are told and let go
(``LiveTerminal.finish``), and its last screen is kept: in memory for the ``KEPT`` most recent
(a viewer may connect before the file is written; one that asks while the screen is still
being drawn waits for it), and in a 0600 file beside its log (``<id>.screen.json``:
``{"data", "cols", "rows"}``), so an ended run's page shows it after a daemon restart too. A
run the daemon died under has none: its screen is drawn from the end of its log. The file goes
with the run's other files when the run is deleted or pruned.
"""

from __future__ import annotations

import asyncio
import json
import logging

from aios.agents.screen_text import flood_cut
from aios.agents.terminals import DEFAULT_SIZE, LiveTerminal, Message, catch_up
from aios.runs import Run
from aios.store import Store
from aios.store_errors import StoreError
from aios.tasks import TaskSet

log = logging.getLogger("aios.supervisor")

KEPT = 32  # final screens kept in memory (the files have all of them)
READ_LIMIT = 4 * 1024 * 1024  # bytes of a screen file read at most (500 x 500 in colour)
SETTLE_SCREENS = 2.0  # seconds the last screens have at shutdown
LOG_TAIL = 16 * 1024  # bytes of the log a screen is drawn from when none was kept


class FinalScreens:
    def __init__(self, store: Store, tasks: TaskSet) -> None:
        self.store = store
        self.tasks = tasks
        self._recent: dict[str, Message] = {}
        self._finishing: dict[str, asyncio.Task[None]] = {}  # screens still being drawn

    def ended(self, run: Run, terminal: LiveTerminal) -> None:
        """``run`` ended: once its screen is drawn to the end, tell its viewers and keep it."""
        task = self.tasks.spawn(self._keep(run, terminal), f"screen {run.id}")
        self._finishing[run.id] = task
        task.add_done_callback(lambda _: self._finishing.pop(run.id, None))

    async def _keep(self, run: Run, terminal: LiveTerminal) -> None:
        screen = await terminal.finish(str(run.state), run.exit_code)
        self._remember(run.id, screen)
        await self._write(run.id, json.dumps(screen).encode())

    async def settle(self) -> None:
        """At shutdown: give the screens of the runs that just ended ``SETTLE_SCREENS`` to be
        drawn and kept (a screen not kept is drawn from the log's end when asked for)."""
        if self._finishing:
            await asyncio.wait(list(self._finishing.values()), timeout=SETTLE_SCREENS)

    async def get(self, run_id: str) -> Message | None:
        """An ended terminal run's last screen, if it was kept."""
        if (finishing := self._finishing.get(run_id)) is not None:
            await asyncio.wait({finishing})
        if (kept := self._recent.get(run_id)) is not None:
            return kept
        try:
            raw = await self.store.read_log(run_id, 0, READ_LIMIT, "screen")
            screen = json.loads(raw) if raw else None
        except (StoreError, ValueError):
            screen = None
        if not isinstance(screen, dict) or not isinstance(screen.get("data"), str):
            screen = await self._from_log(run_id)
        if screen is not None:
            self._remember(run_id, screen)
        return screen

    async def _from_log(self, run_id: str) -> Message | None:
        """A screen drawn from the end of the run's log, for a run whose final screen was never
        kept (the daemon died under it): its last full-screen redraw, or its last lines."""
        try:
            size = await self.store.log_size(run_id)
            tail = await self.store.read_log(run_id, max(0, size - LOG_TAIL), None, "log")
        except StoreError:
            return None
        if not tail:
            return None
        return await asyncio.to_thread(_drawn, tail.decode("utf-8", errors="replace"))

    def _remember(self, run_id: str, screen: Message) -> None:
        self._recent[run_id] = screen
        while len(self._recent) > KEPT:
            del self._recent[next(iter(self._recent))]

    async def _write(self, run_id: str, data: bytes) -> None:
        try:
            await self.store.write_file(run_id, data, "screen")
        except StoreError as exc:
            log.warning("run %s: its final screen cannot be kept: %s", run_id, exc)


def _drawn(text: str) -> Message:
    """The screen ``text`` leaves on a terminal of the default size (on a thread: pyte)."""
    from aios.agents.screen import Screen  # noqa: PLC0415 - pyte only when it is needed

    cols, rows = DEFAULT_SIZE
    screen = Screen(cols, rows)
    screen.feed(catch_up(flood_cut(text, rows)))
    return {"data": screen.render(), "cols": cols, "rows": rows}
