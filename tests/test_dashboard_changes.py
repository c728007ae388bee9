"""What a run changed, and its worktree, on the dashboard in a real Chromium (issue 11)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from aios.formatting import MINUS
from tests.browser import PageWatch, browser, signed_in_page
from tests.gitrepo import branches, make_repo
from tests.helpers import DaemonProcess, agent_script, start_daemon, wait_until, write_config
from tests.test_isolation import AGENT, final, get

__all__ = ["browser"]

pytestmark = pytest.mark.daemon


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "src" / "app", {"README.md": "hello\n", "lib/a.py": "one\n"})


@pytest.fixture
def served(home: Path, tmp_path: Path) -> Iterator[DaemonProcess]:
    scripts = tmp_path / "agents"
    scripts.mkdir()
    write_config(home, f"[agents.agent]\ncommand = {agent_script(scripts, 'agent', AGENT)}\n")
    d = start_daemon(home)
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def page(browser: Any, served: DaemonProcess) -> Iterator[tuple[Any, PageWatch]]:
    with signed_in_page(browser, served.port, served.info.token, 900, 15_000) as signed_in:
        yield signed_in


def launch(d: DaemonProcess, repo: Path, prompt: str, worktree: bool = True) -> dict[str, Any]:
    body = {"agent": "agent", "prompt": prompt, "cwd": str(repo), "worktree": worktree}
    run = d.client.request("POST", "/api/runs", body)
    assert isinstance(run, dict)
    return run


def test_the_run_page_lists_the_files_and_shows_the_diff_highlighted(
    page: tuple[Any, PageWatch], served: DaemonProcess, repo: Path
) -> None:
    p, watch = page
    run = final(served, launch(served, repo, "write hello.py print(1); write lib/a.py uno")["id"])
    # What was recorded first (a wrong record and a stale row are different failures).
    assert (run["changes"]["file_count"], run["changes"]["added"]) == (2, 2), run["changes"]
    row = p.locator(f"#run-{run['id']}")
    expect(row.locator("td.changes")).to_contain_text(f"2 files +2 {MINUS}1")
    expect(row.locator("td.changes .tag")).to_have_text("worktree")
    p.goto(f"http://127.0.0.1:{served.port}/runs/{run['id']}")
    changes = p.locator("#run-changes")
    expect(changes.locator("h2")).to_contain_text(f"2 files +2 {MINUS}1")
    files = changes.locator(".files li")
    expect(files).to_have_count(2)
    expect(files.nth(0)).to_contain_text("hello.py")
    expect(files.nth(0)).to_contain_text("added")
    expect(files.nth(1)).to_contain_text(f"lib/a.py modified +1 {MINUS}1")
    expect(changes.locator("dd").first).to_contain_text(run["worktree"]["path"])
    diff = changes.locator("#diff")
    expect(diff.locator(".d-add", has_text="+print(1)")).to_have_count(1)
    expect(diff.locator(".d-del", has_text="-one")).to_have_count(1)
    expect(diff.locator(".d-hunk").first).to_contain_text("@@")
    # Each file in the list links to its part of the diff.
    target = files.nth(1).locator("a").get_attribute("href") or ""
    expect(diff.locator(target)).to_contain_text("diff --git a/lib/a.py b/lib/a.py")
    # Coloured by the stylesheet, not by inline style (the CSP forbids it).
    added = diff.locator(".d-add").first
    deleted = diff.locator(".d-del").first
    assert added.evaluate("e => getComputedStyle(e).color") != deleted.evaluate(
        "e => getComputedStyle(e).color"
    )
    assert p.locator("[style]").count() == 0
    assert watch.errors == [] and watch.dialogs == []


def test_changes_appear_when_the_run_ends_and_merge_from_the_page(
    page: tuple[Any, PageWatch], served: DaemonProcess, repo: Path, tmp_path: Path
) -> None:
    p, watch = page
    go = tmp_path / "go"
    run = launch(served, repo, f"write feature.py x = 1; wait {go}")
    wait_until(lambda: get(served, run["id"])["state"] == "running", what="the run to run")
    p.goto(f"http://127.0.0.1:{served.port}/runs/{run['id']}")
    changes = p.locator("#run-changes")
    expect(changes).to_contain_text("recorded when the run ends")
    expect(changes.get_by_role("button", name="Merge into main")).to_have_count(0)
    go.touch()
    expect(changes.locator("h2")).to_contain_text(f"1 file +1 {MINUS}0")
    expect(changes.locator("#diff .d-add")).to_have_text("+x = 1\n")
    changes.get_by_role("button", name="Merge into main").click()
    expect(changes.locator(".tag")).to_have_text("merged")
    assert (repo / "feature.py").read_text() == "x = 1\n"
    assert branches(repo) == ["main"]
    assert watch.errors == []


def test_discard_after_a_confirmation(
    page: tuple[Any, PageWatch], served: DaemonProcess, repo: Path
) -> None:
    p, watch = page
    run = final(served, launch(served, repo, "write junk.txt junk")["id"])
    p.goto(f"http://127.0.0.1:{served.port}/runs/{run['id']}")
    p.get_by_role("button", name="Discard").click()  # PageWatch says yes to the confirm
    expect(p.locator("#run-changes .tag")).to_have_text("discarded")
    assert not Path(run["worktree"]["path"]).exists() and branches(repo) == ["main"]
    assert get(served, run["id"])["worktree"]["state"] == "discarded"
    assert watch.errors == []


def test_a_refused_merge_shows_gits_words(
    page: tuple[Any, PageWatch], served: DaemonProcess, repo: Path
) -> None:
    p, watch = page
    run = final(served, launch(served, repo, "write README.md theirs")["id"])
    (repo / "README.md").write_text("ours, uncommitted\n")
    p.goto(f"http://127.0.0.1:{served.port}/runs/{run['id']}")
    p.get_by_role("button", name="Merge into main").click()
    expect(p.locator("#run-changes [data-errors]")).to_contain_text("README.md")
    assert (repo / "README.md").read_text() == "ours, uncommitted\n"
    assert all("409" in error for error in watch.errors)  # the failed fetch, nothing else


def test_the_launch_form_warns_of_uncommitted_changes_and_isolates(
    page: tuple[Any, PageWatch], served: DaemonProcess, repo: Path, tmp_path: Path
) -> None:
    p, watch = page
    asked: list[tuple[str, str | None]] = []  # the note's requests: method, CSRF header

    def seen(request: Any) -> None:
        if request.url.endswith("/ui/worktree-note"):
            asked.append((request.method, request.headers.get("x-aios-csrf")))

    p.on("request", seen)
    (repo / "README.md").write_text("edited\n")
    p.get_by_label("Agent", exact=True).select_option("agent")
    p.get_by_label("Prompt").fill("write isolated.txt yes")
    p.get_by_label("Working directory").fill(str(repo))
    note = p.locator("#worktree-note")
    p.get_by_label("in a git worktree").check()
    expect(note).to_contain_text("has uncommitted changes (1 file)")
    p.get_by_label("Working directory").fill(str(tmp_path))
    p.get_by_label("Working directory").dispatch_event("change")
    expect(note).to_contain_text("not in a git repository")
    p.get_by_label("Working directory").fill(str(repo))
    p.get_by_label("Working directory").dispatch_event("change")
    expect(note).to_contain_text("uncommitted changes")
    p.get_by_role("button", name="Launch").click()
    row = p.locator("#runs tr.run").first
    expect(row.locator("td.changes")).to_contain_text(f"1 file +1 {MINUS}0")
    run_id = (row.get_attribute("id") or "").removeprefix("run-")
    assert get(served, run_id)["worktree"]["source"] == "main"
    assert not (repo / "isolated.txt").exists()
    p.get_by_label("in a git worktree").uncheck()
    expect(note).to_be_empty()
    assert watch.errors == []
    # It runs git in the directory it names: a POST with the CSRF header, never a GET.
    assert len(asked) >= 3 and {method for method, _ in asked} == {"POST"}
    assert all(csrf for _, csrf in asked)
