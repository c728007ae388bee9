"""The event bus: every state change and output chunk, fanned out to SSE streams and the tray.

Publishing never waits. Each subscriber has a queue bounded in events and in bytes; one that
falls behind is dropped (its stream ends, the client reconnects with ``Last-Event-ID``) rather
than slowing the supervisor or anyone else, or holding more memory than ``QUEUE_BYTES`` for a
client that stopped reading. A replay buffer (bounded the same way) lets a reconnecting client
catch up on what it missed; if what it missed is no longer buffered - or came from a previous
daemon - it gets a ``reset`` event telling it to refetch instead.

An event is encoded once, when it is published, whatever the number of streams it goes to.

Each id is the wall clock in microseconds (or one more than the previous id, if that is larger),
so ids keep increasing across daemon restarts and an id from a previous daemon is not mistaken
for one of ours. (A clock stepped backwards between two daemons could break that; the client
then replays from the wrong place once, which is why the dashboard also re-syncs on connect.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

log = logging.getLogger("aios.events")

REPLAY = 4096
QUEUE_SIZE = 2048
# Bytes of encoded events: a flood's `log` events carry up to 64 KiB of text each, so a count
# alone would let a subscriber that stopped reading hold 2048 x 64 KiB.
REPLAY_BYTES = 8 * 1024 * 1024
QUEUE_BYTES = 4 * 1024 * 1024


class Event:
    """One event: its id, kind and data, and the SSE message made from them (once).

    The replay buffer keeps events :meth:`compact`: the message alone, with ``data`` decoded
    from it again when a replay needs it. A run's record as a dict costs some three times its
    JSON in memory, and the buffer holds thousands of events for as long as the daemon runs.
    """

    __slots__ = ("_data", "_encoded", "id", "kind")

    def __init__(
        self, id: int, kind: str, data: dict[str, Any] | None = None, encoded: bytes | None = None
    ) -> None:
        self.id = id
        self.kind = kind  # run | log | stats | summary | reset | …
        self._data = data
        self._encoded = encoded

    @property
    def data(self) -> dict[str, Any]:
        if self._data is not None:
            return self._data
        if self._encoded is None:
            return {}
        start = self._encoded.index(b"\ndata: ") + len(b"\ndata: ")
        decoded: dict[str, Any] = json.loads(self._encoded[start:-2])  # not kept: see compact
        return decoded

    @property
    def encoded(self) -> bytes:
        """The SSE message."""
        if self._encoded is None:
            payload = json.dumps(self._data or {}, separators=(",", ":"))
            self._encoded = f"id: {self.id}\nevent: {self.kind}\ndata: {payload}\n\n".encode()
        return self._encoded

    def sse(self) -> bytes:
        return self.encoded

    @property
    def size(self) -> int:
        return len(self.encoded)

    def compact(self) -> Event:
        """The same event holding only its message."""
        return Event(self.id, self.kind, None, self.encoded)

    def __eq__(self, other: object) -> bool:  # a compact copy is the same event
        if not isinstance(other, Event):
            return NotImplemented
        return (self.id, self.kind, self.encoded) == (other.id, other.kind, other.encoded)

    def __hash__(self) -> int:
        return hash((self.id, self.kind))

    def __repr__(self) -> str:
        return f"Event({self.id}, {self.kind!r})"


# Put in an idle subscription's queue by nudge(): it wakes the stream to send a keep-alive.
KEEPALIVE = Event(0, "keepalive", {})


class Subscription:
    def __init__(self, bus: EventBus, size: int, max_bytes: int = QUEUE_BYTES) -> None:
        self._bus = bus
        # One slot more than events may use: the end-of-stream marker always fits.
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(size + 1)
        self._size = size
        self._max_bytes = max_bytes
        self.queued_bytes = 0
        self.dropped = False
        self.closed = False
        self._ended = False  # the end-of-stream marker was taken by ready()

    def offer(self, event: Event) -> None:
        if self.closed:
            return
        if self._queue.qsize() < self._size and self.queued_bytes + event.size <= self._max_bytes:
            self._queue.put_nowait(event)
            self.queued_bytes += event.size
        else:
            log.warning(
                "dropping a slow event subscriber (%d events, %d bytes behind)",
                self._queue.qsize(),
                self.queued_bytes,
            )
            self.dropped = True
            self.close()

    def close(self) -> None:
        """End the stream: the consumer sees the end after what is already queued."""
        if self.closed:
            return
        self.closed = True
        self._bus.discard(self)
        if self.dropped:
            # A dropped subscriber must reconnect and replay: discard what it has not read.
            while not self._queue.empty():
                self._queue.get_nowait()
            self.queued_bytes = 0
        self._queue.put_nowait(None)

    async def get(self) -> Event | None:
        """The next event (``KEEPALIVE`` after a ``nudge``); None at the end of the stream."""
        if self._ended:
            return None
        event = await self._queue.get()
        if event is not None and event is not KEEPALIVE:
            self.queued_bytes -= event.size
        return event

    def nudge(self) -> None:
        """Wake a consumer waiting on an empty queue with ``KEEPALIVE`` (for a heartbeat)."""
        if not self.closed and self._queue.empty():
            self._queue.put_nowait(KEEPALIVE)

    def ready(self, limit: int) -> list[Event]:
        """Up to ``limit`` more events that are already queued, without waiting: a stream sends
        what arrived together (a run's change and the summary after it) in one write."""
        events: list[Event] = []
        while len(events) < limit and not self._ended and not self._queue.empty():
            event = self._queue.get_nowait()
            if event is None:
                self._ended = True  # get() reports the end next
                break
            if event is KEEPALIVE:
                continue  # the stream is sending anyway
            self.queued_bytes -= event.size
            events.append(event)
        return events

    async def __aiter__(self) -> AsyncIterator[Event]:
        while (event := await self.get()) is not None:
            if event is not KEEPALIVE:
                yield event


def _now_us() -> int:
    return time.time_ns() // 1000


class EventBus:
    def __init__(
        self,
        *,
        replay: int = REPLAY,
        queue_size: int = QUEUE_SIZE,
        replay_bytes: int = REPLAY_BYTES,
        queue_bytes: int = QUEUE_BYTES,
    ) -> None:
        self._next_id = _now_us()
        # The newest id no longer in the buffer: a client that saw it can be replayed exactly.
        self._horizon = self._next_id - 1
        self._buffer: deque[Event] = deque()
        self._buffer_bytes = 0
        self._replay = replay
        self._replay_bytes = replay_bytes
        self._subscribers: set[Subscription] = set()
        self._listeners: list[Callable[[Event], None]] = []
        self._queue_size = queue_size
        self._queue_bytes = queue_bytes
        self.closed = False

    @property
    def last_id(self) -> int:
        return self._next_id - 1

    def publish(self, kind: str, data: dict[str, Any]) -> Event:
        """Call on the loop thread. Never blocks: slow subscribers are dropped instead."""
        event = Event(max(self._next_id, _now_us()), kind, data)
        self._next_id = event.id + 1
        self._buffer.append(event.compact())
        self._buffer_bytes += event.size
        while len(self._buffer) > self._replay or self._buffer_bytes > self._replay_bytes:
            oldest = self._buffer.popleft()
            self._buffer_bytes -= oldest.size
            self._horizon = oldest.id
        for subscriber in list(self._subscribers):
            subscriber.offer(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener %r failed", listener)
        return event

    def subscribe(self, last_event_id: int | None = None) -> Subscription:
        subscription = Subscription(self, self._queue_size, self._queue_bytes)
        if self.closed:
            subscription.close()
            return subscription
        if last_event_id is not None and last_event_id != self.last_id:
            missed = [event for event in self._buffer if event.id > last_event_id]
            # Replay only what the buffer holds in full and the queue can take; anything else
            # (too old, from another daemon, more than a queue's worth) is a reset.
            fits = (
                len(missed) < self._queue_size and sum(e.size for e in missed) < self._queue_bytes
            )
            if self._horizon <= last_event_id < self.last_id and fits:
                for event in missed:
                    subscription.offer(event)
            else:
                subscription.offer(Event(self.last_id, "reset", {"reason": "missed events"}))
        self._subscribers.add(subscription)
        return subscription

    def discard(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def add_listener(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """In-process consumers (the tray); returns a function that removes the listener."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def close(self) -> None:
        """End every stream (daemon shutdown); later subscriptions end at once."""
        self.closed = True
        for subscription in list(self._subscribers):
            subscription.close()
