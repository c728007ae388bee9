"""What every Server-Sent Events response here shares: heartbeats, the end, the headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from quart import Response

from aios.events import Event, Subscription

HEARTBEAT = 15.0  # seconds between keep-alive comments on an idle stream
KEEP_ALIVE = b": keep-alive\n\n"
BATCH = 64  # events at most in one write to a stream


async def events_or_heartbeats(subscription: Subscription) -> AsyncIterator[list[Event] | None]:
    """The subscription's events, in batches of those that arrived together (one write each:
    with a hundred streams open, every write saved is a hundred), with None after every idle
    ``HEARTBEAT``; ends with the bus.

    The subscription is closed however the stream ends (the client went away, or shutdown).
    """
    try:
        while True:
            try:
                async with asyncio.timeout(HEARTBEAT):
                    event = await subscription.get()
            except TimeoutError:
                yield None
                continue
            if event is None:
                return
            yield [event, *subscription.ready(BATCH - 1)]
    finally:
        subscription.close()


def event_stream(body: AsyncIterator[bytes]) -> Response:
    response = Response(body, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    response.timeout = None  # a stream lasts as long as the page is open
    return response
