"""The commands for runs: start one (``run``, ``continue``) and follow it to its end, list them
(``ps``), print a run's output (``logs``), stop one (``kill``).

A followed run's output goes to stdout as the agent wrote it (colours only where wanted); how
it ended, and the daemon's hint on what to do about it, go to stderr.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aios.cli.common import EXIT_FAILURE, EXIT_OK, LIVE_STATES, CliError, call, running
from aios.cli.tables import column_widths, one_line, print_json_list, print_rows
from aios.formatting import change_summary, exit_status, from_iso, timestamp, zone
from aios.paths import Paths

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

    from aios.client import DaemonClient
    from aios.runtime import RuntimeInfo

PS_PAGE = 500  # runs per request when `aios ps` pages through the history (the API's maximum)
HINTED = "!"  # in `aios ps`: the daemon has a hint on what to do about this run


def cmd_run(args: argparse.Namespace) -> int:
    from aios.client import DaemonClient  # noqa: PLC0415

    info = running(Paths.from_env())
    client = DaemonClient(info)
    cwd = args.cwd
    if cwd is not None:
        cwd = str(Path(cwd).expanduser().absolute())
    elif not agent_has_cwd(client, args.agent):
        cwd = os.getcwd()
    body = {"agent": args.agent, "prompt": " ".join(args.prompt), "cwd": cwd}
    if args.permission:
        body["permission"] = args.permission
    if args.worktree is not None:
        body["worktree"] = args.worktree
    if args.terminal is not None:
        body["terminal"] = args.terminal
    return start(client, "/api/runs", body, wait=args.wait, colour=args.color)


def cmd_continue(args: argparse.Namespace) -> int:
    from aios.client import DaemonClient  # noqa: PLC0415

    client = DaemonClient(running(Paths.from_env()))
    body = {"prompt": " ".join(args.prompt)}
    return start(client, f"/api/runs/{args.run}/continue", body, wait=args.wait, colour=args.color)


def start(client: DaemonClient, path: str, body: dict[str, Any], *, wait: bool, colour: str) -> int:
    """Start a run (POST ``body`` to ``path``), print its id, and with ``wait`` follow it to its
    end: the exit code is then the run's."""
    from aios.client import ClientError  # noqa: PLC0415
    from aios.follow import follow  # noqa: PLC0415

    try:
        run = client.request("POST", path, body)
        print(run["id"], flush=True)
        if not wait:
            return EXIT_OK
        final = follow(client, run["id"], sys.stdout.buffer, plain=not colour_wanted(colour))
    except ClientError as exc:
        raise CliError(str(exc)) from exc
    report_end(final)
    report_worktree(final)
    return exit_code_of(final)


def colour_wanted(choice: str) -> bool:
    """``--color``: always, never, or auto: on a terminal, unless ``NO_COLOR`` is set to
    anything but the empty string (https://no-color.org)."""
    if choice != "auto":
        return choice == "always"
    return not os.environ.get("NO_COLOR") and sys.stdout.isatty()


def report_end(run: dict[str, Any]) -> None:
    """After a run's output, on stderr (stdout is the agent's): how it ended when it did not
    succeed, and the daemon's hint on what to do about it."""
    from aios.follow import one_plain_line  # noqa: PLC0415

    state, error, ended = run["state"], one_plain_line(run.get("error") or ""), ending(run)
    line = None
    if state == "failed":
        line = f"failed: {error}" if error else f"failed ({ended})" if ended else "failed"
    elif state == "stopped":
        line = f"stopped ({ended})" if ended else "stopped"
    elif state == "interrupted":
        line = f"interrupted: {error}" if error else "interrupted"
    if line is not None:
        print(f"aios: run {run['id']} {line}", file=sys.stderr)
    if hint := one_plain_line(run.get("hint") or ""):
        print(f"hint: {hint}", file=sys.stderr)


def ending(run: dict[str, Any]) -> str | None:
    """``exit code 3``, ``killed by SIGTERM``; None when the run ended without an exit code."""
    code, name = run.get("exit_code"), run.get("exit_signal")
    if code is None:
        return None
    return f"killed by {name}" if name else f"exit code {code}"


def report_worktree(run: dict[str, Any]) -> None:
    """Where a worktree run's changes wait for review (on stderr: stdout is the agent's)."""
    tree, changes = run.get("worktree"), run.get("changes")
    if not tree or not changes:
        return
    summary = change_summary(
        changes["file_count"], changes["added"], changes["deleted"], changes["commits"]
    )
    if summary == "no changes":
        print("aios: no changes; the worktree and its branch are removed", file=sys.stderr)
        return
    print(
        f"aios: {summary} in {tree['path']} (branch {tree['branch']}); merge or discard it "
        "from the run's page",
        file=sys.stderr,
    )


def agent_has_cwd(client: DaemonClient, name: str) -> bool:
    from aios.client import ClientError  # noqa: PLC0415

    try:
        body = client.request("GET", "/api/agents")
    except ClientError as exc:
        raise CliError(str(exc)) from exc
    return any(a["name"] == name and a.get("cwd") for a in body["agents"])


def exit_code_of(run: dict[str, Any]) -> int:
    """The agent's exit code; 128 + N when signal N ended it, as a shell reports it; 1 when it
    did not succeed but has no other code to give (spawn failure, interrupted, failed behind
    exit 0, stopped)."""
    code = run.get("exit_code")
    if run["state"] == "succeeded":
        return EXIT_OK
    if isinstance(code, int) and code > 0:
        return code
    if isinstance(code, int) and code < 0:
        return 128 - code
    return EXIT_FAILURE


def cmd_ps(args: argparse.Namespace) -> int:
    """Every matching run, newest first, fetched and printed a page at a time: the memory used
    stays that of one page however long the history (``make bench`` measures it)."""
    states = "" if args.all else "".join(f"&state={s}" for s in LIVE_STATES)
    pages = run_pages(running(Paths.from_env()), states)
    if args.json:
        print_json_list(run for page in pages for run in page)
        return EXIT_OK
    # Local time, like the dashboard; `--json` keeps the API's UTC.
    header = ("ID", "AGENT", "STATE", "ACTIVITY", "EXIT", f"STARTED ({zone()})", "PROMPT")
    widths: list[int] | None = None
    hinted = False
    for page in pages:
        hinted = hinted or any(r.get("hint") for r in page)
        rows = [
            (
                r["id"],
                r["agent"],
                r["state"],
                activity_text(r),
                exit_status(r["exit_code"], r.get("exit_signal")),
                timestamp(from_iso(r["started_at"] or r["created_at"])),
                one_line(r["prompt"], 40),
            )
            for r in page
        ]
        if widths is None:  # the first page sets the columns; a longer cell later just sticks out
            widths = column_widths(header, rows)
            print_rows([header], widths)
        print_rows(rows, widths)
    if widths is None:
        print("no runs" if args.all else "no live runs (`aios ps --all` shows the history)")
    if hinted:  # on stderr: the table on stdout stays a table
        sys.stdout.flush()
        print(
            f"aios: {HINTED} marks a run with a hint on what to do: `aios logs RUN` prints it",
            file=sys.stderr,
        )
    return EXIT_OK


def run_pages(info: RuntimeInfo, query: str) -> Iterator[list[dict[str, Any]]]:
    """Pages of runs, newest first, each fetched when the previous one has been used."""
    before = ""
    while True:
        page = call(info, "GET", f"/api/runs?limit={PS_PAGE}{query}{before}")
        assert isinstance(page, list)
        if page:
            yield page
        if len(page) < PS_PAGE:
            return
        before = f"&before={page[-1]['id']}"


def activity_text(run: dict[str, Any]) -> str:
    """What a live run is doing, or why a finished one failed, in a few words; marked when the
    daemon has a hint on what to do."""
    text = activity_words(run)
    if not run.get("hint"):
        return text
    return f"{HINTED} {text}" if text else HINTED


def activity_words(run: dict[str, Any]) -> str:
    activity = run.get("activity")
    if activity:
        detail = run.get("activity_detail")
        return one_line(f"{activity}: {detail}" if detail else activity, 40)
    if run.get("state") == "failed" and run.get("error"):
        return one_line(run["error"], 40)
    return ""


def cmd_logs(args: argparse.Namespace) -> int:
    from aios.client import ClientError, DaemonClient  # noqa: PLC0415
    from aios.follow import FINAL_STATES, LogReader, follow  # noqa: PLC0415

    client = DaemonClient(running(Paths.from_env()))
    plain = not colour_wanted(args.color)
    try:
        run = client.request("GET", f"/api/runs/{args.run}")
        if args.follow:
            run = follow(client, run["id"], sys.stdout.buffer, plain=plain)
        else:
            LogReader(client, run["id"], sys.stdout.buffer, plain=plain).end()
    except ClientError as exc:
        raise CliError(str(exc)) from exc
    if run["state"] in FINAL_STATES:
        report_end(run)
    return EXIT_OK


def cmd_kill(args: argparse.Namespace) -> int:
    run = call(running(Paths.from_env()), "POST", f"/api/runs/{args.run}/stop")
    assert isinstance(run, dict)
    print(f"{run['id']}: {run['state']}")
    return EXIT_OK
