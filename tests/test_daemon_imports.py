"""An idle daemon loads what serving needs, not what a run of some CLI or a later trim needs:
each CLI's reader, the terminal's screen model and ctypes are imported on first use (``make
bench`` measures idle memory and start-up beside a bare Quart app)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aios.agents.formats import FORMATS, MODULES, TEXT
from tests.helpers import aios_env

READY_THEN_MODULES = """
import sys
from aios.host import Service
from aios.paths import Paths

def ready(info):
    print(" ".join(sorted(sys.modules)), flush=True)
    service.request_stop()

service = Service(Paths.from_env(), port=0, on_ready=ready)
service.run()
"""
# Loaded by the first run, check or page that needs them, never by start-up.
ON_FIRST_USE = {
    *(f"aios.agents.formats.{module}" for module in MODULES.values()),
    "aios.agents.formats.codex",
    "aios.agents.formats.gemini",
    "aios.agents.formats.aider_chat",
    "aios.agents.screen",
    "pyte",
    "ctypes",
}


def test_a_ready_idle_daemon_has_not_loaded_what_runs_need(home: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", READY_THEN_MODULES],
        env=aios_env(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert "aios.server.app" in loaded  # it did get as far as serving
    assert not loaded & ON_FIRST_USE, loaded & ON_FIRST_USE


def test_the_registry_knows_its_names_without_their_modules() -> None:
    assert list(FORMATS) == [TEXT.name, *MODULES]
    assert "claude-stream-json" in FORMATS and "nope" not in FORMATS
    for name in MODULES:
        assert FORMATS[name].name == name  # each module's FORMAT is the one its name says
