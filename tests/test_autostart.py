"""Autostart per OS, against real files in tmp_path and a fake registry (the one allowed fake).

The Linux entry is checked by the real ``desktop-file-validate`` and, where GLib's ``gio`` is
installed, launched by it, since GLib is what desktop sessions use to run autostart entries.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from aios.desktop.autostart import (
    RUN_KEY,
    RUN_VALUE,
    AutostartError,
    AutostartState,
    for_platform,
    launch_command,
)
from tests.helpers import require_tool, wait_until

COMMAND = ["/opt/aios/bin/aios", "--no-browser"]


def validate(path: Path) -> None:
    tool = require_tool("desktop-file-validate")
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
    # Silence is the bar: the tool prints warnings and hints even when it exits 0.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def desktop_values(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    assert lines[0] == "[Desktop Entry]"
    return dict(line.split("=", 1) for line in lines[1:] if line)


# --- launch_command ------------------------------------------------------------------------------


def test_launch_command_is_absolute_and_skips_the_browser() -> None:
    command = launch_command()
    assert os.path.isabs(command[0])
    assert command[-1] == "--no-browser"
    assert command[1:] == ["--no-browser"] or command[1:3] == ["-m", "aios"]
    assert Path(command[0]).exists()


# --- Linux (XDG) ---------------------------------------------------------------------------------


def test_xdg_enable_is_idempotent_valid_and_reversible(tmp_path: Path) -> None:
    entry = for_platform("linux", environ={"HOME": str(tmp_path)})
    path = tmp_path / ".config" / "autostart" / "aios.desktop"
    assert entry.status().state is AutostartState.DISABLED
    assert entry.status().location == str(path)

    entry.enable()
    status = entry.enable()
    assert status.state is AutostartState.ENABLED
    assert status.detail.startswith("starts ")
    assert sorted(p.name for p in path.parent.iterdir()) == ["aios.desktop"]  # no temp files left
    validate(path)
    values = desktop_values(path)
    assert values["Exec"].split(" ")[0].startswith("/")
    assert values["Exec"].endswith(" --no-browser")
    assert values["X-AIOS-Autostart"] == "true"
    assert values["Type"] == "Application"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644

    assert entry.disable().state is AutostartState.DISABLED
    assert not path.exists()
    assert entry.disable().state is AutostartState.DISABLED  # nothing there: still fine


def test_xdg_config_home_is_respected(tmp_path: Path) -> None:
    config = tmp_path / "elsewhere"
    entry = for_platform(
        "linux", command=COMMAND, environ={"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(config)}
    )
    entry.enable()
    assert (config / "autostart" / "aios.desktop").is_file()
    assert not (tmp_path / ".config").exists()


def test_xdg_relative_config_home_is_ignored(tmp_path: Path) -> None:
    entry = for_platform("linux", environ={"HOME": str(tmp_path), "XDG_CONFIG_HOME": "rel"})
    assert entry.status().location == str(tmp_path / ".config" / "autostart" / "aios.desktop")


def test_xdg_status_rereads_the_file(tmp_path: Path) -> None:
    entry = for_platform("linux", command=COMMAND, environ={"HOME": str(tmp_path)})
    entry.enable()
    path = Path(entry.status().location)
    # Settings panels switch an entry off in place; the status must notice without our help.
    path.write_text(path.read_text().replace("X-GNOME-Autostart-enabled=true", "Hidden=true"))
    assert entry.status().state is AutostartState.DISABLED
    assert entry.enable().state is AutostartState.ENABLED
    other = for_platform(
        "linux", command=["/x/aios", "--no-browser"], environ={"HOME": str(tmp_path)}
    )
    assert "not the current" in other.status().detail
    path.unlink()
    assert entry.status().state is AutostartState.DISABLED


def test_xdg_foreign_file_is_reported_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / ".config" / "autostart" / "aios.desktop"
    path.parent.mkdir(parents=True)
    mine = "[Desktop Entry]\nType=Application\nName=My AIOS\nExec=/usr/bin/aios\n"
    path.write_text(mine)
    entry = for_platform("linux", command=COMMAND, environ={"HOME": str(tmp_path)})

    assert entry.status().state is AutostartState.FOREIGN
    with pytest.raises(AutostartError, match=r"cannot enable autostart at .*aios\.desktop"):
        entry.enable()
    with pytest.raises(AutostartError, match="cannot disable"):
        entry.disable()
    assert path.read_text() == mine


def test_xdg_quotes_a_command_with_spaces_and_reserved_characters(tmp_path: Path) -> None:
    program = tmp_path / "my apps" / "echo args"
    program.parent.mkdir()
    out = tmp_path / "argv.txt"
    program.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "{out}.tmp"\n')
    program.write_text(program.read_text() + f'mv "{out}.tmp" "{out}"\n')
    program.chmod(0o755)
    args = ["a b", 'say "hi"', "$HOME", "back\\slash", "50%", "it's", "--no-browser"]
    entry = for_platform("linux", command=[str(program), *args], environ={"HOME": str(tmp_path)})
    path = Path(entry.enable().location)
    validate(path)
    assert desktop_values(path)["Exec"].startswith(f'"{program}" "a b" ')

    # The real check: GLib, which desktop sessions use to run autostart entries, gets our argv.
    gio = shutil.which("gio")
    if gio is None:
        pytest.skip("gio (libglib2.0-bin) is not installed; the file was validated only")
    subprocess.run([gio, "launch", str(path)], check=True, timeout=30, capture_output=True)
    wait_until(out.exists, what="the launched entry to write its argv")
    assert out.read_text().splitlines() == args


# --- macOS ---------------------------------------------------------------------------------------


def test_launch_agent_round_trip(tmp_path: Path) -> None:
    entry = for_platform("darwin", command=COMMAND, environ={"HOME": str(tmp_path)})
    path = tmp_path / "Library" / "LaunchAgents" / "dev.aios.agent.plist"
    assert entry.status().state is AutostartState.DISABLED

    entry.enable()
    status = entry.enable()
    assert (status.state, status.location) == (AutostartState.ENABLED, str(path))
    assert sorted(p.name for p in path.parent.iterdir()) == ["dev.aios.agent.plist"]
    with path.open("rb") as handle:
        plist = plistlib.load(handle)
    assert plist == {
        "Label": "dev.aios.agent",
        "ProgramArguments": COMMAND,
        "RunAtLoad": True,
        "ProcessType": "Interactive",
        "AIOSAutostart": True,
    }

    assert entry.disable().state is AutostartState.DISABLED
    assert not path.exists()


@pytest.mark.parametrize(
    "foreign",
    [
        plistlib.dumps({"Label": "dev.aios.agent", "ProgramArguments": ["/usr/bin/true"]}),
        b"not a plist at all",
        b"<?xml version='1.0'?><plist><dict><key>x</key>",
    ],
)
def test_launch_agent_foreign_is_left_alone(tmp_path: Path, foreign: bytes) -> None:
    path = tmp_path / "Library" / "LaunchAgents" / "dev.aios.agent.plist"
    path.parent.mkdir(parents=True)
    path.write_bytes(foreign)
    entry = for_platform("darwin", command=COMMAND, environ={"HOME": str(tmp_path)})

    assert entry.status().state is AutostartState.FOREIGN
    with pytest.raises(AutostartError, match="not written by AIOS"):
        entry.enable()
    with pytest.raises(AutostartError):
        entry.disable()
    assert path.read_bytes() == foreign


# --- Windows -------------------------------------------------------------------------------------


class FakeRegistry:
    """An in-memory HKCU: the real registry cannot exist on this machine."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str] = {}

    def get(self, key: str, name: str) -> str | None:
        return self.values.get((key, name))

    def set(self, key: str, name: str, value: str) -> None:
        self.values[key, name] = value

    def delete(self, key: str, name: str) -> None:
        self.values.pop((key, name), None)


WIN_COMMAND = [r"C:\Program Files\AIOS\Scripts\aios.exe", "--no-browser"]


def test_registry_enable_is_idempotent_and_reversible() -> None:
    registry = FakeRegistry()
    registry.set(RUN_KEY, "OneDrive", "C:\\OneDrive.exe /background")
    entry = for_platform("win32", command=WIN_COMMAND, registry=registry)
    assert entry.status().state is AutostartState.DISABLED

    entry.enable()
    status = entry.enable()
    assert status.state is AutostartState.ENABLED
    assert status.location == f"HKCU\\{RUN_KEY}\\AIOS"
    expected = '"C:\\Program Files\\AIOS\\Scripts\\aios.exe" --no-browser'
    assert registry.values == {
        (RUN_KEY, "OneDrive"): "C:\\OneDrive.exe /background",
        (RUN_KEY, RUN_VALUE): expected,
    }

    assert entry.disable().state is AutostartState.DISABLED
    assert registry.values == {(RUN_KEY, "OneDrive"): "C:\\OneDrive.exe /background"}


def test_registry_foreign_value_is_left_alone() -> None:
    registry = FakeRegistry()
    registry.set(RUN_KEY, RUN_VALUE, "C:\\Tools\\other.exe --minimized")
    entry = for_platform("win32", command=WIN_COMMAND, registry=registry)

    assert entry.status().state is AutostartState.FOREIGN
    with pytest.raises(AutostartError, match=r"HKCU\\.*\\Run\\AIOS"):
        entry.enable()
    with pytest.raises(AutostartError):
        entry.disable()
    assert registry.values == {(RUN_KEY, RUN_VALUE): "C:\\Tools\\other.exe --minimized"}


@pytest.mark.skipif(sys.platform == "win32", reason="the real registry exists there")
def test_real_registry_refuses_off_windows() -> None:
    with pytest.raises(AutostartError, match="only on Windows"):
        for_platform("win32", command=WIN_COMMAND).status()


def test_unknown_platform_is_an_error() -> None:
    with pytest.raises(AutostartError, match="plan9"):
        for_platform("plan9", command=COMMAND, environ={})


def test_cli_enable_twice_status_disable(tmp_path: Path) -> None:
    from tests.helpers import run_cli

    xdg = tmp_path / "xdg"
    home = tmp_path / "home"
    home.mkdir()
    for _ in range(2):
        enabled = run_cli(home, "autostart", "enable", XDG_CONFIG_HOME=str(xdg))
        assert enabled.returncode == 0, enabled.stderr
    entries = list((xdg / "autostart").iterdir())
    assert [e.name for e in entries] == ["aios.desktop"]
    status = run_cli(home, "autostart", "status", XDG_CONFIG_HOME=str(xdg))
    assert status.returncode == 0 and status.stdout.startswith("autostart enabled")
    disabled = run_cli(home, "autostart", "disable", XDG_CONFIG_HOME=str(xdg))
    assert disabled.returncode == 0 and not entries[0].exists()
    assert (
        "autostart disabled"
        in run_cli(home, "autostart", "status", XDG_CONFIG_HOME=str(xdg)).stdout
    )
    bad = run_cli(home, "autostart", "maybe")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
