"""The daemon's parts, wired together and living on the service's event loop.

The HTTP app and the tray (and the CLI, through the API) reach the runs only through this one
facade: its methods are the whole of what they may ask, so the supervisor and the store can change
inside without them noticing. It knows nothing of threads, sockets or Hypercorn:
``aios.service`` owns those, and the tray calls these coroutines through ``Service.submit``.

Start order: config → store and watchdog side by side (the first spawn waits for the watchdog)
→ supervisor (which marks leftovers interrupted).
Stop order: runs stopped (events still flow) → streams ended → watchdog → store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from aios import __version__
from aios.agents.supervisor import Supervisor
from aios.agents.watchdog import Watchdog
from aios.config import Config, load_config
from aios.credentials import Secrets
from aios.events import EventBus
from aios.paths import Paths
from aios.runs import Run, RunState
from aios.store import Store

log = logging.getLogger("aios.daemon")

WATCHDOG_CLOSE = 5.0  # seconds the watchdog has to exit once its pipe is closed
STORE_CLOSE = 10.0  # seconds for the last writes and the database to close


class ConfigSource:
    """``config.toml``, re-read when it changes, so edits apply without a restart.

    A broken file never stops anything: ``load_config`` reports problems and falls back to
    defaults, and we log each distinct set of problems once.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._config: Config | None = None

    def __call__(self) -> Config:
        try:
            info = self.path.stat()
            stamp: tuple[int, int] | None = (info.st_mtime_ns, info.st_size)
        except OSError:
            stamp = None
        if self._config is None or stamp != self._stamp:
            self._config = load_config(self.path)
            self._stamp = stamp
            for problem in self._config.problems:
                log.warning("config: %s", problem)
        return self._config


@dataclass
class Daemon:
    paths: Paths
    port: int
    keys: Secrets
    # Asks the service to shut down gracefully; safe to call from the loop.
    request_shutdown: Callable[[], None]
    version: str = __version__
    pid: int = field(default_factory=os.getpid)
    started_at: float = field(default_factory=time.time)
    _started_mono: float = field(default_factory=time.monotonic)
    # Set once shutdown has begun and the event streams have ended.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    bus: EventBus = field(default_factory=EventBus)
    config: ConfigSource = field(init=False)
    _store: Store = field(init=False)
    watchdog: Watchdog = field(default_factory=Watchdog)
    _supervisor: Supervisor = field(init=False)
    _stop_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _closed: bool = False

    def __post_init__(self) -> None:
        self.config = ConfigSource(self.paths.config_file)
        settings = self.config().settings
        self._store = Store(
            self.paths.database,
            self.paths.run_logs_dir,
            log_cap_bytes=settings.log_cap_mib * 1024 * 1024,
            retention=settings.retention,
        )
        self._supervisor = Supervisor(self._store, self.bus, self.watchdog, self.config)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def uptime(self) -> float:
        return time.monotonic() - self._started_mono

    async def start(self) -> None:
        """Start the supervisor (which starts the watchdog). Its slow parts are on threads by
        the time the first ``await`` here returns control: the service builds the app
        meanwhile."""
        await self._supervisor.start()

    def stop_bound(self) -> float:
        """Seconds ``stop`` may take: stopping the runs, then the watchdog and the store."""
        return self._supervisor.shutdown_bound() + WATCHDOG_CLOSE + STORE_CLOSE

    async def stop(self) -> None:
        """Stop runs, end streams, release resources. Idempotent; safe to call concurrently."""
        async with self._stop_lock:
            if self._closed:
                return
            self._closed = True
            try:
                await self._supervisor.shutdown()
            finally:
                self.bus.close()
                self.stopping.set()
                await asyncio.to_thread(self.watchdog.close, WATCHDOG_CLOSE)
                await asyncio.wait_for(self._store.close(), STORE_CLOSE)

    # -- the facade: runs ------------------------------------------------------------------------

    async def launch(self, agent: str, prompt: str = "", cwd: str | None = None) -> Run:
        return await self._supervisor.launch(agent, prompt, cwd)

    async def find_run(self, prefix: str) -> Run:
        """The run whose id is, or uniquely starts with, ``prefix`` (live figures included).

        Raises ``UnknownRun`` or ``AmbiguousRun``.
        """
        stored = await self._store.resolve(prefix)
        return await self._supervisor.get(stored.id) or stored

    async def get_run(self, run_id: str) -> Run | None:
        return await self._supervisor.get(run_id)

    async def runs(
        self,
        *,
        limit: int = 50,
        before: str | None = None,
        states: Collection[RunState] | None = None,
    ) -> list[Run]:
        """Newest first; ``before`` (a run id) pages back."""
        return await self._supervisor.list(limit=limit, before=before, states=states)

    async def stop_run(self, run_id: str) -> Run:
        return await self._supervisor.stop(run_id)

    async def stop_all(self) -> None:
        await self._supervisor.stop_all()

    async def delete_run(self, run_id: str) -> None:
        await self._supervisor.delete(run_id)

    async def summary(self) -> dict[str, int]:
        """Runs per state, plus "total"."""
        return await self._supervisor.summary()

    async def read_log(self, run_id: str, offset: int = 0, limit: int | None = None) -> bytes:
        return await self._store.read_log(run_id, offset, limit)

    async def log_size(self, run_id: str) -> int:
        return await self._store.log_size(run_id)
