"""The JSON API (DESIGN.md section 5).

Run ids in paths may be any unambiguous prefix, like git's: the CLI passes what the user typed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from quart import Blueprint, Response, jsonify, request

from aios.runs import Run, RunState
from aios.server.common import (
    DECISIONS,
    GRACEFUL_TIMEOUT,
    MAX_OFFSET,
    bool_arg,
    check_text,
    find_run,
    json_object,
    only_fields,
    optional_bool,
    optional_string,
    parse_permission,
    required_string,
)
from aios.server.context import daemon
from aios.server.errors import ApiError
from aios.server.jsonbody import shown
from aios.server.query import int_arg
from aios.server.security import own_request
from aios.server.sse import KEEP_ALIVE, event_stream, events_or_heartbeats
from aios.store_errors import UnknownRun
from aios.store_logs import Stream

blueprint = Blueprint("api", __name__)

MAX_PAGE = 500
LAUNCH_FIELDS = {"agent", "prompt", "cwd", "permission", "worktree", "terminal"}
DIFF_TYPE = "text/x-diff"


@blueprint.get("/health")
async def health() -> Response:
    d = daemon()
    return jsonify({"status": "ok", "version": d.version, "uptime": round(d.uptime, 3)})


@blueprint.get("/api/status")
async def status() -> Response:
    """What ``aios status`` prints; also how a client confirms it reached *this* daemon."""
    d = daemon()
    return jsonify(
        {
            "status": "ok",
            "version": d.version,
            "pid": d.pid,
            "url": d.url,
            "uptime": round(d.uptime, 3),
            "runs": await d.summary(),
            "storage": None if (problem := d.storage_problem()) is None else problem.to_json(),
            "unseen": (await d.unseen()).to_json(),
        }
    )


@blueprint.post("/api/shutdown")
async def shutdown() -> tuple[Response, int]:
    d = daemon()
    # Answer first, then stop: the response must leave before the server closes connections.
    asyncio.get_running_loop().call_soon(d.request_shutdown)
    # How long the shutdown may take (stopping the runs decides), so a client knows how long
    # to wait; Hypercorn's grace for open requests comes on top.
    within = d.stop_bound() + GRACEFUL_TIMEOUT
    return jsonify({"status": "stopping", "within": round(within, 1)}), 202


@blueprint.get("/api/agents")
async def agents() -> Response:
    d = daemon()
    config = d.config()
    agents = await d.agents(check=own_request())
    return jsonify(
        {
            "agents": agents,
            "config": {
                "path": str(config.path),
                "problems": [str(problem) for problem in config.problems],
            },
        }
    )


@blueprint.post("/api/runs")
async def launch() -> tuple[Response, int]:
    body = json_object()
    unknown = sorted(set(body) - LAUNCH_FIELDS)
    if unknown:
        expected = ", ".join(sorted(LAUNCH_FIELDS))
        raise ApiError(422, f"unknown field {shown(repr(unknown[0]))}; expected {expected}")
    agent = body.get("agent")
    if not isinstance(agent, str) or not agent:
        raise ApiError(422, "field 'agent' is required and must be a string")
    check_text("agent", agent)
    prompt = optional_string(body, "prompt") or ""
    cwd = optional_string(body, "cwd")
    permission = parse_permission(optional_string(body, "permission"))
    worktree = optional_bool(body, "worktree")
    terminal = optional_bool(body, "terminal")
    run = await daemon().launch(
        agent, prompt, cwd, permission, worktree=worktree, terminal=terminal
    )
    return jsonify(run.to_json()), 201


@blueprint.get("/api/runs")
async def list_runs() -> Response:
    limit = int_arg("limit", 50, 1, MAX_PAGE)
    states = None
    if "state" in request.args:
        try:
            states = [RunState(s) for s in request.args.getlist("state")]
        except ValueError as exc:
            choices = ", ".join(s.value for s in RunState)
            raise ApiError(422, f"invalid state filter: {exc}; one of {choices}") from exc
    before = request.args.get("before") or None
    try:
        runs = await daemon().runs(limit=limit, before=before, states=states)
    except UnknownRun as exc:
        raise ApiError(422, f"invalid 'before': {exc}") from exc
    return jsonify([run.to_json() for run in runs])


@blueprint.get("/api/runs/<run_id>")
async def get_run(run_id: str) -> Response:
    return jsonify((await find_run(run_id)).to_json())


@blueprint.post("/api/runs/<run_id>/stop")
async def stop_run(run_id: str) -> Response:
    run = await find_run(run_id)
    return jsonify((await daemon().stop_run(run.id)).to_json())


@blueprint.post("/api/runs/<run_id>/continue")
async def continue_run(run_id: str) -> tuple[Response, int]:
    body = json_object()
    only_fields(body, {"prompt"})
    run = await find_run(run_id)
    new = await daemon().continue_run(run.id, required_string(body, "prompt"))
    return jsonify(new.to_json()), 201


@blueprint.post("/api/runs/<run_id>/message")
async def message(run_id: str) -> Response:
    body = json_object()
    only_fields(body, {"prompt"})
    run = await find_run(run_id)
    return jsonify((await daemon().message(run.id, required_string(body, "prompt"))).to_json())


@blueprint.post("/api/runs/<run_id>/approval")
async def approval(run_id: str) -> Response:
    body = json_object()
    only_fields(body, {"id", "decision", "message"})
    approval_id = required_string(body, "id")
    decision = body.get("decision")
    if decision not in DECISIONS:
        raise ApiError(422, 'field \'decision\' must be "allow", "always" or "deny"')
    note = optional_string(body, "message") or ""
    run = await find_run(run_id)
    allow, always = decision != "deny", decision == "always"
    decided = await daemon().decide(run.id, approval_id, allow, note, always)
    return jsonify(decided.to_json())


@blueprint.post("/api/runs/<run_id>/done")
async def done(run_id: str) -> Response:
    run = await find_run(run_id)
    return jsonify((await daemon().finish(run.id)).to_json())


@blueprint.delete("/api/runs/<run_id>")
async def delete_run(run_id: str) -> tuple[str, int]:
    run = await find_run(run_id)
    await daemon().delete_run(run.id, discard=bool_arg("discard"))
    return "", 204


@blueprint.get("/api/runs/<run_id>/log")
async def run_log(run_id: str) -> Response:
    return await stored_bytes(await find_run(run_id), "log", "text/plain")


@blueprint.get("/api/runs/<run_id>/events")
async def run_events(run_id: str) -> Response:
    """The raw JSON lines a structured agent wrote on stdout, from byte ``offset``."""
    return await stored_bytes(await find_run(run_id), "events", "application/x-ndjson")


@blueprint.get("/api/runs/<run_id>/stderr")
async def run_stderr(run_id: str) -> Response:
    """What a structured agent wrote on stderr, raw, from byte ``offset``."""
    return await stored_bytes(await find_run(run_id), "stderr", "text/plain")


async def stored_bytes(run: Run, stream: Stream, mimetype: str) -> Response:
    """A run's output or events from the ``offset`` parameter, at most 4 MiB a call."""
    offset = int_arg("offset", 0, 0, MAX_OFFSET)
    d = daemon()
    # Past the end there is nothing yet (and seeking that far is an error on some systems).
    if offset >= await d.log_size(run.id, stream):
        data = b""
    else:
        data = await d.read_log(run.id, offset, 4 * 1024 * 1024, stream)
    response = Response(data, mimetype=mimetype)
    response.headers["X-AIOS-Log-Next-Offset"] = str(offset + len(data))
    response.headers["X-AIOS-Run-State"] = str(run.state)
    return response


@blueprint.get("/api/events")
async def events() -> Response:
    d = daemon()
    last_id = request.headers.get("Last-Event-ID")
    try:
        last = int(last_id) if last_id else None
    except ValueError:
        last = -1  # unknown id: the bus answers with a reset
    subscription = d.bus.subscribe(last)

    async def stream() -> AsyncIterator[bytes]:
        # Without an id, so it does not move the client's Last-Event-ID: tells the client the
        # stream is open (the dashboard shows "connected", the CLI starts fetching).
        hello = json.dumps({"last_id": d.bus.last_id})
        yield f"retry: 1000\nevent: hello\ndata: {hello}\n\n".encode()
        async for batch in events_or_heartbeats(subscription):
            yield KEEP_ALIVE if batch is None else b"".join(event.sse() for event in batch)

    return event_stream(stream())


# -- worktrees and changes (issue 11) ------------------------------------------------------------


@blueprint.get("/api/runs/<run_id>/diff")
async def run_diff(run_id: str) -> Response:
    """What the run changed, as a unified diff (recorded when it ended, capped)."""
    run = await find_run(run_id)
    response = Response(await daemon().run_diff(run.id), mimetype=DIFF_TYPE)
    response.headers["Content-Disposition"] = f'inline; filename="aios-{run.id}.diff"'
    return response


@blueprint.post("/api/runs/<run_id>/worktree/merge")
async def merge_worktree(run_id: str) -> Response:
    run = await find_run(run_id)
    return jsonify((await daemon().merge_worktree(run.id)).to_json())


@blueprint.post("/api/runs/<run_id>/worktree/discard")
async def discard_worktree(run_id: str) -> Response:
    run = await find_run(run_id)
    return jsonify((await daemon().discard_worktree(run.id)).to_json())


@blueprint.post("/api/runs/<run_id>/worktree/open")
async def open_worktree(run_id: str) -> Response:
    run = await find_run(run_id)
    path = await daemon().open_worktree(run.id)
    return jsonify({"path": str(path)})
