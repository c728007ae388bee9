"""Following a run from the CLI: print its output as it arrives, return when it has ended.

The event stream says *when* there is news; the log endpoint gives the exact bytes from where we
are. Subscribing before the first fetch means nothing that happens in between is missed.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any, BinaryIO

from aios.client import DaemonClient
from aios.runs import FINAL_STATES as FINAL

FINAL_STATES = {state.value for state in FINAL}


class Plain:
    """Agent output without its escape sequences (colours, cursor moves, titles, hyperlinks):
    what a pipe or a file gets when colour is off.

    The daemon's own tokenizer (``aios.server.ansi``) finds them; newlines and carriage returns
    stay (a progress bar still overwrites itself in a terminal), other control characters go.
    Output arrives in chunks that may cut a UTF-8 character or an escape sequence in two: both
    are held back until the rest comes. Bytes that are not UTF-8 pass through unchanged.
    """

    def __init__(self) -> None:
        from aios.server import ansi  # noqa: PLC0415 - only when colour is off

        self._ansi = ansi
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
        self._held = ""

    def feed(self, data: bytes) -> bytes:
        text, self._held = self._ansi.split_incomplete(self._held + self._decoder.decode(data))
        return self._plain(text)

    def end(self) -> bytes:
        """What is left once the output has ended: an escape sequence cut off by the end of the
        log is dropped, a cut-off character kept as the bytes it was."""
        text = self._decoder.decode(b"", final=True)
        self._held = ""
        return self._plain(text)

    def _plain(self, text: str) -> bytes:
        return self._ansi.TOKEN.sub(_kept, text).encode("utf-8", errors="surrogateescape")


def _kept(match: re.Match[str]) -> str:
    control = match.group("control")
    return control if control in ("\n", "\r") else ""


def one_plain_line(text: str) -> str:
    """Words of the daemon's (an error, a hint, which may quote the agent) as one line, without
    escape sequences."""
    from aios.server.ansi import strip  # noqa: PLC0415 - only when there is something to say

    return " ".join(strip(text).split())


class LogReader:
    def __init__(
        self, client: DaemonClient, run_id: str, out: BinaryIO, *, plain: bool = False
    ) -> None:
        self.client = client
        self.run_id = run_id
        self.out = out
        self.offset = 0
        self.plain = Plain() if plain else None

    def drain(self) -> None:
        """Print everything written since the last call."""
        while True:
            data = self.client.request_bytes(
                "GET", f"/api/runs/{self.run_id}/log?offset={self.offset}"
            )
            if not data:
                return
            self.offset += len(data)
            self.out.write(data if self.plain is None else self.plain.feed(data))
            self.out.flush()

    def end(self) -> None:
        """Print everything written, knowing the output has ended."""
        self.drain()
        if self.plain is not None:
            self.out.write(self.plain.end())
            self.out.flush()


def run_state(client: DaemonClient, run_id: str) -> dict[str, Any]:
    run = client.request("GET", f"/api/runs/{run_id}")
    assert isinstance(run, dict)
    return run


def follow(
    client: DaemonClient, run_id: str, out: BinaryIO, *, plain: bool = False
) -> dict[str, Any]:
    """Stream a run's output to ``out`` until it ends (without escape sequences if ``plain``);
    returns the final run."""
    reader = LogReader(client, run_id, out, plain=plain)
    events = client.events()
    try:
        first = next(events)  # the stream is open: from here on nothing is missed
        del first
        run = run_state(client, run_id)
        if run["state"] in FINAL_STATES:
            reader.end()
            return run
        reader.drain()
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
                reader.end()
                return run
        # The daemon ended the stream (it is shutting down): report what we know.
        reader.end()
        return run_state(client, run_id)
    finally:
        events.close()
