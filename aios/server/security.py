"""The security layer every request passes through (DESIGN.md section 7).

The server can start processes, so anything that reaches the port and gets past this module has
remote code execution. Each rule holds on its own:

1. Host allow-list first, for every route: the only defence against DNS rebinding. The name must
   be a loopback name; the port may differ from ours, since a port forwarded to this one (an SSH
   tunnel) is still this daemon, and a rebinding attack can only bring a name of its own.
2. A token (``Authorization: Bearer``) or the session cookie that ``/login`` trades it for.
3. For state changes: ``Origin`` and ``Sec-Fetch-Site`` must say same-origin, cookie sessions must
   send the CSRF header, and the JSON API takes only JSON bodies (a cross-site ``text/plain``
   form post is the classic way around CORS). ``POST /login`` alone comes from elsewhere (the
   ``file:`` page ``aios open`` writes): the token in its body is its whole authority.
4. Bodies are capped; every response carries the CSP and friends.
5. WebSockets (a terminal run's, ``aios.server.terminal_socket``) pass the same Host and
   sign-in checks before the handshake is answered, and their ``Origin`` must be the daemon's
   own, always (browsers always send it on a WebSocket, and no CORS protects one: a page
   elsewhere could otherwise drive a terminal with the user's cookie). A browser cannot add a
   header to a WebSocket, so the CSRF header has no part there: the Origin is the check.
"""

from __future__ import annotations

import hmac
import time
from enum import Enum
from typing import Final

from quart import Quart, Response, g, request, websocket
from quart.typing import ResponseTypes
from werkzeug.datastructures import Headers
from werkzeug.exceptions import RequestEntityTooLarge

from aios.credentials import Secrets
from aios.server.errors import ApiError

BODY_LIMIT: Final = 64 * 1024
CSRF_HEADER: Final = "X-AIOS-CSRF"
UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Routes reachable without a token. /health answers monitoring; /login checks the token itself;
# the style sheet and icon dress the page that tells a browser without a session how to sign in
# (they are the same files every copy of AIOS ships: nothing to hide).
PUBLIC_PATHS: Final = frozenset({"/health", "/login", "/static/app.css", "/static/favicon.svg"})
LOOPBACK_NAMES: Final = frozenset({"127.0.0.1", "localhost", "[::1]"})

SECURITY_HEADERS: Final = {
    # No inline script or style anywhere: htmx and our own JS/CSS come from /static.
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class Auth(Enum):
    NONE = "none"
    BEARER = "bearer"
    COOKIE = "cookie"


def cookie_name(port: int) -> str:
    # Browsers do not isolate cookies by port: two daemons on one host must not share a name.
    return f"aios_session_{port}"


def same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def allowed_host(host: str) -> bool:
    """A loopback name with a port: ours, or a local port forwarded to ours."""
    name, colon, port = host.rpartition(":")
    return (
        bool(colon)
        and name in LOOPBACK_NAMES
        and port.isascii()
        and port.isdigit()
        and len(port) <= 5
    )


class Guard:
    def __init__(self, port: int, keys: Secrets) -> None:
        self.port = port
        self.keys = keys
        self.cookie = cookie_name(port)

    def install(self, app: Quart) -> None:
        app.config["MAX_CONTENT_LENGTH"] = BODY_LIMIT
        app.before_request(self.check_request)
        app.after_request(self.add_headers)
        app.before_websocket(self.check_websocket)
        app.after_websocket(self.add_websocket_headers)

    def authenticate(self, headers: Headers | None = None, cookie: str | None = None) -> Auth:
        """Who sent the request (a WebSocket's handshake: its ``headers`` and cookie)."""
        if headers is None:
            headers, cookie = request.headers, request.cookies.get(self.cookie)
        header = headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() == "bearer" and same(credential.strip(), self.keys.token):
            return Auth.BEARER
        if self.keys.cookie_valid(cookie, time.time()):
            return Auth.COOKIE
        return Auth.NONE

    async def check_websocket(self) -> None:
        """A WebSocket handshake: Host, sign-in, and an Origin that is ours (see 5. above).
        Refused with an HTTP error before the upgrade."""
        headers = websocket.headers
        host = headers.get("Host")
        if host is None or not allowed_host(host):
            raise ApiError(403, f"host {host!r} is not allowed; use 127.0.0.1:{self.port}")
        g.auth = self.authenticate(headers, websocket.cookies.get(self.cookie))
        if g.auth is Auth.NONE:
            raise ApiError(401, "missing or invalid token; use `aios open` to sign in")
        origin = headers.get("Origin")
        if origin != f"http://{host}":
            said = "no Origin" if origin is None else f"Origin {origin!r}"
            raise ApiError(403, f"WebSocket with {said} refused: only http://{host} may open one")
        fetch_site = headers.get("Sec-Fetch-Site")
        if fetch_site is not None and fetch_site != "same-origin":
            raise ApiError(403, f"cross-site WebSocket refused (Sec-Fetch-Site: {fetch_site})")

    async def check_request(self) -> None:
        host = request.headers.get("Host")
        if host is None or not allowed_host(host):
            raise ApiError(403, f"host {host!r} is not allowed; use 127.0.0.1:{self.port}")
        length = request.content_length
        if length is not None and length > BODY_LIMIT:
            raise ApiError(413, f"request body is larger than {BODY_LIMIT // 1024} KiB")
        g.auth = self.authenticate()
        if request.path not in PUBLIC_PATHS and g.auth is Auth.NONE:
            raise ApiError(401, "missing or invalid token; use `aios open` to sign in")
        if request.method in UNSAFE_METHODS:
            if request.path != "/login":
                self.check_state_change(host, g.auth)
            if self.has_body():
                await self.read_capped_body()

    def check_state_change(self, host: str, auth: Auth) -> None:
        origin = request.headers.get("Origin")
        # "null" (sandboxed frames, file: pages) and other ports are foreign origins.
        if origin is not None and origin != f"http://{host}":
            raise ApiError(403, f"cross-origin request from {origin!r} refused")
        fetch_site = request.headers.get("Sec-Fetch-Site")
        if fetch_site is not None and fetch_site != "same-origin":
            raise ApiError(403, f"cross-site request refused (Sec-Fetch-Site: {fetch_site})")
        if auth is Auth.COOKIE and not same(request.headers.get(CSRF_HEADER), self.keys.csrf):
            raise ApiError(403, f"missing or invalid {CSRF_HEADER} header")
        if request.path.startswith("/api/") and self.has_body():
            mimetype = request.mimetype
            if mimetype != "application/json":
                raise ApiError(415, f"request body must be application/json, not {mimetype!r}")

    @staticmethod
    async def read_capped_body() -> None:
        # A chunked body has no Content-Length to check up front: reading it (cached for the
        # route) makes Quart enforce MAX_CONTENT_LENGTH as the bytes arrive.
        try:
            await request.get_data(cache=True)
        except RequestEntityTooLarge as exc:
            raise ApiError(413, f"request body is larger than {BODY_LIMIT // 1024} KiB") from exc

    @staticmethod
    def has_body() -> bool:
        # A body-less POST (aios stop) needs no Content-Type; anything with a body must say JSON.
        return bool(
            request.content_length
            or "Transfer-Encoding" in request.headers
            or request.headers.get("Content-Type")
        )

    async def add_websocket_headers(self, response: ResponseTypes | None) -> ResponseTypes | None:
        """A refused handshake's answer is a response like any other."""
        if response is not None:
            for name, value in SECURITY_HEADERS.items():
                response.headers[name] = value
            response.headers["Cache-Control"] = "no-store"
        return response

    async def add_headers(self, response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        if not request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response


def own_request() -> bool:
    """Whether this request may make the daemon start a program although it changes nothing
    (a GET: the agents' login checks): not when a browser says another page sent it (its
    ``Origin`` is another, or ``Sec-Fetch-Site`` is neither ``same-origin`` nor ``none``, which
    is an address typed or opened by the user). Clients that send neither header may."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"http://{request.headers.get('Host')}":
        return False
    return request.headers.get("Sec-Fetch-Site") in (None, "same-origin", "none")
