"""A continued run works in its parent's worktree (the hook issue 10 uses), in-process tier:
a real Daemon on the test's loop, real git, real agent processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from aios.agents.errors import WorktreeRefused
from aios.credentials import Secrets
from aios.facade import Daemon
from aios.paths import Paths
from aios.runs import Run, WorktreeState
from tests.gitrepo import branches, make_repo
from tests.helpers import agent_script, write_config
from tests.test_isolation import AGENT


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    home = tmp_path / "home"
    scripts = tmp_path / "agents"
    scripts.mkdir()
    write_config(home, f"[agents.agent]\ncommand = {agent_script(scripts, 'agent', AGENT)}\n")
    paths = Paths.from_env({"AIOS_HOME": str(home)})
    paths.ensure()
    made = Daemon(paths, 4321, Secrets.generate(), request_shutdown=lambda: None)
    await made.start()
    try:
        yield made
    finally:
        await made.stop()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "src" / "app")


async def until(check: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 20
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def ended(d: Daemon, run_id: str) -> Run:
    latest: list[Run] = []

    async def poll() -> None:
        while True:
            run = await d.get_run(run_id)
            if run is not None and run.state.is_final:
                latest.append(run)
                return
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), 20)
    return latest[0]


def exists(path: str) -> bool:
    return Path(path).exists()


async def test_a_continued_run_shares_the_worktree_which_stays_while_it_is_live(
    daemon: Daemon, repo: Path, tmp_path: Path
) -> None:
    supervisor = daemon._supervisor  # the hook is the supervisor's launch, as issue 10 calls it
    parent = await ended(
        daemon, (await daemon.launch("agent", "write a.txt a", str(repo), worktree=True)).id
    )
    assert parent.worktree is not None and parent.changes is not None
    go = tmp_path / "go"
    child = await supervisor.launch(
        "agent", f"write b.txt b; wait {go}", str(repo), reuse_worktree=parent.worktree
    )
    assert child.worktree == parent.worktree
    await until((tmp_path / "go.started").exists, "the child to work")
    # While the child works in it, nobody takes the worktree away.
    for action in (daemon.merge_worktree, daemon.discard_worktree):
        with pytest.raises(WorktreeRefused, match=f"run {child.id} is still working"):
            await action(parent.id)
    await daemon.delete_run(parent.id)
    assert exists(parent.worktree.path)
    go.touch()
    done = await ended(daemon, child.id)
    # The conversation's changes so far: both files, against the same base.
    assert done.changes is not None
    assert [f.path for f in done.changes.files] == ["a.txt", "b.txt"]
    assert done.worktree is not None and done.worktree.state is WorktreeState.OPEN
    merged = await daemon.merge_worktree(child.id)
    assert merged.worktree is not None and merged.worktree.state is WorktreeState.MERGED
    assert (repo / "a.txt").exists() and (repo / "b.txt").exists()
    assert branches(repo) == ["main"]


async def test_a_continued_run_gets_its_parents_worktree_again_where_it_was(
    daemon: Daemon, repo: Path
) -> None:
    parent = await ended(
        daemon, (await daemon.launch("agent", "look", str(repo), worktree=True)).id
    )
    tree = parent.worktree
    assert tree is not None
    await until(lambda: not exists(tree.path), "the unchanged worktree to go")
    child = await daemon._supervisor.launch(
        "agent", "write c.txt c", str(repo), reuse_worktree=parent.worktree
    )
    # Made again at the same path (an agent keeps its sessions per folder), on the same branch
    # name from the same base.
    assert child.worktree is not None and child.worktree == tree
    assert exists(tree.path) and tree.branch in branches(repo)
    done = await ended(daemon, child.id)
    assert done.changes is not None and [f.path for f in done.changes.files] == ["c.txt"]
    assert done.worktree == tree  # open, so it can be merged like any other
    merged = await daemon.merge_worktree(child.id)
    assert merged.worktree is not None and merged.worktree.state is WorktreeState.MERGED
    assert (repo / "c.txt").exists() and branches(repo) == ["main"]
    # Merged (the user's decision): a run continued after that gets a fresh worktree.
    later = await daemon._supervisor.launch(
        "agent", "look", str(repo), reuse_worktree=merged.worktree
    )
    assert later.worktree is not None and later.worktree.path != tree.path
    await ended(daemon, later.id)
