"""Following a run from the CLI: print its output as it arrives, return when it has ended.

The event stream says *when* there is news; the log endpoint gives the exact bytes from where we
are. Subscribing before the first fetch means nothing that happens in between is missed.
"""

from __future__ import annotations

import json
from typing import Any, BinaryIO

from aios.client import DaemonClient
from aios.runs import FINAL_STATES as FINAL

FINAL_STATES = {state.value for state in FINAL}


class LogReader:
    def __init__(self, client: DaemonClient, run_id: str, out: BinaryIO) -> None:
        self.client = client
        self.run_id = run_id
        self.out = out
        self.offset = 0

    def drain(self) -> None:
        """Print everything written since the last call."""
        while True:
            data = self.client.request_bytes(
                "GET", f"/api/runs/{self.run_id}/log?offset={self.offset}"
            )
            if not data:
                return
            self.out.write(data)
            self.out.flush()
            self.offset += len(data)


def run_state(client: DaemonClient, run_id: str) -> dict[str, Any]:
    run = client.request("GET", f"/api/runs/{run_id}")
    assert isinstance(run, dict)
    return run


def follow(client: DaemonClient, run_id: str, out: BinaryIO) -> dict[str, Any]:
    """Stream a run's output to ``out`` until it ends; returns the final run."""
    reader = LogReader(client, run_id, out)
    events = client.events()
    try:
        first = next(events)  # the stream is open: from here on nothing is missed
        del first
        run = run_state(client, run_id)
        reader.drain()
        if run["state"] in FINAL_STATES:
            return run
        for event in events:
            if event.event == "reset":
                reader.drain()
                run = run_state(client, run_id)
            elif event.event in ("log", "run"):
                data = json.loads(event.data)
                if data.get("run", data.get("id")) != run_id:
                    continue
                reader.drain()
                if event.event == "run":
                    run = data
            if run["state"] in FINAL_STATES:
                reader.drain()
                return run
        # The daemon ended the stream (it is shutting down): report what we know.
        reader.drain()
        return run_state(client, run_id)
    finally:
        events.close()
