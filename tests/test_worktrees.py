"""aios.git and aios.worktrees against real git in temporary repositories (in-process tier)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from aios import worktrees as wt_module
from aios.checkouts import Checkout, find_checkout
from aios.git import GitError, GitMissing, GitTimeout, environment, git
from aios.runs import ChangeStatus, FileChange
from aios.worktrees import (
    MARKER,
    WorktreeError,
    Worktrees,
    agent_directory,
    branch_name,
    slug,
)
from tests.gitrepo import branches, make_repo, status, worktree_paths
from tests.gitrepo import git as sh_git
from tests.helpers import pids_alive, wait_until


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "src" / "app",
        {"README.md": "hello\n", "lib/a.py": "one\ntwo\nthree\n", "old.txt": "bye\n"},
    )


@pytest.fixture
def trees(tmp_path: Path) -> Worktrees:
    root = tmp_path / "data" / "worktrees"
    root.mkdir(parents=True)
    return Worktrees(root)


def on_disk(path: Path) -> bool:
    return path.exists()


async def checkout_of(directory: Path) -> Checkout:
    found = await find_checkout(directory)
    assert found is not None
    return found


def test_slug_and_branch_name() -> None:
    assert slug("Fix the login bug!  (urgent) — ünïcode") == "fix-the-login-bug-urgent-n-code"
    assert len(slug("word " * 40)) <= 40 and not slug("word " * 40).endswith("-")
    assert branch_name("0123456789ab", "Write hello.py") == "aios/0123456789ab-write-hello-py"
    assert branch_name("0123456789ab", "!!!") == "aios/0123456789ab"


async def test_find_checkout(tmp_path: Path, repo: Path) -> None:
    assert await find_checkout(tmp_path) is None
    inner = await checkout_of(repo / "lib")
    assert inner.top == repo and inner.branch == "main"
    assert inner.head == sh_git(repo, "rev-parse", "HEAD")
    assert await find_checkout(repo / ".git") is None
    empty = await checkout_of(make_repo(tmp_path / "empty", commit=False))
    assert empty.head is None
    sh_git(repo, "checkout", "-q", "--detach")
    assert (await checkout_of(repo)).branch is None


async def test_a_worktree_is_made_outside_the_repository_on_its_own_branch(
    repo: Path, trees: Worktrees
) -> None:
    before = status(repo)
    made = await trees.create(await checkout_of(repo), "0123456789ab", "Write hello.py")
    path = Path(made.path)
    assert path.parent == trees.root.resolve() / "0123456789ab"
    assert (path.parent / MARKER).is_file() and not path.is_relative_to(repo)
    assert made.branch == "aios/0123456789ab-write-hello-py" and made.source == "main"
    assert made.base == sh_git(repo, "rev-parse", "HEAD") and made.repo == str(repo)
    assert (path / "lib" / "a.py").read_text() == "one\ntwo\nthree\n"
    assert sh_git(path, "rev-parse", "--abbrev-ref", "HEAD") == made.branch
    assert str(path) in worktree_paths(repo)
    assert status(repo) == before  # the user's checkout saw nothing
    assert agent_directory(made, str(repo / "lib")) == path / "lib"
    assert agent_directory(made, "/elsewhere") == path
    assert await trees.unchanged(made)


async def test_no_commits_no_worktree(tmp_path: Path, trees: Worktrees) -> None:
    empty = make_repo(tmp_path / "empty", commit=False)
    with pytest.raises(WorktreeError, match="no commits yet"):
        await trees.create(await checkout_of(empty), "0123456789ab", "x")
    assert list(trees.root.iterdir()) == []


async def test_a_root_inside_the_repository_is_refused(repo: Path) -> None:
    inside = Worktrees(repo / "data")
    with pytest.raises(WorktreeError, match="inside the repository"):
        await inside.create(await checkout_of(repo), "0123456789ab", "x")


async def test_what_a_worktree_run_changed(repo: Path, trees: Worktrees) -> None:
    made = await trees.create(await checkout_of(repo), "0123456789ab", "work")
    path = Path(made.path)
    (path / "hello.py").write_text("print('hi')\nprint('there')\n")
    (path / "lib" / "a.py").write_text("one\n2\nthree\nfour\n")
    (path / "old.txt").unlink()
    (path / "logo.bin").write_bytes(bytes(range(256)))
    assert not await trees.unchanged(made)
    recorded = await trees.record(path, made.base, made.base)
    assert recorded.changes.files == (
        FileChange("hello.py", ChangeStatus.ADDED, 2, 0),
        FileChange("lib/a.py", ChangeStatus.MODIFIED, 2, 1),
        FileChange("logo.bin", ChangeStatus.ADDED, None, None),
        FileChange("old.txt", ChangeStatus.DELETED, 0, 1),
    )
    assert (recorded.changes.file_count, recorded.changes.added) == (4, 4)
    assert recorded.changes.deleted == 2 and recorded.changes.commits == 0
    diff = recorded.diff.decode()
    assert "+print('there')" in diff and "-two" in diff and "Binary files" in diff
    # The agent's commits count, and their content is part of what changed.
    sh_git(path, "add", "-A")
    sh_git(path, "commit", "-q", "-m", "agent commit")
    again = await trees.record(path, made.base, made.base)
    assert again.changes.commits == 1 and again.changes.file_count == 4
    assert status(repo) == ""


async def test_a_plain_checkout_counts_only_what_changed_after_the_snapshot(
    repo: Path, trees: Worktrees
) -> None:
    # Already changed before the run: one edited file, one untracked file.
    (repo / "README.md").write_text("hello\nmine\n")
    (repo / "notes.txt").write_text("my notes\n")
    index = (repo / ".git" / "index").read_bytes()
    head = sh_git(repo, "rev-parse", "HEAD")
    start = await trees.snapshot(repo)
    assert (repo / ".git" / "index").read_bytes() == index  # the user's index is never touched
    # The run: one more line in the already-edited file, a new file.
    (repo / "README.md").write_text("hello\nmine\nagent\n")
    (repo / "new.py").write_text("x = 1\n")
    recorded = await trees.record(repo, start, head)
    assert recorded.changes.files == (
        FileChange("README.md", ChangeStatus.MODIFIED, 1, 0),
        FileChange("new.py", ChangeStatus.ADDED, 1, 0),
    )
    assert "+mine" not in recorded.diff.decode() and "+agent" in recorded.diff.decode()
    assert (repo / ".git" / "index").read_bytes() == index
    assert list((trees.root / wt_module.SCRATCH).iterdir()) == []


async def test_a_huge_diff_is_capped_with_a_marker(
    repo: Path, trees: Worktrees, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wt_module, "DIFF_CAP", 2000)
    made = await trees.create(await checkout_of(repo), "0123456789ab", "big")
    (Path(made.path) / "big.txt").write_text("".join(f"line {i}\n" for i in range(5000)))
    recorded = await trees.record(Path(made.path), made.base, made.base)
    assert recorded.changes.files[0].added == 5000  # the counts are whole
    head, _, tail = recorded.diff.partition(b"\n[aios: diff truncated at")
    assert len(head) == 2000 and tail.endswith(b"]\n")


async def test_an_unchanged_worktree_goes_with_its_branch(repo: Path, trees: Worktrees) -> None:
    made = await trees.create(await checkout_of(repo), "0123456789ab", "look")
    assert await trees.unchanged(made)
    assert not await trees.retire(made, discard=False, message="m")
    assert not Path(made.path).parent.exists()
    assert branches(repo) == ["main"] and worktree_paths(repo) == [str(repo)]


async def test_retiring_keeps_work_on_the_branch_and_discard_drops_it(
    repo: Path, trees: Worktrees
) -> None:
    kept = await trees.create(await checkout_of(repo), "aaaaaaaaaaaa", "keep")
    kept_path = Path(kept.path)
    (kept_path / "work.txt").write_text("precious\n")
    assert await trees.retire(kept, discard=False, message="aios: keep\n\nrun aaaaaaaaaaaa")
    assert not on_disk(kept_path)
    assert kept.branch in branches(repo)
    assert sh_git(repo, "show", f"{kept.branch}:work.txt") == "precious"
    assert sh_git(repo, "log", "-1", "--format=%s", kept.branch) == "aios: keep"

    dropped = await trees.create(await checkout_of(repo), "bbbbbbbbbbbb", "drop")
    (Path(dropped.path) / "work.txt").write_text("junk\n")
    sh_git(Path(dropped.path), "add", "-A")
    sh_git(Path(dropped.path), "commit", "-q", "-m", "junk")
    assert not await trees.retire(dropped, discard=True, message="m")
    assert dropped.branch not in branches(repo) and not Path(dropped.path).parent.exists()
    assert status(repo) == ""


async def test_merge_into_the_branch_it_came_from(repo: Path, trees: Worktrees) -> None:
    made = await trees.create(await checkout_of(repo), "0123456789ab", "add hello")
    (Path(made.path) / "hello.py").write_text("print('hi')\n")
    await trees.merge(made, "aios: add hello")
    assert (repo / "hello.py").read_text() == "print('hi')\n"
    assert status(repo) == "" and branches(repo) == ["main"]
    assert not Path(made.path).parent.exists()
    assert sh_git(repo, "log", "-1", "--format=%s") == "aios: add hello"


async def test_a_conflicting_merge_is_refused_with_gits_words_and_undone(
    repo: Path, trees: Worktrees
) -> None:
    made = await trees.create(await checkout_of(repo), "0123456789ab", "edit readme")
    made_path = Path(made.path)
    (made_path / "README.md").write_text("theirs\n")
    (repo / "README.md").write_text("ours\n")
    sh_git(repo, "commit", "-q", "-am", "ours")
    head = sh_git(repo, "rev-parse", "HEAD")
    with pytest.raises(WorktreeError, match=r"(?s)left as it was.*CONFLICT"):
        await trees.merge(made, "aios: edit readme")
    assert sh_git(repo, "rev-parse", "HEAD") == head and status(repo) == ""
    assert (repo / "README.md").read_text() == "ours\n"
    assert on_disk(made_path) and made.branch in branches(repo)  # still there to review


async def test_merge_needs_the_branch_it_came_from_checked_out(
    repo: Path, trees: Worktrees
) -> None:
    made = await trees.create(await checkout_of(repo), "0123456789ab", "x")
    sh_git(repo, "checkout", "-q", "-b", "other")
    with pytest.raises(WorktreeError, match="has branch other checked out, not main"):
        await trees.merge(made, "m")


async def test_two_worktrees_from_one_repository_at_once(repo: Path, trees: Worktrees) -> None:
    checkout = await checkout_of(repo)
    made = await asyncio.gather(
        *(trees.create(checkout, f"{i:012d}", f"task {i}") for i in range(4))
    )
    assert len({m.path for m in made}) == 4
    assert sorted(worktree_paths(repo)[1:]) == sorted(m.path for m in made)


async def test_keeping_work_without_an_identity_commits_as_aios(
    repo: Path, trees: Worktrees, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sh_git(repo, "config", "--unset", "user.name")
    sh_git(repo, "config", "--unset", "user.email")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    made = await trees.create(await checkout_of(repo), "0123456789ab", "x")
    (Path(made.path) / "w.txt").write_text("w\n")
    assert await trees.retire(made, discard=False, message="kept")
    assert sh_git(repo, "log", "-1", "--format=%an <%ae>", made.branch) == "AIOS <aios@localhost>"


async def test_leftovers_are_only_what_has_our_marker(repo: Path, trees: Worktrees) -> None:
    made = await trees.create(await checkout_of(repo), "0123456789ab", "x")
    (trees.root / "stranger").mkdir()
    (trees.root / "stranger" / "file").write_text("not ours")
    (trees.root / "forged").mkdir()
    (trees.root / "forged" / MARKER).write_text('{"run": "f", "path": "/etc", "branch": "main"}')
    found = await trees.leftovers()
    assert [(left.run_id, left.worktree.path) for left in found] == [("0123456789ab", made.path)]


async def test_git_that_hangs_is_killed_with_what_it_started(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No hook can hang AIOS's git any more (it runs none): a git that hangs stands in, with a
    # child of its own.
    pids = tmp_path / "pids"
    fake = tmp_path / "bin" / "git"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\nsleep 300 &\necho $$ $! > {pids}\nwait\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(GitTimeout, match="did not finish within 2 s"):
        await git("commit", "--allow-empty", "-m", "x", cwd=repo, timeout=2)
    if pids.exists():  # on a very slow machine it may not have got that far
        started = [int(pid) for pid in pids.read_text().split()]
        wait_until(lambda: pids_alive(started) == [], what="the fake git and its child to go")


async def test_git_errors_carry_gits_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(GitError, match="not a git repository"):
        await git("log", cwd=tmp_path)
    with pytest.raises(GitError, match="does not exist"):
        await git("status", cwd=tmp_path / "missing")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GitMissing):
        await git("status", cwd=tmp_path)
    # A daemon started from a git hook inherits GIT_DIR: it must not aim AIOS's git elsewhere.
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    assert "GIT_DIR" not in environment() and environment()["GIT_TERMINAL_PROMPT"] == "0"


async def test_a_checkout_that_hides_or_floods_untracked_files_is_compared_on_tracked_ones(
    repo: Path, trees: Worktrees, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await trees.untracked_allowed(repo)
    for i in range(4):
        (repo / f"junk{i}.bin").write_text(f"junk {i}\n")
    monkeypatch.setattr(wt_module, "MAX_UNTRACKED", 3)
    assert not await trees.untracked_allowed(repo)  # a home directory kept in git, say
    monkeypatch.setattr(wt_module, "MAX_UNTRACKED", 100)
    assert await trees.untracked_allowed(repo)
    sh_git(repo, "config", "status.showUntrackedFiles", "no")
    assert not await trees.untracked_allowed(repo)
    head = sh_git(repo, "rev-parse", "HEAD")
    start = await trees.snapshot(repo, untracked=False)
    (repo / "README.md").write_text("hello\nagent\n")
    (repo / "secret.txt").write_text("never copied into the object store\n")
    recorded = await trees.record(repo, start, head, untracked=False)
    assert [f.path for f in recorded.changes.files] == ["README.md"]
    blob = sh_git(repo, "hash-object", "secret.txt")  # computes, does not write
    missing = await git("cat-file", "-e", blob, cwd=repo, check=False)
    assert missing.code != 0
