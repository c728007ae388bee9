"""Git worktrees for runs, and what a run changed: what AIOS asks of git about runs.

A run that asks for isolation works in a worktree of its own, outside the repository, under
AIOS's data directory, on a new branch from the checkout's HEAD::

    <data>/worktrees/<run id>/aios-worktree.json    the marker: AIOS made this, for that run
    <data>/worktrees/<run id>/<repository name>/    the worktree, on aios/<run id>-<slug>

AIOS touches only what it made: a directory under its own root that holds the marker, a branch
under ``aios/`` named in that marker, and git's administrative entry for that very path. A branch
is deleted only when it holds no commit beyond the one it started from, or when the user said to
discard it; work left uncommitted in a worktree AIOS removes is committed on its branch first.

What a run changed is the difference between two snapshots of its directory, each a git tree: at
the start, the base commit (a worktree) or the checkout as it was (a plain checkout: its HEAD and
the changes already in it), and at the end, the directory as the run left it. A snapshot is
written through a temporary copy of the checkout's index, never the user's own, so nothing the
user sees changes; only files git would not already recognise by their stat data are read again.

Nothing here knows about runs' lifecycles: ``aios.agents.isolation`` decides when to call what.
Which checkout a directory is in is ``aios.checkouts``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aios import private
from aios.checkouts import Checkout, uncommitted
from aios.git import QUICK, SLOW, GitError, drivers, git
from aios.runs import Changes, ChangeStatus, FileChange, Worktree, WorktreeState

MARKER = "aios-worktree.json"
BRANCH_PREFIX = "aios/"
SCRATCH = ".scratch"  # temporary indexes, under the root; emptied at start-up
DIFF_CAP = 1024 * 1024
# A plain checkout with more untracked files than this when a run starts (a home directory kept
# in git, say) is compared on its tracked files only: snapshotting them all would copy every one
# into the repository's object store.
MAX_UNTRACKED = 5000
_SLUG_WIDTH = 40
_AIOS_IDENTITY = {
    "GIT_AUTHOR_NAME": "AIOS",
    "GIT_AUTHOR_EMAIL": "aios@localhost",
    "GIT_COMMITTER_NAME": "AIOS",
    "GIT_COMMITTER_EMAIL": "aios@localhost",
}
_STATUSES = {"A": ChangeStatus.ADDED, "D": ChangeStatus.DELETED}


class WorktreeError(Exception):
    """Something about a worktree that the user must hear, in words."""


@dataclass(frozen=True)
class Recorded:
    changes: Changes
    diff: bytes  # unified, capped at DIFF_CAP with a marker line


@dataclass(frozen=True)
class Leftover:
    """A worktree AIOS made, as its marker describes it."""

    run_id: str
    worktree: Worktree


def slug(prompt: str, width: int = _SLUG_WIDTH) -> str:
    """``Fix the login bug!`` → ``fix-the-login-bug``: a branch name's readable part."""
    words = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")
    return words[:width].rstrip("-")


def branch_name(run_id: str, prompt: str) -> str:
    words = slug(prompt)
    return f"{BRANCH_PREFIX}{run_id}-{words}" if words else f"{BRANCH_PREFIX}{run_id}"


def agent_directory(worktree: Worktree, cwd: str) -> Path:
    """Where in the worktree the agent starts: the same place ``cwd`` is in the checkout."""
    try:
        inside = Path(cwd).relative_to(worktree.repo)
    except ValueError:
        inside = Path()
    return Path(worktree.path) / inside


class Worktrees:
    """The folder of AIOS's worktrees, and git's part of their life.

    The methods do not lock: the caller holds ``lock(key)`` around whatever must not interleave
    (one worktree's end, merge, discard; or worktrees being added to one repository).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    # -- making one ------------------------------------------------------------------------

    async def create(self, checkout: Checkout, run_id: str, prompt: str) -> Worktree:
        top = checkout.top
        if checkout.head is None:
            raise WorktreeError(
                f"the repository at {top} has no commits yet: a worktree starts from a commit "
                "(commit once, then launch)"
            )
        root = await asyncio.to_thread(self.root.resolve)
        if root.is_relative_to(top):
            raise WorktreeError(
                f"AIOS keeps worktrees in {root}, which is inside the repository {top}: "
                "a worktree there would be part of it (set AIOS_HOME elsewhere)"
            )
        home = root / run_id
        worktree = Worktree(
            path=str(home / _folder(top.name)),
            branch=branch_name(run_id, prompt),
            base=checkout.head,
            source=checkout.branch,
            repo=str(top),
        )
        await asyncio.to_thread(_write_marker, home, run_id, worktree)
        try:
            async with self.lock(str(top)):  # git names its entries after the folder: one at once
                await git(
                    "worktree", "add", "-q", "-b", worktree.branch, worktree.path, worktree.base,
                    cwd=top, timeout=SLOW,
                )  # fmt: skip
        except BaseException:
            # Undo what got made (a branch, an entry, files), even when we were cancelled.
            await asyncio.shield(self._undo(worktree))
            raise
        return worktree

    async def recreate(self, worktree: Worktree) -> Worktree:
        """A removed worktree again, at its own path (an agent keeps its sessions per folder):
        on its branch if that is still there, else on a new one from its base commit."""
        top, home = Path(worktree.repo), Path(worktree.path).parent
        if await asyncio.to_thread(home.exists):
            raise WorktreeError(f"{home} is in the way of the worktree it held")
        await asyncio.to_thread(_write_marker, home, home.name, worktree)
        tip = await git(
            "rev-parse", "--verify", "-q", f"refs/heads/{worktree.branch}", cwd=top, check=False
        )
        start = [worktree.branch] if tip.code == 0 else ["-b", worktree.branch, worktree.base]
        try:
            async with self.lock(str(top)):
                await git("worktree", "prune", cwd=top, check=False)  # a stale entry, if any
                await git("worktree", "add", "-q", worktree.path, *start, cwd=top, timeout=SLOW)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, home, True)
            raise
        return Worktree(worktree.path, worktree.branch, worktree.base, worktree.source, str(top))

    async def _undo(self, worktree: Worktree) -> None:
        with contextlib.suppress(GitError, WorktreeError, OSError):
            await self.retire(worktree, discard=True, message="")

    # -- looking at one ------------------------------------------------------------------------

    async def exists(self, worktree: Worktree) -> bool:
        return await asyncio.to_thread(Path(worktree.path).is_dir)

    async def unchanged(self, worktree: Worktree) -> bool:
        """No commit on top of its base, and nothing uncommitted (ignored files do not count)."""
        path = Path(worktree.path)
        head = await git("rev-parse", "--verify", "-q", "HEAD", cwd=path, check=False)
        if head.text != worktree.base:
            return False
        return await uncommitted(path) == 0

    async def record(
        self, top: Path, start: str, since: str | None, *, untracked: bool = True
    ) -> Recorded:
        """What changed in ``top`` since ``start`` (a commit or a snapshot's tree); commits are
        counted from commit ``since`` (None: a repository that had none). ``untracked`` as
        the start's snapshot was taken."""
        end = await self.snapshot(top, untracked=untracked)
        numstat = await git(
            "diff", "--numstat", "-z", "--no-renames", start, end, cwd=top, timeout=SLOW
        )
        names = await git(
            "diff", "--name-status", "-z", "--no-renames", start, end, cwd=top, timeout=SLOW
        )
        span = f"{since}..HEAD" if since else "HEAD"
        counted = await git("rev-list", "--count", span, cwd=top, check=False)
        commits = int(counted.text) if counted.code == 0 and counted.text.isdigit() else 0
        diff = await git(
            "diff", "--no-color", "--no-renames", start, end,
            cwd=top, timeout=SLOW, limit=DIFF_CAP, settings={"core.quotepath": "false"},
        )  # fmt: skip
        text = diff.out
        if diff.truncated:
            text += (
                f"\n[aios: diff truncated at {DIFF_CAP // 1024 // 1024} MiB; "
                f"the rest is in git: git diff {start} {end}]\n"
            ).encode()
        return Recorded(Changes.of(_files(numstat.out, names.out), commits), text)

    async def untracked_allowed(self, top: Path) -> bool:
        """Whether snapshots of this checkout take in its untracked files: not when the
        repository hides them (``status.showUntrackedFiles = no``), nor when there are too many."""
        shown = await git("config", "--get", "status.showUntrackedFiles", cwd=top, check=False)
        if shown.text == "no":
            return False
        others = await git(
            "ls-files", "--others", "--exclude-standard", "-z",
            cwd=top, timeout=SLOW, limit=MAX_UNTRACKED * 256,
        )  # fmt: skip
        return not others.truncated and others.out.count(b"\0") <= MAX_UNTRACKED

    async def snapshot(self, top: Path, *, untracked: bool = True) -> str:
        """The work tree of ``top`` as it is now, as a git tree (untracked files included unless
        told otherwise, ignored ones never), written through a temporary index: the user's is
        never touched."""
        adding = ("add", "-A") if untracked else ("add", "-u")
        found = await git("rev-parse", "--git-path", "index", cwd=top)
        index = top / found.text
        scratch = self.root / SCRATCH
        folder = Path(await asyncio.to_thread(_mkdtemp, scratch))
        try:
            temp = folder / "index"
            env = {"GIT_INDEX_FILE": str(temp)}
            # A copy of the real index knows every file's stat data: only changed files are read.
            copied = await asyncio.to_thread(_copy, index, temp)
            try:
                await git(*adding, cwd=top, timeout=SLOW, env=env)
            except GitError:
                if not copied:
                    raise
                # An index in a shape a copy cannot stand for (a split index): start from HEAD.
                await asyncio.to_thread(temp.unlink, True)
                await git("read-tree", "HEAD", cwd=top, timeout=SLOW, env=env, check=False)
                await git(*adding, cwd=top, timeout=SLOW, env=env)
            return (await git("write-tree", cwd=top, env=env)).text
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)

    # -- ending one ------------------------------------------------------------------------------

    async def preserve(self, worktree: Worktree, message: str) -> bool:
        """Commit whatever is uncommitted in the worktree on its branch (no hooks, no signing,
        as every git AIOS runs: this keeps work, it is not the user's commit). True if there
        was anything."""
        path = Path(worktree.path)
        if await uncommitted(path) == 0:
            return False
        await git("add", "-A", cwd=path, timeout=SLOW)
        await git(
            "commit", "--no-verify", "-q", "-m", message,
            cwd=path, timeout=SLOW, env=await _identity(path),
        )  # fmt: skip
        return True

    async def merge(self, worktree: Worktree, message: str) -> None:
        """Merge the worktree's work (its uncommitted part committed first) into the branch it
        came from, in the checkout it came from; git's words when it refuses. The merge is
        aborted on a conflict, so the checkout is left as it was."""
        if worktree.source is None:
            raise WorktreeError(
                f"the worktree came from a detached HEAD, so there is no branch to merge it "
                f"into: merge {worktree.branch} yourself"
            )
        repo = Path(worktree.repo)
        if not await asyncio.to_thread(repo.is_dir):
            raise WorktreeError(f"the checkout it came from, {repo}, is gone")
        current = await git("symbolic-ref", "-q", "--short", "HEAD", cwd=repo, check=False)
        if current.text != worktree.source:
            now = f"branch {current.text}" if current.code == 0 else "a detached HEAD"
            raise WorktreeError(
                f"{repo} has {now} checked out, not {worktree.source}: "
                f"check out {worktree.source} there to merge into it"
            )
        await self.preserve(worktree, message)
        merged = await git(
            "merge", "--no-edit", worktree.branch,
            cwd=repo, timeout=SLOW, check=False, env=await _identity(repo),
        )  # fmt: skip
        if merged.code != 0:
            pending = await git("rev-parse", "-q", "--verify", "MERGE_HEAD", cwd=repo, check=False)
            if pending.code == 0:
                await git("merge", "--abort", cwd=repo, check=False)
            words = b"\n".join(part.strip() for part in (merged.out, merged.err) if part.strip())
            raise WorktreeError(
                "git refused the merge, and the checkout was left as it was:\n"
                + words.decode("utf-8", errors="replace")
                + await _drivers_note(repo)
            )
        await self.retire(worktree, discard=False, message=message, merged=True)

    async def retire(
        self, worktree: Worktree, *, discard: bool, message: str, merged: bool = False
    ) -> bool:
        """Remove the worktree; its branch goes too when it holds no commit of its own, when it
        was ``merged``, or with ``discard`` (which also drops uncommitted work). Otherwise
        uncommitted work is committed on the branch first, and the branch stays: returns True
        when a branch was kept."""
        path, repo = Path(worktree.path), Path(worktree.repo)
        if not await asyncio.to_thread(self.ours, worktree):
            raise WorktreeError(f"{path} is not a worktree AIOS made; left alone")
        usable = await asyncio.to_thread(repo.is_dir)
        if usable and not discard and await self.exists(worktree):
            await self.preserve(worktree, message)
        if usable:
            await git("worktree", "remove", "--force", "--force", str(path),
                      cwd=repo, timeout=SLOW, check=False)  # fmt: skip
        await asyncio.to_thread(shutil.rmtree, path.parent, True)
        if not usable:
            return False
        # git's entry for this path, if removing it through git failed (nothing else's).
        for entry in await self._entries_for(repo, path):
            await asyncio.to_thread(shutil.rmtree, entry, True)
        tip = await git(
            "rev-parse", "--verify", "-q", f"refs/heads/{worktree.branch}", cwd=repo, check=False
        )
        if tip.code != 0:
            return False  # gone already
        if discard or tip.text == worktree.base:
            await git("branch", "-D", worktree.branch, cwd=repo)
            return False
        if merged:
            deleted = await git("branch", "-d", worktree.branch, cwd=repo, check=False)
            return deleted.code != 0
        return True

    def ours(self, worktree: Worktree) -> bool:
        """Made by AIOS: under our root, with our marker beside it, on a branch of ours.
        (It looks at the disk: call it on a thread.)"""
        home = Path(worktree.path).parent
        return (
            worktree.branch.startswith(BRANCH_PREFIX)
            and home.parent == self.root.resolve()
            and (home / MARKER).is_file()
        )

    async def _entries_for(self, repo: Path, path: Path) -> list[Path]:
        common = await git("rev-parse", "--git-common-dir", cwd=repo, check=False)
        if common.code != 0:
            return []
        return await asyncio.to_thread(_entries_pointing_at, repo / common.text, path)

    # -- start-up --------------------------------------------------------------------------------

    async def leftovers(self) -> list[Leftover]:
        """Every worktree AIOS made that is still on disk, as its marker says."""
        return await asyncio.to_thread(self._read_markers)

    def _read_markers(self) -> list[Leftover]:
        shutil.rmtree(self.root / SCRATCH, ignore_errors=True)
        private.tighten(self.root, private.DIR_MODE)  # as an older version left it
        found = []
        for marker in sorted(self.root.glob(f"*/{MARKER}")):
            private.tighten(marker.parent, private.DIR_MODE)
            private.tighten(marker)
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                data = json.loads(marker.read_text(encoding="utf-8"))
                worktree = Worktree(
                    path=str(data["path"]),
                    branch=str(data["branch"]),
                    base=str(data["base"]),
                    source=data.get("source"),
                    repo=str(data["repo"]),
                    state=WorktreeState.OPEN,
                )
                if Path(worktree.path).parent == marker.parent and self.ours(worktree):
                    found.append(Leftover(str(data["run"]), worktree))
        return found


def _folder(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")
    return cleaned or "repo"


def _write_marker(home: Path, run_id: str, worktree: Worktree) -> None:
    # The root is 0700, so nothing below it (the checkouts, which follow the user's umask as
    # git makes them) is reachable by other users; the run's folder and marker are AIOS's own.
    private.ensure_private_dir(home.parent)
    private.make_private_dir(home)
    data: dict[str, Any] = {"run": run_id, **worktree.to_json()}
    del data["state"]
    private.write_text(home / MARKER, json.dumps(data, indent=2) + "\n")


def _mkdtemp(parent: Path) -> str:
    private.ensure_private_dir(parent)
    folder = tempfile.mkdtemp(dir=parent)
    os.chmod(folder, private.DIR_MODE)  # mkdtemp's 0700 exactly, whatever the umask took
    return folder


def _copy(source: Path, target: Path) -> bool:
    try:
        # The copy keeps the index's mtime, which git compares with its entries' to tell a
        # racily clean file (changed in the same tick the index was written: same size, same
        # mtime) and read it rather than trust its stat data.
        private.copy(source, target)
    except FileNotFoundError:
        return False
    return True


def _entries_pointing_at(common: Path, path: Path) -> list[Path]:
    """git's administrative entries (``.git/worktrees/<name>``) for the worktree at ``path``."""
    entries = []
    for gitdir in (common / "worktrees").glob("*/gitdir"):
        with contextlib.suppress(OSError):
            if Path(gitdir.read_text(encoding="utf-8").strip()) == path / ".git":
                entries.append(gitdir.parent)
    return entries


def _files(numstat: bytes, names: bytes) -> list[FileChange]:
    statuses = dict(_pairs(names))
    files = []
    for record in numstat.split(b"\0"):
        if not record:
            continue
        added, deleted, raw = record.split(b"\t", 2)
        path = raw.decode("utf-8", errors="replace")
        files.append(
            FileChange(
                path,
                _STATUSES.get(statuses.get(path, "M"), ChangeStatus.MODIFIED),
                int(added) if added.isdigit() else None,  # "-": a binary file
                int(deleted) if deleted.isdigit() else None,
            )
        )
    return files


def _pairs(names: bytes) -> Iterator[tuple[str, str]]:
    parts = names.split(b"\0")
    for status, raw in zip(parts[::2], parts[1::2], strict=False):
        if status:
            yield raw.decode("utf-8", errors="replace"), status.decode()[:1]


async def _drivers_note(repo: Path) -> str:
    """Why a file may be a conflict although git could merge it: the repository's merge drivers
    are not run (aios.git)."""
    with contextlib.suppress(GitError):
        names = [
            key.rsplit(".", 1)[0] for key, _ in await drivers(repo) if key.startswith("merge.")
        ]
        if names:
            return (
                f"\n(AIOS runs no merge driver of the repository's ({', '.join(names)}): a file "
                "both sides changed that one would merge is a conflict; merge the branch yourself)"
            )
    return ""


async def _identity(cwd: Path) -> dict[str, str]:
    """The user's own identity when git has one; else AIOS's, so keeping work never fails for
    want of a name."""
    for role in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT"):
        known = await git("var", role, cwd=cwd, check=False, timeout=QUICK)
        if known.code != 0:
            return dict(_AIOS_IDENTITY)
    return {}
