"""Real git repositories in temporary directories, for the worktree and changes tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers import require_tool

IDENTITY = ("-c", "user.name=Test User", "-c", "user.email=test@example.com")


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` (as the test, not as AIOS) and return its stdout, stripped."""
    done = subprocess.run(
        ["git", *IDENTITY, *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def make_repo(path: Path, files: dict[str, str] | None = None, *, commit: bool = True) -> Path:
    """A repository on branch main with ``files`` committed (or none, with ``commit=False``);
    its own identity in its config, so merges made by AIOS there have one."""
    require_tool("git")
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.com")
    if commit:
        for name, text in (files or {"README.md": "hello\n"}).items():
            target = path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", "initial")
    return path


def branches(repo: Path) -> list[str]:
    return git(repo, "branch", "--format=%(refname:short)").splitlines()


def worktree_paths(repo: Path) -> list[str]:
    listing = git(repo, "worktree", "list", "--porcelain")
    return [line.split(" ", 1)[1] for line in listing.splitlines() if line.startswith("worktree ")]


def status(repo: Path) -> str:
    return git(repo, "status", "--porcelain")
