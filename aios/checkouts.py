"""Which git checkout a directory is in, and what a launch form should say about isolating a run
there. The facade asks this module, so it never runs git itself.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from aios.git import GitError, git, refused


@dataclass(frozen=True)
class Checkout:
    """The git work tree a directory is in."""

    top: Path
    head: str | None  # None: no commit yet
    branch: str | None  # None: a detached HEAD (or no commit yet)


async def find_checkout(directory: Path) -> Checkout | None:
    """The work tree ``directory`` is in, or None. Raises GitMissing without git, and
    UnsafeRepository for a repository git will not work in (another user's)."""
    if not await asyncio.to_thread(_may_be_in_checkout, directory):
        return None  # no .git above it: no need to start git to hear so (one fork per run)
    found = await git(
        "rev-parse", "--is-inside-work-tree", "--show-toplevel", cwd=directory, check=False
    )
    unsafe = refused(["git", "rev-parse"], found)
    if unsafe is not None:
        raise unsafe  # a repository, but another user's: say so, and how to allow it
    lines = found.text.splitlines()
    if found.code != 0 or len(lines) != 2 or lines[0] != "true":
        return None  # not a repository, or inside its .git directory
    top = Path(lines[1])
    head = await git("rev-parse", "--verify", "-q", "HEAD^{commit}", cwd=top, check=False)
    branch = await git("symbolic-ref", "-q", "--short", "HEAD", cwd=top, check=False)
    return Checkout(
        top,
        head.text if head.code == 0 and head.text else None,
        branch.text if branch.code == 0 and branch.text else None,
    )


def _may_be_in_checkout(directory: Path) -> bool:
    """Whether a ``.git`` (directory, or a worktree's file) is in ``directory`` or above it, as
    git looks for one; GIT_DIR in the environment says yes to anything, as it does to git."""
    if os.environ.get("GIT_DIR"):
        return True
    try:
        here = directory.resolve()
    except OSError:
        return True  # let git say what is wrong
    return any((folder / ".git").exists() for folder in (here, *here.parents))


async def uncommitted(top: Path) -> int:
    """How many files in the checkout differ from its HEAD (untracked ones included)."""
    status = await git(
        "status", "--porcelain", "-z", "--no-renames", "--untracked-files=normal", cwd=top
    )
    return sum(1 for entry in status.out.split(b"\0") if entry)


async def checkout_note(directory: Path) -> str | None:
    """What a launch form should say about isolating a run in ``directory``: why a worktree
    cannot be made there, or that uncommitted changes will not be in it. None when all is well."""
    try:
        checkout = await find_checkout(directory)
        if checkout is None:
            return f"{directory} is not in a git repository: a worktree needs one"
        if checkout.head is None:
            return f"the repository at {checkout.top} has no commits yet: commit once first"
        dirty = await uncommitted(checkout.top)
    except GitError as exc:
        return str(exc)
    if dirty:
        files = f"{dirty} file{'s' if dirty > 1 else ''}"
        return (
            f"{checkout.top} has uncommitted changes ({files}): they are not in the "
            f"worktree, which starts from the last commit"
        )
    return None
