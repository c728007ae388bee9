"""Process groups and the watchdog, with real processes only.

Liveness is judged with psutil and zombies count as dead: PID 1 in a container may never reap
the orphans these tests create, and a zombie runs no code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from aios.agents.process import AgentProcess
from aios.agents.process_groups import kill_stale_group
from aios.agents.spawning import SpawnError, heed_for_children, spawn
from aios.agents.watchdog import Watchdog

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX only")

PY = sys.executable
ENV = dict(os.environ)

# An agent that ignores SIGTERM and starts a grandchild that ignores it too; it prints
# "ready <grandchild pid>" once both are in place.
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", '''
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ok", flush=True)
time.sleep(300)
'''], stdout=subprocess.PIPE)
child.stdout.readline()
print("ready", child.pid, flush=True)
while True:
    time.sleep(1)
"""

# An agent that obeys SIGTERM but leaves behind a grandchild that ignores it.
OBEDIENT_WITH_STUBBORN_CHILD = STUBBORN.replace(
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nchild", "child", 1
)

# An agent whose child leaves the process group with setsid(); prints "ready <child pid>".
ESCAPER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", '''
import os, time
os.setsid()
print("ok", flush=True)
time.sleep(300)
'''], stdout=subprocess.PIPE)
child.stdout.readline()
print("ready", child.pid, flush=True)
while True:
    time.sleep(1)
"""

# An agent that keeps starting children that leave its group with setsid(), one every few
# milliseconds, so some are always between fork and setsid when the daemon dies; each writes its
# pid to ./escapees. A watchdog that looks at the tree, then signals it, misses those that leave
# in between.
SERIAL_ESCAPER = """
import os, time
for _ in range(400):
    if os.fork() == 0:
        os.setsid()
        with open("escapees", "a") as out:
            out.write(f"{os.getpid()}\\n")
        time.sleep(300)
        os._exit(0)
    time.sleep(0.003)
time.sleep(300)
"""

# A stand-in for the daemon: a watchdog and one agent (argv from the command line).
DAEMON = """
import asyncio, os, sys
from dataclasses import dataclass, field
from pathlib import Path
from aios.agents.spawning import spawn
from aios.agents.watchdog import Watchdog

async def main() -> None:
    watchdog = Watchdog()
    watchdog.start()
    agent = await spawn(sys.argv[1:], cwd=Path.cwd(), env=dict(os.environ))
    watchdog.register(agent.pgid)
    print(agent.pgid, watchdog.pid, flush=True)
    while await agent.read():
        pass
    await asyncio.sleep(300)

asyncio.run(main())
"""


# --- helpers ------------------------------------------------------------------------------------


def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; return the last answer."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def live_members(pgid: int) -> list[int]:
    """Pids of the process group that are more than zombies."""
    members = []
    for proc in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
    return members


def kill_quietly(*, pgids: Sequence[int] = (), pids: Sequence[int] = ()) -> None:
    # 0 and -1 would mean our own group and every process we may signal: never those.
    for pgid in (pgid for pgid in pgids if pgid > 1):
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
    for pid in (pid for pid in pids if pid > 1):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def detached(script: str) -> Iterator[subprocess.Popen[bytes]]:
    """``sh -c script`` as the leader of its own process group, killed with it on the way out."""
    leader = subprocess.Popen(
        ["sh", "-c", script], stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        yield leader
    finally:
        kill_quietly(pgids=[leader.pid])
        leader.wait()


@contextlib.asynccontextmanager
async def started(
    argv: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> AsyncIterator[AgentProcess]:
    agent = await spawn(argv, cwd=cwd or Path.cwd(), env=ENV if env is None else env)
    try:
        yield agent
    finally:
        await agent.stop(timeout=0)
        agent.close()


async def read_all(agent: AgentProcess) -> bytes:
    chunks = []
    async with asyncio.timeout(10):
        while chunk := await agent.read():
            chunks.append(chunk)
    return b"".join(chunks)


async def read_line(agent: AgentProcess) -> bytes:
    buffer = b""
    async with asyncio.timeout(10):
        while b"\n" not in buffer:
            chunk = await agent.read()
            assert chunk, f"end of output before a full line: {buffer!r}"
            buffer += chunk
    return buffer.split(b"\n", 1)[0]


# --- spawning and output -----------------------------------------------------------------------


def test_output_merges_stdout_and_stderr_and_exit_code_is_reported() -> None:
    script = "import sys; print('out', flush=True); print('err', file=sys.stderr); sys.exit(3)"

    async def main() -> tuple[bytes, int, AgentProcess]:
        async with started([PY, "-c", script]) as agent:
            assert agent.pgid == agent.pid == os.getpgid(agent.pid)
            assert abs(agent.create_time - time.time()) < 5
            return await read_all(agent), await agent.wait(), agent

    output, code, agent = asyncio.run(main())
    assert output == b"out\nerr\n"
    assert code == 3 == agent.returncode


def test_exit_by_signal_is_negative() -> None:
    script = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"

    async def main() -> int:
        async with started([PY, "-c", script]) as agent:
            return await agent.wait()

    assert asyncio.run(main()) == -signal.SIGTERM


def test_a_spawn_cancelled_while_forking_leaves_nothing_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Agents are forked on a spawning thread: a spawn cancelled while that thread is starting
    the agent must not leave the agent running unsupervised (one still queued never starts)."""
    from aios.agents import spawning

    started_pids: list[int] = []
    forked, release = threading.Event(), threading.Event()
    real_popen = spawning._popen

    def slow_popen(*args: Any) -> Any:
        popen, create_time, tty = real_popen(*args)
        started_pids.append(popen.pid)
        forked.set()
        release.wait(10)  # still "starting" when the spawn is cancelled
        return popen, create_time, tty

    monkeypatch.setattr(spawning, "_popen", slow_popen)

    async def main() -> None:
        agent = [PY, "-c", "import time; time.sleep(60)"]
        task = asyncio.create_task(spawn(agent, cwd=tmp_path, env=ENV))
        assert await asyncio.to_thread(forked.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()

    asyncio.run(main())
    deadline = time.monotonic() + 10
    while psutil.pid_exists(started_pids[0]):  # killed and reaped
        assert time.monotonic() < deadline, f"agent {started_pids[0]} was left running"
        time.sleep(0.02)


def test_spawn_errors_name_the_program_and_the_reason(tmp_path: Path) -> None:
    not_executable = tmp_path / "agent.sh"
    not_executable.write_text("#!/bin/sh\necho hi\n")
    not_executable.chmod(0o644)
    cases = {
        "aios-no-such-agent-3f9c": "executable not found on PATH",
        str(tmp_path / "missing"): "no such file",
        str(not_executable): "permission denied",
    }
    for program, reason in cases.items():
        with pytest.raises(SpawnError) as caught:
            asyncio.run(spawn([program, "--help"], cwd=tmp_path, env=ENV))
        assert str(caught.value) == f"cannot start {program!r}: {reason}"
        assert (caught.value.program, caught.value.reason) == (program, reason)
    with pytest.raises(SpawnError, match="working directory"):
        asyncio.run(spawn([PY, "-c", "pass"], cwd=tmp_path / "gone", env=ENV))


def test_cwd_is_honoured(tmp_path: Path) -> None:
    async def main() -> bytes:
        async with started([PY, "-c", "import os; print(os.getcwd())"], cwd=tmp_path) as agent:
            return await read_all(agent)

    assert Path(asyncio.run(main()).decode().strip()).resolve() == tmp_path.resolve()


def test_agent_sees_exactly_the_env_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOS_DAEMON_ONLY", "secret")
    env = {"AIOS_GIVEN": "yes", "LC_ALL": "C.UTF-8"}
    script = "import json, os; print(json.dumps(dict(os.environ)))"

    async def main() -> bytes:
        async with started([PY, "-c", script], env=env) as agent:
            return await read_all(agent)

    seen = json.loads(asyncio.run(main()))
    assert seen.items() >= env.items()
    # Python itself may add LC_CTYPE (PEP 538) and macOS __CF_USER_TEXT_ENCODING.
    assert set(seen) - set(env) <= {"LC_CTYPE", "__CF_USER_TEXT_ENCODING"}


# --- stopping ----------------------------------------------------------------------------------


def test_stop_kills_agent_and_grandchild_that_ignore_sigterm() -> None:
    async def main() -> tuple[int, float, int, int]:
        async with started([PY, "-c", STUBBORN]) as agent:
            grandchild = int((await read_line(agent)).split()[1])
            assert sorted(live_members(agent.pgid)) == sorted([agent.pid, grandchild])
            began = time.monotonic()
            code = await agent.stop(timeout=0.5)
            return code, time.monotonic() - began, agent.pgid, grandchild

    code, elapsed, pgid, grandchild = asyncio.run(main())
    assert code == -signal.SIGKILL
    assert 0.5 <= elapsed < 1.5
    assert live_members(pgid) == []
    assert not alive(grandchild)


def test_stop_kills_members_that_outlive_an_obedient_leader() -> None:
    async def main() -> tuple[int, float, int, int]:
        async with started([PY, "-c", OBEDIENT_WITH_STUBBORN_CHILD]) as agent:
            grandchild = int((await read_line(agent)).split()[1])
            began = time.monotonic()
            code = await agent.stop(timeout=0.5)
            return code, time.monotonic() - began, agent.pgid, grandchild

    code, elapsed, pgid, grandchild = asyncio.run(main())
    assert code == -signal.SIGTERM
    assert 0.5 <= elapsed < 1.5
    assert live_members(pgid) == []
    assert not alive(grandchild)


def test_stop_on_a_well_behaved_agent_is_prompt_and_idempotent() -> None:
    async def main() -> tuple[int, float, int, int]:
        async with started(["sh", "-c", "sleep 300 & sleep 300"]) as agent:
            assert await asyncio.to_thread(eventually, lambda: len(live_members(agent.pid)) == 3)
            began = time.monotonic()
            code = await agent.stop(timeout=10)
            elapsed = time.monotonic() - began
            assert live_members(agent.pgid) == []
            again = await agent.stop(timeout=10)
            agent.kill_group()
            return code, elapsed, again, await agent.wait()

    code, elapsed, again, waited = asyncio.run(main())
    assert code == again == waited == -signal.SIGTERM
    assert elapsed < 1.0


def test_stop_reaches_a_descendant_that_left_the_group() -> None:
    async def main() -> tuple[int, int]:
        async with started([PY, "-c", ESCAPER]) as agent:
            escapee = int((await read_line(agent)).split()[1])
            try:
                assert os.getpgid(escapee) != agent.pgid
                await agent.stop(timeout=0.5)
            finally:
                kill_quietly(pids=[escapee])
            return agent.pgid, escapee

    _, escapee = asyncio.run(main())
    assert not alive(escapee)


def test_sample_sums_the_group_and_ends_with_the_leader() -> None:
    script = STUBBORN.replace("while True:\n    time.sleep(1)", "while True:\n    pass")

    async def main() -> None:
        async with started([PY, "-c", script]) as agent:
            await read_line(agent)
            first = await asyncio.to_thread(agent.sample)
            assert first is not None
            cpu, rss = first
            assert cpu >= 0.0
            # Two Python processes: the sum is well above the leader alone.
            assert rss > psutil.Process(agent.pid).memory_info().rss
            async with asyncio.timeout(10):
                while cpu <= 0.0:  # the busy leader shows up from the second sample on
                    await asyncio.sleep(0.1)
                    second = await asyncio.to_thread(agent.sample)
                    assert second is not None
                    cpu, rss = second
            assert 0.0 < cpu <= 100.0 * (os.cpu_count() or 1) + 20.0
            assert rss > 0
            await agent.stop(timeout=0)
            assert agent.sample() is None

    asyncio.run(main())


# --- groups left by a previous daemon ----------------------------------------------------------


def test_kill_stale_group_checks_the_leader_identity() -> None:
    with detached("sleep 300 & sleep 300") as leader:
        assert eventually(lambda: len(live_members(leader.pid)) == 3)
        started_at = psutil.Process(leader.pid).create_time()
        assert not kill_stale_group(leader.pid, started_at + 60)  # a reused pid: hands off
        assert len(live_members(leader.pid)) == 3
        assert kill_stale_group(leader.pid, started_at)
        assert leader.wait(timeout=5) == -signal.SIGKILL
        assert eventually(lambda: live_members(leader.pid) == [])
        assert not kill_stale_group(leader.pid, started_at)  # nothing left to kill


def test_kill_stale_group_without_a_create_time_or_a_leader() -> None:
    with detached("sleep 300 & sleep 300") as leader:
        assert eventually(lambda: len(live_members(leader.pid)) == 3)
        assert kill_stale_group(leader.pid, None)
        assert eventually(lambda: live_members(leader.pid) == [])
    with detached("sleep 300 & exit 0") as leader:
        assert leader.wait(timeout=5) == 0
        assert eventually(lambda: len(live_members(leader.pid)) == 1)
        assert kill_stale_group(leader.pid, 0.0)  # the leader is gone: its group is ours
        assert eventually(lambda: live_members(leader.pid) == [])


def test_kill_stale_group_never_kills_our_own_group() -> None:
    assert not kill_stale_group(os.getpgrp(), None)
    assert not kill_stale_group(1, None)
    assert not kill_stale_group(0, None)


# --- the watchdog ------------------------------------------------------------------------------


def test_watchdog_close_with_nothing_registered_exits_cleanly() -> None:
    watchdog = Watchdog()
    watchdog.start()
    watchdog.start()
    pid = watchdog.pid
    assert pid is not None and alive(pid)
    assert os.getsid(pid) == pid  # its own session
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        no_such_group = 2**30  # above any pid_max
        watchdog.register(no_such_group)  # a round of writes; the watchdog still holds 3 fds
        watchdog.unregister(no_such_group)
        assert psutil.Process(pid).num_fds() == 3  # stdin (the pipe), stdout, stderr
    assert watchdog.close() == 0
    assert watchdog.close() == 0
    assert not alive(pid)


def test_watchdog_ignores_sigint() -> None:
    with Watchdog() as watchdog:
        pid = watchdog.pid
        assert pid is not None
        if sys.platform == "linux":
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
            ignored = next(line for line in status if line.startswith("SigIgn:")).split()[1]
            assert int(ignored, 16) & (1 << (signal.SIGINT - 1))
        os.kill(pid, signal.SIGINT)
        assert alive(pid)
    assert watchdog.close() == 0  # ended by the closed pipe, not by KeyboardInterrupt


def test_watchdog_close_stops_registered_groups_only() -> None:
    with detached("sleep 300 & sleep 300") as kept, detached("sleep 300 & sleep 300") as doomed:
        assert eventually(lambda: len(live_members(kept.pid) + live_members(doomed.pid)) == 6)
        watchdog = Watchdog()
        watchdog.register(kept.pid)  # before start: sent when it starts
        with watchdog:
            watchdog.register(doomed.pid)
            watchdog.unregister(kept.pid)
        assert eventually(lambda: live_members(doomed.pid) == [])
        assert doomed.wait(timeout=5) == -signal.SIGTERM
        assert len(live_members(kept.pid)) == 3


def test_watchdog_is_restarted_when_it_dies(caplog: pytest.LogCaptureFixture) -> None:
    with detached("sleep 300") as first, detached("sleep 300") as second, Watchdog() as watchdog:
        watchdog.register(first.pid)
        old = watchdog.pid
        assert old is not None
        os.kill(old, signal.SIGKILL)
        assert eventually(lambda: not alive(old))
        watchdog.register(second.pid)  # meets a broken pipe, starts a new watchdog
        assert watchdog.pid not in (None, old)
        assert "starting a new one" in caplog.text
        watchdog.close()  # the new watchdog knows both groups
        assert first.wait(timeout=5) == second.wait(timeout=5) == -signal.SIGTERM


AGENTS = {
    "sh with a grandchild": ["sh", "-c", "sleep 300 & sleep 300"],
    "SIGTERM ignored": [PY, "-c", STUBBORN],
    "setsid escapee": [PY, "-c", ESCAPER],
}


@dataclass
class StandIn:
    """A stand-in daemon (``DAEMON``) running one agent: its process, the agent's group, its
    watchdog, and the pids a test saw (all killed on the way out, whatever the test found)."""

    daemon: subprocess.Popen[bytes]
    pgid: int
    watchdog: int
    seen: list[int] = field(default_factory=list)


@contextlib.contextmanager
def stand_in(agent: Sequence[str], cwd: Path) -> Iterator[StandIn]:
    daemon = subprocess.Popen(
        [PY, "-c", DAEMON, *agent], cwd=cwd, stdout=subprocess.PIPE, start_new_session=True
    )
    it = None
    try:
        assert daemon.stdout is not None
        pgid, watchdog = map(int, daemon.stdout.readline().split())
        it = StandIn(daemon, pgid, watchdog)
        yield it
    finally:
        kill_quietly(pgids=[daemon.pid], pids=[*it.seen, it.watchdog] if it else [])
        daemon.kill()
        daemon.wait()
        if daemon.stdout is not None:
            daemon.stdout.close()


@pytest.mark.parametrize("name", list(AGENTS))
def test_no_orphans_when_the_daemon_is_killed(name: str, tmp_path: Path) -> None:
    if name == "setsid escapee" and sys.platform != "linux":
        pytest.skip("the watchdog finds escaped descendants through /proc")
    with stand_in(AGENTS[name], tmp_path) as it:
        leader = psutil.Process(it.pgid)
        assert leader.ppid() == it.daemon.pid
        # Wait for the agent to have its whole tree: a leader plus at least one grandchild.
        expected = 2 if name == "sh with a grandchild" else 1
        assert eventually(lambda: len(leader.children(recursive=True)) >= expected)
        it.seen = [it.pgid, *(child.pid for child in leader.children(recursive=True))]

        began = time.monotonic()
        it.daemon.kill()
        assert it.daemon.wait(timeout=5) == -signal.SIGKILL
        assert eventually(lambda: not any(map(alive, it.seen)), timeout=3)
        elapsed = time.monotonic() - began
        assert live_members(it.pgid) == []
        assert eventually(lambda: not alive(it.watchdog))
        assert elapsed < 3


def test_no_escapee_slips_out_between_the_look_and_the_signal(tmp_path: Path) -> None:
    if sys.platform != "linux":
        pytest.skip("the watchdog finds escaped descendants through /proc")
    escapees = tmp_path / "escapees"
    with stand_in([PY, "-c", SERIAL_ESCAPER], tmp_path) as it:
        assert eventually(lambda: escapees.exists() and escapees.read_text().count("\n") >= 20)
        it.daemon.kill()
        assert it.daemon.wait(timeout=5) == -signal.SIGKILL
        assert eventually(lambda: not alive(it.watchdog), timeout=10)
        time.sleep(0.5)  # a child that got away has written its pid by now
        it.seen = [int(line) for line in escapees.read_text().split()]
        assert live_members(it.pgid) == []
        assert [pid for pid in it.seen if alive(pid)] == []


# -- agents on a pseudo-terminal -------------------------------------------------------------

# On its terminal: says what it is, then starts a job in a process group of its own (as a shell
# with job control does) that ignores SIGTERM, like itself.
ON_A_TERMINAL = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
print("tty", os.isatty(0), os.isatty(1), "leader", os.getsid(0) == os.getpid(),
      "ctty", os.tcgetpgrp(0) == os.getpgrp(), "size", os.get_terminal_size(), flush=True)
job = subprocess.Popen([sys.executable, "-c", '''
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
time.sleep(300)
'''], process_group=0)
print("\\x1b[1mjob\\x1b[0m", job.pid, flush=True)
time.sleep(300)
"""


async def test_a_terminal_agent_leads_a_session_on_its_terminal_and_is_stopped_whole() -> None:
    agent = await spawn([PY, "-c", ON_A_TERMINAL], cwd=Path.cwd(), env=ENV, terminal=(77, 21))
    try:
        assert agent.tty is not None and agent.tty.startswith("/dev/")
        output = b""
        async with asyncio.timeout(10):
            while output.count(b"\n") < 2:
                chunk = await agent.read()
                assert chunk, f"end of output: {output!r}"
                output += chunk
        first, job_line, _ = output.split(b"\r\n", 2)  # the terminal's newlines: \r\n
        assert first == (
            b"tty True True leader True ctty True size os.terminal_size(columns=77, lines=21)"
        )
        assert job_line.startswith(b"\x1b[1mjob\x1b[0m ")  # ANSI as written
        job = int(job_line.rsplit(b" ", 1)[1])
        assert os.getpgid(job) == job != agent.pgid  # a group of its own, in the agent's session
        assert os.getsid(job) == agent.pid
        assert agent.foreground_group() == agent.pgid
        agent.resize(100, 40)
        assert agent.type(b"typed\n")
        # Both ignore SIGTERM and the hang-up: SIGKILL after the grace period reaches the job's
        # group too.
        assert await agent.stop(timeout=0.5) == -signal.SIGKILL
        assert eventually(lambda: not alive(job))
        assert await read_all(agent) is not None  # the terminal's end: EIO read as the end
    finally:
        await agent.stop(timeout=0)
        agent.close()


@pytest.fixture
def hangups_ignored() -> Iterator[None]:
    """This process ignores SIGHUP, as one started under nohup does, until the daemon's entry
    point heeds it for its children (``heed_for_children``)."""
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        heed_for_children()
        yield
    finally:
        signal.signal(signal.SIGHUP, before)


async def test_agents_of_a_daemon_started_under_nohup_can_be_hung_up(
    hangups_ignored: None,
) -> None:
    assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_IGN, signal.SIG_DFL)  # still deaf
    agent = await spawn(["grep", "SigIgn", "/proc/self/status"], cwd=Path.cwd(), env=ENV)
    try:
        ignored = int((await read_all(agent)).split()[-1], 16)
        assert not ignored & (1 << (signal.SIGHUP - 1))
    finally:
        await agent.stop(timeout=0)
        agent.close()


async def test_stopping_a_terminal_hangs_it_up_so_an_interactive_shell_ends_at_once(
    hangups_ignored: None,
) -> None:
    """An interactive shell ignores SIGTERM; closing its terminal (SIGHUP) ends it, as closing a
    terminal window does, without waiting out the grace period for SIGKILL."""
    env = {**ENV, "PS1": "ready> "}
    agent = await spawn(["sh", "-i"], cwd=Path.cwd(), env=env, terminal=(80, 24))
    try:
        seen = b""
        async with asyncio.timeout(10):
            while b"ready> " not in seen:  # its prompt: it is interactive
                seen += await agent.read()
        assert await agent.stop(timeout=30) == -signal.SIGHUP
    finally:
        await agent.stop(timeout=0)
        agent.close()


JOB_IN_ITS_OWN_GROUP = (
    "import subprocess, time; subprocess.Popen(['sleep', '300'], process_group=0); time.sleep(300)"
)


def test_kill_stale_group_kills_the_other_groups_of_its_session() -> None:
    with detached(f'sleep 300 & exec {PY} -c "{JOB_IN_ITS_OWN_GROUP}"') as leader:
        assert eventually(lambda: len(live_members(leader.pid)) == 2)  # sleep, and python
        assert eventually(lambda: len(in_session(leader.pid)) == 3)  # the job: its own group
        assert kill_stale_group(leader.pid, psutil.Process(leader.pid).create_time())
        assert eventually(lambda: in_session(leader.pid) == [])


def in_session(sid: int) -> list[int]:
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
    return found


async def test_a_terminal_whose_master_is_closed_leaves_the_file_reusing_its_number_alone() -> None:
    """The leader lives on but nothing holds its terminal any more: the reader reads the end
    (EIO) and closes the master, whose number the next file opened takes. Resizing the run, or
    asking who reads its terminal, must not reach that file (here another terminal)."""
    import fcntl
    import struct
    import termios

    script = "import os, time; [os.close(fd) for fd in (0, 1, 2)]; time.sleep(30)"
    agent = await spawn([PY, "-c", script], cwd=Path.cwd(), env=ENV, terminal=(80, 24))
    master = slave = -1
    try:
        assert await asyncio.wait_for(read_all(agent), 10) is not None  # the end: EIO
        assert agent.returncode is None
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 10, 20, 0, 0))
        agent.resize(100, 50)
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(slave, termios.TIOCGWINSZ, b"\0" * 8))
        assert (cols, rows) == (20, 10)  # untouched, whichever number it got
        assert agent.foreground_group() is None
    finally:
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)
        await agent.stop(timeout=0)
        agent.close()
