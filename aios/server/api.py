"""The JSON API (DESIGN.md section 5).

Run ids in paths may be any unambiguous prefix, like git's: the CLI passes what the user typed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from quart import Blueprint, Response, jsonify, request

from aios.runs import Run, RunState
from aios.server.context import daemon
from aios.server.errors import ApiError
from aios.server.sse import KEEP_ALIVE, event_stream, events_or_heartbeats
from aios.store import AmbiguousRun, UnknownRun

blueprint = Blueprint("api", __name__)

MAX_PAGE = 500
GRACEFUL_TIMEOUT = 5.0  # Hypercorn's grace for open requests (aios.service sets it from this)
LAUNCH_FIELDS = {"agent", "prompt", "cwd"}


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
    config = daemon().config()
    # to_json checks each executable on PATH: file system work, kept off the event loop.
    agents = await asyncio.to_thread(lambda: [a.to_json() for a in config.agents.values()])
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
    body = await json_object()
    unknown = sorted(set(body) - LAUNCH_FIELDS)
    if unknown:
        raise ApiError(422, f"unknown field {unknown[0]!r}; expected agent, prompt, cwd")
    agent = body.get("agent")
    if not isinstance(agent, str) or not agent:
        raise ApiError(422, "field 'agent' is required and must be a string")
    prompt = optional_string(body, "prompt") or ""
    cwd = optional_string(body, "cwd")
    run = await daemon().launch(agent, prompt, cwd)
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


@blueprint.delete("/api/runs/<run_id>")
async def delete_run(run_id: str) -> tuple[str, int]:
    run = await find_run(run_id)
    await daemon().delete_run(run.id)
    return "", 204


@blueprint.get("/api/runs/<run_id>/log")
async def run_log(run_id: str) -> Response:
    run = await find_run(run_id)
    offset = int_arg("offset", 0, 0, None)
    data = await daemon().read_log(run.id, offset, 4 * 1024 * 1024)
    response = Response(data, mimetype="text/plain")
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


# -- helpers -----------------------------------------------------------------------------------


async def find_run(run_id: str) -> Run:
    try:
        return await daemon().find_run(run_id)
    except UnknownRun as exc:
        raise ApiError(404, str(exc)) from exc
    except AmbiguousRun as exc:
        raise ApiError(400, str(exc)) from exc


async def json_object() -> dict[str, Any]:
    raw = await request.get_data(as_text=True)
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(422, f"the body must be a JSON object, not {type(body).__name__}")
    return body


def optional_string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise ApiError(422, f"field {name!r} must be a string, not {type(value).__name__}")
    return value


def int_arg(name: str, default: int, minimum: int, maximum: int | None) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(422, f"query parameter {name!r} must be an integer, not {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise ApiError(422, f"query parameter {name!r} must be {bound}")
    return value
