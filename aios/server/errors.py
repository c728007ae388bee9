"""Every error leaves the server as ``{"error": "<what was wrong>"}`` with a 4xx/5xx status.

History that cannot be used is not a bug: a full disk is 507, a database that is read-only,
fails or is damaged is 503, each with the store's words (which file, which disk, what to do).
"""

from __future__ import annotations

import logging

from quart import Quart, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from aios.agents.errors import SupervisorError
from aios.credentials import SESSION_LIFETIME
from aios.store_errors import AmbiguousRun, StoreError, StoreUnavailable, UnknownRun

log = logging.getLogger("aios.server")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


def error_response(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response


def install(app: Quart) -> None:
    @app.errorhandler(ApiError)
    async def api_error(exc: ApiError) -> Response:
        if exc.status == 401 and wants_page():
            return await signin_page()
        return error_response(exc.status, exc.message)

    @app.errorhandler(SupervisorError)
    async def supervisor_error(exc: SupervisorError) -> Response:
        return error_response(exc.status, str(exc))

    @app.errorhandler(StoreUnavailable)
    async def store_unavailable(exc: StoreUnavailable) -> Response:
        # Not a bug of ours: the disk is full (507) or the database fails (503); the message
        # says which and what to do (the store has logged it once).
        return error_response(exc.status, str(exc))

    @app.errorhandler(StoreError)
    async def store_error(exc: StoreError) -> Response:
        # A run named that none matches, or history out of reach (closing at shutdown).
        if isinstance(exc, UnknownRun):
            return error_response(404, str(exc))
        if isinstance(exc, AmbiguousRun):
            return error_response(400, str(exc))
        log.error("history: %s", exc)
        return error_response(503, str(exc))

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        response = error_response(status, _describe(exc))
        if status == 405 and exc.response is None:
            allowed = getattr(exc, "valid_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error: %s", exc)
        return error_response(500, "internal error; see the AIOS log file")


def wants_page() -> bool:
    """A browser navigating to a page, rather than the API, htmx, a stream or a script."""
    return (
        request.method == "GET"
        and not request.path.startswith(("/api/", "/ui/", "/static/"))
        and "HX-Request" not in request.headers
        and request.accept_mimetypes.accept_html
    )


async def signin_page() -> Response:
    """How to open the dashboard, for a browser without a session (instead of raw JSON)."""
    html = await render_template(
        "signin.html",
        bad_link=request.path == "/login",
        lifetime_days=SESSION_LIFETIME // 86400,
    )
    return Response(html, status=401, mimetype="text/html")


def _describe(exc: HTTPException) -> str:
    messages = {
        404: "not found",
        405: "method not allowed",
        413: "request body is too large",
    }
    return messages.get(exc.code or 0) or (exc.description or exc.name).strip()
