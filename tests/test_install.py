"""Installing: `make run` sets up only what running needs, the licence is what the metadata says."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.helpers import aios_env, require_tool

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
TEST_EXTRAS = PYPROJECT["project"]["optional-dependencies"]["test"]


def make_dry_run(target: str, venv: Path) -> list[str]:
    """The commands `make TARGET` would run for a fresh clone (its venv does not exist yet)."""
    make = require_tool("make")
    out = subprocess.run(
        [make, "--dry-run", "--no-print-directory", target, f"VENV={venv}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.splitlines()


def installs(commands: list[str]) -> list[str]:
    return [c for c in commands if " install " in c]


def test_make_run_installs_only_what_running_needs(tmp_path: Path) -> None:
    commands = make_dry_run("run", tmp_path / "venv")
    assert installs(commands) == [
        f"{tmp_path}/venv/bin/python -m pip --quiet --disable-pip-version-check install -e ."
    ]
    assert commands[-1] == f"{tmp_path}/venv/bin/aios"


def test_make_test_adds_the_test_tools(tmp_path: Path) -> None:
    commands = make_dry_run("test", tmp_path / "venv")
    assert [c.rsplit(" ", 1)[-1] for c in installs(commands)] == [".", "'.[test]'"]
    assert any("-m pytest" in c for c in commands)


# Run in a child interpreter that cannot import any test-only package: the daemon must start,
# answer and stop with just the runtime dependencies (what `make run` installs).
NO_TEST_TOOLS = """
import importlib.abc, runpy, sys

BLOCKED = set(sys.argv[1].split(","))

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is a test tool, not installed by `make run`")
        return None

sys.meta_path.insert(0, Refuse())
try:
    import pytest
except ImportError:
    pass
else:
    raise SystemExit("the test tools are not blocked")
sys.argv = ["aios", "serve", "--no-browser"]
runpy.run_module("aios", run_name="__main__")
"""

# Import names of the test extras (the distribution names differ for some).
TEST_MODULES = (
    "pytest",
    "pytest_asyncio",
    "pytest_timeout",
    "xdist",
    "playwright",
    "ruff",
    "mypy",
)


def test_test_extras_are_the_ones_blocked() -> None:
    names = {extra.split(">")[0].split("=")[0].replace("-", "_") for extra in TEST_EXTRAS}
    imported = {"pytest_xdist": "xdist"}  # distribution → the name it is imported by
    assert {imported.get(n, n) for n in names} - {"types_psutil"} == set(TEST_MODULES)


@pytest.mark.daemon
def test_the_daemon_runs_without_the_test_tools(home: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", NO_TEST_TOOLS, ",".join(TEST_MODULES)],
        env=aios_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("AIOS_PORT:"), proc.stderr.read() if proc.stderr else ""
        assert (home / "run" / "aios.json").exists()  # written before the port is announced
        proc.terminate()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_the_licence_file_matches_the_package_metadata() -> None:
    assert PYPROJECT["project"]["license"] == "MIT"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text
