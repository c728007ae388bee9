"""The facade (class ``Daemon``): the daemon's parts wired together, living on the host's loop.

Three modules, three jobs: ``aios.host`` is the event loop and the HTTP server, this module the
wiring and the one surface the outside may call, ``aios.agents.supervisor`` the shell that runs
agents. The HTTP app and the tray (and the CLI, through the API) reach the runs only through
this facade: its methods are the whole of what they may ask, so the supervisor and the store can
change inside without them noticing. It knows nothing of threads, sockets or Hypercorn:
``aios.host`` owns those, and the tray calls these coroutines through ``Service.submit``.

Start order: config → store and watchdog side by side (the first spawn waits for the watchdog)
→ hooks listening → supervisor (which marks leftovers interrupted: hooks hear of those).
Stop order: runs stopped (events still flow) → hooks given a moment to deliver → streams ended
→ watchdog → store.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aios import __version__
from aios.agents.auth import AuthChecks
from aios.agents.errors import InvalidLaunch, WorktreeRefused
from aios.agents.supervisor import Supervisor, resolve_cwd
from aios.agents.terminals import MAX_SIZE, LiveTerminal, Message, Viewer
from aios.agents.watchdog import Watchdog
from aios.checkouts import checkout_note
from aios.config import Config, load_config
from aios.credentials import Secrets
from aios.desktop.opener import OpenError, open_folder
from aios.events import Event, EventBus
from aios.hooks import Dispatcher, Hook
from aios.hooks.delivery import Delivery
from aios.paths import Paths
from aios.runs import Permission, Run, RunState
from aios.store import Store
from aios.store_db import Usage
from aios.store_errors import StoreUnavailable, UnknownRun
from aios.store_logs import Stream
from aios.tasks import TaskSet
from aios.unseen import Unseen, UnseenCounts
from aios.worktrees import Worktrees

# The words of a terminal run's viewers (aios.server.terminal_socket), the facade's too.
__all__ = ["MAX_SIZE", "Daemon", "LiveTerminal", "Message", "Viewer"]

log = logging.getLogger("aios.facade")

WATCHDOG_CLOSE = 5.0  # seconds the watchdog has to exit once its pipe is closed
STORE_CLOSE = 10.0  # seconds for the last writes and the database to close
HOOKS_CLOSE = 2.0  # seconds queued hook deliveries (the runs' last events) have at shutdown
HOOKS_CANCEL = 2.0  # then for the rest to be cancelled


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
    bus: EventBus = field(default_factory=EventBus)
    config: ConfigSource = field(init=False)
    _store: Store = field(init=False)
    watchdog: Watchdog = field(default_factory=Watchdog)
    _supervisor: Supervisor = field(init=False)
    _tasks: TaskSet = field(default_factory=lambda: TaskSet(log))
    _auth: AuthChecks = field(init=False)
    hooks: Dispatcher = field(init=False)
    _stop_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _unseen: Unseen = field(default_factory=Unseen)
    _closed: bool = False
    # Set as the daemon begins to stop: what waits on a client (a read-only terminal) lets go.
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    # Shows a folder in the user's file manager (a seam: the default goes through xdg-open,
    # open or os.startfile; an in-process test may give its own).
    open_folder: Callable[[Path], Awaitable[None]] | None = None

    def __post_init__(self) -> None:
        self.config = ConfigSource(self.paths.config_file)
        settings = self.config().settings
        self._store = Store(
            self.paths.database,
            self.paths.run_logs_dir,
            log_cap_bytes=settings.log_cap_mib * 1024 * 1024,
            retention=settings.retention,
        )
        self._supervisor = Supervisor(
            self._store,
            self.bus,
            self.watchdog,
            self.config,
            worktrees=Worktrees(self.paths.worktrees_dir),
        )
        self._auth = AuthChecks(self._tasks)
        # Before anything can publish: the ledger must see every run from its first state.
        self.bus.add_listener(self._observe_unseen)
        self.hooks = Dispatcher(
            lambda: self.config().hooks,
            self.url,
            secrets=(self.keys.token, self.keys.session, self.keys.csrf),
        )
        if self.open_folder is None:
            self.open_folder = functools.partial(open_folder, tasks=self._tasks)

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
        self.hooks.attach(self.bus)
        try:
            await self._supervisor.start()
        finally:
            self.hooks.started()

    def stop_bound(self) -> float:
        """Seconds ``stop`` may take: stopping the runs, then the watchdog and the store."""
        hooks = HOOKS_CLOSE + HOOKS_CANCEL
        return self._supervisor.shutdown_bound() + hooks + WATCHDOG_CLOSE + STORE_CLOSE

    async def stop(self) -> None:
        """Stop runs, end streams, release resources. Idempotent; safe to call concurrently."""
        async with self._stop_lock:
            if self._closed:
                return
            self._closed = True
            self.closing.set()
            try:
                await self._supervisor.shutdown()
                await self._tasks.cancel_all()
            finally:
                # Even after a failed shutdown: a hook left running would keep the process
                # from exiting (its thread) or outlive it (its command).
                await self.hooks.close(HOOKS_CLOSE, HOOKS_CANCEL)
                self.bus.close()  # the event streams end with it
                await asyncio.to_thread(self.watchdog.close, WATCHDOG_CLOSE)
                await asyncio.wait_for(self._store.close(), STORE_CLOSE)

    # -- the facade: agents ----------------------------------------------------------------------

    async def agents(self, *, check: bool = True) -> list[dict[str, Any]]:
        """Every agent as JSON: its definition, whether it can start here (and why not), and
        whether its CLI is logged in (``auth``: logged_in, not_logged_in, unknown; null where
        its format cannot tell; ``auth_detail``: how the check knows, or what is missing).
        Without ``check``, no check starts: what is known is told (a request another site may
        have made starts no program)."""
        config = self.config()
        # to_json checks each executable on PATH: file system work, kept off the event loop.
        agents = await asyncio.to_thread(lambda: [a.to_json() for a in config.agents.values()])
        usable = {a["name"] for a in agents if a["available"]}
        known = (a for a in config.agents.values() if a.name in usable)
        states = await self._auth.states(known, start=check)
        for agent in agents:
            login = states.get(str(agent["name"]))
            agent["auth"] = None if login is None else str(login.state)
            agent["auth_detail"] = None if login is None else login.detail
        return agents

    # -- the facade: hooks -----------------------------------------------------------------------

    def hook_list(self) -> list[tuple[Hook, Delivery | None]]:
        """The hooks config.toml declares now, each with its last delivery (None: none yet)."""
        hooks = self.config().hooks
        return list(zip(hooks, self.hooks.deliveries(hooks), strict=True))

    def hook(self, number: int) -> Hook | None:
        return next((hook for hook in self.config().hooks if hook.number == number), None)

    async def test_hook(self, hook: Hook) -> Delivery:
        """Send ``hook`` a ``test`` event now (with its retries); how it went."""
        now = time.time()
        sample = Run(
            id="test",
            agent="aios",
            prompt="A test event from AIOS: your hook works.",
            cwd=str(Path.home()),
            state=RunState.SUCCEEDED,
            exit_code=0,
            created_at=now,
            started_at=now,
            ended_at=now,
        )
        return await self.hooks.test(hook, sample.to_json())

    # -- the facade: runs ------------------------------------------------------------------------

    async def launch(
        self,
        agent: str,
        prompt: str = "",
        cwd: str | None = None,
        permission: Permission | None = None,
        *,
        worktree: bool | None = None,
        terminal: bool | None = None,
    ) -> Run:
        """``worktree``: isolate the run in a git worktree; ``terminal``: give it a
        pseudo-terminal (None, for either: as the agent's config says)."""
        return await self._supervisor.launch(
            agent, prompt, cwd, permission, worktree=worktree, terminal=terminal
        )

    def terminal(self, run_id: str) -> LiveTerminal | None:
        """A live terminal run's terminal (docs/terminal.md); None once it ended."""
        return self._supervisor.terminal(run_id)

    async def final_screen(self, run_id: str) -> Message | None:
        """An ended terminal run's last screen, if it was kept."""
        return await self._supervisor.screens.get(run_id)

    async def continue_run(self, run_id: str, prompt: str) -> Run:
        """A new run resuming ``run_id``'s session with ``prompt`` (its ``parent``)."""
        return await self._supervisor.continue_run(run_id, prompt)

    async def message(self, run_id: str, prompt: str) -> Run:
        """A follow-up for a live two-way session."""
        return await self._supervisor.message(run_id, prompt)

    async def decide(
        self, run_id: str, approval_id: str, allow: bool, message: str = "", always: bool = False
    ) -> Run:
        """Allow or deny a pending request of a two-way session (``always``: allow it for the
        rest of the session, where the agent offers that)."""
        return await self._supervisor.decide(run_id, approval_id, allow, message, always)

    async def finish(self, run_id: str) -> Run:
        """End a two-way session: the agent finishes its turn and exits."""
        return await self._supervisor.finish(run_id)

    async def conversation(self, run: Run) -> list[Run]:
        """The chain of runs ``run`` belongs to, oldest first: its ancestors, itself, and the
        runs that continued it (the newest child at each step)."""
        return await self._store.chain(run.id, live=self._supervisor.core.run)

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

    async def delete_run(self, run_id: str, *, discard: bool = False) -> None:
        """Forget a finished run; its worktree goes, its work kept on its branch unless
        ``discard``."""
        await self._supervisor.delete(run_id, discard=discard)

    async def summary(self) -> dict[str, int]:
        """Runs per state, plus "total"."""
        return await self._supervisor.summary()

    def storage_problem(self) -> StoreUnavailable | None:
        """Why history cannot be written now (a full disk, a database that fails), or None.
        Its changes are published as ``storage`` events."""
        return self._store.problem

    # -- the facade: what the user has not seen -------------------------------------------------

    async def unseen(self) -> UnseenCounts:
        """Runs that failed or called for the user since they last looked (``aios.unseen``)."""
        return self._unseen.counts()

    async def seen(self, up_to: int | None = None) -> UnseenCounts:
        """The user looked at a dashboard page showing the ledger up to event ``up_to`` (None:
        everything so far); every change is published as an ``unseen`` event."""
        if self._unseen.seen(up_to):
            self._publish_unseen()
        return self._unseen.counts()

    def _observe_unseen(self, event: Event) -> None:
        if self._unseen.observe(event):
            self._publish_unseen()

    def _publish_unseen(self) -> None:
        self.bus.publish("unseen", self._unseen.counts().to_json())

    async def usage(self) -> Usage:
        """Tokens and cost over the history, as the agents reported them."""
        return await self._store.usage()

    async def read_log(
        self, run_id: str, offset: int = 0, limit: int | None = None, stream: Stream = "log"
    ) -> bytes:
        """A run's readable log, or the raw lines its agent wrote on stdout (``"events"``) or
        stderr (``"stderr"``)."""
        return await self._store.read_log(run_id, offset, limit, stream)

    async def log_size(self, run_id: str, stream: Stream = "log") -> int:
        return await self._store.log_size(run_id, stream)

    # -- the facade: worktrees and changes -------------------------------------------------------

    async def run_diff(self, run_id: str) -> bytes:
        """The unified diff of what the run changed, as recorded when it ended (capped).

        Raises WorktreeRefused (still live) or NoChanges (nothing recorded)."""
        run = await self._ended_or_live(run_id)
        return await self._supervisor.isolation.diff(run, live=run.state.is_live)

    async def merge_worktree(self, run_id: str) -> Run:
        """Merge the run's worktree into the branch it came from; it goes, with its branch."""
        await self._supervisor.isolation.merge(await self._ended_or_live(run_id))
        return await self._ended_or_live(run_id)

    async def discard_worktree(self, run_id: str) -> Run:
        """Throw the run's worktree away, branch and all."""
        await self._supervisor.isolation.discard(await self._ended_or_live(run_id))
        return await self._ended_or_live(run_id)

    async def open_worktree(self, run_id: str) -> Path:
        """Show the run's worktree in the file manager; returns its path."""
        path = await self._supervisor.isolation.folder(await self._ended_or_live(run_id))
        assert self.open_folder is not None
        try:
            await self.open_folder(path)
        except OpenError as exc:
            raise WorktreeRefused(str(exc)) from exc
        return path

    async def checkout_note(self, cwd: str | None, agent: str | None) -> str | None:
        """What a launch form should say about isolating a run in ``cwd`` (or the agent's
        directory, else home): why a worktree cannot be made there, or that uncommitted changes
        will not be in it. None when there is nothing to say."""
        definition = self.config().agent(agent or "")
        try:
            directory = resolve_cwd(cwd or (definition.cwd if definition else None))
        except InvalidLaunch as exc:
            return str(exc)
        return await checkout_note(directory)

    async def _ended_or_live(self, run_id: str) -> Run:
        run = await self._supervisor.get(run_id)
        if run is None:
            raise UnknownRun(run_id)
        return run
