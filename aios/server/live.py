"""The dashboard's live stream: bus events rendered as htmx partials, over SSE.

Each message is a list of ``<hx-partial hx-target=... hx-swap=...>`` elements (htmx 4's SSE
extension swaps every partial of an unnamed message; see docs/htmx-notes.md). Rows and details
come from the same Jinja partials the pages use. A page passes ``after=<last event id>`` from
its own render, so the stream starts exactly where the page's state ends; on reconnect the
``Last-Event-ID`` header takes over. When the bus cannot replay what was missed, the page gets a
named ``reset`` event and reloads itself.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html import escape
from typing import Any

from quart import Blueprint, Response, render_template, request, stream_with_context

from aios.events import Event
from aios.runs import FINAL_STATES, Run, RunState
from aios.server import ansi, diffview
from aios.server.common import MAX_OFFSET, find_run
from aios.server.context import daemon
from aios.server.errors import ApiError
from aios.server.query import int_arg
from aios.server.sse import KEEP_ALIVE, event_stream, events_or_heartbeats
from aios.server.terminal import WRAP, Terminal
from aios.server.views import FILTERS, Counts, continuable, cost, size, tokens
from aios.store_errors import StoreUnavailable
from aios.unseen import UnseenCounts

blueprint = Blueprint("live", __name__)

# A page further behind the log than this (it stopped reading while a run flooded output) skips
# to the last BEHIND_MAX bytes, as a run page opens with them: what one message holds, and what a
# tab that stopped reading makes the daemon hold, stays bounded however much it missed.
READ_CHUNK = 256 * 1024
BEHIND_MAX = 256 * 1024


class OutputRenderer:
    """Raw output bytes → escaped HTML: rows that are complete, and the open line.

    A page shows the rows, then the open line in ``#output-tail``; its stream appends new rows
    and replaces the open line, which progress bars redraw in place. To pick up where a page
    left off, the stream starts again at the open line's first byte (``state()``), with the style
    in force there, and skips the rows of it (``wraps``) that the page already has.
    """

    def __init__(self, terminal: Terminal | None = None, position: int = 0) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._terminal = terminal or Terminal()
        self._held = ""
        self.position = position  # the offset in the log of the next byte to render
        self.line_start = position  # the offset of the open line's first byte

    def render(self, data: bytes, *, start_mid_line: bool = False) -> str:
        """Render the next bytes; returns the HTML of the rows they completed."""
        text = self._held + self._decoder.decode(data)
        if start_mid_line and "\n" in text:
            text = text[text.index("\n") + 1 :]  # a cut line would show half an escape
        text, self._held = ansi.split_incomplete(text)
        rows = self._terminal.feed(text)
        # "\n" is one byte in UTF-8 and always a newline (ansi.TOKEN): found in the raw bytes.
        newline = data.rfind(b"\n")
        if newline >= 0:
            self.line_start = self.position + newline + 1
        self.position += len(data)
        return rows

    def tail(self) -> str:
        return f'<span id="output-tail">{self._terminal.tail()}</span>'

    def finished(self) -> str:
        """The open line, for output that will not grow any more (an earlier turn's)."""
        return self._terminal.tail()

    def state(self) -> dict[str, str]:
        """Where a page's stream picks up: ``offset``, ``style`` and ``wraps`` query values."""
        t = self._terminal
        return {
            "offset": str(self.line_start),
            "style": t.line_style.to_state(),
            "wraps": str(t.wraps),
        }

    @classmethod
    def resume(cls, offset: int, style: str | None, wraps: int) -> OutputRenderer:
        """The renderer a page's ``state()`` describes; ValueError for a malformed ``style``."""
        start = ansi.Style.from_state(style) if style else ansi.PLAIN
        return cls(Terminal(style=start, line_style=start, skip_wraps=wraps), position=offset)


def partial(target: str, swap: str, html: str) -> str:
    return f'<hx-partial hx-target="{escape(target)}" hx-swap="{swap}">{html}</hx-partial>'


def message(event_id: int | None, html: str) -> bytes:
    lines = html.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    head = f"id: {event_id}\n" if event_id is not None else ""
    return (head + "".join(f"data: {line}\n" for line in lines) + "\n").encode()


@dataclass
class View:
    """What one open page shows, so each event becomes exactly the partials it needs."""

    kind: str  # overview | run | settings
    filter: str = "all"
    run_id: str | None = None
    offset: int = 0
    output: OutputRenderer = field(default_factory=OutputRenderer)
    # The worktree and changes the page shows: the changes panel is re-sent only when they move.
    shown_changes: tuple[object, object] | None = None

    async def render(self, event: Event) -> str:
        if event.kind == "unseen":  # every page's header says what you have not seen
            return await self.on_unseen(event.data)
        if self.kind == "settings":  # the stream only says the daemon is there
            return ""
        handler = getattr(self, f"on_{event.kind}", None)
        return await handler(event.data) if handler is not None else ""

    async def on_run(self, data: dict[str, Any]) -> str:
        run = await daemon().get_run(data["id"])
        if run is None:
            return ""
        if self.kind == "run":
            return await self.run_details(run) if run.id == self.run_id else ""
        return await self.overview_row(run, RunState(data["state"]), data["started_at"] is None)

    async def run_details(self, run: Run) -> str:
        details = await render_template("partials/run_details.html", run=run)
        out = partial("#run-details", "outerHTML", details)
        out += await self.changes_panel(run)
        if run.state in FINAL_STATES:
            out += await self.drain_output() + partial("#talk", "delete", "")
            box = await render_template(
                "partials/run_continue.html", run=run, continuable=continuable(run)
            )
            out += partial("#run-continue", "outerHTML", box)
        return out

    async def changes_panel(self, run: Run) -> str:
        key = (run.worktree, run.changes)
        if key == self.shown_changes:
            return ""
        self.shown_changes = key
        return partial("#run-changes", "outerHTML", await render_changes(run))

    async def overview_row(self, run: Run, state: RunState, never_started: bool) -> str:
        """Which partial keeps this filter's table true (a row is prepended, replaced or removed).

        A run enters "all" and "running" when it is created, and leaves "running" when it ends;
        it enters "finished" and "failed" only when it ends, from a live state.

        A prepend first deletes the row it adds: a page takes its first event id before it reads
        its rows (no gap), so a run created during the render is both in the rows and replayed.
        """
        row = await render_template("partials/run_row.html", run=run)
        target = f"#run-{run.id}"
        states = FILTERS[self.filter]
        prepend = (
            partial(target, "delete", "")
            + partial("#runs-empty", "delete", "")
            + partial("#runs", "afterbegin", row)
        )
        if self.filter in ("all", "running"):
            if state is RunState.QUEUED and never_started:
                return prepend
            if states is not None and state not in states:
                return partial(target, "delete", "")
            return partial(target, "outerHTML", row)
        if states is not None and state in states:
            return prepend
        return ""

    async def on_unseen(self, data: dict[str, Any]) -> str:
        html = await render_template("partials/unseen.html", unseen=UnseenCounts.from_json(data))
        return partial("#unseen", "outerHTML", html)

    async def on_deleted(self, data: dict[str, Any]) -> str:
        return partial(f"#run-{data['id']}", "delete", "")

    async def on_summary(self, data: dict[str, int]) -> str:
        counts = Counts.from_summary(data)
        html = "".join(
            partial(f"#count-{name}", "textContent", str(getattr(counts, name)))
            for name in ("running", "queued", "failed", "total")
        )
        if self.kind == "overview":
            usage = await daemon().usage()
            html += partial("#count-tokens", "textContent", tokens(usage.tokens))
            html += partial("#count-cost", "textContent", cost(usage.cost_usd))
        return html

    async def on_storage(self, data: dict[str, Any]) -> str:
        if self.kind != "overview":
            return ""
        html = await render_template("partials/storage.html", storage=daemon().storage_problem())
        return partial("#storage-banner", "outerHTML", html)

    async def on_stats(self, data: dict[str, Any]) -> str:
        if self.kind == "run" and data["run"] != self.run_id:
            return ""
        cpu = "" if data["cpu_percent"] is None else f"{data['cpu_percent']:.0f}%"
        return partial(f"#run-{data['run']}-cpu", "textContent", cpu) + partial(
            f"#run-{data['run']}-mem", "textContent", size(data["rss_bytes"])
        )

    async def on_log(self, data: dict[str, Any]) -> str:
        if self.kind != "run" or data["run"] != self.run_id:
            return ""
        return await self.drain_output()

    async def drain_output(self) -> str:
        """The bytes after what the page has, read from the log file (never twice); at most the
        last ``BEHIND_MAX`` of them, after a line saying how much was skipped."""
        assert self.run_id is not None
        d = daemon()
        total = await d.log_size(self.run_id)
        note, mid_line = "", False
        if total - self.offset > BEHIND_MAX:  # a page that fell behind skips ahead
            start = total - BEHIND_MAX
            note = escape(
                f"\n[aios: {size(start - self.offset)} of output skipped while this page was "
                "not keeping up; the whole output is in the download]\n",
                quote=False,
            )
            self.offset, self.output, mid_line = start, OutputRenderer(position=start), True
        chunks: list[str] = []
        # Up to the size seen above, not the end of a file that a flood keeps growing: one
        # message stays bounded; what came meanwhile is the next event's.
        while self.offset < total and (
            data := await d.read_log(self.run_id, self.offset, min(READ_CHUNK, total - self.offset))
        ):
            self.offset += len(data)
            chunks.append(self.output.render(data, start_mid_line=mid_line and not chunks))
        if not chunks and not note:
            return ""
        # The open line is redrawn whole: the page's is replaced by the completed rows (if any)
        # and the line as it is now.
        return partial("#output-tail", "outerHTML", note + "".join(chunks) + self.output.tail())


async def render_changes(run: Run) -> str:
    """The run page's changes panel: the files, the highlighted diff, the worktree's actions."""
    diff = ""
    if run.changes is not None and run.changes.file_count:
        diff = diffview.render(await daemon().read_log(run.id, 0, None, "diff"))
    return await render_template("partials/run_changes.html", run=run, diff=diff)


def _view() -> View:
    kind = request.args.get("view", "overview")
    if kind == "run":
        run_id = request.args.get("run")
        if not run_id:
            raise ApiError(422, "view=run needs run=<id>")
        offset = int_arg("offset", 0, 0, MAX_OFFSET)
        wraps = int_arg("wraps", 0, 0, MAX_OFFSET // WRAP)
        try:
            output = OutputRenderer.resume(offset, request.args.get("style"), wraps)
        except ValueError as exc:
            raise ApiError(422, f"query parameter 'style' is invalid: {exc}") from exc
        return View("run", run_id=run_id, offset=offset, output=output)
    if kind == "settings":
        return View("settings")
    filter_name = request.args.get("filter", "all")
    if kind != "overview" or filter_name not in FILTERS:
        raise ApiError(422, "view must be overview (with a known filter), run or settings")
    return View("overview", filter=filter_name)


def _resume_id() -> int | None:
    for raw in (request.headers.get("Last-Event-ID"), request.args.get("after")):
        if raw:
            try:
                return int(raw)
            except ValueError:
                return -1  # unknown: the bus answers with a reset
    return None


@blueprint.get("/ui/events")
async def events() -> Response:
    d = daemon()
    view = _view()
    if view.run_id is not None:  # 404 for an unknown run, before any stream starts
        view.run_id = (await find_run(view.run_id)).id
        if view.offset > await d.log_size(view.run_id):
            raise ApiError(422, "query parameter 'offset' is past the end of the run's output")
    subscription = d.bus.subscribe(_resume_id())

    @stream_with_context
    async def stream() -> AsyncIterator[bytes]:
        yield b"retry: 1000\n\n"
        async for batch in events_or_heartbeats(subscription):
            if batch is None:
                yield KEEP_ALIVE
                continue
            out = []
            for event in batch:
                if event.kind == "reset":
                    out.append(f"id: {event.id}\nevent: reset\ndata: {{}}\n\n".encode())
                    continue
                try:
                    html = await view.render(event)
                except StoreUnavailable:  # history fails: the banner says so; the stream goes on
                    html = await view.on_storage({})
                # Every event moves the page's Last-Event-ID, even one that changes nothing here.
                out.append(message(event.id, html) if html else f"id: {event.id}\n\n".encode())
            yield b"".join(out)

    return event_stream(stream())
