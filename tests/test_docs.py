"""The docs describe what the code does: every setting, preset and command is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aios.agents.presets import PRESETS
from aios.cli import build_parser
from aios.config import SETTINGS
from aios.paths import Paths
from aios.store_logs import SUFFIXES
from scripts.install_agents import pins
from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "agents.md").read_text()
    for setting in SETTINGS:
        assert f"{setting.name} = {setting.default}" in text, setting.name


def test_every_preset_is_documented() -> None:
    text = (ROOT / "docs" / "agents.md").read_text()
    for preset in PRESETS:
        assert f"`{' '.join(preset.command)}`" in text, preset.name


def test_the_pinned_agent_versions_are_documented() -> None:
    text = (ROOT / "docs" / "agents.md").read_text()
    section = text[text.index("## Verified versions and the real-agents tier") :]
    for pin in pins():
        spelled = f"{pin.package}@{pin.version}" if pin.npm else f"{pin.package}=={pin.version}"
        assert f"`{spelled}`" in section, pin.cli


def test_every_command_is_in_the_readme() -> None:
    text = (ROOT / "README.md").read_text()
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "==SUPPRESS==" and a.choices)
    assert subparsers.choices is not None
    for name in subparsers.choices:
        assert f"`aios {name}" in text, name


def test_every_file_is_in_the_files_table() -> None:
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Where files live") :].split("\n\n")[2]
    paths = Paths.from_env({"AIOS_HOME": "/x"})
    files = [
        paths.config_file,
        paths.database,
        paths.log_file,
        paths.port_file,
        paths.runtime_file,
        paths.lock_file,
        paths.session_file,
    ]
    for path in files:
        assert f"`{path.name}`" in table, path.name
    for suffix in SUFFIXES.values():  # each run's files in the data dir
        assert f"`runs/<id>{suffix}`" in table, suffix
    assert "`open-<port>.html`" in table
    assert paths.browser_file(1234).name == "open-1234.html"
    assert paths.run_logs_dir / "x.log" == paths.data_dir / "runs" / "x.log"


@pytest.mark.daemon
def test_the_readme_says_which_commands_need_a_running_daemon(home: Path) -> None:
    """Each command is run with nothing running: exit 3 exactly for the ones the README names."""
    text = " ".join((ROOT / "README.md").read_text().split())
    sentence = text[: text.index("speak to the running daemon")]
    sentence = sentence[sentence.rindex("`RUN` may be") :]
    named = {re.sub(r"^aios ", "", n) for n in re.findall(r"`([a-z ]+)`", sentence)}
    args = {
        "run": ["command", "x"],
        "continue": ["x", "y"],
        "logs": ["x"],
        "kill": ["x"],
        "attach": ["x"],
        "autostart": ["status"],
    }
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "==SUPPRESS==" and a.choices)
    assert subparsers.choices is not None
    needs = set()
    for name in subparsers.choices:
        if name == "serve":  # it starts one
            continue
        result = run_cli(home, name, *args.get(name, []))
        assert result.returncode in (0, 3), (name, result.stderr)
        if result.returncode == 3:
            assert result.stderr.strip().endswith("(start it with `aios` or `aios serve`)")
            needs.add(name)
    assert needs == named


def test_the_tray_shutdown_bound_is_the_documented_one() -> None:
    from aios.tray import ICON_STOP
    from tests.test_tray import SHUTDOWN_BOUND

    text = " ".join((ROOT / "README.md").read_text().split())
    assert f"within {SHUTDOWN_BOUND:g} s plus the time the runs take to stop" in text
    assert f"the icon gets {ICON_STOP:g} s" in text
