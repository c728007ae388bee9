"""The browser side: login and the HTML pages."""

from __future__ import annotations

from urllib.parse import urlsplit

from quart import Blueprint, redirect, render_template, request
from werkzeug.wrappers.response import Response as RedirectResponse

from aios.server.context import daemon
from aios.server.errors import ApiError
from aios.server.security import cookie_name, same

blueprint = Blueprint("pages", __name__)


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


@blueprint.get("/")
async def index() -> str:
    d = daemon()
    return await render_template("index.html", daemon=d, csrf=d.keys.csrf)
