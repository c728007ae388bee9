"""Agents and runs against a real daemon subprocess with real agent subprocesses."""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from aios.client import ApiCallError, DaemonClient
from tests.helpers import (
    DaemonProcess,
    EventCollector,
    agent_script,
    pids_alive,
    run_cli,
    start_daemon,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.daemon

STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"])
with open(sys.argv[1], "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
print("stubborn ready", flush=True)
time.sleep(300)
"""

CONFIG = """
max_concurrent = 2

[agents.exit3]
command = {exit3}
description = "prints and exits 3"

[agents.stubborn]
command = {stubborn}
stop_timeout = 1

[agents.flaky]
command = {flaky}
restart = "on-failure"
max_restarts = 1

[agents.env]
command = {env}
env = {{ AGENT_SETTING = "from-config" }}

[agents.ticker]
command = {ticker}

[agents.sleeper]
command = ["sleep", "300"]
stop_timeout = 2

[agents.missing]
command = ["aios-test-no-such-program", "{{prompt}}"]
"""


@pytest.fixture
def agents_home(home: Path, tmp_path: Path) -> Path:
    scripts = tmp_path / "agents"
    scripts.mkdir()
    write_config(
        home,
        CONFIG.format(
            exit3=agent_script(
                scripts,
                "exit3",
                "import sys\nprint('hello from exit3:', sys.argv[1])\nsys.exit(3)\n",
            ),
            stubborn=agent_script(scripts, "stubborn", STUBBORN),
            flaky=agent_script(
                scripts, "flaky", "print('flaky attempt')\nraise SystemExit(1)\n", prompt=False
            ),
            env=agent_script(
                scripts,
                "env",
                "import json, os, sys\nprint(json.dumps({'argv': sys.argv[1:], "
                "'env': {k: v for k, v in os.environ.items() if k.startswith(('AIOS', 'AGENT'))},"
                " 'cwd': os.getcwd()}))\n",
            ),
            ticker=agent_script(
                scripts,
                "ticker",
                "import time\nfor i in range(int(__import__('sys').argv[1])):\n"
                "    print(f'tick {i}', flush=True)\n    time.sleep(0.05)\n",
            ),
        ),
    )
    return home


@pytest.fixture
def served(agents_home: Path) -> Iterator[DaemonProcess]:
    proc = start_daemon(agents_home)
    try:
        yield proc
    finally:
        proc.close()


@pytest.fixture
def events(served: DaemonProcess) -> Iterator[EventCollector]:
    collector = EventCollector(served.port, served.info.token)
    try:
        yield collector
    finally:
        collector.close()


def launch(d: DaemonProcess, agent: str, prompt: str = "", **extra: Any) -> dict[str, Any]:
    run = d.client.request("POST", "/api/runs", {"agent": agent, "prompt": prompt, **extra})
    assert isinstance(run, dict)
    return run


def transitions(events: EventCollector, run_id: str) -> list[str]:
    """The states a run went through, in order (an event that changed only details, such as
    the pid once spawned, repeats its state: counted once)."""
    states: list[str] = []
    for _, kind, data in events.seen:
        if kind == "run" and data["id"] == run_id and (not states or states[-1] != data["state"]):
            states.append(data["state"])
    return states


def final_event(events: EventCollector, run_id: str, timeout: float = 15) -> dict[str, Any]:
    _, data = events.wait(
        lambda kind, data: (
            kind == "run"
            and data["id"] == run_id
            and data["state"] in {"succeeded", "failed", "stopped", "interrupted"}
        ),
        timeout,
    )
    assert isinstance(data, dict)
    return data


def test_failed_run_reaches_events_log_and_cli(
    served: DaemonProcess, events: EventCollector
) -> None:
    run = launch(served, "exit3", "the task")
    assert run["state"] == "queued" and run["agent"] == "exit3"
    final = final_event(events, run["id"])
    assert final["state"] == "failed" and final["exit_code"] == 3
    # It ended within start_seconds: it never counted as running.
    assert transitions(events, run["id"]) == ["queued", "starting", "failed"]
    log = served.client.request("GET", f"/api/runs/{run['id']}/log")
    assert log == "hello from exit3: the task\n"
    assert served.client.request("GET", f"/api/runs/{run['id']}/log?offset=6") == log[6:]
    logs = run_cli(served.home, "logs", run["id"][:6])
    assert logs.returncode == 0 and logs.stdout == log
    waited = run_cli(served.home, "run", "exit3", "from the cli", "--wait")
    assert waited.returncode == 3, waited.stderr
    lines = waited.stdout.splitlines()
    assert len(lines[0]) == 12 and lines[1] == "hello from exit3: from the cli"


def test_stop_escalates_to_sigkill_for_the_whole_group(
    served: DaemonProcess, events: EventCollector, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    run = launch(served, "stubborn", str(pid_file))
    events.wait(lambda k, d: k == "log" and d["run"] == run["id"] and "ready" in d["text"])
    pids = [int(p) for p in pid_file.read_text().split()]
    assert len(pids_alive(pids)) == 2
    stopped_at = time.monotonic()
    kill = run_cli(served.home, "kill", run["id"])
    assert kill.returncode == 0 and "stopping" in kill.stdout
    final = final_event(events, run["id"])
    assert final["state"] == "stopped"
    # stop_timeout is 1 s: nothing of the agent may be left a second after that.
    wait_until(lambda: not pids_alive(pids), timeout=2.0, what="agent and grandchild to die")
    assert time.monotonic() - stopped_at < 1 + 1 + 1  # CLI start-up on a busy machine included
    again = served.client
    with pytest.raises(ApiCallError) as caught:
        again.request("POST", f"/api/runs/{run['id']}/stop")
    assert caught.value.status == 409


def test_sigkill_of_daemon_leaves_no_agent_and_marks_interrupted(
    served: DaemonProcess, events: EventCollector, tmp_path: Path
) -> None:
    done = launch(served, "exit3", "earlier")
    final_event(events, done["id"])
    pid_file = tmp_path / "pids"
    run = launch(served, "stubborn", str(pid_file))
    events.wait(lambda k, d: k == "log" and d["run"] == run["id"] and "ready" in d["text"])
    pids = [int(p) for p in pid_file.read_text().split()]
    served.proc.send_signal(signal.SIGKILL)
    served.finish(10)
    wait_until(lambda: not pids_alive(pids), timeout=3.0, what="orphans to die")
    again = start_daemon(served.home)
    try:
        runs = again.client.request("GET", "/api/runs")
        by_id = {r["id"]: r for r in runs}
        assert by_id[run["id"]]["state"] == "interrupted"
        assert by_id[done["id"]]["state"] == "failed" and by_id[done["id"]]["exit_code"] == 3
        assert again.client.request("GET", f"/api/runs/{done['id']}/log").startswith("hello")
    finally:
        again.close()


def running_event(run_id: str) -> Callable[[str, Any], bool]:
    return lambda kind, data: kind == "run" and data["id"] == run_id and data["state"] == "running"


def test_queue_is_fifo_beyond_max_concurrent(served: DaemonProcess, events: EventCollector) -> None:
    first, second = launch(served, "sleeper"), launch(served, "sleeper")
    third = launch(served, "ticker", "3")
    # Both start at once, in either order: one wait for the pair (a wait skips what it passes).
    running: set[str] = set()

    def both_running(kind: str, data: Any) -> bool:
        if kind == "run" and data["state"] == "running":
            running.add(data["id"])
        return running >= {first["id"], second["id"]}

    events.wait(both_running)
    assert served.client.request("GET", f"/api/runs/{third['id']}")["state"] == "queued"
    ps = run_cli(served.home, "ps")
    assert ps.returncode == 0 and ps.stdout.count("sleeper") == 2 and "queued" in ps.stdout
    served.client.request("POST", f"/api/runs/{first['id']}/stop")
    final = final_event(events, third["id"])
    assert final["state"] == "succeeded"
    served.client.request("POST", f"/api/runs/{second['id']}/stop")
    final_event(events, second["id"])


def test_stopping_a_queued_run(served: DaemonProcess, events: EventCollector) -> None:
    runs = [launch(served, "sleeper") for _ in range(3)]
    stopped = served.client.request("POST", f"/api/runs/{runs[2]['id']}/stop")
    assert stopped["state"] == "stopped" and stopped["pid"] is None
    for run in runs[:2]:
        served.client.request("POST", f"/api/runs/{run['id']}/stop")
        final_event(events, run["id"])


def test_restart_on_failure_with_backoff(served: DaemonProcess, events: EventCollector) -> None:
    """End to end, one restart (1 s of backoff): the doubling, the cap and the giving up are the
    core's rules, tested with a fake clock (tests/test_run_lifecycle.py)."""
    run = launch(served, "flaky")
    final = final_event(events, run["id"], timeout=20)
    assert final["state"] == "failed" and final["restarts"] == 1 and final["exit_code"] == 1
    states = transitions(events, run["id"])
    assert states.count("backoff") == 1 and states.count("starting") == 2
    log = served.client.request("GET", f"/api/runs/{run['id']}/log")
    assert log.count("flaky attempt") == 2


def test_agent_gets_prompt_as_one_argument_and_no_token(
    served: DaemonProcess, events: EventCollector, tmp_path: Path
) -> None:
    prompt = 'it\'s "quoted" $(rm -rf /) ; `x` \n two lines'
    run = launch(served, "env", prompt, cwd=str(tmp_path))
    final_event(events, run["id"])
    output = json.loads(served.client.request("GET", f"/api/runs/{run['id']}/log"))
    assert output["argv"] == [prompt]
    assert output["env"]["AIOS_PROMPT"] == prompt
    assert output["env"]["AIOS_RUN_ID"] == run["id"]
    assert output["env"]["AGENT_SETTING"] == "from-config"
    assert output["cwd"] == str(tmp_path.resolve())
    token = served.info.token
    assert token not in json.dumps(output)


def test_output_arrives_live_and_stats_are_sampled(
    served: DaemonProcess, events: EventCollector
) -> None:
    run = launch(served, "ticker", "60")
    _, first = events.wait(lambda k, d: k == "log" and d["run"] == run["id"])
    assert first["text"].startswith("tick 0")
    _, stats = events.wait(lambda k, d: k == "stats" and d["run"] == run["id"], timeout=10)
    assert stats["rss_bytes"] > 0 and stats["cpu_percent"] >= 0
    final_event(events, run["id"])
    texts = "".join(d["text"] for _, k, d in events.seen if k == "log" and d["run"] == run["id"])
    assert texts == "".join(f"tick {i}\n" for i in range(60))


def test_sse_reconnect_replays_missed_events(served: DaemonProcess) -> None:
    first = EventCollector(served.port, served.info.token)
    try:
        run = launch(served, "exit3", "one")
        last_id, _ = first.wait(lambda k, d: k == "run" and d["pid"] is not None)
    finally:
        first.close()
    final_run = launch(served, "exit3", "two")

    def both_failed() -> bool:  # they run side by side: either may end first
        runs = [served.client.request("GET", f"/api/runs/{r['id']}") for r in (run, final_run)]
        return all(r["state"] == "failed" for r in runs)

    wait_until(both_failed, what="both runs to fail")
    second = EventCollector(served.port, served.info.token, last_event_id=last_id)
    try:
        # Replayed in the order they ended: either may come first.
        ended = {run["id"], final_run["id"]}
        while not ended <= {
            d["id"] for _, k, d in second.seen if k == "run" and d["state"] == "failed"
        }:
            second.wait(lambda k, d: k == "run" and d["id"] in ended and d["state"] == "failed")
        kinds = [k for _, k, _ in second.seen]
        assert "reset" not in kinds
        ids = [int(i) for i, k, _ in second.seen if i is not None]
        assert ids == sorted(set(ids)) and ids[0] > int(last_id or 0)  # in order, no repeat
    finally:
        second.close()
    stale = EventCollector(served.port, served.info.token, last_event_id="12")
    try:
        stale.wait(lambda k, d: k == "reset")
    finally:
        stale.close()


def test_event_stream_ends_on_shutdown(served: DaemonProcess, events: EventCollector) -> None:
    launch(served, "sleeper")
    events.wait(lambda k, d: k == "run" and d["state"] == "running")
    started = time.monotonic()
    served.proc.send_signal(signal.SIGTERM)
    events.wait(lambda k, d: k == "run" and d["state"] == "stopped")
    events.wait_end()
    assert served.finish(15) == 0
    # The open stream did not hold shutdown for Hypercorn's graceful timeout (5 s).
    assert time.monotonic() - started < 4


def test_delete_forgets_a_finished_run(served: DaemonProcess, events: EventCollector) -> None:
    run = launch(served, "exit3", "x")
    final_event(events, run["id"])
    log_file = served.home / "data" / "runs" / f"{run['id']}.log"
    assert log_file.exists()
    served.client.request("DELETE", f"/api/runs/{run['id']}")
    assert not log_file.exists()
    with pytest.raises(ApiCallError) as caught:
        served.client.request("GET", f"/api/runs/{run['id']}")
    assert caught.value.status == 404


def expect_error(
    client: DaemonClient, status: int, method: str, path: str, body: object = None
) -> str:
    with pytest.raises(ApiCallError) as caught:
        client.request(method, path, body)
    assert caught.value.status == status, caught.value.message
    return caught.value.message


def test_api_errors(served: DaemonProcess, events: EventCollector, tmp_path: Path) -> None:
    c = served.client
    assert "unknown agent 'nope'" in expect_error(c, 404, "POST", "/api/runs", {"agent": "nope"})
    assert "required" in expect_error(c, 422, "POST", "/api/runs", {"prompt": "x"})
    assert "must be a string" in expect_error(c, 422, "POST", "/api/runs", {"agent": 5})
    assert "'prompt' must be a string" in expect_error(
        c, 422, "POST", "/api/runs", {"agent": "exit3", "prompt": ["x"]}
    )
    assert "unknown field" in expect_error(c, 422, "POST", "/api/runs", {"agent": "exit3", "x": 1})
    assert "JSON object" in expect_error(c, 422, "POST", "/api/runs", [1, 2])
    missing = str(tmp_path / "missing")
    assert "does not exist" in expect_error(
        c, 422, "POST", "/api/runs", {"agent": "exit3", "prompt": "x", "cwd": missing}
    )
    assert "absolute" in expect_error(
        c, 422, "POST", "/api/runs", {"agent": "exit3", "prompt": "x", "cwd": "rel"}
    )
    assert "needs a prompt" in expect_error(c, 422, "POST", "/api/runs", {"agent": "command"})
    assert "not available" in expect_error(
        c, 422, "POST", "/api/runs", {"agent": "missing", "prompt": "x"}
    )
    assert "no run matches" in expect_error(c, 404, "GET", "/api/runs/ffffffffffff")
    assert "must be an integer" in expect_error(c, 422, "GET", "/api/runs?limit=ten")
    assert "invalid state" in expect_error(c, 422, "GET", "/api/runs?state=sleeping")
    live = launch(served, "sleeper")
    assert "stop it first" in expect_error(c, 409, "DELETE", f"/api/runs/{live['id']}")
    c.request("POST", f"/api/runs/{live['id']}/stop")
    final_event(events, live["id"])
    assert "already ended" in expect_error(c, 409, "POST", f"/api/runs/{live['id']}/stop")


def test_malformed_json_is_400(served: DaemonProcess) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    try:
        conn.request(
            "POST",
            "/api/runs",
            body=b"{not json",
            headers={
                "Authorization": f"Bearer {served.info.token}",
                "Content-Type": "application/json",
            },
        )
        response = conn.getresponse()
        assert response.status == 400
        assert "malformed JSON" in json.loads(response.read())["error"]
    finally:
        conn.close()


def test_queue_full_is_429(home: Path) -> None:
    write_config(home, 'max_concurrent = 1\n[agents.sleeper]\ncommand = ["sleep", "300"]\n')
    d = start_daemon(home)
    try:
        for _ in range(101):
            launch(d, "sleeper")
        assert "queue is full" in expect_error(
            d.client, 429, "POST", "/api/runs", {"agent": "sleeper"}
        )
    finally:
        assert d.terminate() == 0
    assert "Traceback" not in d.err


def test_broken_config_never_stops_the_daemon(home: Path) -> None:
    text = (
        'max_concurrent = "four"\n\n[agents.good]\ncommand = ["true"]\n\n'
        '[agents.bad]\ncommand = "pytest -x"\n'
    )
    path = write_config(home, text)
    d = start_daemon(home)
    try:
        body = d.client.request("GET", "/api/agents")
        names = [a["name"] for a in body["agents"]]
        assert "good" in names and "bad" not in names and "command" in names
        problems = body["config"]["problems"]
        assert any(f"{path}:1:" in p and "max_concurrent" in p for p in problems)
        assert any(f"{path}:7:" in p and "argv list" in p for p in problems)
        cli = run_cli(home, "agents")
        assert cli.returncode == 0 and f"{path}:7:" in cli.stdout
    finally:
        d.terminate()
    assert path.read_text() == text
    assert "max_concurrent" in (home / "state" / "aios.log").read_text()


def test_history_pages_and_survives_restart(served: DaemonProcess, events: EventCollector) -> None:
    ids = []
    for i in range(5):
        run = launch(served, "exit3", str(i))
        final_event(events, run["id"])
        ids.append(run["id"])
    page = served.client.request("GET", "/api/runs?limit=2")
    assert [r["id"] for r in page] == ids[::-1][:2]
    older = served.client.request("GET", f"/api/runs?limit=2&before={page[-1]['id']}")
    assert [r["id"] for r in older] == ids[::-1][2:4]
    assert served.terminate() == 0
    again = start_daemon(served.home)
    try:
        assert [r["id"] for r in again.client.request("GET", "/api/runs")] == ids[::-1]
        ps = run_cli(again.home, "ps", "--all", "--json")
        assert [r["id"] for r in json.loads(ps.stdout)] == ids[::-1]
    finally:
        again.close()


def test_cli_without_daemon_says_so(home: Path) -> None:
    for args in (["agents"], ["ps"], ["run", "command", "true"], ["logs", "abc"], ["kill", "abc"]):
        result = run_cli(home, *args)
        assert result.returncode == 3, args
        assert "not running" in result.stderr and result.stderr.count("\n") == 1


def test_cli_run_uses_current_directory_and_logs_follow(
    served: DaemonProcess, tmp_path: Path
) -> None:
    result = run_cli(served.home, "run", "command", "pwd; echo done", "--wait", cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [str(tmp_path.resolve()), "done"]
    started = run_cli(served.home, "run", "ticker", "20")
    run_id = started.stdout.strip()
    followed = run_cli(served.home, "logs", "-f", run_id)
    assert followed.returncode == 0
    assert followed.stdout == "".join(f"tick {i}\n" for i in range(20))
    unknown = run_cli(served.home, "logs", "zzzz")
    assert unknown.returncode == 1 and "no run matches" in unknown.stderr


@pytest.mark.skipif(not hasattr(os, "getpgid"), reason="POSIX process groups")
def test_flood_keeps_daemon_memory_bounded(home: Path, tmp_path: Path) -> None:
    script = agent_script(
        tmp_path,
        "flood",
        "import sys\nline = b'x' * 1023 + b'\\n'\nblock = line * 1024\n"
        "for _ in range(300):\n    sys.stdout.buffer.write(block)\n",
        prompt=False,
    )
    write_config(home, f"log_cap_mib = 5\n[agents.flood]\ncommand = {script}\n")
    d = start_daemon(home)
    try:
        process = psutil.Process(d.proc.pid)
        before = process.memory_info().rss
        run = launch(d, "flood")
        peak = before
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            peak = max(peak, process.memory_info().rss)
            state = d.client.request("GET", f"/api/runs/{run['id']}")["state"]
            if state == "succeeded":
                break
            time.sleep(0.05)
        assert state == "succeeded"
        growth = peak - before
        assert growth < 64 * 2**20, f"daemon RSS grew by {growth / 2**20:.0f} MiB"
        log_file = home / "data" / "runs" / f"{run['id']}.log"
        assert 5 * 2**20 <= log_file.stat().st_size < 5 * 2**20 + 200
        assert log_file.read_bytes().endswith(b"later output was not kept]\n")
    finally:
        d.close()


def test_ps_pages_through_a_long_history(home: Path) -> None:
    """More runs than one API page (500): `aios ps --all` fetches and prints them page by page,
    newest first, the JSON exactly what one json.dumps of the whole list would print."""
    from bench.history import seed

    write_config(home, "retention = 5000\n")
    seed(home, 1203)
    d = start_daemon(home)
    try:
        everything = []
        before = ""
        while page := d.client.request("GET", f"/api/runs?limit=500{before}"):
            everything += page
            before = f"&before={page[-1]['id']}"
        assert len(everything) == 1203
        ps = run_cli(home, "ps", "--all", "--json")
        assert ps.returncode == 0, ps.stderr
        assert ps.stdout == json.dumps(everything, indent=2) + "\n"
        table = run_cli(home, "ps", "--all")
        lines = table.stdout.splitlines()
        assert len(lines) == 1 + 1203 and lines[0].startswith("ID")
        assert [line.split()[0] for line in lines[1:]] == [r["id"] for r in everything]
        empty = run_cli(home, "ps", "--json")  # no live run: an empty list, as before
        assert json.loads(empty.stdout) == []
    finally:
        d.close()


def test_a_run_page_that_falls_behind_skips_ahead(home: Path, tmp_path: Path) -> None:
    """A tab that stopped reading while a run printed a lot gets the last 256 KiB in one
    message, after a line saying what it skipped: never the whole log at once."""
    loud = agent_script(
        tmp_path, "loud", "import sys\nsys.stdout.write(('y' * 99 + '\\n') * 20_000)\n",
        prompt=False,
    )  # fmt: skip
    write_config(home, f"[agents.loud]\ncommand = {loud}\n")
    d = start_daemon(home)
    try:
        events = EventCollector(d.port, d.info.token)
        run = launch(d, "loud")
        final_event(events, run["id"])
        events.close()
        # From just before the run's first event: the stream replays its events to a page that
        # has none of its output (offset 0), 2 MB behind.
        first = next(e for e in events.seen if e[1] == "run" and e[2]["id"] == run["id"])
        assert first[0] is not None
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
        conn.request(
            "GET",
            f"/ui/events?view=run&run={run['id']}&offset=0&after={int(first[0]) - 1}",
            headers={"Authorization": f"Bearer {d.info.token}"},
        )
        response = conn.getresponse()
        received = b""
        while not (output := [m for m in received.split(b"\n\n")[:-1] if b'"#output-tail"' in m]):
            received += response.read1(1 << 20)
        conn.close()
        assert b"of output skipped while this page was not keeping up" in output[0]
        # The last 256 KiB of output, as rows of HTML: bounded, never the whole 2 MB.
        assert 256 * 1024 <= len(output[0]) < 1024 * 1024
    finally:
        d.close()


def test_dashboard_stream_refuses_bad_views(served: DaemonProcess) -> None:
    c = served.client
    assert "no run matches" in expect_error(c, 404, "GET", "/ui/events?view=run&run=ffffffffffff")
    assert "run=<id>" in expect_error(c, 422, "GET", "/ui/events?view=run")
    assert "view must be" in expect_error(c, 422, "GET", "/ui/events?view=nope")
