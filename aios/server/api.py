"""The JSON API (DESIGN.md section 5)."""

from __future__ import annotations

import asyncio
from typing import Any

from quart import Blueprint, Response, jsonify

from aios.server.context import daemon

blueprint = Blueprint("api", __name__)


@blueprint.get("/health")
async def health() -> Response:
    d = daemon()
    return jsonify({"status": "ok", "version": d.version, "uptime": round(d.uptime, 3)})


@blueprint.get("/api/status")
async def status() -> Response:
    """What ``aios status`` prints; also how a client confirms it reached *this* daemon."""
    return jsonify(status_body())


def status_body() -> dict[str, Any]:
    d = daemon()
    return {
        "status": "ok",
        "version": d.version,
        "pid": d.pid,
        "url": d.url,
        "uptime": round(d.uptime, 3),
    }


@blueprint.post("/api/shutdown")
async def shutdown() -> tuple[Response, int]:
    d = daemon()
    # Answer first, then stop: the response must leave before the server closes connections.
    asyncio.get_running_loop().call_soon(d.request_shutdown)
    return jsonify({"status": "stopping"}), 202
