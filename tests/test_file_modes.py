"""Every file AIOS writes is 0600 and every directory 0700 from the moment it is made, whatever
the umask: a real daemon runs agents, makes worktrees, records diffs and merges, then the whole
AIOS home is walked (issue 18).

The one exception is documented in docs/security.md: a worktree's checkout
(``worktrees/<run id>/<repository>/`` and everything in it) is the user's project as git checks
it out, with the user's umask; the ``worktrees/`` directory above it is 0700, so none of it is
reachable by anyone else.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aios import private
from tests.gitrepo import make_repo, status
from tests.helpers import DaemonProcess, fake_agents, start_daemon, wait_until
from tests.test_isolation import final, get

pytestmark = pytest.mark.daemon


@pytest.fixture(params=[0o022, 0o000], ids=["umask-022", "umask-000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The daemon inherits the test's umask: the common one, and one that takes nothing away."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def offenders(home: Path, checkouts: set[Path]) -> list[str]:
    """Everything under ``home`` (itself included) that is not a 0700 directory or a 0600
    file, outside the worktrees' checkouts."""
    found = []
    for folder, dirs, files in os.walk(home):
        here = Path(folder)
        dirs[:] = [name for name in dirs if here / name not in checkouts]
        for path in (here, *(here / name for name in files)):
            info = path.lstat()
            mode = stat.S_IMODE(info.st_mode)
            right = (stat.S_ISDIR(info.st_mode) and mode == 0o700) or (
                stat.S_ISREG(info.st_mode) and mode == 0o600
            )
            if not right:
                found.append(f"{stat.filemode(info.st_mode)} {path.relative_to(home)}")
    return found


def launch(d: DaemonProcess, agent: str, prompt: str, cwd: Path, **extra: Any) -> dict[str, Any]:
    run = d.client.request("POST", "/api/runs", {"agent": agent, "prompt": prompt,
                                                 "cwd": str(cwd), **extra})  # fmt: skip
    assert isinstance(run, dict)
    return run


def test_everything_aios_writes_is_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    home = tmp_path / "aios-home"  # made by AIOS: it too is 0700
    repo = make_repo(tmp_path / "src" / "app", {"README.md": "hello\n", "lib/a.py": "one\n"})
    plain = tmp_path / "plain"
    plain.mkdir()
    bin_dir = fake_agents(tmp_path / "bin", "claude")
    d = start_daemon(home, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    try:
        # A structured agent (output and events), in a checkout (changes recorded through a
        # scratch index) and outside any.
        talked = final(d, launch(d, "claude", "write hello.py", repo)["id"])
        assert talked["state"] == "succeeded" and talked["changes"] is not None
        assert final(d, launch(d, "claude", "look", plain)["id"])["state"] == "succeeded"
        # Worktrees: one merged, one left open for review, one unchanged (removed at its end).
        merged = final(d, launch(d, "command", "echo x > feature.txt", repo, worktree=True)["id"])
        assert merged["changes"]["file_count"] == 1
        assert d.client.request("GET", f"/api/runs/{merged['id']}/diff")
        answer = d.client.request("POST", f"/api/runs/{merged['id']}/worktree/merge")
        assert answer["worktree"]["state"] == "merged" and status(repo) == ""
        kept = final(d, launch(d, "command", "echo y > lib/b.py", repo, worktree=True)["id"])
        assert kept["worktree"]["state"] == "open"
        plain_tree = final(d, launch(d, "command", "true", repo, worktree=True)["id"])
        wait_until(lambda: get(d, plain_tree["id"])["worktree"]["state"] == "removed", 30,
                   "the unchanged worktree to be removed")  # fmt: skip
        checkouts = {Path(kept["worktree"]["path"])}
        assert all(path.is_dir() for path in checkouts)
        data = home / "data"
        assert (data / "runs" / f"{merged['id']}.diff").is_file()
        assert (data / "runs" / f"{talked['id']}.events.jsonl").is_file()
        assert (data / "history.sqlite3-wal").is_file()  # SQLite's files exist while it runs
        assert (data / "worktrees" / ".scratch").is_dir()
        assert offenders(home, checkouts) == [], f"umask {umask:#o}"
        assert d.terminate() == 0
    finally:
        d.close()
    # Whatever the shutdown wrote too.
    assert offenders(home, checkouts) == [], f"umask {umask:#o}, after shutdown"


def test_what_an_older_version_left_readable_is_tightened_at_start(tmp_path: Path) -> None:
    home = tmp_path / "aios-home"
    repo = make_repo(tmp_path / "src" / "app")
    old = os.umask(0o022)
    try:
        d = start_daemon(home)
        try:
            kept = final(d, launch(d, "command", "echo y > b.txt", repo, worktree=True)["id"])
            assert d.terminate() == 0
        finally:
            d.close()
        worktrees = home / "data" / "worktrees"
        loose = [
            worktrees,
            worktrees / ".scratch",
            worktrees / kept["id"],
            worktrees / kept["id"] / "aios-worktree.json",
            home / "data" / "runs" / f"{kept['id']}.diff",
        ]
        for path in loose:
            path.chmod(0o755 if path.is_dir() else 0o644)
        checkouts = {Path(kept["worktree"]["path"])}
        d = start_daemon(home)
        try:
            # The worktrees are looked at once the daemon is up, off the start-up path.
            wait_until(lambda: offenders(home, checkouts) == [], 30, "the modes to be tightened")
        finally:
            d.close()
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o277])
def test_the_helpers_set_the_mode_exactly_under_any_umask(tmp_path: Path, mask: int) -> None:
    """0o277 would leave a file its owner cannot write, if only ``open``'s mode were given."""
    old = os.umask(mask)
    try:
        deep = tmp_path / "a" / "b" / "c"
        private.make_dirs(deep)
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        theirs.chmod(0o755)
        private.make_dirs(theirs)  # an existing directory is left as it is...
        assert stat.S_IMODE(theirs.stat().st_mode) == 0o755
        private.ensure_private_dir(theirs)  # ...unless it is AIOS's own
        readable = theirs / "readable"
        readable.write_text("from before")
        readable.chmod(0o644)
        private.write_text(readable, "now")
        private.write_bytes(deep / "new", b"x")
        private.create(deep / "empty")
        with private.open_append(deep / "log") as handle:
            handle.write(b"line\n")
        os.utime(readable, ns=(1, 2_000_000_000))
        private.copy(readable, deep / "copy")
        assert (deep / "copy").stat().st_mtime_ns == 2_000_000_000  # git's racy-clean check
        assert (deep / "copy").read_text() == "now"
    finally:
        os.umask(old)
    assert offenders(tmp_path / "a", set()) == []
    assert offenders(theirs, set()) == []
