"""The run page and the launch form at a laptop's and a phone's size, in a real headless Chromium
(issue 17): what matters first is in the first screen, an empty panel is one line, the whole
prompt can be read; the form says what the chosen agent takes and fits a phone.

Each test runs at 1280x800 and at 390x844, against a real daemon whose claude is the fake CLI
replaying a recorded transcript, working in a real git checkout.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser import PageWatch, browser
from tests.fakeagents import Fakes
from tests.gitrepo import make_repo
from tests.helpers import agent_script
from tests.test_dashboard_rough import context, sign_in, viewport
from tests.test_isolation import AGENT

__all__ = ["browser", "context", "viewport"]  # fixtures, imported so pytest finds them here

pytestmark = pytest.mark.daemon

# A command line of many lines, its last one well out of two lines' reach.
LONG_PROMPT = (
    "echo building\n"
    + "".join(f"# step {i}: {'check the parts, then the whole; ' * 3}\n" for i in range(8))
    + "echo the last line of the prompt"
)

# Where a text's first line is drawn: the first character's box.
FIRST_LINE = """o => {
  const range = document.createRange();
  const walker = document.createTreeWalker(o, NodeFilter.SHOW_TEXT);
  let node = walker.nextNode();
  while (node && !node.textContent.trim()) node = walker.nextNode();
  const at = node.textContent.search(/\\S/);
  range.setStart(node, at);
  range.setEnd(node, at + 1);
  const r = range.getBoundingClientRect();
  return {top: r.top, bottom: r.bottom};
}"""


@pytest.fixture
def fakes(home: Path, tmp_path: Path) -> Iterator[Fakes]:
    made = Fakes(home, tmp_path)
    make_repo(made.workdir)  # a checkout: each run's changes are recorded (here: none)
    scripts = tmp_path / "agents"
    scripts.mkdir()
    writer = agent_script(scripts, "agent", AGENT)  # writes the files its prompt names
    made.configure(
        f'\n[agents.tests]\ncommand = ["true"]\n[agents.agent]\ncommand = {writer}\n'
        '[agents.asker]\ncommand = ["claude", "-p", "--output-format", "stream-json", "--verbose",'
        ' "{permission}", "{resume}", "--", "{prompt}"]\nformat = "claude-stream-json"\n'
        'approvals = "ask"\n'
    )
    made.start()
    try:
        yield made
    finally:
        made.d.terminate()


def open_run(context: Any, fakes: Fakes, run_id: str) -> tuple[Any, PageWatch]:
    watch = PageWatch()
    page = sign_in(context, fakes.d, watch, f"/runs/{run_id}")
    page.wait_for_selector("#conn.connected")
    return page, watch


def assert_output_starts_in_the_first_screen(page: Any, height: int, *, whole: bool = True) -> None:
    """The output's box begins within the first screen with lines to read; ``whole``: and its
    very first line is there (a short transcript is not scrolled out of its box)."""
    out = page.locator("#output")
    box = out.bounding_box()
    assert box is not None
    line = float(
        page.eval_on_selector("#output", "o => parseFloat(getComputedStyle(o).lineHeight)")
    )
    assert box["y"] + 4 * line <= height, (box, line)  # several lines in view, not a sliver
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    if not whole:
        return
    first = page.eval_on_selector("#output", FIRST_LINE)
    # Its first line is drawn inside the box (not scrolled away) and within the first screen.
    assert box["y"] <= first["top"] and first["bottom"] <= min(height, box["y"] + box["height"])


def test_a_claude_transcript_starts_in_the_first_screen_and_no_changes_take_one_line(
    context: Any, fakes: Fakes, viewport: tuple[int, int]
) -> None:
    run = fakes.final(fakes.launch("claude", "Add hello.py, which prints hello, and run it")["id"])
    assert run["changes"] is not None and run["changes"]["file_count"] == 0, run["changes"]
    page, watch = open_run(context, fakes, run["id"])
    expect(page.locator("#output-title")).to_have_text("Transcript")
    expect(page.locator("#output")).to_contain_text("● Write(hello.py)")
    changes = page.locator("#run-changes")
    expect(changes.locator("h2")).to_contain_text("no changes")
    box = changes.bounding_box()
    assert box is not None and box["height"] < 48, box
    assert_output_starts_in_the_first_screen(page, viewport[1])
    # The transcript's first line is the agent's own header (model, session).
    first_line = page.locator("#output").inner_text().strip().splitlines()[0]
    assert run["session_id"] in first_line
    assert watch.errors == [] and watch.dialogs == []


def test_a_continued_conversation_folds_the_earlier_turns(
    context: Any, fakes: Fakes, viewport: tuple[int, int]
) -> None:
    first = fakes.final(fakes.launch("claude", "write hello.py")["id"])
    path = f"/api/runs/{first['id']}/continue"
    second = fakes.d.client.request("POST", path, {"prompt": "now add tests"})
    third = fakes.d.client.request(
        "POST", f"/api/runs/{fakes.final(second['id'])['id']}/continue", {"prompt": "run them"}
    )
    fakes.final(third["id"])
    page, watch = open_run(context, fakes, third["id"])
    turns = page.locator(".conversation .turn")
    expect(turns).to_have_count(2)
    expect(turns.nth(0).locator("summary")).to_contain_text("write hello.py")
    expect(turns.nth(1).locator("summary")).to_contain_text("now add tests")
    assert_output_starts_in_the_first_screen(page, viewport[1], whole=False)
    # An earlier turn's transcript is one click away.
    expect(turns.nth(0).locator(".output")).to_be_hidden()
    turns.nth(0).locator("summary .turn-preview").click()
    expect(turns.nth(0).locator(".output")).to_be_visible()
    expect(turns.nth(0).locator(".output")).to_contain_text("● Write(hello.py)")
    assert watch.errors == []


def test_a_run_with_changes_folds_its_diff_under_the_files(
    context: Any, fakes: Fakes, viewport: tuple[int, int]
) -> None:
    # Thirty files before lib/b.py: a diff far longer than a screen.
    prompt = "".join(f"write f{i:02}.py x = {i}; " for i in range(30)) + "write lib/b.py x = 2"
    run = fakes.final(fakes.launch("agent", prompt, worktree=True)["id"])
    assert run["changes"]["file_count"] == 31, run["changes"]
    page, watch = open_run(context, fakes, run["id"])
    changes = page.locator("#run-changes")
    expect(changes.get_by_role("button", name="Merge into main")).to_be_visible()
    expect(changes.locator(".files li")).to_have_count(31)
    assert_output_starts_in_the_first_screen(page, viewport[1])
    diff = changes.locator("#diff")
    expect(diff).to_be_hidden()
    # A file's link opens the diff at that file.
    changes.locator(".files a", has_text="lib/b.py").click()
    expect(diff).to_be_visible()
    target = diff.locator(".d-file", has_text="lib/b.py").first
    expect(target).to_be_in_viewport()
    changes.get_by_text("Show the diff").click()  # and its summary folds it again
    expect(diff).to_be_hidden()
    assert watch.errors == []


def test_the_box_to_continue_comes_under_the_transcript_when_the_run_ends(
    context: Any, fakes: Fakes, viewport: tuple[int, int]
) -> None:
    run = fakes.launch("asker", "ask: npm test")
    page, watch = open_run(context, fakes, run["id"])
    page.locator(".approval").get_by_role("button", name="Allow", exact=True).click()
    expect(page.locator("#run-details .activity")).to_have_text("waiting")
    expect(page.locator("#continue")).to_have_count(0)  # live: the message box instead
    talk = page.locator("#talk")
    assert_output_starts_in_the_first_screen(page, viewport[1], whole=False)
    talk.get_by_role("button", name="Done").click()
    expect(page.locator("#run-details .state")).to_have_text("succeeded")
    expect(talk).to_have_count(0)
    box = page.locator("#continue")
    expect(box).to_be_visible()  # pushed by the live stream, under the transcript
    output = page.locator("#output").bounding_box()
    form = box.bounding_box()
    assert output is not None and form is not None and form["y"] >= output["y"] + output["height"]
    assert form["y"] + form["height"] <= viewport[1]  # and in view, without scrolling
    assert_output_starts_in_the_first_screen(page, viewport[1])
    assert watch.errors == []


def test_a_command_runs_output_starts_in_the_first_screen(
    context: Any, fakes: Fakes, viewport: tuple[int, int]
) -> None:
    run = fakes.final(fakes.launch("command", "echo first; seq 2 400")["id"])
    page, watch = open_run(context, fakes, run["id"])
    expect(page.locator("#output-title")).to_have_text("Output")
    expect(page.locator("#output")).to_contain_text("400")
    box = page.locator("#output").bounding_box()
    line = 20
    assert box is not None and box["y"] + 5 * line <= viewport[1], box
    # Scrolled to the end, where the newest line is, and that is in view too.
    at_end = "o => o.scrollTop + o.clientHeight >= o.scrollHeight - 1"
    assert page.eval_on_selector("#output", at_end)
    assert box["y"] + box["height"] <= viewport[1]
    assert watch.errors == []


def test_the_whole_prompt_can_be_read(
    context: Any, fakes: Fakes, viewport: tuple[int, int], tmp_path: Path
) -> None:
    # Live while the page is open, so a state change redraws the details under the reader.
    run = fakes.launch("command", LONG_PROMPT + "\nsleep 300")
    page, watch = open_run(context, fakes, run["id"])
    page.locator("#run-details .state-running").wait_for()
    text = page.locator("#run-prompt")
    line = float(text.evaluate("e => parseFloat(getComputedStyle(e).lineHeight)"))
    # Cut to two lines, with an ellipsis where it is cut.
    assert text.evaluate("e => e.scrollHeight > e.clientHeight + 1")
    clamped = text.evaluate("e => e.getBoundingClientRect().height")
    assert clamped <= 2 * line + 1, (clamped, line)
    assert text.evaluate("e => getComputedStyle(e).webkitLineClamp") == "2"
    show = page.get_by_text("Show all", exact=True)
    expect(show).to_be_visible()
    show.click()
    expect(page.get_by_text("Show less", exact=True)).to_be_visible()
    # Now all of it is drawn: nothing hidden inside the box, its last line on the page.
    assert text.evaluate("e => e.scrollHeight <= e.clientHeight + 1")
    assert text.evaluate("e => e.getBoundingClientRect().height") > 8 * line
    expect(text).to_contain_text("echo the last line of the prompt")
    last = page.get_by_text("echo the last line of the prompt")
    last.scroll_into_view_if_needed()
    expect(last).to_be_in_viewport()
    # A live update redraws the details: the prompt stays open.
    fakes.d.client.request("POST", f"/api/runs/{run['id']}/stop")
    page.locator("#run-details .state-stopped").wait_for()
    expect(page.get_by_text("Show less", exact=True)).to_be_visible()
    assert page.locator("#run-prompt").evaluate("e => e.scrollHeight <= e.clientHeight + 1")
    page.get_by_text("Show less", exact=True).click()
    expect(page.get_by_text("Show all", exact=True)).to_be_visible()
    assert page.locator("#run-prompt").evaluate("e => e.scrollHeight > e.clientHeight + 1")
    # A prompt that fits has nothing to show.
    short = fakes.final(fakes.launch("command", "echo hi")["id"])
    page.goto(f"http://127.0.0.1:{fakes.d.port}/runs/{short['id']}")
    expect(page.locator("#run-prompt")).to_have_text("echo hi")
    expect(page.get_by_text("Show all", exact=True)).to_be_hidden()
    assert watch.errors == []


def test_the_launch_form_fits_and_says_what_the_agent_takes(
    context: Any, fakes: Fakes, viewport: tuple[int, int]
) -> None:
    watch = PageWatch()
    page = sign_in(context, fakes.d, watch, "/?agent=command")
    page.wait_for_selector("#conn.connected")
    prompt = page.get_by_label("Prompt")
    expect(prompt).to_have_attribute(
        "placeholder", "A shell command line, e.g. make test && git status"
    )
    agent = page.get_by_label("Agent", exact=True)
    agent.select_option("claude")
    expect(prompt).to_have_attribute(
        "placeholder", "What should Claude Code do? e.g. Fix the failing test in tests/test_api.py"
    )
    agent.select_option("tests")
    expect(prompt).to_have_attribute(
        "placeholder", "tests takes no prompt: it runs its command as configured."
    )
    agent.select_option("command")
    expect(prompt).to_have_attribute(
        "placeholder", "A shell command line, e.g. make test && git status"
    )
    # Every permission reads whole in its box: text, padding and the arrow within its width.
    select = page.get_by_label("Permission")
    box = select.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= viewport[0]
    for value in ("read-only", "edit", "full"):
        select.select_option(value)
        room = select.evaluate(
            """s => {
              const style = getComputedStyle(s);
              const ctx = document.createElement("canvas").getContext("2d");
              ctx.font = style.font;
              const text = ctx.measureText(s.selectedOptions[0].text).width;
              const padding = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
              return s.clientWidth - padding - text;
            }"""
        )
        assert room >= 24, (value, room)  # what is left is at least the arrow's room
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport[0]
    assert watch.errors == []


def test_settings_have_labels_in_words(
    context: Any, fakes: Fakes, viewport: tuple[int, int]
) -> None:
    watch = PageWatch()
    page = sign_in(context, fakes.d, watch, "/settings")
    page.wait_for_selector("#conn.connected")
    labels = page.locator("section[aria-labelledby=settings-title] dt").all_inner_texts()
    assert labels == [
        "Start at login",
        "Runs at once",
        "Runs kept in history",
        "Log size cap (MiB)",
    ]
    # Each still names its key in config.toml.
    for key in ("max_concurrent", "retention", "log_cap_mib"):
        expect(page.locator("dd code", has_text=key)).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport[0]
    assert watch.errors == []
