"""The service on a thread of its own, as the tray runs it: start/stop, idempotence, leaks."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from aios.client import DaemonClient, discover
from aios.host import AlreadyRunning, Service, ServiceError, State
from aios.paths import Paths
from aios.runtime import InstanceLock


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths.from_env({"AIOS_HOME": str(tmp_path)})


def test_start_serve_stop_on_a_thread(paths: Paths) -> None:
    service = Service(paths)
    service.start()
    try:
        assert service.state is State.RUNNING and service.info is not None
        assert DaemonClient(service.info).request("GET", "/api/status")["pid"] == os.getpid()
        assert discover(paths) == service.info
        service.start()  # idempotent
    finally:
        service.stop()
        service.stop()  # idempotent
    assert service.state.value == "stopped"
    assert not paths.runtime_file.exists()
    assert discover(paths) is None


def test_shutdown_request_over_http_stops_the_thread(paths: Paths) -> None:
    service = Service(paths)
    service.start()
    assert service.info is not None
    DaemonClient(service.info).request("POST", "/api/shutdown")
    service.stop(timeout=10)
    assert service.state is State.STOPPED


def test_second_service_in_same_home_finds_the_first(paths: Paths) -> None:
    first = Service(paths)
    first.start()
    try:
        with pytest.raises(AlreadyRunning) as caught:
            Service(paths).start()
        assert caught.value.info == first.info
    finally:
        first.stop()


def test_stop_before_start_releases_everything(paths: Paths) -> None:
    service = Service(paths)
    service.stop()
    assert service.state is State.STOPPED
    with pytest.raises(ServiceError):
        service.submit(_noop())


async def _noop() -> None:
    return None


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts fds in /proc")
def test_repeated_start_stop_leaks_no_threads_or_files(paths: Paths) -> None:
    def cycle() -> None:
        service = Service(paths)
        service.start()
        assert service.info is not None
        DaemonClient(service.info).request("GET", "/health")
        service.stop()

    cycle()  # warm up lazily created resources (logging, import caches)
    threads, fds = threading.active_count(), open_fds()
    for _ in range(20):
        cycle()
    assert threading.active_count() == threads
    assert open_fds() == fds


def test_instance_lock_excludes_a_second_holder_until_released(tmp_path: Path) -> None:
    path = tmp_path / "run" / "aios.lock"
    first, second = InstanceLock(path), InstanceLock(path)
    assert first.try_acquire() and first.held
    assert first.try_acquire()  # again: still ours
    assert not second.try_acquire() and not second.held
    # Released from another thread, as the tray does.
    releaser = threading.Thread(target=first.release)
    releaser.start()
    releaser.join()
    assert not first.held
    assert second.try_acquire()
    second.release()
    second.release()  # idempotent
    assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600
