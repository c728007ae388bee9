"""A full disk (issue 18, item 3): AIOS_HOME on a 2 MiB tmpfs, through the real daemon over
HTTP and the real CLI.

What must hold however much an agent prints: its output is drained (it never blocks on its
pipe), what cannot be kept is dropped and said in the log once space returns, the run ends or
stops normally and records which disk was full, no background task dies, deleting a run frees
its space, launches are refused with 507 while the disk is full, the dashboard and /api/status
say so and clear when space returns, and ``aios stop`` ends it all with one line.

Mounting a tmpfs needs root (the suite runs as root in CI); elsewhere these tests skip.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aios.client import ApiCallError
from tests.browser import browser, signed_in_page  # noqa: F401 - a fixture
from tests.helpers import (
    DaemonProcess,
    agent_script,
    pids_alive,
    require,
    run_cli,
    start_daemon,
    wait_until,
    write_config,
)

# Prints argv[1] MiB (more than the disk holds), then, if a "go" file is named, waits for it
# silently and prints one more line; then exits 0.
FLOOD = """
import os, sys, time
chunk = ("x" * 1023 + "\\n") * 64
for _ in range(int(float(sys.argv[1]) * 16)):
    sys.stdout.write(chunk)
sys.stdout.flush()
go = os.environ.get("FLOOD_GO")
if go:
    while not os.path.exists(go):
        time.sleep(0.05)
    print("after the flood", flush=True)
"""
ENDLESS = """
import sys
chunk = ("y" * 1023 + "\\n") * 64
while True:
    sys.stdout.write(chunk)
"""
QUIET = """
import time
time.sleep(60)
"""


def mount_small_disk(directory: Path, size: str = "2m") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    mounted = (
        os.geteuid() == 0
        and shutil.which("mount") is not None
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(directory)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    require(mounted, "mounting a small tmpfs needs root (and mount)")


def unmount(directory: Path) -> None:
    subprocess.run(["umount", "-l", str(directory)], capture_output=True, check=False)


@pytest.fixture
def small_home(tmp_path: Path) -> Iterator[Path]:
    """AIOS_HOME on a 2 MiB tmpfs."""
    home = tmp_path / "small"
    mount_small_disk(home)
    try:
        yield home
    finally:
        unmount(home)


def configure(home: Path, scripts: Path, go: Path | None = None) -> None:
    scripts.mkdir(exist_ok=True)
    env = f'env = {{ FLOOD_GO = "{go}" }}' if go else ""
    write_config(
        home,
        f"""
[agents.flood]
command = {agent_script(scripts, "flood", FLOOD)}
stall_after = 0.3
{env}

[agents.endless]
command = {agent_script(scripts, "endless", ENDLESS, prompt=False)}
stop_timeout = 5

[agents.quiet]
command = {agent_script(scripts, "quiet", QUIET, prompt=False)}
stall_after = 0.3
""",
    )


def launch(d: DaemonProcess, agent: str, prompt: str = "") -> dict[str, Any]:
    run = d.client.request("POST", "/api/runs", {"agent": agent, "prompt": prompt})
    assert isinstance(run, dict)
    return run


def get(d: DaemonProcess, path: str) -> Any:
    return d.client.request("GET", path)


def ended(d: DaemonProcess, run_id: str) -> dict[str, Any] | None:
    run = get(d, f"/api/runs/{run_id}")
    return run if run["state"] in ("succeeded", "failed", "stopped") else None


def storage(d: DaemonProcess) -> dict[str, str] | None:
    problem: dict[str, str] | None = get(d, "/api/status")["storage"]
    return problem


def refused(d: DaemonProcess, agent: str, prompt: str = "") -> ApiCallError:
    with pytest.raises(ApiCallError) as caught:
        launch(d, agent, prompt)
    return caught.value


def page(d: DaemonProcess, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {d.info.token}"})
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def fill(directory: Path, leave: int = 0) -> Path:
    """A file taking all the free space of ``directory``'s disk but ``leave`` bytes."""
    filler = directory / "filler"
    info = os.statvfs(directory)
    free = info.f_bavail * info.f_frsize
    with filler.open("wb", buffering=0) as file:
        try:
            file.write(b"\0" * max(free - leave, 0))
            while not leave:  # to the last byte
                file.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def clean_stderr(d: DaemonProcess) -> str:
    err = d.err
    assert "Logging error" not in err, err
    assert "Traceback" not in err, err
    assert "background task" not in err, err
    return err


def test_a_flood_on_a_full_disk_is_drained_ends_and_says_which_disk(
    small_home: Path, tmp_path: Path
) -> None:
    configure(small_home, tmp_path / "scripts")
    d = start_daemon(small_home)
    try:
        run = launch(d, "flood", "6")  # 6 MiB on a 2 MiB disk
        # The agent is never left blocked on its pipe: it ends, with exit 0.
        done = wait_until(lambda: ended(d, run["id"]), timeout=20, what="the flood to end")
        assert done["state"] == "succeeded" and done["exit_code"] == 0
        log_path = small_home / "data" / "runs" / f"{run['id']}.log"
        assert "bytes of output were not kept" in done["error"]
        assert f"the disk holding {log_path} (mounted at {small_home}) is full" in done["error"]

        # Said plainly: the status, the overview's banner, and launches refused with 507.
        problem = storage(d)
        assert problem is not None and problem["kind"] == "disk_full"
        assert f"(mounted at {small_home}) is full" in problem["error"]
        overview = page(d, "/")
        assert 'id="storage-banner"' in overview and "Disk full" in overview
        error = refused(d, "quiet")
        assert error.status == 507
        assert f"mounted at {small_home}) is full" in error.message

        # Deleting the run frees its space; the trouble clears, launches work again, and the
        # stall watch survived the flood (a silent run is seen stalled).
        d.client.request("DELETE", f"/api/runs/{run['id']}")
        assert not log_path.exists()
        wait_until(lambda: storage(d) is None, what="the disk trouble to clear")
        assert 'id="storage-banner" class="banner" role="alert" hidden' in page(d, "/")
        quiet = launch(d, "quiet")
        wait_until(
            lambda: get(d, f"/api/runs/{quiet['id']}")["activity"] == "stalled",
            what="the quiet run to be seen stalled",
        )
        d.client.request("POST", f"/api/runs/{quiet['id']}/stop")
        wait_until(lambda: ended(d, quiet["id"]), what="the quiet run to stop")

        result = run_cli(small_home, "stop")
        assert (result.returncode, result.stdout, result.stderr) == (0, "AIOS stopped\n", "")
        d.finish()
        clean_stderr(d)
    finally:
        d.close()


def test_output_lost_while_full_is_marked_in_the_log_when_space_returns(
    small_home: Path, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    configure(small_home, tmp_path / "scripts", go=go)
    d = start_daemon(small_home)
    try:
        filler = fill(small_home / "data", leave=600 * 1024)
        run = launch(d, "flood", "2")
        wait_until(lambda: storage(d) is not None, what="the disk to be full")
        # The flood is over and the agent waits: the stall watch still sees it.
        wait_until(
            lambda: get(d, f"/api/runs/{run['id']}")["activity"] == "stalled",
            what="the waiting agent to be seen stalled",
        )
        filler.unlink()
        go.touch()
        done = wait_until(lambda: ended(d, run["id"]), timeout=20, what="the run to end")
        assert done["state"] == "succeeded"
        log = d.client.request_bytes("GET", f"/api/runs/{run['id']}/log").decode()
        marker = log[log.index("[aios: ") :]
        lost = int(marker.split("[aios: ", 1)[1].split(" ", 1)[0])
        assert 0 < lost <= 2 * 1024 * 1024
        assert f"bytes of output were not kept here: the disk holding {small_home}" in marker
        assert "was full]\nafter the flood\n" in marker
        wait_until(lambda: storage(d) is None, what="the disk trouble to clear")
        assert launch(d, "quiet")["state"] == "queued"
    finally:
        d.terminate()
        d.close()
    clean_stderr(d)


def test_an_endless_flood_on_a_full_disk_stops_normally_and_aios_stop_exits_0(
    small_home: Path, tmp_path: Path
) -> None:
    configure(small_home, tmp_path / "scripts")
    d = start_daemon(small_home)
    try:
        events_seen = page_stream_until_storage(d, lambda: launch(d, "endless"))
        run = events_seen["run"]
        assert "#storage-banner" in events_seen["html"] and "Disk full" in events_seen["html"]
        # Its timer still runs on a full disk: it moves on from starting.
        live = wait_until(
            lambda: (r := get(d, f"/api/runs/{run['id']}"))["state"] == "running" and r,
            what="the flood to be running",
        )
        # The summary is history's, as of its last write: the step to running, committed on the
        # store's thread, may land a moment after the live record moved on.
        wait_until(
            lambda: get(d, "/api/status")["runs"].get("running") == 1,
            what="history to count the flood as running",
        )
        stopped = d.client.request("POST", f"/api/runs/{run['id']}/stop")
        assert stopped["state"] == "stopping"
        done = wait_until(lambda: ended(d, run["id"]), timeout=20, what="the run to stop")
        assert done["state"] == "stopped"
        assert "bytes of output were not kept" in done["error"]
        assert not pids_alive([live["pid"]])

        result = run_cli(small_home, "stop")
        assert (result.returncode, result.stdout, result.stderr) == (0, "AIOS stopped\n", "")
        d.finish()
        clean_stderr(d)
    finally:
        d.close()


def page_stream_until_storage(d: DaemonProcess, start: Any) -> dict[str, Any]:
    """Open the overview's live stream, call ``start``, read until the stream swaps the storage
    banner in; what ``start`` returned and the message's HTML."""
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
    try:
        conn.request(
            "GET",
            "/ui/events?view=overview&filter=all",
            headers={"Authorization": f"Bearer {d.info.token}"},
        )
        response = conn.getresponse()
        assert response.status == 200
        run = start()
        received = b""
        while not (found := [m for m in received.split(b"\n\n") if b"#storage-banner" in m]):
            chunk = response.read1(1 << 16)
            assert chunk, "the stream ended"
            received += chunk
        return {"run": run, "html": found[0].decode()}
    finally:
        conn.close()


def test_delete_frees_space_while_the_database_cannot_be_written(
    small_home: Path, tmp_path: Path
) -> None:
    configure(small_home, tmp_path / "scripts")
    d = start_daemon(small_home)
    try:
        first = launch(d, "flood", "0.5")
        wait_until(lambda: ended(d, first["id"]), what="the first run to end")
        quiet = launch(d, "quiet")
        wait_until(lambda: get(d, f"/api/runs/{quiet['id']}")["state"] == "running")
        filler = fill(small_home / "data")  # to the last block: the database cannot grow
        # Stopping works, and the run reads as stopped (memory is the truth meanwhile).
        d.client.request("POST", f"/api/runs/{quiet['id']}/stop")
        done = wait_until(lambda: ended(d, quiet["id"]), what="the quiet run to stop")
        assert done["state"] == "stopped"
        wait_until(lambda: storage(d) is not None, what="the trouble to show")
        # Delete the first run: its files go first, whatever the database says.
        d.client.request("DELETE", f"/api/runs/{first['id']}")
        assert not (small_home / "data" / "runs" / f"{first['id']}.log").exists()
        assert first["id"] not in [r["id"] for r in get(d, "/api/runs")]
        filler.unlink()
        wait_until(lambda: storage(d) is None, what="the trouble to clear")
        result = run_cli(small_home, "stop")
        assert result.returncode == 0, result.stderr
        d.finish()
        clean_stderr(d)
    finally:
        d.close()
    # Nothing that could be kept was lost: history has the stop and not the deleted run.
    again = start_daemon(small_home)
    try:
        runs = {r["id"]: r for r in get(again, "/api/runs")}
        assert first["id"] not in runs
        assert runs[quiet["id"]]["state"] == "stopped"
    finally:
        again.terminate()
        again.close()


LOG_TO_FULL_DISK = """
import logging, sys
from pathlib import Path
from aios import logs
logs.setup(Path(sys.argv[1]))
log = logging.getLogger("aios.test")
for n in range(20):
    log.error("record %d %s", n, "z" * 2000)
"""


def test_logging_to_a_full_disk_drops_records_and_says_so_once(small_home: Path) -> None:
    state = small_home / "state"
    state.mkdir()
    fill(small_home)
    result = subprocess.run(
        [sys.executable, "-c", LOG_TO_FULL_DISK, str(state / "aios.log")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0
    assert "Logging error" not in result.stderr and "Traceback" not in result.stderr
    said = [line for line in result.stderr.splitlines() if "cannot be written" in line]
    assert said == [
        f"aios: the log file {state / 'aios.log'} cannot be written (No space left on device); "
        "log records are dropped until it can"
    ]
    assert result.stderr.count("record ") == 20  # stderr itself still has every record


def test_the_tray_shows_the_disk_state_until_it_clears() -> None:
    from aios.desktop.icon import IconState, tooltip
    from aios.tray import TrayState, storage_note

    state = TrayState(counts={"running": 1})
    problem = {"kind": "disk_full", "error": "the disk holding /x is full"}
    state.disk = storage_note(problem)
    model = state.model()
    assert model.state is IconState.ATTENTION
    assert tooltip(model) == "AIOS — disk full: runs' output is not kept · 1 running"
    state.disk = storage_note({"kind": "corrupt", "error": "damaged"})
    assert tooltip(state.model()).startswith("AIOS — history database damaged")
    state.disk = None
    assert state.model().state is IconState.RUNNING


def test_the_overview_banner_appears_and_clears_live(
    small_home: Path,
    tmp_path: Path,
    browser: Any,  # noqa: F811 - the fixture
) -> None:
    configure(small_home, tmp_path / "scripts")
    d = start_daemon(small_home)
    try:
        with signed_in_page(browser, d.port, d.info.token) as (tab, watch):
            banner = tab.locator("#storage-banner")
            assert banner.is_hidden()
            filler = fill(small_home)
            assert refused(d, "quiet").status == 507  # the trouble is found, and published
            banner.wait_for(state="visible")
            assert "Disk full:" in banner.inner_text()
            assert f"mounted at {small_home}) is full" in banner.inner_text()
            filler.unlink()
            banner.wait_for(state="hidden")
            assert watch.errors == [] and watch.dialogs == []
    finally:
        d.terminate()
        d.close()
    clean_stderr(d)
