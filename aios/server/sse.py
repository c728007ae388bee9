"""What every Server-Sent Events response here shares: heartbeats, the end, the headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from quart import Response

from aios.events import KEEPALIVE, Event, Subscription

HEARTBEAT = 15.0  # seconds between keep-alive comments on an idle stream
KEEP_ALIVE = b": keep-alive\n\n"
BATCH = 64  # events at most in one write to a stream


async def events_or_heartbeats(subscription: Subscription) -> AsyncIterator[list[Event] | None]:
    """The subscription's events, in batches of those that arrived together (one write each:
    with a hundred streams open, every write saved is a hundred), with None when the stream has
    been idle for a ``HEARTBEAT``; ends with the bus.

    The heartbeat is one timer per stream, every ``HEARTBEAT`` seconds, that nudges the stream
    if nothing was sent since the last one - not a timeout set and cancelled around every wait,
    which was a tenth of the event loop's time when an event goes to a hundred streams.

    The subscription is closed however the stream ends (the client went away, or shutdown).
    """
    loop = asyncio.get_running_loop()
    sent = beaten = 0  # batches sent in all; and when the last beat looked
    timer: asyncio.TimerHandle | None = None

    def beat() -> None:
        nonlocal beaten, timer
        if sent == beaten:
            subscription.nudge()
        beaten = sent
        timer = loop.call_later(HEARTBEAT, beat)

    timer = loop.call_later(HEARTBEAT, beat)
    try:
        while (event := await subscription.get()) is not None:
            if event is KEEPALIVE:
                yield None
                continue
            sent += 1
            yield [event, *subscription.ready(BATCH - 1)]
    finally:
        if timer is not None:
            timer.cancel()
        subscription.close()


def event_stream(body: AsyncIterator[bytes]) -> Response:
    response = Response(body, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    response.timeout = None  # a stream lasts as long as the page is open
    return response
