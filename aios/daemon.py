"""The daemon's parts, wired together and living on the service's event loop.

The HTTP app, the tray facade and the CLI (through the API) all reach the daemon through this one
object. It knows nothing of threads, sockets or Hypercorn: ``aios.service`` owns those.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aios import __version__
from aios.credentials import Secrets
from aios.paths import Paths

log = logging.getLogger("aios.daemon")


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
    # Set when shutdown begins: long-lived responses (SSE) end on it instead of holding
    # Hypercorn's graceful shutdown for its whole timeout.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def uptime(self) -> float:
        return time.monotonic() - self._started_mono

    async def start(self) -> None:
        log.debug("daemon parts started")

    async def stop(self) -> None:
        self.stopping.set()
