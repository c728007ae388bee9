"""The dashboard: login, the HTML pages, and the small form endpoints htmx posts to.

Pages and the live stream (``aios.server.live``) render the same partials, so a row looks the same
whether it came with the page or was pushed later. The form endpoints answer 204 on success: the
change itself reaches every open page through the event stream.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from markupsafe import Markup, escape
from quart import Blueprint, Response, render_template, request

from aios.config import SETTINGS
from aios.credentials import SESSION_LIFETIME
from aios.runs import Run, Tokens
from aios.server.common import DECISIONS, check_text, find_run, parse_permission
from aios.server.context import daemon
from aios.server.errors import ApiError
from aios.server.hooks import page_context as hooks_context
from aios.server.live import OutputRenderer, render_changes
from aios.server.security import cookie_name, own_request, same
from aios.server.views import FILTERS, PAGE, Counts, continuable
from aios.store_db import Usage
from aios.store_errors import StoreUnavailable, UnknownRun

if TYPE_CHECKING:
    from aios.desktop.autostart import AutostartStatus

blueprint = Blueprint("pages", __name__)

OUTPUT_SHOWN = 256 * 1024  # a run page opens with the last 256 KiB of output
TURN_SHOWN = 64 * 1024  # and the last 64 KiB of each earlier turn of its conversation


@blueprint.route("/login", methods=["GET", "POST"])
async def login() -> Response:
    """Trade the token for the session cookie, then go on to ``next`` from a page of our own.

    The answer is a page that moves on by itself (a meta refresh, which replaces it in the
    tab's history), not a redirect: a redirect keeps the navigation that brought the browser
    here, and when that began on another site (the ``file:`` page ``aios open`` writes, a link
    in a chat) the browser treats the whole chain as cross-site and withholds the
    ``SameSite=Strict`` cookie it has just been given. The refresh is a new navigation started
    by this origin, so the cookie goes with it. POST (the form in the ``file:`` page) keeps the
    token out of every address; GET (the address ``aios serve`` and ``aios open --print``
    print) is for a person who has only a terminal.
    """
    d = daemon()
    form = await request.form if request.method == "POST" else request.args
    if not same(form.get("token"), d.keys.token):
        raise ApiError(401, "missing or invalid token; use `aios open` to sign in")
    target = _local_path(form.get("next", "/"))
    html = await render_template("signed-in.html", target=target)
    response = Response(html, mimetype="text/html")
    response.set_cookie(
        cookie_name(d.port),
        d.keys.issue_cookie(time.time()),
        max_age=SESSION_LIFETIME,
        httponly=True,
        samesite="Strict",
        path="/",
    )
    return response


def _local_path(target: str) -> str:
    """Only a path on this server: never an open redirect to another site.

    Browsers read ``\\`` as ``/`` in a URL, so ``/\\evil.com`` would be ``//evil.com``: another
    host. A backslash, a control character or whitespace anywhere means "/" instead.
    """
    if (
        not target.startswith("/")
        or target.startswith("//")
        or any(c == "\\" or c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in target)
    ):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


async def _page(template: str, **context: Any) -> str:
    d = daemon()
    unseen = await d.unseen()
    return await render_template(template, daemon=d, csrf=d.keys.csrf, unseen=unseen, **context)


def _filter() -> str:
    name = request.args.get("filter", "all")
    if name not in FILTERS:
        raise ApiError(422, f"unknown filter {name!r}; one of {', '.join(FILTERS)}")
    return name


async def _rows(filter_name: str, before: str | None) -> dict[str, Any]:
    try:
        runs = await daemon().runs(limit=PAGE + 1, before=before, states=FILTERS[filter_name])
    except UnknownRun as exc:
        raise ApiError(422, f"invalid 'before': {exc}") from exc
    return {"runs": runs[:PAGE], "more": len(runs) > PAGE, "filter": filter_name, "before": before}


@blueprint.get("/")
async def index() -> str:
    d = daemon()
    filter_name = _filter()
    # Taken before the rows are read: the stream may replay what they show (live.py's rows are
    # idempotent), but never misses what came during the render.
    after = d.bus.last_id
    config = d.config()
    agents = await d.agents(check=own_request())
    selected = request.args.get("agent")
    # The form's worktree box starts as the chosen agent's setting (app.js follows the choice).
    usable = [a for a in agents if a["available"]]
    chosen = next((a for a in usable if a["name"] == selected), usable[0] if usable else None)
    try:
        usage, rows = await d.usage(), await _rows(filter_name, None)
    except StoreUnavailable:  # history cannot be read: the page still opens, its banner says why
        usage = Usage(Tokens(0, 0, 0), None)
        rows = {"runs": [], "more": False, "filter": filter_name, "before": None}
    return await _page(
        "index.html",
        page="overview",
        events_url="/ui/events?"
        + urlencode({"after": after, "view": "overview", "filter": filter_name}),
        agents=agents,
        problems=[str(p) for p in config.problems],
        selected_agent=selected,
        isolated=bool(chosen and chosen["worktree"]),
        chosen=chosen,
        home=str(Path.home()),
        counts=Counts.from_summary(await d.summary()),
        usage=usage,
        storage=d.storage_problem(),
        **rows,
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
    renderer = OutputRenderer(position=start)
    rows = renderer.render(raw, start_mid_line=start > 0)
    # Already escaped by the renderer (ansi.Style.html escapes before it adds its spans).
    output = Markup(rows + renderer.tail())  # noqa: S704
    query = {"after": after, "view": "run", "run": run.id, **renderer.state()}
    chain = await d.conversation(run)
    position = next((i for i, r in enumerate(chain) if r.id == run.id), len(chain))
    agent = d.config().agent(run.agent)
    return await _page(
        "run.html",
        page="run",
        run=run,
        agent=agent,
        output=output,
        truncated=start > 0,
        has_stderr=await d.log_size(run.id, "stderr") > 0,
        shown=total - start,
        total=total,
        changes=Markup(await render_changes(run)),  # noqa: S704 (a rendered, escaped template)
        earlier=[(r, await _transcript(r)) for r in chain[:position]],
        continuable=continuable(run),
        later=chain[position + 1 :],
        events_url="/ui/events?" + urlencode(query),
    )


async def _transcript(run: Run) -> Markup:
    """The end of an earlier turn's log, as HTML (escaped by the renderer)."""
    d = daemon()
    total = await d.log_size(run.id)
    start = max(0, total - TURN_SHOWN)
    raw = await d.read_log(run.id, start, total - start)
    renderer = OutputRenderer(position=start)
    html = renderer.render(raw, start_mid_line=start > 0) + renderer.finished()
    return Markup(html)  # noqa: S704


@blueprint.get("/runs/<run_id>/log.txt")
async def run_log_file(run_id: str) -> Response:
    d = daemon()
    run = await find_run(run_id)
    data = await d.read_log(run.id, 0, None)
    return Response(data, mimetype="text/plain")


@blueprint.get("/runs/<run_id>/events.jsonl")
async def run_events_file(run_id: str) -> Response:
    d = daemon()
    run = await find_run(run_id)
    data = await d.read_log(run.id, 0, None, "events")
    return Response(data, mimetype="application/x-ndjson")


@blueprint.get("/runs/<run_id>/stderr.txt")
async def run_stderr_file(run_id: str) -> Response:
    d = daemon()
    run = await find_run(run_id)
    return Response(await d.read_log(run.id, 0, None, "stderr"), mimetype="text/plain")


@blueprint.get("/settings")
async def settings() -> str:
    d = daemon()
    current = d.config().settings
    rows = [
        {
            "name": s.name,
            "label": s.label,
            "value": getattr(current, s.name),
            "default": s.default,
            "help": s.help,
        }
        for s in SETTINGS
    ]
    return await _page(
        "settings.html",
        page="settings",
        # Only for the connection indicator: it says whether the daemon is still there.
        events_url="/ui/events?" + urlencode({"after": d.bus.last_id, "view": "settings"}),
        settings=rows,
        paths=d.paths,
        autostart=await asyncio.to_thread(_autostart_status),
        **hooks_context(),
    )


def _autostart_status() -> AutostartStatus | None:
    # Imported here, not at start-up: only the settings page needs it.
    from aios.desktop.autostart import AutostartError, for_platform  # noqa: PLC0415

    try:
        return for_platform().status()
    except AutostartError:
        return None  # a platform without an autostart mechanism we know


@blueprint.post("/ui/autostart")
async def toggle_autostart() -> Response:
    from aios.desktop.autostart import AutostartError, for_platform  # noqa: PLC0415

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


@blueprint.post("/ui/seen")
async def seen() -> tuple[str, int]:
    """A page the user is looking at showed what was unseen up to event ``up_to`` (app.js
    posts it when the page loads or comes into view): the tray, ``/api/status`` and every open
    page stop calling for attention. A POST, never a GET: looking is a change of state."""
    form = await request.form
    raw = (form.get("up_to") or "").strip()
    up_to = None
    if raw:
        try:
            up_to = int(raw)
        except ValueError:
            raise ApiError(422, "up_to must be an event id (an integer)") from None
        if up_to < 0:
            raise ApiError(422, "up_to must be an event id (0 or more)")
    await daemon().seen(up_to)
    return "", 204


@blueprint.post("/ui/runs")
async def launch() -> tuple[str, int]:
    form = await request.form
    d = daemon()
    name, prompt = form.get("agent", ""), form.get("prompt", "")
    cwd = (form.get("cwd") or "").strip() or None
    for field, value in (("agent", name), ("prompt", prompt), ("cwd", cwd or "")):
        check_text(field, value)
    agent = d.config().agent(name)
    # The form offers a permission for every agent; one without permission modes takes none.
    permission = parse_permission(form.get("permission") or None)
    if agent is not None and not agent.permissions:
        permission = None
    # The box comes with a hidden "false" before it: the last value is the one the user chose.
    choice = form.getlist("worktree")
    worktree = None if not choice else choice[-1] == "true"
    boxed = form.getlist("terminal")  # the same, for "in a terminal"
    terminal = None if not boxed else boxed[-1] == "true"
    await d.launch(name, prompt, cwd, permission, worktree=worktree, terminal=terminal)
    return "", 204


@blueprint.post("/ui/runs/<run_id>/continue")
async def continue_run(run_id: str) -> Response:
    form = await request.form
    run = await find_run(run_id)
    new = await daemon().continue_run(run.id, form.get("prompt", ""))
    return _redirect(f"/runs/{new.id}")


@blueprint.post("/ui/runs/<run_id>/afresh")
async def afresh(run_id: str) -> Response:
    """The same prompt, as a new conversation (its session is gone)."""
    old = await find_run(run_id)
    new = await daemon().launch(old.agent, old.prompt, old.cwd, old.permission)
    return _redirect(f"/runs/{new.id}")


@blueprint.post("/ui/runs/<run_id>/message")
async def message(run_id: str) -> tuple[str, int]:
    form = await request.form
    run = await find_run(run_id)
    await daemon().message(run.id, form.get("prompt", ""))
    return "", 204


@blueprint.post("/ui/runs/<run_id>/approval")
async def approval(run_id: str) -> tuple[str, int]:
    form = await request.form
    # The buttons carry the request id and the decision in their URL; a form may post them.
    decision = form.get("decision") or request.args.get("decision")
    approval_id = form.get("id") or request.args.get("id") or ""
    if decision not in DECISIONS:
        raise ApiError(422, 'decision must be "allow", "always" or "deny"')
    run = await find_run(run_id)
    allow, always = decision != "deny", decision == "always"
    await daemon().decide(run.id, approval_id, allow, form.get("message", ""), always)
    return "", 204


@blueprint.post("/ui/runs/<run_id>/done")
async def done(run_id: str) -> tuple[str, int]:
    run = await find_run(run_id)
    await daemon().finish(run.id)
    return "", 204


def _redirect(path: str) -> Response:
    response = Response("", 204)
    response.headers["HX-Redirect"] = path
    return response


@blueprint.post("/ui/runs/<run_id>/stop")
async def stop(run_id: str) -> tuple[str, int]:
    run = await find_run(run_id)
    await daemon().stop_run(run.id)
    return "", 204


@blueprint.post("/ui/runs/<run_id>/rerun")
async def rerun(run_id: str) -> Response:
    old = await find_run(run_id)
    new = await daemon().launch(
        old.agent, old.prompt, old.cwd, old.permission, worktree=old.worktree is not None
    )
    response = Response("", 204)
    if request.args.get("open"):
        response.headers["HX-Redirect"] = f"/runs/{new.id}"
    return response


@blueprint.post("/ui/runs/<run_id>/delete")
async def delete(run_id: str) -> tuple[str, int]:
    run = await find_run(run_id)
    await daemon().delete_run(run.id)
    return "", 204


# -- worktrees (issue 11) -------------------------------------------------------------------------


@blueprint.post("/ui/worktree-note")
async def worktree_note() -> str:
    """What the launch form says under its worktree box: why no worktree can be made in the
    chosen directory, or that its uncommitted changes will not be in the worktree.

    A POST although it changes nothing: it runs git in a directory the caller names, so it
    takes the same cross-site checks (Origin, Sec-Fetch-Site, the CSRF header) as a state
    change, which a GET would not get (a page on another local port is same-site)."""
    form = await request.form
    # The box comes with a hidden "false" before it: the last value is the one the user chose.
    if form.getlist("worktree")[-1:] != ["true"]:
        return ""
    cwd = (form.get("cwd") or "").strip() or None
    note = await daemon().checkout_note(cwd, form.get("agent"))
    return str(escape(note or ""))


@blueprint.post("/ui/runs/<run_id>/worktree/<action>")
async def worktree_action(run_id: str, action: str) -> tuple[str, int]:
    """Merge, discard or open a run's worktree; the new state reaches the page as an event."""
    d = daemon()
    run = await find_run(run_id)
    if action == "merge":
        await d.merge_worktree(run.id)
    elif action == "discard":
        await d.discard_worktree(run.id)
    elif action == "open":
        await d.open_worktree(run.id)
    else:
        raise ApiError(404, f"no worktree action {action!r}; merge, discard or open")
    return "", 204
