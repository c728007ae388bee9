"""Worktrees and changes with a real daemon, real git in temporary repositories, and agents that
write files (issue 11).

The agent is a small script reading its prompt as steps separated by ";": ``write NAME WORDS``
writes a file, ``append NAME WORDS`` adds a line, ``commit WORDS`` commits everything,
``wait PATH`` waits for a file to appear (so two runs are provably live at once), ``hold``
waits until it is stopped.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aios.client import ApiCallError
from aios.formatting import MINUS
from tests.gitrepo import branches, make_repo, status, worktree_paths
from tests.gitrepo import git as sh_git
from tests.helpers import (
    DaemonProcess,
    agent_script,
    run_cli,
    start_daemon,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.daemon

FINAL = {"succeeded", "failed", "stopped", "interrupted"}

AGENT = """
import os, pathlib, subprocess, sys, time
print("cwd", os.getcwd(), flush=True)
for step in sys.argv[1].split(";"):
    words = step.split()
    if not words:
        continue
    if words[0] == "write":
        path = pathlib.Path(words[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(" ".join(words[2:]) + "\\n")
    elif words[0] == "append":
        with open(words[1], "a") as f:
            f.write(" ".join(words[2:]) + "\\n")
    elif words[0] == "commit":
        ident = ["-c", "user.name=Agent", "-c", "user.email=agent@example.com"]
        subprocess.run(["git", "add", "-A"], check=True)
        subprocess.run(["git", *ident, "commit", "-qm", " ".join(words[1:])], check=True)
    elif words[0] == "wait":
        pathlib.Path(words[1] + ".started").touch()
        while not os.path.exists(words[1]):
            time.sleep(0.02)
    elif words[0] == "hold":
        print("holding", flush=True)
        time.sleep(300)
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "src" / "app", {"README.md": "hello\n", "lib/a.py": "one\n"})


@pytest.fixture
def config(home: Path, tmp_path: Path) -> str:
    scripts = tmp_path / "agents"
    scripts.mkdir()
    command = agent_script(scripts, "agent", AGENT)
    return (
        f"[agents.agent]\ncommand = {command}\nstop_timeout = 2\n"
        f"[agents.isolated]\ncommand = {command}\nworktree = true\n"
    )


@pytest.fixture
def served(home: Path, config: str) -> Iterator[DaemonProcess]:
    write_config(home, config)
    d = start_daemon(home)
    try:
        yield d
    finally:
        d.close()


def launch(d: DaemonProcess, repo: Path, prompt: str, **extra: Any) -> dict[str, Any]:
    body = {"agent": "agent", "prompt": prompt, "cwd": str(repo), "worktree": True, **extra}
    run = d.client.request("POST", "/api/runs", body)
    assert isinstance(run, dict)
    return run


def get(d: DaemonProcess, run_id: str) -> dict[str, Any]:
    run = d.client.request("GET", f"/api/runs/{run_id}")
    assert isinstance(run, dict)
    return run


def final(d: DaemonProcess, run_id: str) -> dict[str, Any]:
    result: dict[str, Any] = wait_until(
        lambda: (run := get(d, run_id))["state"] in FINAL and run, 30, f"run {run_id} to end"
    )
    return result


def worktree_state(d: DaemonProcess, run_id: str, state: str) -> dict[str, Any]:
    result: dict[str, Any] = wait_until(
        lambda: (run := get(d, run_id))["worktree"]["state"] == state and run,
        30,
        f"run {run_id}'s worktree to be {state}",
    )
    return result


def refused(call: Any, status: int) -> str:
    with pytest.raises(ApiCallError) as caught:
        call()
    assert caught.value.status == status, caught.value.message
    return caught.value.message


def test_a_worktree_run_records_what_its_agent_wrote_and_serves_the_diff(
    served: DaemonProcess, repo: Path
) -> None:
    head = sh_git(repo, "rev-parse", "HEAD")
    run = launch(served, repo / "lib", "write hello.py print(1); append a.py two")
    tree = run["worktree"]
    assert tree["branch"] == f"aios/{run['id']}-write-hello-py-print-1-append-a-py-two"
    assert (tree["base"], tree["source"], tree["repo"], tree["state"]) == (
        head,
        "main",
        str(repo),
        "open",
    )
    path = Path(tree["path"])
    assert path.parent == served.home / "data" / "worktrees" / run["id"]
    assert not path.is_relative_to(repo)
    done = final(served, run["id"])
    assert done["state"] == "succeeded" and done["cwd"] == str(repo / "lib")
    # The agent started in the same place inside the worktree as it was asked in the checkout.
    log = served.client.request_bytes("GET", f"/api/runs/{run['id']}/log").decode()
    assert f"cwd {path / 'lib'}" in log
    assert done["changes"] == {
        "files": [
            {"path": "lib/a.py", "status": "modified", "added": 1, "deleted": 0},
            {"path": "lib/hello.py", "status": "added", "added": 1, "deleted": 0},
        ],
        "commits": 0,
        "file_count": 2,
        "added": 2,
        "deleted": 0,
    }
    diff = served.client.request_bytes("GET", f"/api/runs/{run['id']}/diff").decode()
    assert "+++ b/lib/hello.py" in diff and "+print(1)" in diff and "+two" in diff
    # The user's checkout saw none of it; the worktree stays for review.
    assert status(repo) == "" and not (repo / "lib" / "hello.py").exists()
    assert worktree_state(served, run["id"], "open")["worktree"]["path"] == str(path)
    assert (path / "lib" / "hello.py").is_file() and tree["branch"] in branches(repo)


def test_the_diff_has_the_right_type_and_errors(served: DaemonProcess, repo: Path) -> None:
    import http.client

    run = final(served, launch(served, repo, "write x.txt x")["id"])
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    token = served.info.token
    conn.request("GET", f"/api/runs/{run['id']}/diff", headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Content-Type", "").startswith(
        "text/x-diff"
    )
    conn.close()
    plain = served.client.request(
        "POST",
        "/api/runs",
        {"agent": "agent", "prompt": "write y y", "cwd": str(repo.parent), "worktree": False},
    )
    assert final(served, plain["id"])["changes"] is None  # not a git directory
    message = refused(lambda: served.client.request("GET", f"/api/runs/{plain['id']}/diff"), 404)
    assert "not in a git repository" in message
    held = launch(served, repo, "hold")
    wait_until(lambda: get(served, held["id"])["state"] == "running", what="the run to start")
    message = refused(lambda: served.client.request("GET", f"/api/runs/{held['id']}/diff"), 409)
    assert "still live" in message
    refused(lambda: served.client.request("POST", f"/api/runs/{held['id']}/worktree/merge"), 409)
    served.client.request("POST", f"/api/runs/{held['id']}/stop")


def test_an_unchanged_worktree_goes_with_its_branch(served: DaemonProcess, repo: Path) -> None:
    run = launch(served, repo, "look around")
    path = Path(run["worktree"]["path"])
    assert final(served, run["id"])["changes"]["file_count"] == 0
    done = worktree_state(served, run["id"], "removed")
    assert not path.parent.exists()
    assert branches(repo) == ["main"] and worktree_paths(repo) == [str(repo)]
    assert done["changes"] == {
        "files": [],
        "commits": 0,
        "file_count": 0,
        "added": 0,
        "deleted": 0,
    }


def test_merge_discard_and_a_refused_merge(served: DaemonProcess, repo: Path) -> None:
    merged = final(served, launch(served, repo, "write feature.py x = 1; commit add feature")["id"])
    assert merged["changes"]["commits"] == 1
    answer = served.client.request("POST", f"/api/runs/{merged['id']}/worktree/merge")
    assert answer["worktree"]["state"] == "merged"
    assert (repo / "feature.py").read_text() == "x = 1\n" and status(repo) == ""
    assert branches(repo) == ["main"] and not Path(merged["worktree"]["path"]).exists()
    again = refused(
        lambda: served.client.request("POST", f"/api/runs/{merged['id']}/worktree/merge"), 409
    )
    assert "merged already" in again

    dropped = final(served, launch(served, repo, "write junk.txt junk")["id"])
    answer = served.client.request("POST", f"/api/runs/{dropped['id']}/worktree/discard")
    assert answer["worktree"]["state"] == "discarded"
    assert branches(repo) == ["main"] and not Path(dropped["worktree"]["path"]).exists()
    assert not (repo / "junk.txt").exists()

    clash = final(served, launch(served, repo, "write README.md theirs")["id"])
    (repo / "README.md").write_text("ours\n")
    sh_git(repo, "commit", "-qam", "ours")
    head = sh_git(repo, "rev-parse", "HEAD")
    message = refused(
        lambda: served.client.request("POST", f"/api/runs/{clash['id']}/worktree/merge"), 409
    )
    assert "CONFLICT" in message and "README.md" in message
    assert sh_git(repo, "rev-parse", "HEAD") == head and status(repo) == ""
    assert get(served, clash["id"])["worktree"]["state"] == "open"
    assert Path(clash["worktree"]["path"]).is_dir()


def test_isolation_needs_a_repository_with_a_commit(
    served: DaemonProcess, repo: Path, tmp_path: Path
) -> None:
    empty = make_repo(tmp_path / "empty", commit=False)
    message = refused(lambda: launch(served, empty, "write x x"), 422)
    assert "has no commits yet" in message
    plain = tmp_path / "plain"
    plain.mkdir()
    message = refused(lambda: launch(served, plain, "write x x"), 422)
    assert "is not in a git repository" in message
    message = refused(lambda: launch(served, repo, "x", worktree="yes"), 422)
    assert message == "field 'worktree' must be true or false, not \"yes\""
    # The agent whose runs are isolated by default: the same refusal, unless the launch says no.
    message = refused(
        lambda: launch(served, plain, "write x x", agent="isolated", worktree=None), 422
    )
    assert "is not in a git repository" in message
    run = launch(served, plain, "write x x", agent="isolated", worktree=False)
    assert run["worktree"] is None
    isolated = launch(served, repo, "look", agent="isolated", worktree=None)
    assert isolated["worktree"]["state"] == "open"
    assert served.client.request("GET", "/api/runs?limit=500") and not list(
        (served.home / "data" / "worktrees").glob("*/empty")
    )


def test_two_worktree_runs_from_one_repository_at_once(
    served: DaemonProcess, repo: Path, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    first = launch(served, repo, f"write one.txt 1; wait {go}")
    second = launch(served, repo, f"write two.txt 2; wait {go}")
    # Both agents are at their "wait" at the same time: both live, each in its own worktree.
    wait_until((tmp_path / "go.started").exists, what="an agent to wait")
    wait_until(
        lambda: all(get(served, r["id"])["state"] == "running" for r in (first, second)),
        what="both runs to be running",
    )
    assert first["worktree"]["path"] != second["worktree"]["path"]
    go.touch()
    one, two = final(served, first["id"]), final(served, second["id"])
    assert [f["path"] for f in one["changes"]["files"]] == ["one.txt"]
    assert [f["path"] for f in two["changes"]["files"]] == ["two.txt"]
    assert not (Path(one["worktree"]["path"]) / "two.txt").exists()
    assert status(repo) == ""


def test_a_plain_checkout_records_what_changed_since_the_run_started(
    served: DaemonProcess, repo: Path
) -> None:
    (repo / "README.md").write_text("hello\nmine\n")  # the user's own change, before the run
    run = launch(served, repo, "append README.md agent; write new.py y = 2", worktree=False)
    assert run["worktree"] is None
    done = final(served, run["id"])
    assert done["changes"]["files"] == [
        {"path": "README.md", "status": "modified", "added": 1, "deleted": 0},
        {"path": "new.py", "status": "added", "added": 1, "deleted": 0},
    ]
    diff = served.client.request_bytes("GET", f"/api/runs/{run['id']}/diff").decode()
    assert "+agent" in diff and "+mine" not in diff
    assert (repo / "new.py").exists()  # it worked in the checkout itself


def test_deleting_a_run_keeps_a_branch_with_work_unless_told_to_discard(
    served: DaemonProcess, repo: Path
) -> None:
    kept = final(served, launch(served, repo, "write keep.txt precious")["id"])
    served.client.request("DELETE", f"/api/runs/{kept['id']}")
    assert not Path(kept["worktree"]["path"]).parent.exists()
    branch = kept["worktree"]["branch"]
    assert sh_git(repo, "show", f"{branch}:keep.txt") == "precious"
    dropped = final(served, launch(served, repo, "write drop.txt x; commit drop")["id"])
    served.client.request("DELETE", f"/api/runs/{dropped['id']}?discard=true")
    assert not Path(dropped["worktree"]["path"]).parent.exists()
    assert sorted(branches(repo)) == sorted(["main", branch])
    message = refused(lambda: served.client.request("DELETE", "/api/runs/nope?discard=maybe"), 404)
    assert "no run matches" in message


def test_pruning_history_removes_a_worktree_and_keeps_its_work(
    home: Path, config: str, repo: Path
) -> None:
    write_config(home, "retention = 10\n" + config)
    d = start_daemon(home)
    try:
        old = final(d, launch(d, repo, "write old.txt old")["id"])
        for i in range(10):
            final(d, launch(d, repo, f"number {i}", worktree=False)["id"])
        wait_until(lambda: not Path(old["worktree"]["path"]).exists(), what="the pruned worktree")
        assert sh_git(repo, "show", f"{old['worktree']['branch']}:old.txt") == "old"
    finally:
        d.close()


def test_open_the_folder_through_the_desktop(
    home: Path, config: str, repo: Path, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    opened = tmp_path / "opened.txt"
    opener = bin_dir / "xdg-open"
    opener.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {opened}\n')
    opener.chmod(0o755)
    write_config(home, config)
    d = start_daemon(home, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", DISPLAY=":99")
    try:
        run = final(d, launch(d, repo, "write a.txt a")["id"])
        answer = d.client.request("POST", f"/api/runs/{run['id']}/worktree/open")
        assert answer == {"path": run["worktree"]["path"]}
        assert opened.read_text() == run["worktree"]["path"] + "\n"
        plain = final(d, launch(d, repo, "x", worktree=False)["id"])
        message = refused(
            lambda: d.client.request("POST", f"/api/runs/{plain['id']}/worktree/open"), 409
        )
        assert "has no worktree" in message
    finally:
        d.close()


def test_the_cli_isolates_with_worktree(served: DaemonProcess, repo: Path) -> None:
    done = run_cli(
        served.home, "run", "agent", "--worktree", "--wait", "--", "write cli.txt from the cli",
        cwd=str(repo),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.splitlines()[0]
    run = get(served, run_id)
    assert run["worktree"]["state"] == "open" and not (repo / "cli.txt").exists()
    assert f"1 file +1 {MINUS}0" in done.stderr and run["worktree"]["path"] in done.stderr
    off = run_cli(served.home, "run", "isolated", "--no-worktree", "--", "x", cwd=str(repo))
    assert off.returncode == 0, off.stderr
    assert get(served, off.stdout.strip())["worktree"] is None


def test_after_a_sigkilled_daemon_start_up_prunes_only_aioss_own_worktrees(
    home: Path, config: str, repo: Path, tmp_path: Path
) -> None:
    write_config(home, config)
    d = start_daemon(home)
    try:
        known = launch(d, repo, "write kept.txt kept; hold")
        orphan = launch(d, repo, "write lost.txt lost; hold")
        idle = launch(d, repo, "hold")
        for run in (known, orphan, idle):
            wait_until(
                lambda run=run: (
                    "holding"  # type: ignore[misc]
                    in d.client.request_bytes("GET", f"/api/runs/{run['id']}/log").decode()
                ),
                what="the agent to hold",
            )
        os.kill(d.proc.pid, signal.SIGKILL)
        d.finish()
    finally:
        d.close()
    # A crash between making a worktree and recording its run leaves one AIOS no longer knows.
    with sqlite3.connect(home / "data" / "history.sqlite3") as db:
        db.execute("DELETE FROM runs WHERE id = ?", (orphan["id"],))
    db.close()
    # What is not AIOS's: the user's own worktree, a branch under aios/ it did not make, a folder
    # without a marker in AIOS's own worktrees directory.
    theirs = tmp_path / "their-worktree"
    sh_git(repo, "worktree", "add", "-q", "-b", "feature", str(theirs))
    sh_git(repo, "branch", "aios/mine")
    stranger = home / "data" / "worktrees" / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("not AIOS's\n")

    again = start_daemon(home)
    try:
        orphan_path = Path(orphan["worktree"]["path"])
        wait_until(lambda: not orphan_path.parent.exists(), what="the orphan worktree to go")
        # Its work is kept on its branch; the interrupted run it knows keeps its worktree, with
        # the changes it made recorded.
        assert sh_git(repo, "show", f"{orphan['worktree']['branch']}:lost.txt") == "lost"
        seen = wait_until(
            lambda: (run := get(again, known["id"]))["changes"] and run, what="known's changes"
        )
        assert seen["state"] == "interrupted" and seen["worktree"]["state"] == "open"
        assert [f["path"] for f in seen["changes"]["files"]] == ["kept.txt"]
        assert Path(known["worktree"]["path"], "kept.txt").is_file()
        assert theirs.is_dir() and str(theirs) in worktree_paths(repo)
        assert {"feature", "aios/mine", known["worktree"]["branch"]} <= set(branches(repo))
        assert (stranger / "notes.txt").read_text() == "not AIOS's\n"
        assert str(orphan_path) not in worktree_paths(repo)
        # The interrupted run that changed nothing: its worktree goes, as at any run's end.
        assert worktree_state(again, idle["id"], "removed")["state"] == "interrupted"
        assert idle["worktree"]["branch"] not in branches(repo)
    finally:
        again.close()


def test_a_shutdown_records_changes_and_removes_unchanged_worktrees_before_exiting(
    home: Path, config: str, repo: Path
) -> None:
    write_config(home, config)
    d = start_daemon(home)
    try:
        busy = launch(d, repo, "write done.txt done; hold")
        idle = launch(d, repo, "hold")
        for run in (busy, idle):
            wait_until(
                lambda run=run: (
                    "holding"  # type: ignore[misc]
                    in d.client.request_bytes("GET", f"/api/runs/{run['id']}/log").decode()
                ),
                what="the agent to hold",
            )
        assert d.terminate() == 0
    finally:
        d.close()
    assert not Path(idle["worktree"]["path"]).exists()
    assert Path(busy["worktree"]["path"], "done.txt").is_file()
    with sqlite3.connect(home / "data" / "history.sqlite3") as db:
        rows = dict(db.execute("SELECT id, worktree FROM runs").fetchall())
        changes = dict(db.execute("SELECT id, changes FROM runs").fetchall())
    db.close()
    assert json.loads(rows[idle["id"]])["state"] == "removed"
    assert json.loads(rows[busy["id"]])["state"] == "open"
    assert json.loads(changes[busy["id"]])["file_count"] == 1


def test_the_runs_json_carries_worktree_and_changes_in_ps(
    served: DaemonProcess, repo: Path
) -> None:
    run = final(served, launch(served, repo, "write a.txt a")["id"])
    listed = run_cli(served.home, "ps", "--all", "--json")
    assert listed.returncode == 0
    (entry,) = [r for r in json.loads(listed.stdout) if r["id"] == run["id"]]
    assert entry["worktree"]["branch"] == run["worktree"]["branch"]
    assert entry["changes"]["file_count"] == 1
    assert sys.executable  # the agent ran with this Python


def test_without_git_runs_work_and_a_worktree_is_refused_saying_why(
    home: Path, config: str, repo: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "no-git-here"
    empty.mkdir()
    write_config(home, config)
    d = start_daemon(home, PATH=str(empty))
    try:
        message = refused(lambda: launch(d, repo, "write x x"), 422)
        assert "git is not installed" in message
        done = final(d, launch(d, repo, "write x.txt x", worktree=False)["id"])
        assert done["state"] == "succeeded" and done["changes"] is None
    finally:
        d.close()


def test_a_continued_conversation_works_on_in_its_parents_worktree(
    home: Path, tmp_path: Path
) -> None:
    """``aios continue`` (issue 10) with a worktree: the session resumes where it ran."""
    from tests.fakeagents import Fakes

    fakes = Fakes(home, tmp_path)
    repo = make_repo(fakes.workdir / "app")
    # Claude (the fake CLI) behind a wrapper that notes each turn's prompt in the directory.
    wrapper = 'printf "%s\\n" "$AIOS_PROMPT" >> turns.txt; exec claude "$@"'
    command = ["sh", "-c", wrapper, "claude", "-p", "--output-format", "stream-json"]
    command += ["--verbose", "{permission}", "{resume}", "--", "{prompt}"]
    env = {"AIOS_FAKE_SCENARIO": "claude-success", "AIOS_FAKE_ARGV_LOG": str(fakes.argv_log)}
    inline = ", ".join(f"{k} = {json.dumps(v)}" for k, v in env.items())
    fakes.configure(
        f'[agents.wrapped]\ncommand = {json.dumps(command)}\nformat = "claude-stream-json"\n'
        f"env = {{ {inline} }}\n"
    )
    fakes.start()
    try:
        client = fakes.d.client
        body = {"agent": "wrapped", "prompt": "first", "cwd": str(repo), "worktree": True}
        first = final(fakes.d, client.request("POST", "/api/runs", body)["id"])
        assert first["state"] == "succeeded" and first["session_id"]
        tree = first["worktree"]
        assert first["changes"]["files"][0]["path"] == "turns.txt"
        second = client.request("POST", f"/api/runs/{first['id']}/continue", {"prompt": "second"})
        assert second["worktree"] == tree and second["parent"] == first["id"]
        done = final(fakes.d, second["id"])
        assert done["state"] == "succeeded"
        launched = next(c for c in fakes.invocations() if c["env"]["AIOS_RUN_ID"] == second["id"])
        assert launched["cwd"] == tree["path"] and first["session_id"] in launched["argv"]
        # The conversation's changes so far, and one merge brings them all home.
        assert done["changes"]["files"] == [
            {"path": "turns.txt", "status": "added", "added": 2, "deleted": 0}
        ]
        client.request("POST", f"/api/runs/{second['id']}/worktree/merge")
        assert (repo / "turns.txt").read_text() == "first\nsecond\n"
        assert get(fakes.d, first["id"])["worktree"]["state"] == "merged"
    finally:
        fakes.d.close()
