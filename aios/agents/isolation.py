"""Isolation and review: a run's git worktree, and what the run changed, over the run's life.

``aios.worktrees`` knows git; this module knows when to ask it. The supervisor calls in at four
points, none of them inside the lifecycle core (which stays free of I/O):

- ``prepare``, at launch: make the run's worktree (or take the one a continued run shares);
- ``starting``, before each start: the first one notes what the directory holds (the baseline);
- ``record``, when the agent has exited: what changed since the baseline, and its diff;
- ``ended``, when the run has ended: let go of the worktree, and remove it with its branch if
  nothing changed and no other live run works in it.

The daemon calls in for what the user asks: merge, discard, the folder to open, and what
happens to a worktree when its run is deleted or pruned from history. At start-up, runs the
daemon died under get their changes recorded, and worktrees of runs AIOS no longer knows are
removed (their work kept on their branch).

A worktree may be shared (a continued run works in its parent's), so it is never removed, merged
or discarded while a run using it is live; everything done to one worktree holds its lock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from aios.agents.errors import InvalidLaunch, NoChanges, WorktreeRefused
from aios.checkouts import find_checkout
from aios.git import GitError, GitMissing
from aios.runs import Changes, Run, Worktree, WorktreeState
from aios.store import Store
from aios.store_errors import StoreError
from aios.tasks import TaskSet
from aios.worktrees import WorktreeError, Worktrees, agent_directory

log = logging.getLogger("aios.isolation")
OUTSIDE_FOR = 2.0  # seconds a directory found outside a checkout is taken to stay outside
OUTSIDE_KEPT = 256  # directories remembered before the stale ones are forgotten

BASELINE_TIMEOUT = 30.0  # noting what a plain checkout holds, before its agent starts
RECORD_TIMEOUT = 60.0  # recording what a run changed, once its agent has exited
TIDY_WAIT = 10.0  # at shutdown, for unchanged worktrees of the runs just stopped to go

_OPEN = WorktreeState.OPEN


@dataclass(frozen=True)
class Baseline:
    """What a run's changes are measured against."""

    top: Path  # the work tree to look at
    start: str  # a commit (a worktree's base) or a snapshot's tree (a plain checkout)
    since: str | None  # commits are counted from this one
    untracked: bool = True  # whether untracked files are part of the snapshots


class Isolation:
    def __init__(
        self,
        worktrees: Worktrees,
        store: Store,
        amend: Callable[..., Awaitable[None]],
        tasks: TaskSet,
    ) -> None:
        self.worktrees = worktrees
        self.store = store
        # amend(run, **changes): the lifecycle core makes the ended run's new record, and it is
        # persisted (never recreating a deleted one) and published.
        self._amend = amend
        self._tasks = tasks
        self._baselines: dict[str, Baseline | None] = {}  # None: not in a git directory
        self._users: dict[str, set[str]] = {}  # worktree path → live runs working in it
        self._claimed: set[str] = set()  # runs between prepare and their end
        self._remade: set[str] = set()  # runs launching in a worktree made again for them
        self._tidying: set[asyncio.Task[None]] = set()
        self._told_no_git = False
        # Directories found outside any checkout, until when: quick runs there start no git.
        self._outside: dict[str, float] = {}

    # -- the supervisor's calls ------------------------------------------------------------------

    async def prepare(
        self, run_id: str, directory: Path, prompt: str, *, isolate: bool, reuse: Worktree | None
    ) -> Worktree | None:
        """The worktree a new run works in: ``reuse`` (a continued run's parent's) while it is
        open, else a new one when ``isolate``; None to work in ``directory`` itself. Raises
        InvalidLaunch saying why a worktree cannot be made."""
        self._claimed.add(run_id)
        try:
            if reuse is not None:
                async with self.worktrees.lock(reuse.path):
                    if reused := await self._reuse(reuse):
                        self._users.setdefault(reused.path, set()).add(run_id)
                        if reused is not reuse:
                            self._remade.add(run_id)
                        return reused
                isolate = True  # merged or discarded, or it cannot be made again: a fresh one
            if not isolate:
                return None
            made = await self._create(run_id, directory, prompt)
            self._users.setdefault(made.path, set()).add(run_id)
            return made
        except BaseException:
            self._claimed.discard(run_id)
            raise

    async def _reuse(self, tree: Worktree) -> Worktree | None:
        """The parent's worktree for a continued run: as it is while open, or made again at the
        same path once AIOS removed it unchanged (the agent's session is kept per folder, so a
        new path would lose it). None when the user merged or discarded it (the caller holds
        its lock)."""
        if tree.state is _OPEN and await self.worktrees.exists(tree):
            return tree
        if tree.state not in (_OPEN, WorktreeState.REMOVED):
            return None
        try:
            made = await self.worktrees.recreate(tree)
        except (GitError, WorktreeError, OSError) as exc:
            log.warning("could not make the worktree %s again: %s", tree.path, exc)
            return None
        log.info("made the worktree %s again, on %s", made.path, made.branch)
        return made

    async def _create(self, run_id: str, directory: Path, prompt: str) -> Worktree:
        try:
            checkout = await find_checkout(directory)
            if checkout is None:
                raise WorktreeError(
                    f"{directory} is not in a git repository, and a worktree needs one "
                    "(git init, and commit once)"
                )
            return await self.worktrees.create(checkout, run_id, prompt)
        except (WorktreeError, GitError) as exc:
            raise InvalidLaunch(f"no worktree: {exc}") from exc

    def abandon(self, run_id: str, worktree: Worktree | None) -> None:
        """The launch failed after ``prepare`` (the queue was full, the daemon is stopping)."""
        self._claimed.discard(run_id)
        remade = run_id in self._remade
        self._remade.discard(run_id)
        if worktree is None:
            return
        self._let_go(worktree.path, run_id)
        if Path(worktree.path).parent.name == run_id or remade:  # nobody else knows it
            # One made again keeps its branch: the parent's work may be on it.
            self._tasks.spawn(self._drop(worktree, remade), f"drop the worktree of {run_id}")

    async def _drop(self, worktree: Worktree, keep_branch: bool = False) -> None:
        async with self.worktrees.lock(worktree.path):
            try:
                await self.worktrees.retire(worktree, discard=not keep_branch, message="")
            except (GitError, WorktreeError, OSError) as exc:
                log.warning("could not remove the unused worktree %s: %s", worktree.path, exc)

    def directory(self, run: Run) -> Path:
        """Where the run's agent works."""
        tree = run.worktree
        if tree is not None and tree.state is _OPEN:
            return agent_directory(tree, run.cwd)
        return Path(run.cwd)

    async def starting(self, run: Run) -> None:
        """Before each start: the first notes what the run's changes will be measured against."""
        if run.id in self._baselines:
            return
        tree = run.worktree
        if tree is not None:
            # A worktree starts at its base; a continued run's changes are the conversation's.
            self._baselines[run.id] = Baseline(Path(tree.path), tree.base, tree.base)
            return
        self._baselines[run.id] = None
        now = time.monotonic()
        if self._outside.get(run.cwd, 0.0) > now:
            return  # known not to be in a checkout, a moment ago: no git for every quick run
        try:
            async with asyncio.timeout(BASELINE_TIMEOUT):
                checkout = await find_checkout(Path(run.cwd))
                if checkout is None:
                    self._outside[run.cwd] = now + OUTSIDE_FOR
                    if len(self._outside) > OUTSIDE_KEPT:
                        self._outside = {d: t for d, t in self._outside.items() if t > now}
                if checkout is not None:
                    untracked = await self.worktrees.untracked_allowed(checkout.top)
                    start = await self.worktrees.snapshot(checkout.top, untracked=untracked)
                    self._baselines[run.id] = Baseline(
                        checkout.top, start, checkout.head, untracked
                    )
        except GitMissing as exc:
            if not self._told_no_git:  # once, not at every run of a machine without git
                self._told_no_git = True
                log.info("no run's changes are recorded: %s", exc)
        except (GitError, TimeoutError, OSError) as exc:
            log.warning("run %s: its changes will not be recorded: %s", run.id, exc or "timeout")

    async def record(self, run: Run) -> Changes | None:
        """What the run changed since its baseline (its diff goes beside its log); the changes
        it had when that cannot be told."""
        baseline = self._baselines.get(run.id)
        if baseline is None:
            return run.changes
        try:
            async with asyncio.timeout(RECORD_TIMEOUT):
                recorded = await self.worktrees.record(
                    baseline.top, baseline.start, baseline.since, untracked=baseline.untracked
                )
                await self.store.write_file(run.id, recorded.diff, "diff")
        except (GitError, TimeoutError, OSError, StoreError) as exc:
            log.warning("run %s: could not record its changes: %s", run.id, exc or "timeout")
            return run.changes
        return recorded.changes

    def shutdown_extra(self, runs: Iterable[Run]) -> float:
        """Seconds a shutdown may spend on these live runs' changes and worktrees."""
        runs = list(runs)
        extra = RECORD_TIMEOUT if any(self._baselines.get(r.id) for r in runs) else 0.0
        return extra + (TIDY_WAIT if any(r.worktree for r in runs) else 0.0)

    async def settle(self) -> None:
        """Let the removals of unchanged worktrees that are under way finish (at shutdown;
        one cut short is finished at the next start-up)."""
        if self._tidying:
            await asyncio.wait(set(self._tidying), timeout=TIDY_WAIT)

    def ended(self, run: Run) -> None:
        """The run ended: its worktree goes if nothing changed and nobody else works in it."""
        self._baselines.pop(run.id, None)
        self._claimed.discard(run.id)
        self._remade.discard(run.id)
        tree = run.worktree
        if tree is None:
            return
        self._let_go(tree.path, run.id)
        if tree.state is _OPEN and not self._users.get(tree.path):
            task = self._tasks.spawn(self._tidy(tree), f"tidy the worktree of {run.id}")
            self._tidying.add(task)
            task.add_done_callback(self._tidying.discard)

    async def _tidy(self, tree: Worktree) -> None:
        async with self.worktrees.lock(tree.path):
            await self._tidy_locked(tree)

    async def _tidy_locked(self, tree: Worktree) -> None:
        """Remove the worktree with its branch if nothing changed in it (the caller holds its
        lock)."""
        if self._users.get(tree.path):
            return  # a continued run took it over meanwhile
        try:
            gone = not await self.worktrees.exists(tree)
            if gone or not await self.worktrees.unchanged(tree):
                return
            await self.worktrees.retire(tree, discard=True, message="")
        except (GitError, WorktreeError, OSError) as exc:
            log.warning("could not tidy the worktree %s: %s", tree.path, exc)
            return
        log.info("removed the worktree %s and its branch: nothing changed", tree.path)
        await self._mark(tree.path, WorktreeState.REMOVED)

    # -- the user's requests ---------------------------------------------------------------------

    async def merge(self, run: Run) -> None:
        tree = self._open(run)
        async with self.worktrees.lock(tree.path):
            self._idle(tree)
            try:
                await self.worktrees.merge(tree, _message(run))
            except (WorktreeError, GitError) as exc:
                raise WorktreeRefused(str(exc)) from exc
            await self._mark(tree.path, WorktreeState.MERGED)

    async def discard(self, run: Run) -> None:
        tree = self._open(run)
        async with self.worktrees.lock(tree.path):
            self._idle(tree)
            try:
                await self.worktrees.retire(tree, discard=True, message="")
            except (WorktreeError, GitError) as exc:
                raise WorktreeRefused(str(exc)) from exc
            await self._mark(tree.path, WorktreeState.DISCARDED)

    async def folder(self, run: Run) -> Path:
        """The worktree's folder, from the run's record (never from a request)."""
        tree = self._open(run)
        if not await self.worktrees.exists(tree):
            raise WorktreeRefused(f"the worktree {tree.path} is no longer on disk")
        return Path(tree.path)

    async def diff(self, run: Run, live: bool) -> bytes:
        if run.changes is None:
            if live:
                raise WorktreeRefused(
                    f"run {run.id} is still live: what it changed is recorded when it ends"
                )
            raise NoChanges(
                f"run {run.id} recorded no changes: its directory is not in a git repository, "
                "or AIOS stopped while it ran"
            )
        return await self.store.read_log(run.id, 0, None, "diff")

    async def forget(self, run: Run, *, discard: bool) -> None:
        """The run leaves history (deleted, or pruned): its worktree goes, unless another run
        still uses it; its work stays on its branch unless ``discard``."""
        tree = run.worktree
        if tree is None or tree.state is not _OPEN:
            return
        async with self.worktrees.lock(tree.path):
            if self._users.get(tree.path) or await self._others(tree, run.id):
                return
            try:
                kept = await self.worktrees.retire(tree, discard=discard, message=_message(run))
            except (GitError, WorktreeError, OSError) as exc:
                # The marker stays, so the next start-up tries again.
                log.warning("could not remove the worktree %s: %s", tree.path, exc)
                return
            if kept:
                log.info("removed the worktree of run %s; its work is on %s", run.id, tree.branch)

    def pruned(self, runs: Iterable[Run]) -> None:
        """Runs that history pruned to make room: their worktrees go as a deleted run's do."""
        for run in runs:
            if run.worktree is not None and run.worktree.state is _OPEN:
                self._tasks.spawn(self.forget(run, discard=False), f"forget {run.id}'s worktree")

    # -- start-up --------------------------------------------------------------------------------

    async def recover(self, runs: Iterable[Run]) -> None:
        """Runs found live after a crash (now interrupted): what their worktrees hold is what
        they changed; one that holds nothing goes."""
        for run in runs:
            tree = run.worktree
            if tree is None or tree.state is not _OPEN or not await self.worktrees.exists(tree):
                continue
            self._baselines[run.id] = Baseline(Path(tree.path), tree.base, tree.base)
            changes = await self.record(run)
            self._baselines.pop(run.id, None)
            if changes is not None:
                await self._amend(run, changes=changes)
            await self._tidy(tree)

    async def prune(self) -> None:
        """Remove the worktrees of runs AIOS no longer knows (their work kept on their branch),
        and finish removals a crash interrupted. Only what has AIOS's marker is looked at."""
        for left in await self.worktrees.leftovers():
            tree = left.worktree
            async with self.worktrees.lock(tree.path):
                if left.run_id in self._claimed or self._users.get(tree.path):
                    continue  # being launched right now
                runs = await self.store.with_worktree(tree.path)
                states = {r.worktree.state for r in runs if r.worktree is not None}
                if _OPEN in states:
                    # A run in history has it; if nothing changed in it (its removal at the end
                    # of the run was cut short by a shutdown), it goes now.
                    if all(r.state.is_final for r in runs):
                        await self._tidy_locked(tree)
                    continue
                try:
                    await self.worktrees.retire(
                        tree,
                        discard=WorktreeState.DISCARDED in states,
                        message=f"aios: work left in the worktree of run {left.run_id}",
                        merged=WorktreeState.MERGED in states,
                    )
                except (GitError, WorktreeError, OSError) as exc:
                    log.warning("could not prune the worktree %s: %s", tree.path, exc)
                    continue
                log.info("pruned the worktree %s of run %s", tree.path, left.run_id)

    # -- helpers ---------------------------------------------------------------------------------

    def _let_go(self, path: str, run_id: str) -> None:
        users = self._users.get(path)
        if users is not None:
            users.discard(run_id)
            if not users:
                del self._users[path]

    def _open(self, run: Run) -> Worktree:
        tree = run.worktree
        if tree is None:
            raise WorktreeRefused(f"run {run.id} has no worktree")
        if tree.state is not _OPEN:
            raise WorktreeRefused(f"run {run.id}'s worktree was {tree.state} already")
        return tree

    def _idle(self, tree: Worktree) -> None:
        users = sorted(self._users.get(tree.path, ()))
        if users:
            raise WorktreeRefused(
                f"run {users[0]} is still working in this worktree; stop it first"
            )

    async def _others(self, tree: Worktree, run_id: str) -> bool:
        runs = await self.store.with_worktree(tree.path)
        return any(r.id != run_id and r.worktree and r.worktree.state is _OPEN for r in runs)

    async def _mark(self, path: str, state: WorktreeState) -> None:
        """Every run that has this worktree says so (a conversation's runs share one)."""
        for run in await self.store.with_worktree(path):
            if run.worktree is not None and run.worktree.state is _OPEN:
                await self._amend(run, worktree=replace(run.worktree, state=state))


def _message(run: Run) -> str:
    """The commit message for work AIOS commits on a run's branch."""
    first = " ".join(run.prompt.split())[:72] or f"{run.agent} run"
    return f"aios: {first}\n\nRun {run.id} ({run.agent}), committed by AIOS."
