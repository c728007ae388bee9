"""The final screens of ended terminal runs: what a viewer of an ended run sees.

When a terminal run ends, its viewers are told and let go (``LiveTerminal.end``), and its last
screen is kept: in memory for the ``KEPT`` most recent (a viewer may connect before the file is
written), and in a 0600 file beside its log (``<id>.screen.json``: ``{"data", "cols", "rows"}``),
so an ended run's page shows it after a daemon restart too. The file goes with the run's other
files when the run is deleted or pruned.
"""

from __future__ import annotations

import json
import logging

from aios.agents.terminals import LiveTerminal, Message
from aios.runs import Run
from aios.store import Store
from aios.store_errors import StoreError
from aios.tasks import TaskSet

log = logging.getLogger("aios.supervisor")

KEPT = 32  # final screens kept in memory (the files have all of them)
READ_LIMIT = 4 * 1024 * 1024  # bytes of a screen file read at most (500 x 500 in colour)


class FinalScreens:
    def __init__(self, store: Store, tasks: TaskSet) -> None:
        self.store = store
        self.tasks = tasks
        self._recent: dict[str, Message] = {}

    def ended(self, run: Run, terminal: LiveTerminal) -> None:
        """``run`` ended: tell its viewers, and keep its screen."""
        screen = terminal.end(str(run.state), run.exit_code)
        self._recent[run.id] = screen
        while len(self._recent) > KEPT:
            del self._recent[next(iter(self._recent))]
        self.tasks.spawn(self._write(run.id, json.dumps(screen).encode()), f"screen {run.id}")

    async def get(self, run_id: str) -> Message | None:
        """An ended terminal run's last screen, if it was kept."""
        if (kept := self._recent.get(run_id)) is not None:
            return kept
        try:
            raw = await self.store.read_log(run_id, 0, READ_LIMIT, "screen")
            screen = json.loads(raw) if raw else None
        except (StoreError, ValueError):
            return None
        if not isinstance(screen, dict) or not isinstance(screen.get("data"), str):
            return None
        return screen

    async def _write(self, run_id: str, data: bytes) -> None:
        try:
            await self.store.write_file(run_id, data, "screen")
        except StoreError as exc:
            log.warning("run %s: its final screen cannot be kept: %s", run_id, exc)
