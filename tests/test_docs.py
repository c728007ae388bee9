"""The docs describe what the code does: every setting, preset and command is documented."""

from __future__ import annotations

from pathlib import Path

from aios.cli import build_parser
from aios.config import PRESETS, SETTINGS

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "agents.md").read_text()
    for setting in SETTINGS:
        assert f"{setting.name} = {setting.default}" in text, setting.name


def test_every_preset_is_documented() -> None:
    text = (ROOT / "docs" / "agents.md").read_text()
    for preset in PRESETS:
        assert f"`{' '.join(preset.command)}`" in text, preset.name


def test_every_command_is_in_the_readme() -> None:
    text = (ROOT / "README.md").read_text()
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "==SUPPRESS==" and a.choices)
    assert subparsers.choices is not None
    for name in subparsers.choices:
        assert f"`aios {name}" in text, name


def test_the_tray_shutdown_bound_is_the_documented_one() -> None:
    from aios.tray import ICON_STOP
    from tests.test_tray import SHUTDOWN_BOUND

    text = " ".join((ROOT / "README.md").read_text().split())
    assert f"within {SHUTDOWN_BOUND:g} s plus the time the runs take to stop" in text
    assert f"the icon gets {ICON_STOP:g} s" in text
