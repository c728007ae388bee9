"""Records the claude scenarios the fake CLI replays (tests/fakes/streams/claude-*) from the
pinned Claude Code (``make agents``), against the real-agents tier's scripted Anthropic server:
``.venv/bin/python -m tests.record_claude [NAME ...]`` (all of them by default; some take
minutes, as the real CLI's retries do).

Each scenario runs claude as the preset runs it (``-p --output-format stream-json --verbose``,
its permission flags, ``--`` and the prompt), in the tier's environment (tests/realagents.py)
and a fresh git repository. Its stdout and stderr are kept line for line in the order they came,
with the pauses between them (the ``script``), and its exit code, or ``hang`` for one stopped
from outside. Only the temporary paths are rewritten (the repository to /home/me/src/app, the
CLI's HOME to /home/me); nothing else is changed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.gitrepo import make_repo
from tests.models.anthropic import AnthropicModel
from tests.models.base import Blocks, Drop, Fail, Reply, Slow, Text, Tool
from tests.realagents import RealAgents, pin, reported_version

STREAMS = Path(__file__).resolve().parent / "fakes" / "streams"
REPO = "/home/me/src/app"
PAUSE = 0.25  # seconds: a shorter gap between two lines is not written into the script
HELLO = 'print("hello, world")\n'


@dataclass(frozen=True)
class Case:
    name: str
    what: str  # the invocation and what happens, for NAME.json
    replies: tuple[Reply, ...] | None  # None: the API's port is closed
    prompt: str = "write hello.py"
    args: tuple[str, ...] = ("--permission-mode", "acceptEdits")
    env: dict[str, str] = field(default_factory=dict)  # "" removes a variable
    stop_after: int | None = None  # stdout lines, then it is stopped from outside (a hang)
    stop_seconds: float | None = None  # or this long without a new line
    key: bool = True  # an API key (the scripted server takes any)
    # The replay's pauses, where the recorded ones (a few ms on an idle machine) would not do:
    # the default scenario's run lasts about a second, so that tests can watch it live.
    paced: tuple[str, ...] = ()


def _file(path: str) -> dict[str, str]:
    return {"file_path": f"{{repo}}/{path}", "content": HELLO}


CASES = (
    Case(
        "claude-success",
        "claude -p --output-format stream-json --verbose --permission-mode acceptEdits -- "
        "'write hello.py and show it': a message with words and a Write, a Bash (cat, which "
        "acceptEdits runs unasked), usage and cost; exit 0",
        (
            Blocks((Text("I'll create hello.py and show it."), Tool("Write", _file("hello.py")))),
            Tool("Bash", {"command": "cat hello.py", "description": "Show hello.py"}),
            Text("Created `hello.py`."),  # short: a phone shows the whole transcript
        ),
        prompt="write hello.py and show it",
        paced=("out 2", "sleep 0.3", "out 2", "sleep 0.3", "out 2", "sleep 0.3", "out *"),
    ),
    Case(
        "claude-denied",
        "claude -p --output-format stream-json --verbose -- 'write hello.py' with no permission "
        "flag (its default mode asks, and -p has nobody to ask): Write and Bash denied "
        "(system/permission_denied, an is_error tool result, result.permission_denials), the "
        "run itself succeeds; exit 0",
        (
            Tool("Write", _file("hello.py")),
            Tool(
                "Bash",
                {
                    "command": "printf 'print(\"hello, world\")\\n' > hello.py",
                    "description": "Write hello.py with the shell",
                },
            ),
            Text("I couldn't create hello.py: writing files was not permitted."),
        ),
        args=(),
    ),
    Case(
        "claude-silent",
        "claude -p … while the API takes the request and never answers: init, then nothing on "
        "stdout (stopped from outside after 20 s)",
        (Slow(3600, Text("never")),),
        stop_seconds=20,
    ),
    Case(
        "claude-not-logged-in",
        "claude -p --output-format stream-json --verbose -- 'write hello.py' with no login and "
        "no API key: an assistant message with error authentication_failed, a result "
        "'subtype':'success','is_error':true; exit 1",
        None,
        args=(),
        key=False,
    ),
    Case(
        "claude-resume-missing",
        "claude -p --output-format stream-json --verbose --resume <unknown id> -- '…': stderr "
        "'No conversation found with session ID', one result error_during_execution; exit 1",
        (),
        args=("--resume", "7486375f-df40-4075-ac4e-a1dc24b82512"),
        prompt="and now?",
    ),
    Case(
        "claude-api-retry",
        "claude -p … with an API key and the API's port closed, its own retries (10): init, "
        "then system/api_retry events with no error_status; stopped from outside after the "
        "7th retry",
        None,
        args=(),
        env={"CLAUDE_CODE_MAX_RETRIES": ""},
        stop_after=8,
    ),
    Case(
        "claude-api-unreachable",
        "claude -p … with an API key and the API's port closed, its own retries (10): ten "
        "api_retry events, then it gives up (an assistant error, a result with is_error); exit 1",
        None,
        args=(),
        env={"CLAUDE_CODE_MAX_RETRIES": ""},
    ),
    Case(
        "claude-api-overloaded",
        "claude -p …, CLAUDE_CODE_MAX_RETRIES=1, the API answering 529 overloaded: one "
        "api_retry with error_status 529, then a failed result; exit 1",
        (Fail(529, "Overloaded"),) * 8,
    ),
    Case(
        "claude-api-refused",
        "claude -p … with ANTHROPIC_BASE_URL on a closed loopback port, "
        "CLAUDE_CODE_MAX_RETRIES=1: an api_retry with no error_status, then 'Connection "
        "refused'; exit 1",
        None,
    ),
    Case(
        "claude-connection-lost",
        "claude -p … while the API hangs up halfway through each answer: claude asks again "
        "without streaming, then 'Connection to the API was lost'; exit 1",
        (Drop(),) * 9,
    ),
)


def _with_repo(reply: Reply, repo: Path) -> Reply:
    """A scripted tool call's ``{repo}`` made the run's own repository."""
    if isinstance(reply, Blocks):
        return Blocks(tuple(_part_with_repo(part, repo) for part in reply.parts))
    return _part_with_repo(reply, repo) if isinstance(reply, Tool) else reply


def _part_with_repo(part: Text | Tool, repo: Path) -> Text | Tool:
    if isinstance(part, Tool) and isinstance(part.input, dict):
        return Tool(part.name, {k: str(v).format(repo=repo) for k, v in part.input.items()})
    return part


def record(case: Case) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = make_repo(root / "repo")
        model = AnthropicModel(*(_with_repo(r, repo) for r in case.replies or ()))
        real = RealAgents(root / "aios-home", root)
        env = real.environment(claude=model)
        if case.replies is None:
            model.close()  # its port: nothing listens there any more
        if not case.key:
            env.pop("ANTHROPIC_API_KEY", None)
        for name, value in case.env.items():
            if value:
                env[name] = value
            else:
                env.pop(name, None)
        argv = ["claude", "-p", "--output-format", "stream-json", "--verbose", *case.args]
        lines, code = _run([*argv, "--", case.prompt], repo, env, case)
        if case.replies is not None:
            model.close()
    paths = ((str(repo), REPO), (str(root / "user-home"), "/home/me"))
    _write(case, lines, code, paths)


def _run(
    argv: list[str], cwd: Path, env: dict[str, str], case: Case
) -> tuple[list[tuple[float, str, str]], str]:
    start = time.monotonic()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[tuple[float, str, str]] = []
    lock = threading.Lock()

    def read(stream: IO[str], what: str) -> None:
        for line in stream:
            with lock:
                lines.append((time.monotonic() - start, what, line.rstrip("\n")))

    readers = [
        threading.Thread(target=read, args=(proc.stdout, "out"), daemon=True),
        threading.Thread(target=read, args=(proc.stderr, "err"), daemon=True),
    ]
    for reader in readers:
        reader.start()
    stopped = False
    while proc.poll() is None:
        time.sleep(0.05)
        with lock:
            out = sum(1 for _, what, _ in lines if what == "out")
            last = lines[-1][0] if lines else 0.0
        quiet = case.stop_seconds and time.monotonic() - start - last > case.stop_seconds
        if (case.stop_after and out >= case.stop_after) or quiet:
            stopped = True
            proc.kill()
        elif time.monotonic() - start > 600:
            raise RuntimeError(f"{case.name}: still running after 10 minutes")
    for reader in readers:
        reader.join(5)
    if case.stop_after:
        kept = [i for i, (_, what, _) in enumerate(lines) if what == "out"][: case.stop_after]
        lines = lines[: kept[-1] + 1]
    return lines, "hang" if stopped else str(proc.returncode)


def _write(
    case: Case, lines: list[tuple[float, str, str]], code: str, paths: tuple[tuple[str, str], ...]
) -> None:
    def plain(text: str) -> str:
        for old, new in paths:
            text = text.replace(old, new)
        return text

    script: list[str] = []
    last = 0.0
    for at, what, _ in lines:
        if at - last >= PAUSE and script:
            script.append(f"sleep {at - last:.2f}")
        if script and script[-1].split(" ")[0] == what and not script[-1].startswith("sleep"):
            count = int(script[-1].partition(" ")[2] or 1) + 1
            script[-1] = f"{what} {count}"
        else:
            script.append(what)
        last = at
    version = pin("claude").version
    source = (
        f"Recorded from the real CLI (claude {version}, .agents/bin) by tests/record_claude.py "
        "against the real-agents tier's scripted model (tests/models/anthropic.py), with the "
        "tier's environment (tests/realagents.py); temporary paths rewritten."
    )
    if case.paced:
        source += " The pauses are not the recording's: 0.3 s apiece, for live tests."
    meta = {
        "synthetic": False,
        "cli": f"claude {version}",
        "source": source,
        "what": case.what,
        "script": list(case.paced) or script,
    }
    out = [plain(text) for _, what, text in lines if what == "out"]
    err = [plain(text) for _, what, text in lines if what == "err"]
    base = STREAMS / case.name
    base.with_suffix(".json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    base.with_suffix(".jsonl").write_text("".join(f"{line}\n" for line in out))
    base.with_suffix(".exit").write_text(code + "\n")
    stderr = base.with_suffix(".stderr")
    if err:
        stderr.write_text("".join(f"{line}\n" for line in err))
    else:
        stderr.unlink(missing_ok=True)
    print(f"{case.name}: {len(out)} lines out, {len(err)} err, exit {code}", flush=True)


def main(names: list[str]) -> int:
    unknown = set(names) - {case.name for case in CASES}
    if unknown:
        print(f"no such scenario: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if reported_version("claude") != pin("claude").version:
        print("the installed claude is not the pinned one: run `make agents`", file=sys.stderr)
        return 1
    chosen = [case for case in CASES if not names or case.name in names]
    threads = [threading.Thread(target=record, args=(case,)) for case in chosen]
    for thread in threads:  # the slow ones mostly wait out the CLI's retries
        thread.start()
    for thread in threads:
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
