"""The host: one asyncio loop running the facade (``aios.facade``) and Hypercorn serving the app
(``aios.server``) on a loopback socket.

``Service`` owns the whole lifecycle in one place::

    prepare()   (caller's thread)  lock → secrets → bind 127.0.0.1:<port>
    _main()     (the loop)         daemon parts → app → [ready: runtime file, AIOS_PORT] → Hypercorn
                                   … serve until asked to stop …
                finally, in order:  stop runs → close server → runtime file → lock

It runs either on the calling thread (``run()``: ``aios serve``, with SIGINT/SIGTERM handled) or
on a thread of its own (``start()``/``stop()``: what the tray uses, since the tray must own the
main thread). Both ``start`` and ``stop`` are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from hypercorn.asyncio import serve
from hypercorn.config import Config

from aios import __version__, logs, private, runtime
from aios.credentials import Secrets
from aios.facade import Daemon
from aios.paths import Paths
from aios.runtime import InstanceLock, RuntimeInfo
from aios.server.app import create_app
from aios.server.common import GRACEFUL_TIMEOUT
from aios.store_errors import StoreError
from aios.store_schema import check_database
from aios.workers import Workers

log = logging.getLogger("aios.host")
T = TypeVar("T")

HOST = "127.0.0.1"
# How long a second instance waits for a starting first one to write its runtime file.
DISCOVERY_WAIT = 5.0
# How often the daemon checks that its runtime file is still there (it restores a deleted one).
RUNTIME_CHECK = 1.0
BACKLOG = 100  # Hypercorn's own default
STOP_MARGIN = 5.0  # beyond the sum of the inner waits, for the loop and threads to wind down


class ServiceError(Exception):
    """The service could not start (port in use, lock held by an unresponsive process...)."""


class AlreadyRunning(ServiceError):
    def __init__(self, info: RuntimeInfo) -> None:
        self.info = info
        super().__init__(f"AIOS is already running at {info.url} (pid {info.pid})")


class State(Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Service:
    def __init__(
        self,
        paths: Paths,
        *,
        port: int = 0,
        announce: bool = False,
        on_ready: Callable[[RuntimeInfo], None] | None = None,
    ) -> None:
        self.paths = paths
        self.requested_port = port
        self.announce = announce  # print AIOS_PORT:<port> on stdout when ready
        self.on_ready = on_ready  # called on a worker thread once the port accepts
        self.state = State.NEW
        self.daemon: Daemon | None = None
        self.info: RuntimeInfo | None = None
        self.error: BaseException | None = None
        self._lock = InstanceLock(paths.lock_file)
        self._keys = Secrets.generate()  # replaced in _prepare once we hold the lock
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._guard = threading.Lock()
        self._keeper: asyncio.Task[None] | None = None

    # -- public lifecycle ----------------------------------------------------------------------

    def run(self) -> None:
        """Serve on this thread until SIGINT/SIGTERM or ``POST /api/shutdown``."""
        self._prepare()
        asyncio.run(self._main(install_signals=True))
        if self.error is not None:
            raise ServiceError(str(self.error)) from self.error

    def start(self, timeout: float = 30.0) -> None:
        """Serve on a thread of its own; returns once the port accepts connections."""
        with self._guard:
            if self.state is not State.NEW:
                return
            self._prepare()
            self._thread = threading.Thread(target=self._thread_main, name="aios-service")
            self._thread.start()
        if not self._ready.wait(timeout) and self.error is None:
            self.stop()
            raise ServiceError(f"the service did not become ready within {timeout:g} s")
        if self.error is not None:
            raise ServiceError(str(self.error)) from self.error

    def stop(self, timeout: float | None = None) -> None:
        """Stop gracefully and wait for the service thread to end; safe to call twice.

        The wait defaults to ``stop_bound()``: what the shutdown inside may take, plus a margin.
        """
        bound = self.stop_bound() if timeout is None else timeout
        self.request_stop()
        if not self.wait_stopped(bound):
            log.error("the service thread did not stop within %.1f s", bound)

    def wait_stopped(self, timeout: float | None = None) -> bool:
        """Wait until the service thread has ended (for ever without a timeout); True if it has.

        The tray uses it to notice a service that died on its own.
        """
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def stop_bound(self) -> float:
        """Seconds a graceful stop may take: the daemon's own bound, then Hypercorn's grace."""
        daemon = self.daemon
        inner = daemon.stop_bound() if daemon is not None else 0.0
        return inner + GRACEFUL_TIMEOUT + STOP_MARGIN

    def request_stop(self) -> None:
        """Thread-safe, non-blocking: ask the loop to begin a graceful shutdown."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(stop.set)
        elif self.state is State.NEW:
            self.state = State.STOPPED
            self._release()

    @property
    def alive(self) -> bool:
        return self.state in (State.STARTING, State.RUNNING)

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run a coroutine on the service loop from another thread (the tray's facade)."""
        if self._loop is None or not self.alive:
            coro.close()
            raise ServiceError("the service is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    # -- internals -----------------------------------------------------------------------------

    def _prepare(self) -> None:
        self.paths.ensure()
        # Retried rather than given up at once: the holder may be a daemon still starting (its
        # runtime file comes soon), or a CLI probing the lock for an instant (runtime.lock_held).
        deadline = time.monotonic() + DISCOVERY_WAIT
        while not self._lock.try_acquire():
            from aios.client import find  # noqa: PLC0415 - only when another holds the lock

            info = find(self.paths)
            if info is not None:
                raise AlreadyRunning(info)
            if time.monotonic() >= deadline:
                raise ServiceError(
                    f"another AIOS process holds {self.paths.lock_file} but does not answer"
                )
            time.sleep(0.05)
        try:  # a damaged history is said in one line, with what to do, before anything starts
            check_database(self.paths.database)
        except StoreError as exc:
            self._release()
            raise ServiceError(str(exc)) from exc
        self._keys = Secrets.for_start(self.paths.session_file)
        logs.redact([self._keys.token, self._keys.session, self._keys.csrf])
        try:
            self._sock = _bind_preferring(self.requested_port, self.paths.port_file)
        except OSError as exc:
            self._release()
            raise ServiceError(
                f"cannot listen on {HOST}:{self.requested_port}: {exc.strerror or exc}"
            ) from exc
        self.state = State.STARTING

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main(install_signals=False))
        finally:
            self._ready.set()  # wake a start() still waiting if we died before ready

    async def _main(self, *, install_signals: bool) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        # asyncio.to_thread's threads end when idle (aios.workers): a burst leaves none behind.
        loop.set_default_executor(Workers(min(32, (os.cpu_count() or 1) + 4)))
        self._loop = loop
        self._stop = asyncio.Event()
        port = self._sock.getsockname()[1]
        daemon = Daemon(self.paths, port, self._keys, request_shutdown=self._stop.set)
        self.daemon = daemon
        if install_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, self._stop.set)
        try:
            # The daemon starts (threads and a child process, mostly waiting) while this thread
            # builds the app: start-up is measured beside a bare Quart app (make bench).
            starting = asyncio.ensure_future(daemon.start())
            await asyncio.sleep(0)  # its first step hands the slow parts to threads
            try:
                app = create_app(daemon)
            finally:
                await starting

            # The socket has listened since prepare(): a client that connects now waits in its
            # backlog until Hypercorn accepts, so the app's own start is readiness enough.
            @app.before_serving
            async def ready() -> None:
                self._on_ready(daemon)

            config = _hypercorn_config(self._sock)
            self._sock = None  # Hypercorn owns the descriptor now
            await serve(app, config, shutdown_trigger=self._shutdown_trigger)
        except StoreError as exc:  # the history could not be opened: its message says why
            log.error("%s", exc)
            self.error = exc
        except Exception as exc:
            log.exception("the service failed: %s", exc)
            self.error = exc
        finally:
            self.state = State.STOPPING
            if self._keeper is not None:  # before the file is removed, or it would come back
                self._keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._keeper
            try:
                await asyncio.wait_for(daemon.stop(), timeout=daemon.stop_bound() + STOP_MARGIN)
            except Exception:
                log.exception("stopping the daemon failed")
            if install_signals:
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(signum)
            self._release()
            gc.unfreeze()  # what this service froze may now be collected (the tray restarts it)
            self.state = State.STOPPED
            log.info("AIOS stopped")

    async def _shutdown_trigger(self) -> None:
        assert self._stop is not None and self.daemon is not None
        await self._stop.wait()
        log.info("shutting down")
        # Runs stop and streams end before Hypercorn starts its graceful wait.
        await self.daemon.stop()

    def _on_ready(self, daemon: Daemon) -> None:
        # What start-up made (modules, the app, its routes and templates) lives as long as the
        # process: out of the collector's sight, a full collection no longer walks it all (some
        # 15 ms here), a pause every event stream would wait for.
        gc.freeze()
        info = RuntimeInfo(
            pid=daemon.pid,
            port=daemon.port,
            url=daemon.url,
            token=daemon.keys.token,
            version=__version__,
            started_at=datetime.fromtimestamp(daemon.started_at, UTC).isoformat(),
        )
        # A few hundred bytes, once, before anything else runs: not worth a thread hop.
        runtime.write(self.paths.runtime_file, info)
        self.info = info
        self.state = State.RUNNING
        if self.announce:
            sys.stdout.write(f"AIOS_PORT:{daemon.port}\n")
            sys.stdout.flush()
        log.info("AIOS %s listening on %s", __version__, daemon.url)
        self._keeper = asyncio.get_running_loop().create_task(
            self._keep_runtime_file(info), name="runtime file keeper"
        )
        self._ready.set()
        if self.on_ready is not None:
            callback = self.on_ready
            threading.Thread(target=callback, args=(info,), name="aios-ready", daemon=True).start()

    async def _keep_runtime_file(self, info: RuntimeInfo) -> None:
        """Restore the runtime file and the lock if something deletes them (a cleaner, a user).

        Without the file every client would think AIOS is not running while its agents still
        run; without the lock file a second daemon could start beside this one.
        """
        path = self.paths.runtime_file
        while True:
            await asyncio.sleep(RUNTIME_CHECK)
            try:
                if not await asyncio.to_thread(self._lock.renew):
                    log.error("another process took the lock %s", self.paths.lock_file)
                if await asyncio.to_thread(runtime.restore, path, info):
                    log.warning("the runtime file %s was gone; written again", path)
            except Exception as exc:  # keep watching: the next check may succeed
                log.error("cannot restore the runtime file %s: %s", path, exc)

    def _release(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.info is not None:
            runtime.remove(self.paths.runtime_file, self.info.pid)
            with contextlib.suppress(FileNotFoundError):
                self.paths.browser_file(self.info.port).unlink()
        self._lock.release()


def _bind_preferring(port: int, remembered: Path) -> socket.socket:
    """Bind ``port``; for 0, first try the port the previous daemon had.

    A dashboard left open across a daemon restart can then reconnect and re-sync by itself
    instead of pointing at a dead port. If that port is taken, any free one will do.
    """
    if port == 0:
        try:
            previous = int(remembered.read_text().strip())
        except (OSError, ValueError):
            previous = 0
        if 1024 <= previous <= 65535:
            with contextlib.suppress(OSError):
                sock = _bind(previous)
                return _remember(sock, remembered)
    return _remember(_bind(port), remembered)


def _remember(sock: socket.socket, remembered: Path) -> socket.socket:
    with contextlib.suppress(OSError):
        private.write_text(remembered, f"{sock.getsockname()[1]}\n")
    return sock


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if sys.platform != "win32":
            # A restart on a fixed --port must not fail on the old socket's TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        # Listening from here on, before the app is built: connections made once the app says
        # it is ready wait in the backlog for Hypercorn to accept them (readiness, in _main).
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def _hypercorn_config(sock: socket.socket) -> Config:
    config = Config()
    # detach(): Hypercorn wraps the fd in a socket of its own and closes it on shutdown.
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None  # an access log would record /login?token=...
    config.errorlog = logging.getLogger("aios.http")
    config.graceful_timeout = GRACEFUL_TIMEOUT
    config.include_server_header = False
    # A terminal's WebSocket takes messages of 64 KiB (aios.server.terminal_socket): a frame
    # much larger is refused by the server before it is held whole in memory.
    config.websocket_max_message_size = 256 * 1024
    return config
