"""Hooks through the real daemon: a local HTTP receiver for URL hooks, real processes for
command hooks, the event stream beside them, the CLI, and the settings page in Chromium."""

from __future__ import annotations

import json
import re
import signal
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser import browser, signed_in_page
from tests.helpers import (
    DaemonProcess,
    EventCollector,
    pids_alive,
    run_cli,
    start_daemon,
    wait_until,
    write_config,
)
from tests.receiver import receiving

__all__ = ["browser"]

pytestmark = pytest.mark.daemon

# An agent that runs its prompt as a shell command and counts as running at once.
QUICK_AGENT = """
[agents.quick]
command = ["sh", "-c", "{prompt}"]
start_seconds = 0
"""


@contextmanager
def hooked(home: Path, hooks: str, **env: str) -> Iterator[DaemonProcess]:
    write_config(home, QUICK_AGENT + hooks)
    daemon = start_daemon(home, **env)
    try:
        yield daemon
    finally:
        daemon.close()


def launch(daemon: DaemonProcess, prompt: str, cwd: Path | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"agent": "quick", "prompt": prompt}
    if cwd is not None:
        body["cwd"] = str(cwd)
    run = daemon.client.request("POST", "/api/runs", body)
    assert isinstance(run, dict)
    return run


def hooks_of(daemon: DaemonProcess) -> list[dict[str, Any]]:
    body = daemon.client.request("GET", "/api/hooks")
    assert isinstance(body, dict)
    return list(body["hooks"])


def last_delivery(daemon: DaemonProcess, number: int) -> dict[str, Any] | None:
    hook = next(h for h in hooks_of(daemon) if h["number"] == number)
    last: dict[str, Any] | None = hook["last"]
    return last


def delivered(daemon: DaemonProcess, number: int, timeout: float = 20) -> dict[str, Any]:
    last: dict[str, Any] = wait_until(
        lambda: last_delivery(daemon, number), timeout, f"hook {number}"
    )
    return last


def test_url_hooks_in_each_format(home: Path) -> None:
    with receiving() as receiver:
        hooks = f"""
[[hooks]]
on = ["started", "succeeded"]
url = "{receiver.url("/json")}"
headers = {{ X-Api-Key = "s3cret-value" }}

[[hooks]]
on = ["succeeded"]
url = "{receiver.url("/ntfy")}"
format = "ntfy"

[[hooks]]
on = ["succeeded"]
url = "{receiver.url("/slack")}"
format = "slack"

[[hooks]]
on = ["failed"]
url = "{receiver.url("/not-for-success")}"

[[hooks]]
on = ["succeeded"]
agents = ["claude"]
url = "{receiver.url("/not-for-this-agent")}"
"""
        with hooked(home, hooks) as daemon:
            run = launch(daemon, "echo hello")
            wait_until(lambda: len(receiver.requests) >= 4, 20, "four deliveries")
            page = f"http://127.0.0.1:{daemon.port}/runs/{run['id']}"

            events = [json.loads(r.body) for r in receiver.to("/json")]
            assert {e["event"] for e in events} == {"started", "succeeded"}
            done = next(e for e in events if e["event"] == "succeeded")
            assert done["run"]["id"] == run["id"] and done["run"]["state"] == "succeeded"
            assert done["run"]["exit_code"] == 0 and done["run_url"] == page
            assert done["title"] == "quick finished" and done["message"] == "echo hello"
            assert done["run"] == daemon.client.request("GET", f"/api/runs/{run['id']}")
            (json_request,) = receiver.to("/json")[:1]
            assert json_request.headers["X-Api-Key"] == "s3cret-value"
            assert json_request.headers["Content-Type"] == "application/json"

            (ntfy,) = receiver.to("/ntfy")
            assert ntfy.headers["Title"] == "quick finished"
            assert ntfy.body.decode() == f"echo hello\n{page}"

            (slack,) = receiver.to("/slack")
            assert json.loads(slack.body) == {"text": f"quick finished: echo hello\n{page}"}

            assert receiver.to("/not-for-success") == receiver.to("/not-for-this-agent") == []
            listed = hooks_of(daemon)
            assert listed[0]["headers"] == {"X-Api-Key": "***"}
            assert "s3cret" not in json.dumps(listed)
            assert listed[1]["last"]["ok"] and listed[1]["last"]["detail"] == "HTTP 200"
            assert listed[3]["last"] is None


def test_url_hook_retries_5xx_but_not_timeouts_or_redirects(home: Path) -> None:
    with receiving() as receiver, receiving() as elsewhere:
        away = elsewhere.url("/stolen")
        hooks = f"""
[[hooks]]
on = ["succeeded"]
url = "{receiver.url("/flaky/2")}"

[[hooks]]
on = ["succeeded"]
url = "{receiver.url("/status/503")}"

[[hooks]]
on = ["succeeded"]
url = "{receiver.url("/hang")}"
timeout = 1

[[hooks]]
on = ["succeeded"]
url = "{receiver.url("/redirect")}?to={away}"

[[hooks]]
on = ["succeeded"]
url = "http://127.0.0.1:{closed_port()}/nobody"
"""
        with hooked(home, hooks) as daemon:
            launch(daemon, "true")
            flaky = delivered(daemon, 1)
            assert flaky["ok"] and flaky["attempts"] == 3 and flaky["detail"] == "HTTP 200"
            assert len(receiver.to("/flaky/2")) == 3
            hang = delivered(daemon, 3)
            assert hang == hang | {"ok": False, "detail": "timed out after 1 s", "attempts": 1}
            assert len(receiver.to("/hang")) == 1
            redirect = delivered(daemon, 4)
            assert not redirect["ok"]
            assert redirect["detail"] == f"HTTP 302: redirect to {away} not followed"
            assert elsewhere.requests == []
            # 1 + 3 retries, 1 + 2 + 4 s apart.
            failing = delivered(daemon, 2, timeout=30)
            assert failing == failing | {"ok": False, "detail": "HTTP 503", "attempts": 4}
            assert len(receiver.to("/status/503")) == 4
            refused = delivered(daemon, 5, timeout=30)
            assert not refused["ok"] and refused["attempts"] == 4
            assert refused["detail"].startswith("connection failed: ")
        assert "hook 2 (" in daemon.err and "failed for succeeded of run" in daemon.err


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


RECORDER = """
import json, os, sys
stdin = sys.stdin.read()
record = {"env": dict(os.environ), "stdin": json.loads(stdin), "cwd": os.getcwd(),
          "pid": os.getpid(), "pgid": os.getpgid(0), "sid": os.getsid(0)}
with open(os.path.join(sys.argv[1], os.environ["AIOS_EVENT"] + ".json"), "w") as out:
    json.dump(record, out)
"""


def test_command_hook_gets_the_event_on_stdin_and_in_its_environment(
    home: Path, tmp_path: Path
) -> None:
    script, records, work = tmp_path / "record.py", tmp_path / "records", tmp_path / "work"
    script.write_text(RECORDER)
    records.mkdir()
    work.mkdir()
    hooks = f"""
[[hooks]]
on = ["started", "succeeded"]
command = [{json.dumps(sys.executable)}, {json.dumps(str(script))}, {json.dumps(str(records))}]
"""
    with hooked(home, hooks, AIOS_SOMETHING="of aios", OTHER_VARIABLE="kept") as daemon:
        run = launch(daemon, "echo hi", cwd=work)
        wait_until((records / "succeeded.json").exists, 20, "the succeeded hook")
        wait_until(lambda: last_delivery(daemon, 1), 10, "its delivery recorded")
        token = daemon.info.token
        page = f"http://127.0.0.1:{daemon.port}/runs/{run['id']}"
        record = json.loads((records / "succeeded.json").read_text())
        env = record["env"]
        assert {k: v for k, v in env.items() if k.startswith("AIOS_")} == {
            "AIOS_HOME": str(home),  # so `aios` commands in a hook find this daemon
            "AIOS_EVENT": "succeeded",
            "AIOS_RUN_ID": run["id"],
            "AIOS_AGENT": "quick",
            "AIOS_STATE": "succeeded",
            "AIOS_ACTIVITY": "",
            "AIOS_RUN_URL": page,
        }
        assert env["OTHER_VARIABLE"] == "kept"
        assert not any(token in value for value in env.values())
        stdin = record["stdin"]
        assert stdin["event"] == "succeeded" and stdin["run"]["id"] == run["id"]
        assert stdin["run_url"] == page and stdin["run"]["state"] == "succeeded"
        assert record["cwd"] == str(work)  # the run's directory
        assert record["pgid"] == record["pid"] == record["sid"]  # a group of its own
        started = json.loads(wait_until(lambda: _read(records / "started.json"), 10, "started"))
        assert started["env"]["AIOS_STATE"] == "running"
        assert delivered(daemon, 1)["ok"]


def _read(path: Path) -> str | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return text or None


HANGER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
with open(sys.argv[1] + ".tmp", "w") as out:
    out.write(f"{os.getpid()} {child.pid}")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(300)
"""


def hanging_hook(directory: Path, timeout: int) -> str:
    """A ``[[hooks]]`` whose command leaves a grandchild and hangs; it writes both pids to
    ``directory/pids``."""
    script = directory / "hang.py"
    script.write_text(HANGER)
    argv = [sys.executable, str(script), str(directory / "pids")]
    return f"""
[[hooks]]
on = ["succeeded"]
command = {json.dumps(argv)}
timeout = {timeout}
"""


def hanging_pids(directory: Path) -> list[int]:
    return list(map(int, wait_until(lambda: _read(directory / "pids"), 20, "pids").split()))


def test_command_hook_timeout_kills_its_process_group(home: Path, tmp_path: Path) -> None:
    hooks = (
        hanging_hook(tmp_path, 2)
        + """
[[hooks]]
on = ["succeeded"]
command = ["sh", "-c", "echo something went wrong >&2; exit 3"]
"""
    )
    with hooked(home, hooks) as daemon:
        launch(daemon, "true")
        group = hanging_pids(tmp_path)
        failing = delivered(daemon, 2)
        assert failing["detail"] == "exit 3: something went wrong" and not failing["ok"]
        done = delivered(daemon, 1)
        assert done == done | {"ok": False, "detail": "timed out after 2 s: killed"}
        wait_until(lambda: not pids_alive(group), 10, "the group gone")


def test_stopping_the_daemon_ends_the_hooks_still_running(home: Path, tmp_path: Path) -> None:
    with receiving() as receiver:
        slow_url = f"""
[[hooks]]
on = ["succeeded"]
url = "{receiver.url("/hang")}"
timeout = 600
"""
        with hooked(home, hanging_hook(tmp_path, 600) + slow_url) as daemon:
            launch(daemon, "true")
            group = hanging_pids(tmp_path)
            wait_until(lambda: receiver.to("/hang"), 10, "the URL hook waiting")
            begun = time.monotonic()
            assert daemon.terminate(timeout=60) == 0
            took = time.monotonic() - begun
            assert "hook deliveries dropped" not in daemon.err  # delivering, not queued
            wait_until(lambda: not pids_alive(group), 10, "the group gone")
    # Far less than the hooks' 600 s: neither a process nor a thread waits for them.
    assert took < 30, took


def test_a_hanging_or_failing_hook_delays_neither_the_event_stream_nor_other_hooks(
    home: Path, tmp_path: Path
) -> None:
    """Measured: a run's `succeeded` on the event stream, from the launch, with no hook and
    with hooks on that same change that hang (for longer than the test) or fail."""
    marks = tmp_path / "marks"
    marks.mkdir()
    with receiving() as receiver, hooked(home, "") as daemon:
        stream = EventCollector(daemon.port, daemon.info.token)

        def sse_latency(prompt: str) -> float:
            begun = time.monotonic()
            run = launch(daemon, prompt)
            stream.wait(
                lambda kind, data: (
                    kind == "run" and data["id"] == run["id"] and data["state"] == "succeeded"
                )
            )
            return time.monotonic() - begun

        try:
            bare = [sse_latency("true") for _ in range(3)]
            hang = f"touch {marks}/$AIOS_RUN_ID; exec sleep 120"
            write_config(
                home,
                QUICK_AGENT
                + f"""
[[hooks]]
on = ["succeeded"]
command = ["sh", "-c", {json.dumps(hang)}]
timeout = 100

[[hooks]]
on = ["succeeded"]
url = "{receiver.url("/status/500")}"

[[hooks]]
on = ["succeeded"]
url = "{receiver.url("/fast")}"
""",
            )
            wait_until(lambda: len(hooks_of(daemon)) == 3, 10, "the hooks loaded")
            hooked_runs: list[float] = []
            for _ in range(2):
                begun = time.monotonic()
                hooked_runs.append(sse_latency("true"))
                # The other hooks of the same change are not held up by those that hang.
                wait_until(lambda: len(receiver.to("/fast")) == len(hooked_runs), 10, "fast")
                fast_after = receiver.to("/fast")[-1].at - begun
                assert fast_after < 10, fast_after
            # Both hanging hooks began, and still hang: nothing waited for them.
            wait_until(lambda: len(list(marks.iterdir())) == 2, 10, "both hanging hooks")
            assert last_delivery(daemon, 1) is None
        finally:
            stream.close()
    print(
        f"\nSSE latency launch->succeeded: bare median {statistics.median(bare) * 1000:.0f} ms, "
        f"with hanging/failing hooks {[round(t * 1000) for t in hooked_runs]} ms"
    )
    # Generous: the hooks hang for 100 s; the stream must not wait for any part of that.
    assert max(hooked_runs) < statistics.median(bare) + 3.0


def test_cli_lists_and_tests_hooks(home: Path) -> None:
    with receiving() as receiver:
        hooks = f"""
[[hooks]]
on = ["failed", "attention"]
url = "https://me:hunter2@example.invalid/hook?token=abc"

[[hooks]]
on = ["succeeded"]
agents = ["quick"]
url = "{receiver.url("/ok")}"

[[hooks]]
on = ["succeeded"]
command = ["sh", "-c", "exit 4"]
"""
        with hooked(home, hooks) as daemon:
            listed = run_cli(home, "hooks")
            assert listed.returncode == 0, listed.stderr
            lines = listed.stdout.splitlines()
            assert lines[0].split() == ["#", "ON", "SENDS", "TO", "LAST", "DELIVERY"]
            assert "https://***@example.invalid/hook?token=***" in lines[1]
            assert "hunter2" not in listed.stdout and "abc" not in listed.stdout
            assert "succeeded (quick)" in lines[2] and lines[2].endswith("-")

            tested = run_cli(home, "hooks", "test", "2")
            assert tested.returncode == 0, tested.stderr
            assert tested.stdout == f"hook 2 ({receiver.url('/ok')}): ok: HTTP 200\n"
            (request,) = receiver.to("/ok")
            body = json.loads(request.body)
            assert body["event"] == "test" and body["test"] is True
            assert body["run"]["agent"] == "aios"
            assert "ok: HTTP 200" in run_cli(home, "hooks").stdout.splitlines()[2]

            failing = run_cli(home, "hooks", "test", "3")
            assert failing.returncode == 1
            assert failing.stdout == "hook 3 (sh -c exit 4): failed: exit 4\n"

            missing = run_cli(home, "hooks", "test", "9")
            assert missing.returncode == 1
            assert missing.stderr == "aios: no hook 9: config.toml has 3 usable hook(s)\n"
            bad = run_cli(home, "hooks", "test", "x")
            assert bad.returncode == 2 and "invalid hook 'x'" in bad.stderr
            assert daemon.proc.poll() is None


def test_no_hooks_to_test(home: Path) -> None:
    with hooked(home, "") as daemon:
        listed = run_cli(home, "hooks")
        assert listed.returncode == 0 and listed.stdout.startswith("no hooks in ")
        tested = run_cli(home, "hooks", "test")
        assert tested.returncode == 1 and "no hooks to test" in tested.stderr
        assert daemon.client.request("GET", "/api/hooks")["hooks"] == []


def test_interrupted_is_heard_once_for_runs_the_previous_daemon_left(
    home: Path, tmp_path: Path
) -> None:
    with receiving() as receiver:
        hooks = f"""
[[hooks]]
on = ["interrupted", "succeeded", "failed", "stopped"]
url = "{receiver.url("/interrupted")}"
"""
        with hooked(home, hooks) as first:
            run = launch(first, "sleep 60")
            wait_until(
                lambda: first.client.request("GET", f"/api/runs/{run['id']}")["state"] == "running",
                10,
                "running",
            )
            first.proc.send_signal(signal.SIGKILL)  # the daemon dies under its run
            first.finish()

        def events() -> list[dict[str, Any]]:
            return [json.loads(r.body) for r in receiver.to("/interrupted")]

        for count in (1, 2):  # the next start hears of it; the one after does not again
            with hooked(home, hooks) as again:
                wait_until(lambda: events()[:1], 20, "interrupted")
                # A test event goes through after anything start-up sent: by the time it
                # arrives, a second interrupted would have too.
                again.client.request("POST", "/api/hooks/1/test")
                assert len(events()) == count + 1
        heard = events()
        assert [e["event"] for e in heard] == ["interrupted", "test", "test"]
        assert heard[0]["run"]["id"] == run["id"] and heard[0]["run"]["state"] == "interrupted"


def test_settings_page_lists_hooks_and_sends_a_test_event(browser: Any, home: Path) -> None:
    with receiving() as receiver:
        hooks = f"""
[[hooks]]
on = ["failed"]
url = "{receiver.url("/phone")}?auth=topsecret"
format = "ntfy"
headers = {{ Authorization = "Bearer topsecret" }}

[[hooks]]
on = ["succeeded"]
command = ["sh", "-c", "exit 1"]

[[hooks]]
on = ["faild"]
command = ["true"]
"""
        with (
            hooked(home, hooks) as daemon,
            signed_in_page(browser, daemon.port, daemon.info.token) as (page, watch),
        ):
            page.goto(f"http://127.0.0.1:{daemon.port}/settings")
            rows = page.locator("#hooks tr.hook")
            expect(rows).to_have_count(2)
            first = page.locator("#hook-1")
            expect(first).to_contain_text(f"{receiver.url('/phone')}?auth=***")
            expect(first).to_contain_text("Authorization: ***")
            expect(first).to_contain_text("none yet")
            expect(page.locator("#hooks .hook-problems")).to_contain_text(
                "config.toml:17: hooks[3].on: unknown event 'faild' (did you mean 'failed'?)"
            )
            assert "topsecret" not in page.content()
            first.get_by_role("button", name="Send a test event").click()
            expect(page.locator("#hook-1 .hook-last")).to_contain_text("ok: HTTP 200")
            expect(page.locator("#hook-1 .hook-last time")).to_have_text(
                re.compile(r"^\d\d:\d\d:\d\d$")  # today, in local time
            )
            (request,) = receiver.to("/phone")
            assert request.headers["Title"] == "aios sent a test event"
            second = page.locator("#hook-2")
            second.get_by_role("button", name="Send a test event").click()
            expect(page.locator("#hook-2 .hook-last")).to_contain_text("failed: exit 1")
            expect(page.locator("#hook-1 .hook-last")).to_contain_text("ok: HTTP 200")
            assert watch.errors == []
