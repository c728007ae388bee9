"""The dashboard: login, the HTML pages, and the small form endpoints htmx posts to.

Pages and the live stream (``aios.server.live``) render the same partials, so a row looks the same
whether it came with the page or was pushed later. The form endpoints answer 204 on success: the
change itself reaches every open page through the event stream.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from markupsafe import Markup
from quart import Blueprint, Response, redirect, render_template, request
from werkzeug.wrappers.response import Response as RedirectResponse

from aios.config import SETTINGS
from aios.server.api import find_run
from aios.server.context import daemon
from aios.server.errors import ApiError
from aios.server.live import OutputRenderer
from aios.server.security import cookie_name, same
from aios.server.views import FILTERS, PAGE, Counts

if TYPE_CHECKING:
    from aios.autostart import AutostartStatus

blueprint = Blueprint("pages", __name__)

OUTPUT_SHOWN = 256 * 1024  # a run page opens with the last 256 KiB of output


@blueprint.get("/login")
async def login() -> RedirectResponse:
    d = daemon()
    if not same(request.args.get("token"), d.keys.token):
        raise ApiError(401, "missing or invalid token; use `aios open` to sign in")
    response = redirect(_local_path(request.args.get("next", "/")), 303)
    response.set_cookie(
        cookie_name(d.port), d.keys.session, httponly=True, samesite="Strict", path="/"
    )
    return response


def _local_path(target: str) -> str:
    """Only a path on this server: never an open redirect to another site."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


async def _page(template: str, **context: Any) -> str:
    d = daemon()
    return await render_template(template, daemon=d, csrf=d.keys.csrf, **context)


def _filter() -> str:
    name = request.args.get("filter", "all")
    if name not in FILTERS:
        raise ApiError(422, f"unknown filter {name!r}; one of {', '.join(FILTERS)}")
    return name


async def _rows(filter_name: str, before: str | None) -> dict[str, Any]:
    runs = await daemon().runs(limit=PAGE + 1, before=before, states=FILTERS[filter_name])
    return {"runs": runs[:PAGE], "more": len(runs) > PAGE, "filter": filter_name, "before": before}


@blueprint.get("/")
async def index() -> str:
    d = daemon()
    filter_name = _filter()
    # The stream starts right after what this render shows: no gap, no duplicate row.
    after = d.bus.last_id
    config = d.config()
    # to_json checks each executable on PATH: file system work, kept off the event loop.
    agents = await asyncio.to_thread(lambda: [a.to_json() for a in config.agents.values()])
    selected = request.args.get("agent")
    return await _page(
        "index.html",
        page="overview",
        events_url="/ui/events?"
        + urlencode({"after": after, "view": "overview", "filter": filter_name}),
        agents=agents,
        problems=[str(p) for p in config.problems],
        selected_agent=selected,
        home=str(Path.home()),
        counts=Counts.from_summary(await d.summary()),
        **await _rows(filter_name, None),
    )


@blueprint.get("/ui/rows")
async def rows() -> str:
    return await render_template(
        "partials/rows.html", **await _rows(_filter(), request.args.get("before") or None)
    )


@blueprint.get("/runs/<run_id>")
async def run_page(run_id: str) -> str:
    d = daemon()
    after = d.bus.last_id
    run = await find_run(run_id)
    total = await d.log_size(run.id)
    start = max(0, total - OUTPUT_SHOWN)
    raw = await d.read_log(run.id, start, total - start)
    renderer = OutputRenderer()
    # Already escaped by the renderer (ansi.to_html escapes before it adds colour spans).
    output = Markup(renderer.render(raw, start_mid_line=start > 0))  # noqa: S704
    query = {"after": after, "view": "run", "run": run.id, "offset": total, **renderer.state()}
    return await _page(
        "run.html",
        page="run",
        run=run,
        output=output,
        truncated=start > 0,
        shown=total - start,
        total=total,
        events_url="/ui/events?" + urlencode(query),
    )


@blueprint.get("/runs/<run_id>/log.txt")
async def run_log_file(run_id: str) -> Response:
    d = daemon()
    run = await find_run(run_id)
    data = await d.read_log(run.id, 0, None)
    return Response(data, mimetype="text/plain")


@blueprint.get("/settings")
async def settings() -> str:
    d = daemon()
    current = d.config().settings
    rows = [
        {
            "name": s.name,
            "label": s.name.replace("_", " ").capitalize(),
            "value": getattr(current, s.name),
            "default": s.default,
            "help": s.help,
        }
        for s in SETTINGS
    ]
    return await _page(
        "settings.html",
        page="settings",
        settings=rows,
        paths=d.paths,
        autostart=await asyncio.to_thread(_autostart_status),
    )


def _autostart_status() -> AutostartStatus | None:
    # Imported here, not at start-up: only the settings page needs it.
    from aios.autostart import AutostartError, for_platform  # noqa: PLC0415

    try:
        return for_platform().status()
    except AutostartError:
        return None  # a platform without an autostart mechanism we know


@blueprint.post("/ui/autostart")
async def toggle_autostart() -> Response:
    from aios.autostart import AutostartError, for_platform  # noqa: PLC0415

    form = await request.form
    entry = for_platform()
    change = entry.enable if form.get("enabled") == "true" else entry.disable
    try:
        await asyncio.to_thread(change)
    except AutostartError as exc:
        raise ApiError(409, str(exc)) from exc
    response = Response("", 204)
    response.headers["HX-Refresh"] = "true"
    return response


# -- form endpoints (htmx) ---------------------------------------------------------------------


@blueprint.post("/ui/runs")
async def launch() -> tuple[str, int]:
    form = await request.form
    cwd = (form.get("cwd") or "").strip() or None
    await daemon().launch(form.get("agent", ""), form.get("prompt", ""), cwd)
    return "", 204


@blueprint.post("/ui/runs/<run_id>/stop")
async def stop(run_id: str) -> tuple[str, int]:
    run = await find_run(run_id)
    await daemon().stop_run(run.id)
    return "", 204


@blueprint.post("/ui/runs/<run_id>/rerun")
async def rerun(run_id: str) -> Response:
    old = await find_run(run_id)
    new = await daemon().launch(old.agent, old.prompt, old.cwd)
    response = Response("", 204)
    if request.args.get("open"):
        response.headers["HX-Redirect"] = f"/runs/{new.id}"
    return response


@blueprint.post("/ui/runs/<run_id>/delete")
async def delete(run_id: str) -> tuple[str, int]:
    run = await find_run(run_id)
    await daemon().delete_run(run.id)
    return "", 204
