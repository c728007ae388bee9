"""``aios hooks``: the hooks of the config file and their last deliveries; ``aios hooks test``
sends each a test event."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from aios.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CliError, call, running
from aios.cli.tables import print_table
from aios.formatting import from_iso, timestamp
from aios.paths import Paths

if TYPE_CHECKING:
    import argparse


def cmd_hooks(args: argparse.Namespace) -> int:
    info = running(Paths.from_env())
    body = call(info, "GET", "/api/hooks")
    assert isinstance(body, dict)
    if args.action == "list":
        if args.number is not None:
            raise CliError("a hook number goes with `aios hooks test`", EXIT_USAGE)
        if args.json:
            print(json.dumps(body, indent=2))
            return EXIT_OK
        print_hooks(body)
        return EXIT_OK
    numbers = [args.number] if args.number is not None else [h["number"] for h in body["hooks"]]
    if not numbers:
        raise CliError(f"no hooks to test: add a [[hooks]] table to {body['config']['path']}")
    failed = 0
    results = []
    for number in numbers:
        hook = next((h for h in body["hooks"] if h["number"] == number), None)
        # The daemon answers once the delivery is over: its timeout, and a URL's retries.
        wait = float(hook["timeout"]) * 4 + 7 + 10 if hook else None
        answer = call(info, "POST", f"/api/hooks/{number}/test", timeout=wait)
        assert isinstance(answer, dict)
        results.append(answer)
        done = answer["delivery"]
        failed += not done["ok"]
        if not args.json:
            word = "ok" if done["ok"] else "failed"
            print(f"hook {number} ({answer['hook']['target']}): {word}: {done['detail']}")
    if args.json:
        print(json.dumps(results, indent=2))
    return EXIT_FAILURE if failed else EXIT_OK


def print_hooks(body: dict[str, Any]) -> None:
    rows = []
    for hook in body["hooks"]:
        last = hook["last"]
        when = f"{timestamp(from_iso(last['at']))} " if last else ""
        outcome = f"{when}{'ok' if last['ok'] else 'failed'}: {last['detail']}" if last else "-"
        on = ",".join(hook["on"]) + (f" ({','.join(hook['agents'])})" if hook["agents"] else "")
        rows.append((str(hook["number"]), on, hook["target"], outcome))
    if rows:
        print_table(("#", "ON", "SENDS TO", "LAST DELIVERY"), rows)
    else:
        print(f"no hooks in {body['config']['path']}")
    for problem in body["config"]["problems"]:
        print(f"  {problem}", file=sys.stderr)
