"""A stand-in for an agent CLI (claude, codex, gemini, aider), run as ``agent.py NAME ARGS...``.

Tests put executables with the CLIs' names on PATH that run this script (tests.helpers
.fake_agents), so no test ever depends on which real CLIs are installed, or sends a real prompt.
It replays a scenario from tests/fakes/streams (see the README there): the stdout and stderr
lines a real CLI printed, in their order, with their pauses, then its exit code, or it hangs.

Environment:

- ``AIOS_FAKE_SCENARIO_<NAME>`` (``AIOS_FAKE_SCENARIO_CODEX=codex-reconnect``), else
  ``AIOS_FAKE_SCENARIO`` when it names one of this CLI's scenarios: what to replay; by default
  ``<name>-success``. An unknown name is an error (exit 97), never a silent default.
- ``AIOS_FAKE_SPEED``: pauses are divided by it (``100`` plays a minute in 0.6 s; ``0``: none).
- ``AIOS_FAKE_ARGV_LOG``: a file to append one JSON line to per invocation: the CLI's name, its
  argv, cwd, the scenario played and the environment variables a test checks (ENV_LOGGED).
- ``AIOS_FAKE_AUTH``: what ``claude auth status`` and ``codex login status`` answer:
  ``logged_in``, ``not_logged_in`` (the default), ``hang`` (never answers), ``garbage``.
- ``claude --input-format stream-json …``: a two-way session instead of a scenario
  (tests/fakes/two_way.py); ``AIOS_FAKE_STDIN_LOG`` records what it read;
  ``AIOS_FAKE_NO_SUGGESTIONS`` makes its requests suggest no permission updates.

It reads no stdin and writes nowhere but stdout, stderr and the argv log. Stdlib only.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

STREAMS = Path(__file__).resolve().parent / "streams"
ENV_LOGGED = ("AIOS_RUN_ID", "AIOS_PROMPT", "AIDER_MESSAGE", "AIOS_FAKE_SCENARIO")
VERSIONS = {
    "claude": "2.1.332 (Claude Code)",
    "codex": "codex-cli 0.171.0",
    "gemini": "0.61.0",
    "aider": "aider 0.86.2",
}
VERSION_FLAGS = {
    "claude": ("--version", "-v"),
    "codex": ("--version", "-V"),
    "gemini": ("--version", "-v"),
    "aider": ("--version",),
}
UNKNOWN_SCENARIO = 97
MIN_REPEAT = 0.05  # seconds: a hang's repeated line never turns into a busy loop


class Scenario:
    def __init__(self, name: str) -> None:
        meta_file = STREAMS / f"{name}.json"
        self.name = name
        self.meta: dict[str, Any] = json.loads(meta_file.read_text(encoding="utf-8"))
        stdout = (STREAMS / f"{name}.jsonl", STREAMS / f"{name}.txt")
        self.out = _lines(next((path for path in stdout if path.exists()), None))
        self.err = _lines(STREAMS / f"{name}.stderr")
        self.exit = (STREAMS / f"{name}.exit").read_text(encoding="utf-8").strip()

    def steps(self) -> Iterator[tuple[str, str]]:
        """The scenario in order: ("out", line), ("err", line) or ("sleep", seconds)."""
        lines = {"out": self.out, "err": self.err}
        played = {"out": 0, "err": 0}
        for step in [*self.meta.get("script", []), "out *", "err *"]:
            what, _, count = str(step).partition(" ")
            if what == "sleep":
                yield what, count
            elif what in lines:
                end = len(lines[what]) if count == "*" else played[what] + int(count or 1)
                for line in lines[what][played[what] : end]:
                    yield what, line
                played[what] = min(end, len(lines[what]))

    def play(self, speed: float) -> int:
        handles = {"out": sys.stdout, "err": sys.stderr}
        last = {"out": "", "err": ""}
        for what, value in self.steps():
            if what == "sleep":
                pause(float(value), speed)
                continue
            handles[what].write(value + "\n")
            handles[what].flush()  # one line at a time, as the real CLIs do
            last[what] = value
        if self.exit != "hang":
            return int(self.exit)
        repeat = self.meta.get("repeat") or {}
        stream = repeat.get("stream")
        while True:  # until killed: the real CLI never ended by itself
            if stream in handles and last[stream]:
                pause(float(repeat.get("every", 1)), speed, at_least=MIN_REPEAT)
                handles[stream].write(last[stream] + "\n")
                handles[stream].flush()
            else:
                time.sleep(3600)


def _lines(path: Path | None) -> list[str]:
    if path is None or not path.exists():
        return []
    return path.read_text(encoding="utf-8").splitlines()


def pause(seconds: float, speed: float, at_least: float = 0.0) -> None:
    time.sleep(max(seconds / speed if speed > 0 else 0.0, at_least))


def speed_from(env: Mapping[str, str]) -> float:
    try:
        return float(env.get("AIOS_FAKE_SPEED", "1"))
    except ValueError:
        return 1.0


def scenarios(name: str) -> list[str]:
    return sorted(p.stem for p in STREAMS.glob(f"{name}-*.json"))


def choose(name: str, env: Mapping[str, str]) -> str:
    chosen = env.get(f"AIOS_FAKE_SCENARIO_{name.upper()}") or ""
    general = env.get("AIOS_FAKE_SCENARIO") or ""
    if not chosen and general.startswith(f"{name}-"):
        chosen = general
    return chosen or f"{name}-success"


def log_invocation(name: str, args: list[str], scenario: str) -> None:
    path = os.environ.get("AIOS_FAKE_ARGV_LOG")
    if not path:
        return
    record = {
        "name": name,
        "argv": args,
        "cwd": os.getcwd(),
        "scenario": scenario,
        "pid": os.getpid(),
        "env": {key: os.environ.get(key) for key in ENV_LOGGED},
    }
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")  # one write: appends from processes do not mix


def auth_status(name: str) -> int:
    """``claude auth status`` (JSON on stdout, exit 1 when not logged in) and ``codex login
    status`` (words on stderr, exit 1 when not logged in), as the real ones answer."""
    state = os.environ.get("AIOS_FAKE_AUTH", "not_logged_in")
    if state == "hang":
        time.sleep(3600)
    if state == "garbage":
        print("Something went wrong\x1b[0m {", flush=True)
        return 3
    logged_in = state == "logged_in"
    if name == "claude":
        status = {"loggedIn": logged_in, "authMethod": "claude.ai" if logged_in else "none"}
        print(json.dumps({**status, "apiProvider": "firstParty"}, indent=2), flush=True)
    else:
        print("Logged in using ChatGPT" if logged_in else "Not logged in", file=sys.stderr)
    return 0 if logged_in else 1


def main(argv: list[str]) -> int:
    name, args = argv[0], argv[1:]
    options = args[: args.index("--")] if "--" in args else args
    if args[:2] in (["auth", "status"], ["login", "status"]) and name in ("claude", "codex"):
        log_invocation(name, args, "auth")
        return auth_status(name)
    if any(flag in options for flag in VERSION_FLAGS.get(name, ())):
        # What the real CLIs do with a prompt like "--version" left where options are parsed.
        log_invocation(name, args, "version")
        print(VERSIONS.get(name, "0"), flush=True)
        return 0
    if name == "claude" and "--input-format" in options:
        log_invocation(name, args, "two-way")
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script
        from tests.fakes.two_way import run as two_way

        return two_way(args)
    chosen = choose(name, os.environ)
    log_invocation(name, args, chosen)
    if chosen not in scenarios(name):
        print(f"fake {name}: no scenario {chosen!r}; have {scenarios(name)}", file=sys.stderr)
        return UNKNOWN_SCENARIO
    return Scenario(chosen).play(speed_from(os.environ))


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:  # the reader went away: end quietly, as a CLI killed by SIGPIPE
        os._exit(141)
