"""``create_app``: the Quart application for one daemon."""

from __future__ import annotations

from pathlib import Path

from quart import Quart

from aios.facade import Daemon
from aios.server import api, errors, hooks, jsonbody, live, pages, terminal_socket, views
from aios.server.security import Guard

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def create_app(daemon: Daemon) -> Quart:
    app = Quart(
        "aios",
        template_folder=str(PACKAGE_DIR / "templates"),
        static_folder=str(PACKAGE_DIR / "static"),
    )
    app.config["AIOS_DAEMON"] = daemon
    # Jinja autoescaping is on for .html templates; agent output is always escaped.
    app.jinja_env.autoescape = True
    Guard(daemon.port, daemon.keys).install(app)
    errors.install(app)
    jsonbody.install(app)
    app.register_blueprint(api.blueprint)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(live.blueprint)
    app.register_blueprint(hooks.blueprint)
    app.register_blueprint(terminal_socket.blueprint)
    views.install(app)
    return app
