"""What AIOS writes is private to the user: 0600 files in 0700 directories, under the default
(XDG) paths, whatever the umask, and files an older version left readable are tightened."""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from aios.client import DaemonClient
from aios.runtime import RuntimeInfo
from tests.helpers import EventCollector, start_daemon

pytestmark = pytest.mark.daemon


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the common default: new files 0644, directories 0755
    try:
        yield
    finally:
        os.umask(old)


def xdg(root: Path) -> dict[str, str]:
    """Default paths (no AIOS_HOME), with the XDG base directories inside the test's tree."""
    dirs = {
        "XDG_DATA_HOME": root / "share",
        "XDG_STATE_HOME": root / "state",
        "XDG_CONFIG_HOME": root / "config",
        "XDG_RUNTIME_DIR": root / "runtime",
    }
    dirs["XDG_RUNTIME_DIR"].mkdir(mode=0o700)
    return {"AIOS_HOME": "", **{k: str(v) for k, v in dirs.items()}}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextlib.contextmanager
def running(root: Path, env: dict[str, str]) -> Iterator[str]:
    """A daemon on the default paths that has run one command to the end; yields the run's id.

    Checks happen while it runs: SQLite's -wal and -shm files exist only then.
    """
    d = start_daemon(root, **env)
    try:
        runtime = root / "runtime" / "aios" / "aios.json"
        info = RuntimeInfo.from_json(runtime, json.loads(runtime.read_text()))
        client = DaemonClient(info)
        events = EventCollector(info.port, info.token)
        try:
            run = client.request("POST", "/api/runs", {"agent": "command", "prompt": "echo x"})
            events.wait(lambda k, data: k == "run" and data["id"] == run["id"] and
                        data["state"] == "succeeded")  # fmt: skip
        finally:
            events.close()
        yield str(run["id"])
        assert d.terminate() == 0
    finally:
        d.close()


def private_files(root: Path, run_id: str) -> tuple[list[Path], list[Path]]:
    data, state = root / "share" / "aios", root / "state" / "aios"
    dirs = [data, data / "runs", state, root / "runtime" / "aios"]
    files = [
        data / "history.sqlite3",
        data / "history.sqlite3-wal",
        data / "history.sqlite3-shm",
        data / "runs" / f"{run_id}.log",
        state / "aios.log",
        state / "last-port",
        root / "runtime" / "aios" / "session.json",
        root / "runtime" / "aios" / "aios.json",
        root / "runtime" / "aios" / "aios.lock",
    ]
    return dirs, files


def assert_private(dirs: list[Path], files: list[Path]) -> None:
    assert {str(d): oct(mode(d)) for d in dirs} == {str(d): "0o700" for d in dirs}
    assert {str(f): oct(mode(f)) for f in files} == {str(f): "0o600" for f in files}


def test_new_files_are_private(tmp_path: Path, loose_umask: None) -> None:
    with running(tmp_path, xdg(tmp_path)) as run_id:
        assert_private(*private_files(tmp_path, run_id))


def test_readable_files_from_before_are_tightened(tmp_path: Path, loose_umask: None) -> None:
    env = xdg(tmp_path)
    with running(tmp_path, env) as first:
        pass
    dirs, files = private_files(tmp_path, first)
    rotated = tmp_path / "state" / "aios" / "aios.log.1"
    rotated.write_text("an older log\n")
    # As an older AIOS (or a umask of 022) left them; SQLite copies the database's mode to the
    # -wal and -shm files it creates.
    for path in dirs:
        path.chmod(0o755)
    for path in [*files, rotated]:
        if path.exists():
            path.chmod(0o644)
    with running(tmp_path, env) as second:
        dirs, files = private_files(tmp_path, second)
        assert_private(
            dirs, [*files, tmp_path / "share" / "aios" / "runs" / f"{first}.log", rotated]
        )


def test_config_dir_is_made_private_only_when_aios_creates_it(
    tmp_path: Path, loose_umask: None
) -> None:
    env = xdg(tmp_path)
    mine = tmp_path / "config" / "aios"
    with running(tmp_path, env):
        assert mode(mine) == 0o700
    mine.chmod(0o755)  # the user's own choice for a directory only they write to
    with running(tmp_path, env):
        assert mode(mine) == 0o755
