"""Deadlines for what a client sends (a request's head, its body), counted in the client's time.

A deadline must not pass because this process was not running while the client's bytes were
on their way: a machine so loaded that the worker waits for a CPU, a virtual machine paused by
its host. After such a stall the event loop runs its due timers before it reads its sockets,
so a deadline that passed during the stall would refuse a request whose bytes are waiting
there, or arrive a moment later from a client that was paused too. A fresh-clone test run saw
exactly that: two submits answered 408 at the same moment by two different servers.

So a deadline that passes is given one short grace period, counted from when the loop noticed
it; only a client that still sends nothing is refused. A slow client waits `GRACE_SECONDS`
longer for its 408; nothing else changes.
"""

from __future__ import annotations

import asyncio

from starlette.types import Message, Receive

GRACE_SECONDS = 2.0


class Deadline:
    """`seconds` from now on the event loop's clock, extended once by the grace period."""

    def __init__(self, seconds: float, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._at = self._loop.time() + seconds
        self._graced = False

    @property
    def when(self) -> float:
        """When to look again, on the loop's clock (the end of the grace once it started)."""
        return self._at

    def passed(self) -> bool:
        """True when the deadline has passed, the grace included. The first time it is found
        passed, the grace period starts instead (and False is returned)."""
        if self._loop.time() < self._at:
            return False
        if self._graced:
            return True
        self._graced = True
        self._at = self._loop.time() + GRACE_SECONDS
        return False

    async def receive(self, receive: Receive) -> Message:
        """The next message from `receive` before the deadline; TimeoutError after it.
        (A cancelled uvicorn `receive` loses nothing: the bytes stay for the next call.)"""
        while True:
            try:
                async with asyncio.timeout_at(self._at):
                    return await receive()
            except TimeoutError:
                if self.passed():
                    raise
