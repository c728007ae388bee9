"""Every rule of DESIGN.md section 7, each tried with a forged request (in-process tier)."""

from __future__ import annotations

import html
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from aios.credentials import SESSION_LIFETIME, Secrets
from aios.facade import Daemon
from aios.paths import Paths
from aios.server.app import create_app
from aios.server.security import CSRF_HEADER, SECURITY_HEADERS, cookie_name

PORT = 4321
HOST = f"127.0.0.1:{PORT}"
ORIGIN = f"http://{HOST}"


@pytest.fixture
def keys() -> Secrets:
    return Secrets.generate()


@pytest.fixture
def shutdowns() -> list[int]:
    return []


@pytest.fixture
async def app(tmp_path: Path, keys: Secrets, shutdowns: list[int]) -> AsyncIterator[Quart]:
    paths = Paths.from_env({"AIOS_HOME": str(tmp_path)})
    paths.ensure()
    daemon = Daemon(paths, PORT, keys, request_shutdown=lambda: shutdowns.append(1))
    await daemon.start()
    try:
        yield create_app(daemon)
    finally:
        await daemon.stop()


@pytest.fixture
def client(app: Quart) -> Client:
    return app.test_client()


def bearer(keys: Secrets, **extra: str) -> dict[str, str]:
    return {"Host": HOST, "Authorization": f"Bearer {keys.token}", **extra}


async def login(client: Client, keys: Secrets) -> None:
    response = await client.get(f"/login?token={keys.token}", headers={"Host": HOST})
    assert response.status_code == 200


async def refresh_target(response: Any) -> str:
    """Where the page /login answers with moves on to (its meta refresh)."""
    match = re.search(
        r'http-equiv="refresh" content="0;url=([^"]*)"', await response.get_data(True)
    )
    assert match is not None
    return html.unescape(match.group(1))


async def error_of(response: Any) -> str:
    body = await response.get_json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    return str(body["error"])


async def test_health_needs_no_token(client: Client) -> None:
    response = await client.get("/health", headers={"Host": HOST})
    assert response.status_code == 200
    body = await response.get_json()
    assert body["status"] == "ok" and body["version"] and body["uptime"] >= 0


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:4321",
        "127.0.0.1",  # no port
        "127.0.0.1:",
        "127.0.0.1:43210x",
        "127.0.0.1:123456",
        "evil.example:4321@127.0.0.1:4321",
        "localhost.:4321",  # trailing dot resolves the same but is a different name
        "0.0.0.0:4321",
        "127.0.0.2:4321",
        "LOCALHOST:4321x",
        "",
    ],
)
async def test_foreign_host_is_refused_everywhere(client: Client, keys: Secrets, host: str) -> None:
    for path in ("/health", "/api/status", "/static/missing.css", "/login", "/nowhere"):
        response = await client.get(path, headers=bearer(keys, Host=host))
        assert response.status_code == 403, (path, host)
        assert "not allowed" in await error_of(response)


@pytest.mark.parametrize(
    "host",
    [
        f"127.0.0.1:{PORT}",
        f"localhost:{PORT}",
        f"[::1]:{PORT}",
        # A local port forwarded to ours (ssh -L 8080:127.0.0.1:4321): still this daemon.
        "localhost:8080",
        "127.0.0.1:8080",
    ],
)
async def test_loopback_hosts_are_allowed(client: Client, keys: Secrets, host: str) -> None:
    response = await client.get("/api/status", headers=bearer(keys, Host=host))
    assert response.status_code == 200


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer wrong", "Basic abc", "bearer  "])
async def test_api_needs_the_token(client: Client, authorization: str | None) -> None:
    headers = {"Host": HOST}
    if authorization is not None:
        headers["Authorization"] = authorization
    for path in ("/api/status", "/", "/static/x.css"):
        response = await client.get(path, headers=headers)
        assert response.status_code == 401, path
        assert "token" in await error_of(response)
        assert "Set-Cookie" not in response.headers


async def test_missing_host_header_is_refused(app: Quart, keys: Secrets) -> None:
    async with app.test_app():
        scope_headers: list[tuple[bytes, bytes]] = [
            (b"authorization", f"Bearer {keys.token}".encode())
        ]
        client = app.test_client()
        response = await client.get(
            "/api/status", headers={k.decode(): v.decode() for k, v in scope_headers}
        )
        # The test client fills in "localhost" as Host, which has no port: refused.
        assert response.status_code == 403


async def test_login_swaps_token_for_strict_httponly_cookie(client: Client, keys: Secrets) -> None:
    response = await client.get(f"/login?token={keys.token}", headers={"Host": HOST})
    assert response.status_code == 200
    assert await refresh_target(response) == "/"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{cookie_name(PORT)}=")
    assert keys.token not in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    page = await client.get("/", headers={"Host": HOST})
    assert page.status_code == 200
    assert keys.csrf in (await page.get_data(as_text=True))


async def test_session_cookie_has_a_lifetime(client: Client, keys: Secrets) -> None:
    response = await client.get(f"/login?token={keys.token}", headers={"Host": HOST})
    cookie = response.headers["Set-Cookie"]
    assert f"Max-Age={SESSION_LIFETIME};" in cookie and "Expires=" in cookie
    assert SESSION_LIFETIME == 7 * 24 * 3600  # what the README promises


@pytest.mark.parametrize(
    ("issued_ago", "forge", "status"),
    [
        (0, False, 200),
        (SESSION_LIFETIME - 60, False, 200),
        (SESSION_LIFETIME + 1, False, 401),  # expired: refused even if the browser kept it
        (-3600, False, 401),  # "issued" an hour from now
        (0, True, 401),  # a MAC that is not ours
    ],
)
async def test_session_cookie_is_checked_for_age_and_signature(
    client: Client, keys: Secrets, issued_ago: int, forge: bool, status: int
) -> None:
    value = keys.issue_cookie(time.time() - issued_ago)
    if forge:
        value = value[:-4] + ("0000" if not value.endswith("0000") else "1111")
    response = await client.get(
        "/api/status", headers={"Host": HOST, "Cookie": f"{cookie_name(PORT)}={value}"}
    )
    assert response.status_code == status


@pytest.mark.parametrize("value", ["", "x", "1.2", "99999999999999999999.ab", "١٢٣.ab"])
async def test_malformed_session_cookies_are_refused(
    client: Client, keys: Secrets, value: str
) -> None:
    response = await client.get(
        "/api/status", headers={"Host": HOST, "Cookie": f"{cookie_name(PORT)}={value}"}
    )
    assert response.status_code == 401
    old_style = f"{cookie_name(PORT)}={keys.session}"  # the bare key, as cookies once were
    response = await client.get("/api/status", headers={"Host": HOST, "Cookie": old_style})
    assert response.status_code == 401


@pytest.mark.parametrize("query", ["", "?token=", "?token=wrong", "?tok=x"])
async def test_login_without_valid_token_never_sets_cookie(client: Client, query: str) -> None:
    response = await client.get(f"/login{query}", headers={"Host": HOST})
    assert response.status_code == 401
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize(
    ("target", "expected"),
    [("/settings", "/settings"), ("//evil.example/", "/"), ("http://evil/", "/"), ("x", "/")],
)
async def test_login_redirects_only_to_local_paths(
    client: Client, keys: Secrets, target: str, expected: str
) -> None:
    response = await client.get(
        "/login", query_string={"token": keys.token, "next": target}, headers={"Host": HOST}
    )
    assert await refresh_target(response) == expected
    posted = await client.post(
        "/login", form={"token": keys.token, "next": target}, headers={"Host": HOST}
    )
    assert await refresh_target(posted) == expected


@pytest.mark.parametrize("origin", [None, "null", "http://evil.example"])
async def test_login_form_may_come_from_anywhere_with_the_token(
    client: Client, keys: Secrets, origin: str | None
) -> None:
    """The file: page that `aios open` writes posts the token (Origin: null); its token is its
    whole authority, so no other origin gets a cookie without it."""
    headers = {"Host": HOST, "Sec-Fetch-Site": "cross-site"}
    if origin is not None:
        headers["Origin"] = origin
    response = await client.post("/login", form={"token": keys.token}, headers=headers)
    assert response.status_code == 200
    assert response.headers["Set-Cookie"].startswith(f"{cookie_name(PORT)}=")
    for wrong in ({"token": "wrong"}, {}, {"tok": keys.token}):
        refused = await client.post("/login", form=wrong, headers=headers)
        assert refused.status_code == 401
        assert "Set-Cookie" not in refused.headers
    in_query = await client.post(f"/login?token={keys.token}", headers=headers)
    assert in_query.status_code == 401  # a POST's token is in its body, never its address


async def test_post_with_foreign_origin_is_refused(
    client: Client, keys: Secrets, shutdowns: list[int]
) -> None:
    for origin in (
        "http://evil.example",
        "null",
        "http://127.0.0.1:9999",
        "https://127.0.0.1:4321",
    ):
        response = await client.post("/api/shutdown", headers=bearer(keys, Origin=origin))
        assert response.status_code == 403, origin
        assert "cross-origin" in await error_of(response)
    assert shutdowns == []


async def test_post_with_cross_site_fetch_metadata_is_refused(
    client: Client, keys: Secrets
) -> None:
    for site in ("cross-site", "same-site", "none"):
        response = await client.post(
            "/api/shutdown", headers=bearer(keys, **{"Sec-Fetch-Site": site})
        )
        assert response.status_code == 403, site


async def test_cookie_session_needs_csrf_header_for_state_changes(
    client: Client, keys: Secrets, shutdowns: list[int]
) -> None:
    await login(client, keys)
    headers = {"Host": HOST, "Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"}
    refused = await client.post("/api/shutdown", headers=headers)
    assert refused.status_code == 403
    assert CSRF_HEADER in await error_of(refused)
    wrong = await client.post("/api/shutdown", headers={**headers, CSRF_HEADER: "nope"})
    assert wrong.status_code == 403
    assert shutdowns == []
    ok = await client.post("/api/shutdown", headers={**headers, CSRF_HEADER: keys.csrf})
    assert ok.status_code == 202


async def test_api_refuses_non_json_bodies(client: Client, keys: Secrets) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        response = await client.post(
            "/api/shutdown", data="{}", headers=bearer(keys, **{"Content-Type": content_type})
        )
        assert response.status_code == 415, content_type
        assert "application/json" in await error_of(response)


async def test_oversized_body_is_refused(client: Client, keys: Secrets) -> None:
    body = '{"x": "' + "a" * (64 * 1024) + '"}'
    response = await client.post(
        "/api/shutdown", data=body, headers=bearer(keys, **{"Content-Type": "application/json"})
    )
    assert response.status_code == 413
    assert "64 KiB" in await error_of(response)


async def test_bearer_post_without_browser_headers_works(
    client: Client, keys: Secrets, shutdowns: list[int]
) -> None:
    response = await client.post("/api/shutdown", headers=bearer(keys))
    assert response.status_code == 202
    assert (await response.get_json())["status"] == "stopping"


async def test_every_response_carries_security_headers(client: Client, keys: Secrets) -> None:
    for response in (
        await client.get("/health", headers={"Host": HOST}),
        await client.get("/api/status", headers={"Host": "evil:1"}),
        await client.get("/nowhere", headers=bearer(keys)),
        await client.get("/api/status", headers={"Host": HOST}),
    ):
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value
        assert "Access-Control-Allow-Origin" not in response.headers
    csp = SECURITY_HEADERS["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp


async def test_unknown_route_and_wrong_method_are_json(client: Client, keys: Secrets) -> None:
    missing = await client.get("/api/nothing", headers=bearer(keys))
    assert missing.status_code == 404
    assert await error_of(missing) == "not found"
    wrong = await client.get("/api/shutdown", headers=bearer(keys))
    assert wrong.status_code == 405
    assert await error_of(wrong) == "method not allowed"


@pytest.mark.parametrize(
    "path",
    [
        "/api/runs/abc/worktree/merge",
        "/api/runs/abc/worktree/discard",
        "/api/runs/abc/worktree/open",
        "/ui/runs/abc/worktree/merge",
        "/ui/runs/abc/worktree/discard",
        "/ui/runs/abc/worktree/open",
    ],
)
async def test_worktree_actions_pass_the_same_guard(
    client: Client, keys: Secrets, path: str
) -> None:
    """Merge, discard and open change state: token, Origin, Fetch metadata and CSRF all hold."""
    assert (await client.post(path, headers={"Host": HOST})).status_code == 401
    foreign = await client.post(path, headers=bearer(keys, Origin="http://evil.example"))
    assert foreign.status_code == 403
    cross = await client.post(path, headers=bearer(keys, **{"Sec-Fetch-Site": "cross-site"}))
    assert cross.status_code == 403
    await login(client, keys)
    same_site = {"Host": HOST, "Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"}
    assert (await client.post(path, headers=same_site)).status_code == 403  # no CSRF header
    # Past the guard, an unknown run is a 404 (the path names a run, never a folder).
    allowed = await client.post(path, headers={**same_site, CSRF_HEADER: keys.csrf})
    assert allowed.status_code == 404
    assert "no run matches" in await error_of(allowed)


async def test_deleting_with_discard_passes_the_guard(client: Client, keys: Secrets) -> None:
    response = await client.delete(
        "/api/runs/abc?discard=true", headers=bearer(keys, Origin="http://evil.example")
    )
    assert response.status_code == 403
    response = await client.delete("/api/runs/abc?discard=perhaps", headers=bearer(keys))
    assert response.status_code == 404  # the run is looked up first


async def test_only_the_style_sheet_and_icon_are_served_without_a_session(
    client: Client,
) -> None:
    for path in ("/static/app.css", "/static/favicon.svg"):
        response = await client.get(path, headers={"Host": HOST})
        assert response.status_code == 200, path
    for path in ("/static/app.js", "/static/vendor/htmx.min.js", "/api/status", "/"):
        response = await client.get(path, headers={"Host": HOST})
        assert response.status_code == 401, path


async def test_a_page_without_a_session_is_html_the_api_stays_json(client: Client) -> None:
    html = {"Host": HOST, "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    page = await client.get("/", headers=html)
    assert page.status_code == 401 and page.mimetype == "text/html"
    assert "aios open" in await page.get_data(as_text=True)
    for path, extra in (("/api/status", {}), ("/ui/rows", {}), ("/", {"HX-Request": "true"})):
        response = await client.get(path, headers={**html, **extra})
        assert response.status_code == 401 and response.mimetype == "application/json", path


async def test_static_files_come_from_memory_with_an_etag_and_never_from_outside(
    client: Client, keys: Secrets
) -> None:
    first = await client.get("/static/app.js", headers=bearer(keys))
    assert first.status_code == 200
    assert first.mimetype in ("text/javascript", "application/javascript")
    etag = first.headers["ETag"]
    again = await client.get("/static/app.js", headers={**bearer(keys), "If-None-Match": etag})
    assert again.status_code == 304
    for path in ("/static/../runs.py", "/static/..%2Fruns.py", "/static/vendor", "/static/nope.js"):
        response = await client.get(path, headers=bearer(keys))
        assert response.status_code == 404, path
