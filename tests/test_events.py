"""The event bus, on a real asyncio loop: ids, SSE framing, replay, slow subscribers, shutdown."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time

import pytest

from aios.events import Event, EventBus, Subscription

# Every wait is bounded: a bug must fail the test, not hang it.
WAIT = 1.0


async def next_event(subscription: Subscription) -> Event | None:
    return await asyncio.wait_for(subscription.get(), WAIT)


async def drain(subscription: Subscription) -> list[Event]:
    """Everything up to the end of the stream."""
    events: list[Event] = []
    while (event := await next_event(subscription)) is not None:
        events.append(event)
    return events


def wait_for_clock(bus: EventBus) -> None:
    """Let the wall clock (in microseconds) pass ``bus.last_id``, as any real daemon restart does.

    A bus publishing faster than one event per microsecond runs ahead of the clock; a restart
    takes milliseconds, so the next daemon starts past it. Poll, never sleep a fixed time.
    """
    while time.time_ns() // 1000 <= bus.last_id:
        pass


def publish_many(bus: EventBus, count: int) -> list[Event]:
    return [bus.publish("log", {"n": n}) for n in range(count)]


# --- ids ------------------------------------------------------------------------------------


def test_ids_strictly_increase() -> None:
    bus = EventBus()
    ids = [event.id for event in publish_many(bus, 100)]
    assert all(later > earlier for earlier, later in itertools.pairwise(ids))
    assert bus.last_id == ids[-1]


def test_ids_follow_the_wall_clock_in_microseconds() -> None:
    before = time.time_ns() // 1000
    bus = EventBus()
    first = bus.publish("log", {})
    after = time.time_ns() // 1000
    assert before <= first.id <= after


def test_a_new_bus_starts_past_every_id_of_an_earlier_one() -> None:
    earlier = EventBus()
    old_ids = [event.id for event in publish_many(earlier, 20)]
    wait_for_clock(earlier)  # the restart
    later = EventBus()
    first = later.publish("log", {})
    assert first.id > max(old_ids)
    assert first.id > earlier.last_id


# --- SSE framing ----------------------------------------------------------------------------


def test_sse_frames_id_event_and_json_data() -> None:
    event = Event(42, "run", {"id": "abc", "state": "running"})
    frame = event.sse()
    assert isinstance(frame, bytes)
    assert frame == b'id: 42\nevent: run\ndata: {"id":"abc","state":"running"}\n\n'


def test_the_replay_buffer_keeps_messages_only_and_decodes_data_again() -> None:
    bus = EventBus()
    data = {"id": "abc", "state": "running", "text": "naïve\nline ✓", "tokens": None}
    event = bus.publish("run", data)
    later = bus.publish("run", {"id": "abc", "state": "succeeded"})
    kept = bus._buffer[0]
    assert kept._data is None and kept == event  # the message alone, the same event
    assert kept.data == data  # what a dashboard's replay renders from
    assert bus._buffer[1].data == later.data


def test_sse_is_safe_for_multi_line_and_unicode_data() -> None:
    data = {"chunk": "line one\nline two\r\nline three\n\n", "text": "naïve \u2028 ✓"}
    frame = Event(7, "log", data).sse()
    assert frame.endswith(b"\n\n")
    lines = frame[:-2].split(b"\n")
    # JSON escapes the newlines: the frame is exactly three field lines, then the blank line.
    assert len(lines) == 3
    assert lines[0] == b"id: 7"
    assert lines[1] == b"event: log"
    assert lines[2].startswith(b"data: ")
    assert b"\r" not in frame
    assert json.loads(lines[2][len(b"data: ") :]) == data


# --- delivery -------------------------------------------------------------------------------


async def test_a_subscriber_receives_events_in_order() -> None:
    bus = EventBus()
    subscription = bus.subscribe()
    published = publish_many(bus, 50)
    received = [await next_event(subscription) for _ in published]
    assert received == published


async def test_async_iteration_yields_until_the_stream_ends() -> None:
    bus = EventBus()
    subscription = bus.subscribe()
    published = publish_many(bus, 3)
    bus.close()
    received = [event async for event in subscription]
    assert received == published


# --- replay on reconnect --------------------------------------------------------------------


async def test_last_event_id_replays_exactly_the_missed_events() -> None:
    bus = EventBus()
    published = publish_many(bus, 5)
    subscription = bus.subscribe(published[1].id)
    assert [await next_event(subscription) for _ in range(3)] == published[2:]
    # Nothing more was replayed: the next event is the next one published.
    live = bus.publish("run", {"state": "running"})
    assert await next_event(subscription) == live


async def test_last_event_id_equal_to_last_id_replays_nothing() -> None:
    bus = EventBus()
    publish_many(bus, 5)
    subscription = bus.subscribe(bus.last_id)
    live = bus.publish("run", {})
    assert await next_event(subscription) == live


async def test_the_oldest_buffered_event_still_replays_without_reset() -> None:
    bus = EventBus(replay=5)
    published = publish_many(bus, 10)
    # The client saw the event just before the buffer starts: it missed nothing unbuffered.
    subscription = bus.subscribe(published[4].id)
    assert [await next_event(subscription) for _ in range(5)] == published[5:]


async def test_an_id_older_than_the_replay_buffer_gets_reset() -> None:
    bus = EventBus(replay=5)
    published = publish_many(bus, 10)
    subscription = bus.subscribe(published[3].id)
    reset = await next_event(subscription)
    assert reset is not None
    assert reset.kind == "reset"
    assert reset.id == bus.last_id
    # No partial replay after the reset: the next event is live.
    live = bus.publish("run", {})
    assert await next_event(subscription) == live


async def test_an_id_from_the_future_gets_reset() -> None:
    bus = EventBus()
    publish_many(bus, 3)
    subscription = bus.subscribe(bus.last_id + 1000)
    reset = await next_event(subscription)
    assert reset is not None
    assert reset.kind == "reset"


async def test_an_id_from_a_previous_daemon_gets_reset() -> None:
    previous = EventBus()
    old = publish_many(previous, 3)
    wait_for_clock(previous)
    current = EventBus()
    publish_many(current, 3)
    for last_event_id in (old[0].id, old[-1].id):
        subscription = current.subscribe(last_event_id)
        reset = await next_event(subscription)
        assert reset is not None
        assert reset.kind == "reset"


async def test_an_id_given_to_a_bus_that_published_nothing_gets_reset() -> None:
    previous = EventBus()
    old = previous.publish("run", {})
    wait_for_clock(previous)
    current = EventBus()
    subscription = current.subscribe(old.id)
    reset = await next_event(subscription)
    assert reset is not None
    assert reset.kind == "reset"


async def test_an_id_from_a_later_daemon_gets_reset() -> None:
    earlier = EventBus()
    publish_many(earlier, 3)
    wait_for_clock(earlier)
    later = EventBus()
    foreign = later.publish("run", {})
    subscription = earlier.subscribe(foreign.id)
    reset = await next_event(subscription)
    assert reset is not None
    assert reset.kind == "reset"


# --- slow subscribers -----------------------------------------------------------------------


async def test_a_slow_subscriber_is_dropped_and_nobody_else_is_held_up() -> None:
    bus = EventBus(queue_size=3)
    slow = bus.subscribe()
    fast = bus.subscribe()
    published: list[Event] = []
    for n in range(10):
        # publish() is synchronous: it returns without ever waiting on a queue.
        published.append(bus.publish("log", {"n": n}))
        assert await next_event(fast) == published[-1]
    assert slow.dropped
    assert slow.closed
    # Its stream ends at once: what it had not read is discarded, it must reconnect and replay.
    assert await next_event(slow) is None
    assert not fast.dropped
    assert bus.subscriber_count == 1
    # The fast subscriber keeps receiving.
    more = bus.publish("log", {"n": 10})
    assert await next_event(fast) == more


async def test_a_subscriber_is_dropped_once_it_holds_too_many_bytes() -> None:
    """A client that stops reading while a run floods output holds at most ``queue_bytes``."""
    bus = EventBus(queue_bytes=100_000)
    slow = bus.subscribe()
    fast = bus.subscribe()
    text = "x" * 30_000
    for n in range(3):  # about 90 kB: still within the bound
        bus.publish("log", {"n": n, "text": text})
        assert (await next_event(fast)) is not None
    assert not slow.dropped and slow.queued_bytes > 90_000
    bus.publish("log", {"n": 3, "text": text})
    assert slow.dropped and slow.queued_bytes == 0
    assert await next_event(slow) is None
    assert not fast.dropped  # it read as it went: never more than one event behind


async def test_reading_gives_back_the_bytes_a_subscriber_holds() -> None:
    bus = EventBus(queue_bytes=100_000)
    subscription = bus.subscribe()
    for n in range(20):  # 20 x 30 kB in all, never more than one event queued
        event = bus.publish("log", {"n": n, "text": "x" * 30_000})
        assert subscription.queued_bytes == event.size
        assert await next_event(subscription) == event
        assert subscription.queued_bytes == 0
    assert not subscription.dropped


async def test_the_replay_buffer_is_bounded_in_bytes_and_older_ids_get_reset() -> None:
    bus = EventBus(replay_bytes=100_000)
    first = bus.publish("log", {"text": "x" * 40_000})
    second = bus.publish("log", {"text": "x" * 40_000})
    kept = [bus.publish("log", {"text": "x" * 40_000}) for _ in range(2)]
    # Only what fits in the byte bound is kept: a client that saw `second` replays exactly...
    replayed = bus.subscribe(second.id)
    assert [await next_event(replayed) for _ in kept] == kept
    # ...and one that saw only `first` missed an event that is gone: it is told to refetch.
    reset = await next_event(bus.subscribe(first.id))
    assert reset is not None and reset.kind == "reset"


async def test_ready_takes_what_is_queued_without_waiting_and_keeps_the_end() -> None:
    bus = EventBus()
    subscription = bus.subscribe()
    published = publish_many(bus, 4)
    assert await next_event(subscription) == published[0]
    assert subscription.ready(2) == published[1:3]
    assert subscription.ready(10) == published[3:]
    assert subscription.ready(10) == [] and subscription.queued_bytes == 0
    last = bus.publish("log", {})
    bus.close()
    assert subscription.ready(10) == [last]  # the end of the stream is not an event...
    assert await next_event(subscription) is None  # ...get() still reports it
    assert subscription.ready(10) == []


def test_an_event_is_encoded_once_whatever_the_number_of_streams() -> None:
    event = EventBus().publish("run", {"id": "abc"})
    assert event.sse() is event.sse()
    assert event.size == len(event.sse())


# --- shutdown -------------------------------------------------------------------------------


async def test_close_ends_every_stream_after_what_is_queued() -> None:
    bus = EventBus()
    first = bus.subscribe()
    second = bus.subscribe()
    published = publish_many(bus, 3)
    bus.close()
    assert bus.closed
    assert await drain(first) == published
    assert await drain(second) == published
    assert bus.subscriber_count == 0


async def test_close_ends_a_full_queue_after_its_events() -> None:
    bus = EventBus(queue_size=3)
    subscription = bus.subscribe()
    published = publish_many(bus, 3)  # exactly full, not dropped
    bus.close()
    assert not subscription.dropped
    assert await drain(subscription) == published


async def test_subscribe_after_close_ends_at_once() -> None:
    bus = EventBus()
    publish_many(bus, 3)
    bus.close()
    assert await next_event(bus.subscribe()) is None
    assert await next_event(bus.subscribe(bus.last_id - 1)) is None
    assert bus.subscriber_count == 0


# --- listeners ------------------------------------------------------------------------------


async def test_listeners_are_called_and_a_failing_one_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    subscription = bus.subscribe()
    seen: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("tray went away")

    bus.add_listener(broken)
    bus.add_listener(seen.append)
    with caplog.at_level(logging.ERROR, logger="aios.events"):
        published = publish_many(bus, 2)
    assert seen == published
    assert await next_event(subscription) == published[0]
    assert await next_event(subscription) == published[1]
    failures = [r for r in caplog.records if r.name == "aios.events" and r.levelno == logging.ERROR]
    assert len(failures) == 2
    assert all(r.exc_info is not None and r.exc_info[0] is RuntimeError for r in failures)


def test_the_remover_from_add_listener_removes_it() -> None:
    bus = EventBus()
    seen: list[Event] = []
    remove = bus.add_listener(seen.append)
    first = bus.publish("run", {})
    remove()
    bus.publish("run", {})
    assert seen == [first]
    remove()  # a second call is harmless


# --- Subscription.close ---------------------------------------------------------------------


async def test_subscription_close_is_idempotent_and_unsubscribes() -> None:
    bus = EventBus(queue_size=3)
    subscription = bus.subscribe()
    other = bus.subscribe()
    assert bus.subscriber_count == 2
    published = publish_many(bus, 3)  # a full queue: a second end marker would not fit
    subscription.close()
    subscription.close()
    assert subscription.closed
    assert not subscription.dropped
    assert bus.subscriber_count == 1
    bus.publish("run", {})  # not delivered to a closed subscription
    assert await drain(subscription) == published
    other.close()
    assert bus.subscriber_count == 0


async def test_a_dropped_subscriber_reconnects_with_a_reset_and_nothing_leaks() -> None:
    bus = EventBus(queue_size=3)
    slow = bus.subscribe()
    seen = bus.publish("log", {})
    assert await slow.get() == seen
    for _ in range(5):
        bus.publish("log", {})
    assert slow.dropped and await slow.get() is None
    again = bus.subscribe(seen.id)  # more missed than a queue holds: reset, not a dead stream
    assert not again.closed and bus.subscriber_count == 1
    first = await again.get()
    assert first is not None and first.kind == "reset"
    again.close()
    assert bus.subscriber_count == 0


async def test_an_idle_stream_gets_heartbeats(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aios.server import sse

    monkeypatch.setattr(sse, "HEARTBEAT", 0.05)
    bus = EventBus()
    stream = sse.events_or_heartbeats(bus.subscribe())
    assert await asyncio.wait_for(anext(stream), WAIT) is None  # idle: a keep-alive
    published = bus.publish("log", {"n": 1})
    assert await asyncio.wait_for(anext(stream), WAIT) == [published]
    bus.close()
    with pytest.raises(StopAsyncIteration):
        while True:  # at most one more keep-alive before the end
            await asyncio.wait_for(anext(stream), WAIT)
