"""The history database failing (issue 18, item 4), through the real daemon and CLI.

- Damaged at start: one line on stderr saying what to do (the path to move aside), no
  traceback, a non-zero exit; ``PRAGMA quick_check`` finds damage inside a sound header.
- Damaged under a running daemon: noticed (the file changed under it and no longer checks), and
  every use of history answers 503 saying so; the overview's banner too.
- Read-only under a running daemon (a real file system that an error made read-only): 503 with
  the reason, runs still stop, and once the data is on a writable file system again, what was
  kept in memory is written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aios.client import ApiCallError
from tests.helpers import (
    DaemonProcess,
    agent_script,
    require,
    run_cli,
    start_daemon,
    wait_until,
    write_config,
)
from tests.test_full_disk import clean_stderr, ended, get, launch, page, storage

QUIET = "import time\ntime.sleep(60)\n"
HELLO = "print('hello')\n"


def configure(home: Path, scripts: Path) -> None:
    scripts.mkdir(exist_ok=True)
    write_config(
        home,
        f"""
[agents.hello]
command = {agent_script(scripts, "hello", HELLO, prompt=False)}

[agents.quiet]
command = {agent_script(scripts, "quiet", QUIET, prompt=False)}
""",
    )


def database(home: Path) -> Path:
    return home / "data" / "history.sqlite3"


def with_history(home: Path, scripts: Path, runs: int = 3) -> list[str]:
    """A home whose history holds ``runs`` finished runs; the daemon stopped (the WAL folded
    into the database file)."""
    configure(home, scripts)
    d = start_daemon(home)
    try:
        ids = [launch(d, "hello")["id"] for _ in range(runs)]
        wait_until(lambda: all(ended(d, run_id) for run_id in ids), what="the runs to end")
        assert d.terminate() == 0
    finally:
        d.close()
    return ids


def damage_pages(path: Path) -> None:
    """Garbage over every page but the first: the header still says SQLite."""
    size = path.stat().st_size
    assert size > 4096
    with path.open("r+b") as file:
        file.seek(4096)
        file.write(b"\xa5" * (size - 4096))
        file.flush()
        os.fsync(file.fileno())


def refused(d: DaemonProcess, method: str, path: str, body: object = None) -> ApiCallError:
    with pytest.raises(ApiCallError) as caught:
        d.client.request(method, path, body)
    return caught.value


def one_line_refusal(home: Path) -> str:
    result = run_cli(home, "serve", "--no-browser", timeout=30)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


def test_a_file_that_is_not_a_database_is_refused_at_start_in_one_line(home: Path) -> None:
    path = database(home)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database at all\n" * 500)
    line = one_line_refusal(home)
    assert line.startswith(f"aios: the history database {path} is damaged (")
    assert f"move it aside (mv {path} {path}.damaged) and start AIOS again" in line
    # Doing what it says works: AIOS starts with an empty history.
    path.rename(path.with_name(path.name + ".damaged"))
    d = start_daemon(home)
    try:
        assert get(d, "/api/runs") == []
    finally:
        d.terminate()
        d.close()


def test_damage_inside_a_sound_header_is_found_by_the_check_at_start(
    home: Path, tmp_path: Path
) -> None:
    with_history(home, tmp_path / "scripts")
    path = database(home)
    damage_pages(path)
    line = one_line_refusal(home)
    assert f"the history database {path} is damaged" in line
    assert f"(mv {path} {path}.damaged)" in line


def test_damage_under_a_running_daemon_is_noticed_and_answered_503(
    home: Path, tmp_path: Path
) -> None:
    ids = with_history(home, tmp_path / "scripts")
    d = start_daemon(home)
    try:
        assert len(get(d, "/api/runs")) == len(ids)
        damage_pages(database(home))
        problem = wait_until(lambda: storage(d), what="the damage to be noticed")
        assert problem["kind"] == "corrupt"
        assert "stop AIOS, move it aside" in problem["error"]
        error = refused(d, "GET", "/api/runs")
        assert error.status == 503 and "is damaged" in error.message
        assert refused(d, "GET", f"/api/runs/{ids[0]}").status == 503
        assert refused(d, "POST", "/api/runs", {"agent": "hello"}).status == 503
        overview = page(d, "/")
        assert "History database:" in overview and "is damaged" in overview
        result = run_cli(home, "stop")
        assert (result.returncode, result.stdout) == (0, "AIOS stopped\n"), result.stderr
        d.finish()
        err = clean_stderr(d)
        assert "is damaged" in err  # and said in the log
    finally:
        d.close()


# -- read-only: ext4 on a loop device, made read-only by an error as a failing disk would -------


def ext4_on_loop(image: Path, mount_at: Path) -> None:
    ready = os.geteuid() == 0 and all(
        shutil.which(tool) for tool in ("mount", "mkfs.ext4", "losetup", "e2fsck")
    )
    require(ready, "a loop-mounted ext4 needs root, mkfs.ext4, losetup and e2fsck")
    if not image.exists():
        subprocess.run(["truncate", "-s", "16M", str(image)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    mount_at.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-o", "loop,errors=remount-ro", str(image), str(mount_at)],
        capture_output=True,
        check=False,
    )
    require(mounted.returncode == 0, f"cannot mount a loop device: {mounted.stderr!r}")


def device_of(mount_at: Path) -> str:
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if fields[1] == str(mount_at):
            return os.path.basename(fields[0])
    raise AssertionError(f"{mount_at} is not mounted")


def break_file_system(mount_at: Path) -> None:
    """An ext4 error, as a failing disk causes: with errors=remount-ro it is read-only at once,
    with AIOS's files open in it."""
    trigger = Path("/sys/fs/ext4") / device_of(mount_at) / "trigger_fs_error"
    require(trigger.exists(), f"{trigger} is missing (a kernel without ext4 error injection)")
    trigger.write_text("aios test\n")
    with pytest.raises(OSError, match="Read-only file system"):
        (mount_at / "probe").touch()


@pytest.fixture
def data_on_ext4(home: Path, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    image = tmp_path / "data.img"
    ext4_on_loop(image, home / "data")
    try:
        yield image, home / "data"
    finally:
        subprocess.run(["umount", "-l", str(home / "data")], capture_output=True, check=False)


def test_a_database_made_read_only_under_the_daemon_answers_503_then_recovers(
    home: Path, tmp_path: Path, data_on_ext4: tuple[Path, Path]
) -> None:
    image, data = data_on_ext4
    configure(home, tmp_path / "scripts")
    d = start_daemon(home)
    try:
        quiet = launch(d, "quiet")
        wait_until(lambda: get(d, f"/api/runs/{quiet['id']}")["state"] == "running")
        break_file_system(data)
        # Stopping still works; the stop is kept in memory and read back as it is.
        d.client.request("POST", f"/api/runs/{quiet['id']}/stop")
        done: dict[str, Any] = wait_until(lambda: ended(d, quiet["id"]), what="the stop")
        assert done["state"] == "stopped"
        problem = wait_until(lambda: storage(d), what="the trouble to show")
        assert problem["kind"] == "read_only"
        assert f"the history database {database(home)} cannot be written" in problem["error"]
        assert "read-only" in problem["error"]
        error = refused(d, "POST", "/api/runs", {"agent": "hello"})
        assert error.status == 503 and "read-only" in error.message
        assert "History database:" in page(d, "/")

        # The disk is repaired (a checked copy, mounted where the data was): writable again.
        subprocess.run(["umount", "-l", str(data)], check=True)
        repaired = tmp_path / "repaired.img"
        shutil.copyfile(image, repaired)
        subprocess.run(["e2fsck", "-fy", str(repaired)], capture_output=True, check=False)
        ext4_on_loop(repaired, data)
        wait_until(lambda: storage(d) is None, what="the trouble to clear")
        again = launch(d, "hello")
        wait_until(lambda: ended(d, again["id"]), what="a run after recovery")
        result = run_cli(home, "stop")
        assert result.returncode == 0, result.stderr
        d.finish()
        clean_stderr(d)
    finally:
        d.close()
    # What was kept in memory meanwhile is in history now.
    after = start_daemon(home)
    try:
        runs = {r["id"]: r for r in get(after, "/api/runs")}
        assert runs[quiet["id"]]["state"] == "stopped"
        assert runs[again["id"]]["state"] == "succeeded"
    finally:
        after.terminate()
        after.close()
