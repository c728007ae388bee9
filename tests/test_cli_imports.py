"""The command line starts fast: a command imports the module of its own concept and what that
uses, never the service, the tray or the other commands (``make bench`` times ``aios status``)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from aios.cli import build_parser
from aios.cli.parser import Command
from tests.helpers import aios_env

IMPORTED_BY = """
import sys
from aios.cli import main
code = main(sys.argv[1:])
print(" ".join(sorted(sys.modules)))
sys.exit(code)
"""
# What `aios status` may import of AIOS: the client and the daemon commands' module.
STATUS_IMPORTS = {
    "aios",
    "aios.cli",
    "aios.cli.common",
    "aios.cli.daemon",
    "aios.cli.parser",
    "aios.cli.prompt",
    "aios.client",
    "aios.formatting",
    "aios.paths",
    "aios.private",
    "aios.runtime",
}
HEAVY = {"quart", "hypercorn", "pystray", "PIL", "sqlite3", "shutil", "dataclasses"}


def imported_by(home: Path, *argv: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", IMPORTED_BY, *argv],
        env=aios_env(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3, done.stderr  # nothing is running there
    assert "AIOS is not running" in done.stderr
    return set(done.stdout.split())


def test_status_imports_the_client_and_its_own_commands_only(home: Path) -> None:
    modules = imported_by(home, "status")
    ours = {m for m in modules if m == "aios" or m.startswith("aios.")}
    assert "aios.client" in ours and "aios.cli.daemon" in ours
    assert ours <= STATUS_IMPORTS, ours - STATUS_IMPORTS
    assert not {m.split(".")[0] for m in modules} & HEAVY


def test_every_command_names_a_handler_that_exists() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parsers = {"aios": parser, **subparsers.choices}
    for name, command in parsers.items():
        handler = command.get_default("handler")
        assert isinstance(handler, Command), name
        assert callable(handler.load()), name
        assert handler.module == handler.load().__module__.removeprefix("aios.cli."), name
