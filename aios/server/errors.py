"""Every error leaves the server as ``{"error": "<what was wrong>"}`` with a 4xx/5xx status.

The core and the store raise domain errors that know nothing of HTTP; ``STATUS`` is where each
gets its status, here at the server's edge. History that cannot be used is not a bug: a full disk
is 507, a database that is read-only, fails or is damaged is 503, each with the store's words
(which file, which disk, what to do).
"""

from __future__ import annotations

import logging

from quart import Quart, Response, has_request_context, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from aios.agents.errors import (
    InvalidLaunch,
    NoChanges,
    QueueFull,
    ShuttingDown,
    SupervisorError,
    UnknownAgent,
    WorktreeRefused,
    WrongRunState,
)
from aios.credentials import SESSION_LIFETIME
from aios.store_errors import AmbiguousRun, StoreError, StoreUnavailable, Trouble, UnknownRun

log = logging.getLogger("aios.server")

# The status of each domain error; the most specific class listed wins (``status_of``).
STATUS: dict[type[Exception], int] = {
    SupervisorError: 400,
    UnknownAgent: 404,  # no such agent name
    InvalidLaunch: 422,  # agent unavailable, prompt missing, bad working directory
    QueueFull: 429,
    WrongRunState: 409,  # stopping a finished run, deleting a live one
    WorktreeRefused: 409,  # git said no (its words are the message)
    NoChanges: 404,  # a diff asked of a run that recorded none
    ShuttingDown: 503,
    UnknownRun: 404,
    AmbiguousRun: 400,
    StoreError: 503,  # history out of reach (closing at shutdown)
    StoreUnavailable: 503,  # read-only, failing or damaged; a full disk is 507 (below)
}


def status_of(exc: Exception) -> int:
    if isinstance(exc, StoreUnavailable) and exc.trouble is Trouble.DISK_FULL:
        return 507
    for kind in type(exc).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


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
    @app.errorhandler(StoreError)
    async def domain_error(exc: SupervisorError | StoreError) -> Response:
        # Not a bug of ours: the message says what was wrong and what to do (a store that
        # cannot be used has logged it once; history out of reach otherwise is logged here).
        if type(exc) is StoreError:
            log.error("history: %s", exc)
        return error_response(status_of(exc), str(exc))

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
    """A browser navigating to a page, rather than the API, htmx, a stream or a script (or a
    WebSocket: its handshake is refused with the JSON error)."""
    return (
        has_request_context()
        and request.method == "GET"
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
