"""AIOS's own git in a hostile repository runs none of the programs the repository names (issue
18, items 1, 2 and 7).

A planted repository (tests.gitrepo.plant) names a program through every vector git has: its
hooks, a file-system monitor, clean/smudge/process filters (one defined in an included file), a
text conversion and external diff programs, a merge driver, a pager, an editor, a credential
helper, an askpass and ssh program, a signing program. Each writes a marker file when it runs.
A control shows the vectors are live under a plain git; then every operation AIOS performs,
in-process through aios.worktrees and through the real daemon over HTTP, leaves no marker.
"""

from __future__ import annotations

import http.client
import json
import os
import pty
import re
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from aios.checkouts import find_checkout, uncommitted
from aios.git import GitError, UnsafeRepository, git, neutralised
from aios.worktrees import WorktreeError, Worktrees
from tests.gitrepo import HOOKS, branches, make_repo, markers_in, plant, status, tame
from tests.gitrepo import git as sh_git
from tests.helpers import (
    DaemonProcess,
    fake_agents,
    require,
    start_daemon,
    wait_until,
    write_config,
)
from tests.test_isolation import config, final, get, served, worktree_state
from tests.test_worktrees import trees

__all__ = ["config", "served", "trees"]  # fixtures

# The hooks an operation AIOS performs could start (githooks(5)); the others (e-mail, push,
# receive, p4) belong to commands AIOS never runs.
REACHABLE_HOOKS = (
    "post-checkout", "reference-transaction", "post-index-change", "pre-commit",
    "prepare-commit-msg", "commit-msg", "post-commit", "pre-merge-commit", "post-merge",
    "post-rewrite", "pre-auto-gc", "pre-rebase",
)  # fmt: skip
PROGRAMS = (
    "fsmonitor", "filter-clean", "filter-smudge", "filter-process", "include-clean",
    "include-smudge", "textconv", "diff-command", "diff-external", "merge-driver", "pager",
    "editor", "sequence-editor", "credential-helper", "askpass", "ssh-command", "gpg",
)  # fmt: skip


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    """A repository with every vector planted, and the folder its markers would appear in."""
    repo = make_repo(tmp_path / "src" / "app", {"README.md": "hello\n"})
    markers = tmp_path / "markers"
    plant(repo, markers)
    assert markers_in(markers) == []  # planting ran none of them
    return repo, markers


def touch_every_file(repo: Path) -> None:
    """New contents of the same size: git must read each file again (through its filters)."""
    for name in ("notes.txt", "data.proc", "conf.inc", "plain.ext"):
        path = repo / name
        path.write_text(path.read_text().upper())


# -- the control: the vectors are live ---------------------------------------------------------


def test_under_a_plain_git_every_planted_program_runs(hostile: tuple[Path, Path]) -> None:
    repo, markers = hostile

    def plain(*args: str, stdin: str = "", cwd: Path = repo) -> None:
        # Whatever git answers: what matters is which programs it started on the way.
        subprocess.run(
            ["git", *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip

    touch_every_file(repo)
    plain("status")  # fsmonitor, clean filters (the included one too), the process filter
    plain("diff", "--no-ext-diff")  # textconv
    plain("diff")  # the diff driver's command, and diff.external for the file without one
    plain("add", "-A")  # post-index-change
    plain("commit", "-m", "upper")  # commit hooks, the signing program, an automatic gc
    plain("commit", "--amend", "-m", "upper again")  # post-rewrite
    plain("commit", "--allow-empty")  # the editor
    plain("worktree", "add", "-b", "side", str(repo.parent / "side"))  # smudge, post-checkout
    side = repo.parent / "side"
    (side / "notes.txt").write_text("theirs\n")
    plain("commit", "-qam", "theirs", cwd=side)
    (repo / "notes.txt").write_text("ours\n")
    plain("commit", "-qam", "ours")
    plain("-c", "merge.verifySignatures=false", "merge", "--no-edit", "side")  # the driver
    plain("rebase", "-i", "HEAD~1")  # the sequence editor, pre-rebase
    plain("credential", "fill", stdin="protocol=https\nhost=example.invalid\n\n")  # helper
    plain("ls-remote", "ssh://example.invalid/x")  # the ssh command
    _with_a_terminal(repo, "log", "-1")  # the pager: only for a terminal
    ran = {line.split(":")[0] for line in markers_in(markers)}
    assert set(REACHABLE_HOOKS) <= set(HOOKS)
    expected = {*PROGRAMS, *(f"hook-{hook}" for hook in REACHABLE_HOOKS)}
    if git_version() >= (2, 54):  # hooks defined in configuration
        expected.add("config-hook")
    assert expected - ran == set()
    # The merge driver decided a conflict: the other side's work is gone, and git says merged.
    assert (repo / "notes.txt").read_text() == "ours\n"


def git_version() -> tuple[int, ...]:
    words = subprocess.run(["git", "--version"], capture_output=True, text=True, check=True)
    found = re.search(r"(\d+)\.(\d+)", words.stdout)
    assert found, words.stdout
    return int(found.group(1)), int(found.group(2))


def _with_a_terminal(repo: Path, *args: str) -> None:
    leader, follower = pty.openpty()
    try:
        subprocess.run(
            ["git", *args], cwd=repo, stdin=subprocess.DEVNULL, stdout=follower,
            stderr=follower, timeout=60, check=False,
        )  # fmt: skip
    finally:
        os.close(follower)
        os.close(leader)


# -- AIOS's git, in process ---------------------------------------------------------------------


async def test_aios_git_runs_nothing_the_repository_names(
    hostile: tuple[Path, Path], trees: Worktrees
) -> None:
    repo, markers = hostile
    touch_every_file(repo)
    # The note: what the launch form asks before anything is launched.
    checkout = await find_checkout(repo)
    assert checkout is not None and await uncommitted(repo) == 4
    # A plain run: the snapshots before and after, and what changed between them.
    assert await trees.untracked_allowed(repo)
    start = await trees.snapshot(repo)
    (repo / "new.txt").write_text("new\n")
    recorded = await trees.record(repo, start, checkout.head)
    assert [f.path for f in recorded.changes.files] == ["new.txt"]
    assert b"+new" in recorded.diff
    (repo / "new.txt").unlink()
    tame(repo, "checkout", ".")
    # A worktree run: made, changed, recorded, kept on its branch (the prune's way).
    made = await trees.create(checkout, "aaaaaaaaaaaa", "one")
    path = Path(made.path)
    assert (path / "notes.txt").read_text() == "one\ntwo\nthree\n"
    touch_every_file(path)
    assert not await trees.unchanged(made)
    recorded = await trees.record(path, made.base, made.base)
    assert recorded.changes.file_count == 4 and b"+ONE" in recorded.diff
    assert [left.run_id for left in await trees.leftovers()] == ["aaaaaaaaaaaa"]
    assert await trees.retire(made, discard=False, message="aios: kept")
    assert made.branch in branches(repo)
    # Merged (its work committed first), and discarded.
    merged = await trees.create(checkout, "bbbbbbbbbbbb", "two")
    (Path(merged.path) / "data.proc").write_text("merged\n")
    await trees.merge(merged, "aios: two")
    assert (repo / "data.proc").read_text() == "merged\n" and status(repo) == ""
    dropped = await trees.create(await _checkout(repo), "cccccccccccc", "three")
    (Path(dropped.path) / "junk.txt").write_text("junk\n")
    assert not await trees.retire(dropped, discard=True, message="")
    # Commands AIOS does not run today, through the same door: no editor, no transport.
    with pytest.raises(GitError):
        await git("commit", "--allow-empty", cwd=repo)  # the editor is ":": an empty message
    with pytest.raises(GitError, match="transport 'ssh' not allowed"):
        await git("ls-remote", "ssh://example.invalid/x", cwd=repo)
    await git("log", "-1", "-p", cwd=repo)
    assert markers_in(markers) == []


async def test_a_conflict_stays_a_conflict_whatever_the_merge_driver(
    hostile: tuple[Path, Path], trees: Worktrees
) -> None:
    repo, markers = hostile
    made = await trees.create(await _checkout(repo), "0123456789ab", "edit notes")
    (Path(made.path) / "notes.txt").write_text("theirs\n")
    (repo / "notes.txt").write_text("ours\n")
    tame(repo, "commit", "-qam", "ours")
    head = sh_git(repo, "rev-parse", "HEAD")
    with pytest.raises(WorktreeError, match=r"(?s)left as it was.*CONFLICT.*notes\.txt") as caught:
        await trees.merge(made, "aios: edit notes")
    assert "AIOS runs no merge driver of the repository's (merge.evil)" in str(caught.value)
    assert sh_git(repo, "rev-parse", "HEAD") == head and status(repo) == ""
    assert (repo / "notes.txt").read_text() == "ours\n"
    assert made.branch in branches(repo) and on_disk(made.path)  # still there to review
    assert markers_in(markers) == []


async def test_a_conflict_free_file_of_the_driver_merges_as_git_would(
    hostile: tuple[Path, Path], trees: Worktrees
) -> None:
    """Only a file both sides changed goes to a merge driver: one side's change merges."""
    repo, markers = hostile
    made = await trees.create(await _checkout(repo), "0123456789ab", "edit notes")
    (Path(made.path) / "notes.txt").write_text("one\ntwo\nthree\nfour\n")
    (repo / "README.md").write_text("hello\nours\n")
    tame(repo, "commit", "-qam", "ours")
    await trees.merge(made, "aios: edit notes")
    assert (repo / "notes.txt").read_text() == "one\ntwo\nthree\nfour\n"
    assert markers_in(markers) == []


def test_every_driver_name_is_neutralised_even_odd_ones() -> None:
    settings = neutralised(
        ["filter.lfs.clean", "filter.a.b=c.smudge", "merge.npm.driver", "hook.lint.command",
         "filter.lfs.process", "diff.x.textconv"]
    )  # fmt: skip
    assert ("filter.lfs.clean", "") in settings and ("filter.lfs.required", "false") in settings
    assert ("filter.a.b=c.smudge", "") in settings and ("merge.npm.driver", "false") in settings
    assert ("hook.lint.enabled", "false") in settings
    assert len(settings) == len(set(settings))
    assert not [key for key, _ in settings if key.startswith("diff.")]  # options cover those


async def test_git_is_run_with_its_command_first(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="command comes first"):
        await git("-c", "core.hooksPath=.githooks", "status", cwd=tmp_path)


def test_aios_runs_git_only_through_aios_git() -> None:
    """One door: no other module starts git (it would miss the settings above)."""
    package = Path(__file__).resolve().parent.parent / "aios"
    starts = re.compile(r"""(create_subprocess_exec|Popen|subprocess\.run)\(\s*["'\[]*git\b""")
    found = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name != "git.py" and starts.search(path.read_text())
    ]
    assert found == []


def on_disk(path: str) -> bool:
    return Path(path).is_dir()


async def _checkout(repo: Path) -> Any:
    found = await find_checkout(repo)
    assert found is not None
    return found


# -- another user's repository (git's ownership check) -------------------------------------------


@pytest.fixture
def foreign(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository owned by another user: git refuses it to root (no safe.directory)."""
    require(os.geteuid() == 0, "only root can give a repository to another user")
    repo = make_repo(tmp_path / "theirs" / "app")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "empty-gitconfig"))
    monkeypatch.delenv("SUDO_UID", raising=False)  # git trusts the sudo caller's repositories
    for path in (repo, *repo.rglob("*")):
        os.chown(path, 65534, 65534, follow_symlinks=False)
    return repo


async def test_another_users_repository_says_so_and_how_to_allow_it(
    foreign: Path, trees: Worktrees, tmp_path: Path
) -> None:
    with pytest.raises(UnsafeRepository) as caught:
        await find_checkout(foreign)
    message = str(caught.value)
    assert "belongs to another user" in message and "safe.directory" in message
    assert f"git config --global --add safe.directory {foreign}" in message
    assert "not in a git repository" not in message
    assert not (tmp_path / "empty-gitconfig").exists()  # AIOS changed no git config


# -- through the daemon, over HTTP --------------------------------------------------------------


def request(
    d: DaemonProcess, method: str, path: str, body: str | None = None, **headers: str
) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", errors="replace")
    finally:
        conn.close()


def session(d: DaemonProcess) -> tuple[str, str]:
    """A browser's session: its cookie, and the CSRF value its pages carry."""
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
    conn.request("GET", f"/login?token={d.info.token}")
    cookie = (conn.getresponse().getheader("Set-Cookie") or "").split(";")[0]
    conn.close()
    _, page = request(d, "GET", "/", Cookie=cookie)
    found = re.search(r'name="aios-csrf" content="([^"]+)"', page)
    assert cookie and found
    return cookie, found.group(1)


def note(d: DaemonProcess, cwd: Path, **headers: str) -> tuple[int, str]:
    form = f"agent=agent&cwd={cwd}&worktree=false&worktree=true"
    return request(
        d, "POST", "/ui/worktree-note", form,
        **{"Content-Type": "application/x-www-form-urlencoded", **headers},
    )  # fmt: skip


def api(d: DaemonProcess, method: str, path: str, body: object = None) -> Any:
    return d.client.request(method, path, body)


def launch(d: DaemonProcess, repo: Path, prompt: str, worktree: bool = True) -> dict[str, Any]:
    body = {"agent": "agent", "prompt": prompt, "cwd": str(repo), "worktree": worktree}
    run: dict[str, Any] = api(d, "POST", "/api/runs", body)
    return run


@pytest.mark.daemon
def test_through_the_daemon_no_planted_program_runs(
    served: DaemonProcess, hostile: tuple[Path, Path]
) -> None:
    repo, markers = hostile
    (repo / "conf.inc").write_text("edited before the run\n")  # dirty, as a user's may be
    cookie, csrf = session(served)
    origin = f"http://127.0.0.1:{served.port}"
    code, text = note(
        served, repo, Cookie=cookie, Origin=origin, **{"X-AIOS-CSRF": csrf, "Sec-Fetch-Site":
        "same-origin"}
    )  # fmt: skip
    assert code == 200 and "has uncommitted changes (1 file)" in text, text
    # A worktree run, its changes recorded and served, then merged.
    merged = final(served, launch(served, repo, "write data.proc merged; write new.txt hi")["id"])
    assert merged["state"] == "succeeded" and merged["changes"]["file_count"] == 2
    diff = served.client.request_bytes("GET", f"/api/runs/{merged['id']}/diff").decode()
    assert "+merged" in diff
    assert (
        api(served, "POST", f"/api/runs/{merged['id']}/worktree/merge")["worktree"]["state"]
        == "merged"
    )
    assert (repo / "data.proc").read_text() == "merged\n"
    # A conflict stays one: the repository's merge driver would have "merged" it.
    clash = final(served, launch(served, repo, "write notes.txt theirs")["id"])
    (repo / "notes.txt").write_text("ours\n")
    tame(repo, "commit", "-qm", "ours", "--", "notes.txt")
    head = sh_git(repo, "rev-parse", "HEAD")
    code, text = request(
        served, "POST", f"/api/runs/{clash['id']}/worktree/merge",
        Authorization=f"Bearer {served.info.token}",
    )  # fmt: skip
    assert code == 409 and "CONFLICT" in text and "notes.txt" in text, text
    assert sh_git(repo, "rev-parse", "HEAD") == head
    assert get(served, clash["id"])["worktree"]["state"] == "open"
    # Discarded; deleted with its work kept on its branch; a run in the checkout itself.
    api(served, "POST", f"/api/runs/{clash['id']}/worktree/discard")
    kept = final(served, launch(served, repo, "write kept.txt kept")["id"])
    api(served, "DELETE", f"/api/runs/{kept['id']}")
    assert sh_git(repo, "show", f"{kept['worktree']['branch']}:kept.txt") == "kept"
    plain = final(served, launch(served, repo, "write plain.txt plain", worktree=False)["id"])
    assert [f["path"] for f in plain["changes"]["files"]] == ["plain.txt"]
    # An unchanged worktree goes by itself.
    looked = launch(served, repo, "look around")
    worktree_state(served, looked["id"], "removed")
    assert markers_in(markers) == []


@pytest.mark.daemon
def test_start_up_recovery_and_pruning_run_none_of_them(
    home: Path, config: str, hostile: tuple[Path, Path]
) -> None:
    repo, markers = hostile
    write_config(home, config)
    d = start_daemon(home)
    try:
        known = launch(d, repo, "write kept.txt kept; hold")
        orphan = launch(d, repo, "write lost.txt lost; hold")
        for run in (known, orphan):
            wait_until(
                lambda run=run: (  # type: ignore[misc]
                    "holding"
                    in d.client.request_bytes("GET", f"/api/runs/{run['id']}/log").decode()
                ),
                what="the agent to hold",
            )
        os.kill(d.proc.pid, signal.SIGKILL)
        d.finish()
    finally:
        d.close()
    # A run AIOS no longer knows: its worktree is pruned at the next start, its work committed.
    with sqlite3.connect(home / "data" / "history.sqlite3") as db:
        db.execute("DELETE FROM runs WHERE id = ?", (orphan["id"],))
    db.close()
    again = start_daemon(home)
    try:
        orphan_path = Path(orphan["worktree"]["path"])
        wait_until(lambda: not orphan_path.parent.exists(), what="the orphan worktree to go")
        assert sh_git(repo, "show", f"{orphan['worktree']['branch']}:lost.txt") == "lost"
        seen = wait_until(
            lambda: (run := get(again, known["id"]))["changes"] and run, what="known's changes"
        )
        assert [f["path"] for f in seen["changes"]["files"]] == ["kept.txt"]
    finally:
        again.close()
    assert markers_in(markers) == []


@pytest.mark.daemon
@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://127.0.0.1:1"},  # a page on another local port: same-site
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},
        {},  # no CSRF header: not the dashboard's own request
    ],
    ids=["other-port", "same-site", "cross-site", "null-origin", "no-csrf"],
)
def test_another_site_cannot_make_aios_run_git(
    served: DaemonProcess, hostile: tuple[Path, Path], headers: dict[str, str]
) -> None:
    repo, markers = hostile
    touch_every_file(repo)  # so that a status would read every file through its filters
    cookie, _ = session(served)
    code, text = note(served, repo, Cookie=cookie, **headers)
    assert code == 403, text
    # The old way in, a GET (which a page can make with an <img>), is no route at all.
    code, _ = request(
        served, "GET", f"/ui/worktree-note?cwd={repo}&worktree=true", Cookie=cookie, **headers
    )
    assert code == 405
    assert markers_in(markers) == []


@pytest.mark.daemon
def test_the_daemon_says_when_a_repository_belongs_to_another_user(
    home: Path, config: str, tmp_path: Path, foreign: Path
) -> None:
    write_config(home, config)
    d = start_daemon(home)
    try:
        code, text = request(
            d, "POST", "/api/runs",
            f'{{"agent": "agent", "prompt": "x", "cwd": "{foreign}", "worktree": true}}',
            Authorization=f"Bearer {d.info.token}", **{"Content-Type": "application/json"},
        )  # fmt: skip
        assert code == 422, text
        assert f"git config --global --add safe.directory {foreign}" in text
        cookie, csrf = session(d)
        code, text = note(d, foreign, Cookie=cookie, **{"X-AIOS-CSRF": csrf})
        assert code == 200 and "belongs to another user" in text, text
    finally:
        d.close()
    assert not (tmp_path / "empty-gitconfig").exists()


@pytest.mark.daemon
def test_a_get_another_site_sends_starts_no_program(home: Path, tmp_path: Path) -> None:
    """The pages and /api/agents tell each agent's login (the CLI's own status command): a GET
    that a page of another origin sends starts no check, it hears what is known."""
    log = tmp_path / "argv.jsonl"
    path = fake_agents(tmp_path / "bin", "claude")
    env = {"PATH": f"{path}{os.pathsep}{os.environ['PATH']}", "AIOS_FAKE_ARGV_LOG": str(log)}
    d = start_daemon(home, **env)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
        conn.request("GET", f"/login?token={d.info.token}")
        cookie = (conn.getresponse().getheader("Set-Cookie") or "").split(";")[0]
        conn.close()
        for headers in (
            {"Sec-Fetch-Site": "same-site"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Origin": "http://127.0.0.1:1"},
        ):
            code, page = request(d, "GET", "/", Cookie=cookie, **headers)
            assert code == 200 and "claude" in page.lower()
            code, text = request(d, "GET", "/api/agents", Cookie=cookie, **headers)
            claude = next(a for a in json.loads(text)["agents"] if a["name"] == "claude")
            assert code == 200 and claude["auth"] == "unknown"
        assert not log.exists()
        # The same from the CLI (no browser's headers) checks.
        d.client.request("GET", "/api/agents")
        wait_until(lambda: log.exists() and '"auth"' in log.read_text(), what="a login check")
    finally:
        d.close()


async def test_a_driver_name_that_cannot_be_switched_off_stops_git(
    hostile: tuple[Path, Path],
) -> None:
    repo, markers = hostile
    planted = repo / ".git" / "planted" / "filter-clean"
    sh_git(repo, "config", "filter.a=b.clean", str(planted))
    (repo / ".gitattributes").write_text("* filter=a=b\n")
    touch_every_file(repo)
    with pytest.raises(GitError, match="cannot switch off"):
        await uncommitted(repo)
    assert markers_in(markers) == []
