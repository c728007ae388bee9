"""Hooks as the API and the settings page show them (secrets hidden), and their test button.

The hooks themselves live in aios.hooks; this only asks the daemon.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, jsonify, render_template

from aios.hooks import Hook
from aios.hooks.delivery import Delivery
from aios.server.context import daemon
from aios.server.errors import ApiError

blueprint = Blueprint("hooks", __name__)


def hook_rows() -> list[dict[str, Any]]:
    """Each hook as JSON, with ``last``: its last delivery, or null."""
    return [_row(hook, last) for hook, last in daemon().hook_list()]


def page_context() -> dict[str, Any]:
    """What ``partials/hooks.html`` shows: each hook (``last`` a Delivery, its time for the page
    to show in local time), and the config file's problems with hooks."""
    d = daemon()
    problems = [str(p) for p in d.config().problems if p.message.startswith("hooks")]
    hooks = [{**hook.to_json(), "last": last} for hook, last in d.hook_list()]
    return {"hooks": hooks, "hook_problems": problems}


def _row(hook: Hook, last: Delivery | None) -> dict[str, Any]:
    return {**hook.to_json(), "last": None if last is None else last.to_json()}


def _hook(number: int) -> Hook:
    hook = daemon().hook(number)
    if hook is None:
        count = len(daemon().config().hooks)
        raise ApiError(404, f"no hook {number}: config.toml has {count} usable hook(s)")
    return hook


@blueprint.get("/api/hooks")
async def list_hooks() -> Response:
    config = daemon().config()
    problems = [str(p) for p in config.problems if p.message.startswith("hooks")]
    return jsonify(
        {"hooks": hook_rows(), "config": {"path": str(config.path), "problems": problems}}
    )


@blueprint.post("/api/hooks/<int:number>/test")
async def test_hook(number: int) -> Response:
    hook = _hook(number)
    done = await daemon().test_hook(hook)
    return jsonify({"hook": _row(hook, done), "delivery": done.to_json()})


@blueprint.post("/ui/hooks/<int:number>/test")
async def test_hook_ui(number: int) -> str:
    """The settings page's button: the list again, showing how the test went."""
    hook = _hook(number)
    await daemon().test_hook(hook)
    return await render_template("partials/hooks.html", **page_context())
