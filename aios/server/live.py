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
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html import escape
from typing import Any

from quart import Blueprint, Response, render_template, request, stream_with_context

from aios.events import Event
from aios.runs import FINAL_STATES, Run, RunState
from aios.server import ansi
from aios.server.api import find_run
from aios.server.context import daemon
from aios.server.errors import ApiError
from aios.server.sse import KEEP_ALIVE, event_stream, events_or_heartbeats
from aios.server.views import FILTERS, Counts, size

blueprint = Blueprint("live", __name__)

# A page further behind the log than this (it stopped reading while a run flooded output) skips
# to the last BEHIND_MAX bytes, as a run page opens with them: what one message holds, and what a
# tab that stopped reading makes the daemon hold, stays bounded however much it missed.
BEHIND_MAX = 256 * 1024


class OutputRenderer:
    """Raw output bytes → escaped HTML with ANSI colours, across chunk boundaries."""

    def __init__(self, style: ansi.Style = ansi.PLAIN) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._style = style
        self._held = ""

    def render(self, data: bytes, *, start_mid_line: bool = False) -> str:
        text = self._held + self._decoder.decode(data)
        if start_mid_line and "\n" in text:
            text = text[text.index("\n") + 1 :]  # a cut line would show half an escape
        text, self._held = ansi.split_incomplete(text)
        html, self._style = ansi.to_html(text, self._style)
        return html

    def state(self) -> dict[str, str]:
        """What a page passes on so its stream continues in the same colour."""
        style = self._style
        return (
            {"style": json.dumps([style.fg, style.bg, style.bold])} if style != ansi.PLAIN else {}
        )

    @classmethod
    def from_state(cls, raw: str | None) -> OutputRenderer:
        try:
            fg, bg, bold = json.loads(raw) if raw else (None, None, False)
            return cls(ansi.Style(fg=fg, bg=bg, bold=bool(bold)))
        except (ValueError, TypeError):
            return cls()


def partial(target: str, swap: str, html: str) -> str:
    return f'<hx-partial hx-target="{escape(target)}" hx-swap="{swap}">{html}</hx-partial>'


def message(event_id: int | None, html: str) -> bytes:
    lines = html.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    head = f"id: {event_id}\n" if event_id is not None else ""
    return (head + "".join(f"data: {line}\n" for line in lines) + "\n").encode()


@dataclass
class View:
    """What one open page shows, so each event becomes exactly the partials it needs."""

    kind: str  # overview | run
    filter: str = "all"
    run_id: str | None = None
    offset: int = 0
    output: OutputRenderer = field(default_factory=OutputRenderer)

    async def render(self, event: Event) -> str:
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
        if run.state in FINAL_STATES:
            out += await self.drain_output()
        return out

    async def overview_row(self, run: Run, state: RunState, never_started: bool) -> str:
        """Which partial keeps this filter's table true (a row is prepended, replaced or removed).

        A run enters "all" and "running" when it is created, and leaves "running" when it ends;
        it enters "finished" and "failed" only when it ends, from a live state.
        """
        row = await render_template("partials/run_row.html", run=run)
        target = f"#run-{run.id}"
        states = FILTERS[self.filter]
        prepend = partial("#runs-empty", "delete", "") + partial("#runs", "afterbegin", row)
        if self.filter in ("all", "running"):
            if state is RunState.QUEUED and never_started:
                return prepend
            if states is not None and state not in states:
                return partial(target, "delete", "")
            return partial(target, "outerHTML", row)
        if states is not None and state in states:
            return partial(target, "delete", "") + prepend
        return ""

    async def on_deleted(self, data: dict[str, Any]) -> str:
        return partial(f"#run-{data['id']}", "delete", "")

    async def on_summary(self, data: dict[str, int]) -> str:
        counts = Counts.from_summary(data)
        return "".join(
            partial(f"#count-{name}", "textContent", str(getattr(counts, name)))
            for name in ("running", "queued", "failed", "total")
        )

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
        html, mid_line = "", False
        if total - self.offset > BEHIND_MAX:
            start = total - BEHIND_MAX
            html = escape(
                f"\n[aios: {size(start - self.offset)} of output skipped while this page was "
                "not keeping up; the whole output is in the download]\n",
                quote=False,
            )
            self.offset, self.output, mid_line = start, OutputRenderer(), True
        data = await d.read_log(self.run_id, self.offset, max(0, total - self.offset))
        self.offset += len(data)
        html += self.output.render(data, start_mid_line=mid_line)
        return partial("#output", "beforeend", html) if html else ""


def _view() -> View:
    kind = request.args.get("view", "overview")
    if kind == "run":
        run_id = request.args.get("run")
        if not run_id:
            raise ApiError(422, "view=run needs run=<id>")
        try:
            offset = max(0, int(request.args.get("offset", "0")))
        except ValueError:
            raise ApiError(422, "offset must be an integer") from None
        return View(
            "run",
            run_id=run_id,
            offset=offset,
            output=OutputRenderer.from_state(request.args.get("style")),
        )
    filter_name = request.args.get("filter", "all")
    if kind != "overview" or filter_name not in FILTERS:
        raise ApiError(422, "view must be overview (with a known filter) or run")
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
                html = await view.render(event)
                # Every event moves the page's Last-Event-ID, even one that changes nothing here.
                out.append(message(event.id, html) if html else f"id: {event.id}\n\n".encode())
            yield b"".join(out)

    return event_stream(stream())
