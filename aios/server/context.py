"""Typed access to the daemon from inside a request."""

from __future__ import annotations

from typing import cast

from quart import current_app

from aios.facade import Daemon


def daemon() -> Daemon:
    return cast(Daemon, current_app.config["AIOS_DAEMON"])
