"""Events from a stream's threads to the clients watching it (SSE, WebSocket, MJPEG) in the event loop.

Every subscriber has its own bounded queue that drops its oldest event when the client reads too slowly,
so a stalled client costs a fixed amount of memory and never slows the stream or the other clients.
A new subscriber first gets the last few events (or those after the `Last-Event-ID` it names).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque

from modelzoo.serve.errors import TooManyViewers


class Channel:
    """One stream's events: `publish` from any thread, `subscribe` from the event loop, `close` at the end."""

    def __init__(self, *, history: int, queue: int, limit: int, what: str = "events"):
        self.limit = limit  # subscribers at once
        self.queue = queue  # events each subscriber may have waiting
        self.what = what  # for the refusal's message
        self._lock = threading.Lock()
        self._history: deque = deque(maxlen=history)
        self._subscribers: set = set()
        self._seq = 0
        self.closed = False

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def check_room(self) -> None:
        """TooManyViewers (503) when `limit` clients already subscribe."""
        if self.subscribers >= self.limit:
            raise TooManyViewers(
                f"this stream already has {self.limit} clients reading its {self.what}; close one and retry"
            )

    def has_after(self, after: int | None) -> bool:
        """Whether a new subscriber would get any event (all recent ones, or those after `after`)."""
        with self._lock:
            return any(after is None or item[0] > after for item in self._history)

    def publish(self, kind: str, data) -> None:
        with self._lock:
            if self.closed:
                return
            self._seq += 1
            item = (self._seq, kind, data)
            self._history.append(item)
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.push(item)

    def close(self) -> None:
        """No more events: every subscriber ends once it has read what it holds."""
        with self._lock:
            self.closed = True
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.finish()

    def subscribe(self, loop: asyncio.AbstractEventLoop, after: int | None = None) -> Subscriber:
        """A subscriber holding the recent events (those after `after` when given); TooManyViewers past the limit."""
        with self._lock:
            if len(self._subscribers) >= self.limit:
                raise TooManyViewers(f"this stream already has {self.limit} clients reading its {self.what}")
            subscriber = Subscriber(self, loop, self.queue)
            for item in self._history:
                if after is None or item[0] > after:
                    subscriber.push(item, wake=False)
            if self.closed:
                subscriber.done = True
            else:
                self._subscribers.add(subscriber)
        return subscriber

    def _remove(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(subscriber)


class Subscriber:
    """One client's bounded queue; `async for seq, kind, data in subscriber.events()` until the channel closes."""

    def __init__(self, channel: Channel, loop, size: int):
        self.channel = channel
        self.loop = loop
        self.items: deque = deque(maxlen=size)
        self.dropped = 0  # events this client missed because it read too slowly
        self.done = False
        self._lock = threading.Lock()
        self._ready = asyncio.Event()

    def push(self, item, wake: bool = True) -> None:
        with self._lock:
            self.dropped += len(self.items) == self.items.maxlen
            self.items.append(item)
        if wake:
            self._wake()

    def finish(self) -> None:
        with self._lock:
            self.done = True
        self._wake()

    def _wake(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self._ready.set)
        except RuntimeError:  # the event loop has closed: nobody is waiting any more
            pass

    def cancel(self) -> None:
        """The client went away."""
        self.channel._remove(self)

    async def events(self, idle: float | None = None):
        """The events as they come; (None, None, None) after `idle` seconds without one (for a keep-alive)."""
        try:
            while True:
                self._ready.clear()
                while True:
                    with self._lock:
                        item = self.items.popleft() if self.items else None
                        done = self.done and not self.items
                    if item is None:
                        break
                    yield item
                if done:
                    return
                try:
                    await asyncio.wait_for(self._ready.wait(), idle)
                except asyncio.TimeoutError:
                    yield None, None, None
        finally:
            self.cancel()
