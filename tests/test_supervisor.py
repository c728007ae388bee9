"""The supervisor with real agent processes: limits that hold, runs that always end.

Concurrency is measured from the agents' own side: each appends to a journal when it starts and
when it ends, so what the file says is what really ran at once, whatever the daemon believes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from aios.client import ApiCallError
from aios.runs import Run
from tests.helpers import (
    DaemonProcess,
    EventCollector,
    agent_script,
    pids_alive,
    start_daemon,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.daemon

FINAL = {"succeeded", "failed", "stopped", "interrupted"}

JOURNAL = """
import os, sys, time
def note(mark):
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, mark.encode())
    os.close(fd)
note("+")
time.sleep(0.3)
note("-")
"""

# The leader starts a child that keeps the output pipe, says when it exits, and exits.
LEAVES_A_CHILD = """
import json, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[2]])
with open(sys.argv[1], "w") as f:
    json.dump({"child": child.pid, "exit": time.time()}, f)
"""

IGNORE_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"

# A child in a session of its own (setsid) that keeps the pipe and ignores SIGTERM; the leader
# stays until it is stopped.
SETSID_CHILD = """
import json, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[2]], start_new_session=True)
with open(sys.argv[1], "w") as f:
    json.dump({"child": child.pid}, f)
print("ready", flush=True)
time.sleep(300)
"""

# A double fork: the grandchild leaves the session and loses its parent, so neither the group
# nor the process tree leads to it; only the output pipe it holds does.
DOUBLE_FORK = """
import json, os, signal, sys, time
path, stay = sys.argv[1], sys.argv[2] == "stay"
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open(path + ".tmp", "w") as f:
            json.dump({"child": os.getpid()}, f)
        os.rename(path + ".tmp", path)
        time.sleep(300)
    os._exit(0)
while not os.path.exists(path):
    time.sleep(0.01)
print("ready", flush=True)
if stay:
    time.sleep(300)
"""


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    path = tmp_path / "agents"
    path.mkdir()
    return path


def serve(home: Path, config: str) -> DaemonProcess:
    write_config(home, config)
    return start_daemon(home)


@pytest.fixture
def served(home: Path) -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for d in started:
        d.terminate()


def launch(d: DaemonProcess, agent: str, prompt: str = "x") -> dict[str, Any]:
    run = d.client.request("POST", "/api/runs", {"agent": agent, "prompt": prompt})
    assert isinstance(run, dict)
    return run


def wait_final(d: DaemonProcess, run_id: str, timeout: float = 20) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        run = d.client.request("GET", f"/api/runs/{run_id}")
        assert isinstance(run, dict)
        return run if run["state"] in FINAL else None

    result: dict[str, Any] = wait_until(final, timeout, f"run {run_id} to end")
    return result


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def read_json(path: Path) -> dict[str, Any]:
    """What an agent wrote to ``path``, once it has written all of it."""

    def parsed() -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return data

    result: dict[str, Any] = wait_until(parsed, what=f"{path.name} to be written")
    return result


def test_24_short_runs_never_have_more_than_3_alive(
    home: Path, scripts: Path, tmp_path: Path, served: list[DaemonProcess]
) -> None:
    journal = tmp_path / "journal"
    command = json.dumps([sys.executable, str(scripts / "journal.py"), str(journal)])
    agent_script(scripts, "journal", JOURNAL, prompt=False)
    d = serve(home, f"max_concurrent = 3\n[agents.journal]\ncommand = {command}\n")
    served.append(d)
    with ThreadPoolExecutor(24) as pool:
        runs = list(pool.map(lambda _: launch(d, "journal"), range(24)))
    finals = [wait_final(d, run["id"], timeout=60) for run in runs]
    assert {run["state"] for run in finals} == {"succeeded"}
    marks = journal.read_text()
    assert marks.count("+") == 24 and marks.count("-") == 24
    alive = peak = 0
    for mark in marks:
        alive += 1 if mark == "+" else -1
        peak = max(peak, alive)
    assert peak <= 3, f"{peak} agents ran at once: {marks}"


def test_160_simultaneous_launches_accept_the_cap_plus_the_slots(
    home: Path, served: list[DaemonProcess]
) -> None:
    d = serve(home, 'max_concurrent = 2\n[agents.sleeper]\ncommand = ["sleep", "300"]\n')
    served.append(d)

    def attempt(_: int) -> int:
        try:
            launch(d, "sleeper")
        except ApiCallError as exc:
            assert "queue is full" in exc.message
            return exc.status
        return 201

    with ThreadPoolExecutor(160) as pool:
        statuses = list(pool.map(attempt, range(160)))
    # None of them ends by itself, so exactly the slots and the queue are filled.
    assert statuses.count(201) == 102 and statuses.count(429) == 58
    runs = d.client.request("GET", "/api/runs?limit=500")
    assert isinstance(runs, list) and len(runs) == 102
    assert sum(run["state"] in ("starting", "running") for run in runs) == 2


@pytest.mark.parametrize("child", ["sleep", "ignores-sigterm"])
def test_a_run_ends_soon_after_its_leader_whatever_it_leaves(
    home: Path, scripts: Path, tmp_path: Path, served: list[DaemonProcess], child: str
) -> None:
    stop_timeout = 1
    child_code = "import time; time.sleep(300)" if child == "sleep" else IGNORE_TERM
    command = json.dumps(
        [sys.executable, str(scripts / "leaves.py"), str(tmp_path / "leaves.json"), child_code]
    )
    agent_script(scripts, "leaves", LEAVES_A_CHILD, prompt=False)
    d = serve(home, f"[agents.leaves]\ncommand = {command}\nstop_timeout = {stop_timeout}\n")
    served.append(d)
    run = launch(d, "leaves")
    final = wait_final(d, run["id"])
    facts = read_json(tmp_path / "leaves.json")
    assert final["state"] == "succeeded" and final["exit_code"] == 0
    assert epoch(final["ended_at"]) - facts["exit"] <= stop_timeout + 2
    assert pids_alive([facts["child"]]) == []


def test_a_killed_run_whose_setsid_child_holds_the_pipe_ends_stopped(
    home: Path, scripts: Path, tmp_path: Path, served: list[DaemonProcess]
) -> None:
    facts_file = tmp_path / "setsid.json"
    command = json.dumps([sys.executable, str(scripts / "setsid.py"), str(facts_file), IGNORE_TERM])
    agent_script(scripts, "setsid", SETSID_CHILD, prompt=False)
    d = serve(home, f"[agents.setsid]\ncommand = {command}\nstop_timeout = 1\n")
    served.append(d)
    run = launch(d, "setsid")
    child = read_json(facts_file)["child"]
    d.client.request("POST", f"/api/runs/{run['id']}/stop")
    final = wait_final(d, run["id"])
    assert final["state"] == "stopped"
    assert pids_alive([child]) == []


@pytest.mark.parametrize("leader", ["killed", "exits"])
def test_a_double_forked_escapee_holding_the_pipe_cannot_keep_a_run_live(
    home: Path, scripts: Path, tmp_path: Path, served: list[DaemonProcess], leader: str
) -> None:
    facts_file = tmp_path / "fork.json"
    stay = "stay" if leader == "killed" else "go"
    command = json.dumps([sys.executable, str(scripts / "fork.py"), str(facts_file), stay])
    agent_script(scripts, "fork", DOUBLE_FORK, prompt=False)
    d = serve(home, f"[agents.fork]\ncommand = {command}\nstop_timeout = 1\n")
    served.append(d)
    events = EventCollector(d.port, d.info.token)
    try:
        run = launch(d, "fork")
        escapee = read_json(facts_file)["child"]
        try:
            if leader == "killed":
                events.wait(lambda k, data: k == "log" and "ready" in data["text"])
                d.client.request("POST", f"/api/runs/{run['id']}/stop")
            final = wait_final(d, run["id"])
            assert final["state"] == ("stopped" if leader == "killed" else "succeeded")
            assert pids_alive([escapee]) == []
        finally:
            if pids_alive([escapee]):
                import os
                import signal

                os.kill(escapee, signal.SIGKILL)
    finally:
        events.close()


# --- steps committed together (in-process: a real store and bus, spawns that fail) -------------


async def test_steps_are_committed_together_in_order_and_a_gone_caller_changes_nothing(
    tmp_path: Path,
) -> None:
    """While one commit is in flight, the steps that arrive meanwhile go to the store together
    (fewer trips to its thread); each run's events still come in the order the core made them,
    and a step whose caller went away (a client that hung up) is carried out all the same."""
    from aios.agents.spawning import SpawnError
    from aios.agents.supervisor import Supervisor
    from aios.agents.watchdog import Watchdog
    from aios.config import load_config
    from aios.events import EventBus
    from aios.store import Store

    config_file = tmp_path / "config.toml"
    config_file.write_text('max_concurrent = 64\n[agents.x]\ncommand = ["/bin/true"]\n')
    config = load_config(config_file)
    store = Store(tmp_path / "history.sqlite3", tmp_path / "runs")
    trips = 0
    save_many = store.save_many

    async def counting(*args: Any, **kwargs: Any) -> list[Run]:
        nonlocal trips
        trips += 1
        return await save_many(*args, **kwargs)

    store.save_many = counting  # type: ignore[method-assign]

    async def cannot_spawn(argv: list[str], **_: Any) -> Any:
        raise SpawnError(argv[0], "not in this test")

    bus = EventBus()
    events = bus.subscribe()
    watchdog = Watchdog()
    supervisor = Supervisor(store, bus, watchdog, lambda: config, spawner=cannot_spawn)
    await supervisor.start()
    try:
        runs = await asyncio.gather(*(supervisor.launch("x") for _ in range(20)))
        admitted: list[str] = []
        core_launch = supervisor.core.launch

        def counting_launch(run: Run, policy: Any, attached: object = None) -> Any:
            effects = core_launch(run, policy, attached)
            admitted.append(run.id)
            return effects

        supervisor.core.launch = counting_launch  # type: ignore[method-assign]
        gone = asyncio.create_task(supervisor.launch("x"))
        while not admitted:  # noqa: ASYNC110 - until the core has admitted it: its step is queued...
            await asyncio.sleep(0)
        gone.cancel()  # ...and its caller leaves
        seen: dict[str, list[str]] = {}
        async with asyncio.timeout(10):
            while sum(states[-1] == "failed" for states in seen.values()) < 21:
                event = await events.get()
                assert event is not None
                if event.kind == "run":
                    seen.setdefault(event.data["id"], []).append(event.data["state"])
        for run in runs:
            assert seen[run.id] == ["queued", "starting", "failed"]
        assert len(seen) == 21  # the gone caller's run was launched, and ended, all the same
        assert trips < 2 * 21  # two steps a run (launch, spawn failed), fewer trips
    finally:
        await supervisor.shutdown()
        await asyncio.to_thread(watchdog.close)
        await store.close()


# --- directories found a moment ago (aios.workdir.Recent) ---------------------------------------


async def test_a_directory_found_usable_is_looked_at_once_for_a_moment(tmp_path: Path) -> None:
    """A burst of launches in one directory costs one look (on a thread); a refused request is
    looked at again every time (nothing bad is remembered); after the moment, so is a good one."""
    from aios import workdir

    looked: list[str | None] = []

    def resolve(requested: str | None) -> Path:
        looked.append(requested)
        return workdir.resolve(requested)

    now = 100.0
    recent = workdir.Recent(resolve, 2.0, clock=lambda: now)
    work, missing = tmp_path / "work", tmp_path / "missing"
    work.mkdir()
    assert await recent.resolve(str(work)) == work.resolve()
    assert await recent.resolve(str(work)) == work.resolve()
    assert looked == [str(work)]
    for _ in range(2):
        with pytest.raises(workdir.WorkdirError, match="does not exist"):
            await recent.resolve(str(missing))
    missing.mkdir()
    assert await recent.resolve(str(missing)) == missing.resolve()
    assert looked == [str(work), *[str(missing)] * 3]
    now += 2.0
    work.rmdir()
    with pytest.raises(workdir.WorkdirError, match="does not exist"):
        await recent.resolve(str(work))
