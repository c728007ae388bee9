"""The floor for start-up and idle memory: a bare Quart app served by Hypercorn, nothing else.

It starts the way AIOS does - bind 127.0.0.1:0 ourselves, hand the socket to Hypercorn as
``fd://`` - and answers ``GET /health``; it prints ``PORT:<port>`` as soon as the socket is
bound (the earliest moment a client could know it). Run as ``python -m bench.bare_app``.
"""

from __future__ import annotations

import asyncio
import socket

from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart, Response, jsonify

app = Quart(__name__)


@app.get("/health")
async def health() -> Response:
    return jsonify({"status": "ok"})


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(f"PORT:{sock.getsockname()[1]}", flush=True)
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    asyncio.run(serve(app, config))


if __name__ == "__main__":
    main()
