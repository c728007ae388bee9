"""``/static``: the dashboard's own files (CSS, JS, vendored htmx, the icon) served from memory.

Quart's own static route opens each file per request (on a thread, through aiofiles): a client
that goes away while the open is under way leaves the file to be closed by the garbage collector,
and every request costs an open, a stat and a read. These files are few, small and fixed for the
life of the installed package, so each is read once, off the event loop, and kept with its ETag;
a conditional request (``If-None-Match``) is answered 304.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
from pathlib import Path

from quart import Quart, Response, abort, request
from werkzeug.security import safe_join


class StaticFiles:
    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._files: dict[str, tuple[bytes, str, str]] = {}  # name → (content, etag, type)

    async def serve(self, filename: str) -> Response:
        entry = self._files.get(filename)
        if entry is None:
            entry = await self._load(filename)
        content, etag, mimetype = entry
        response = Response(content, mimetype=mimetype)
        response.set_etag(etag)
        return await response.make_conditional(request)

    async def _load(self, filename: str) -> tuple[bytes, str, str]:
        path = safe_join(str(self._folder), filename)
        if path is None:
            abort(404)
        try:
            content = await asyncio.to_thread(Path(path).read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            abort(404)
        etag = hashlib.sha256(content).hexdigest()[:32]
        mimetype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        entry = self._files[filename] = (content, etag, mimetype)
        return entry


def install(app: Quart, folder: Path) -> None:
    """Serve ``folder`` at the app's static route in place of Quart's file-per-request one."""
    files = StaticFiles(folder)

    async def static(filename: str) -> Response:  # a function: Quart awaits only those
        return await files.serve(filename)

    app.view_functions["static"] = static
