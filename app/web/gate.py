"""At most `db_pool_size` requests inside the app at once, per process; the rest wait here.

A request may hold a database resource (a pooled connection, a row lock, SQLite's write lock)
while it waits for a worker thread for its next step (FastAPI runs each sync dependency and
endpoint as a step of its own). If every thread were taken by requests waiting for that same
resource, nothing would move until a timeout: the SQLite concurrency test hung this way. With
no more requests inside than connections and threads, each request in gets a connection and
a thread without waiting for either; the others wait here, in the event loop, for free.

A slot is for database work only. Request bodies are read before it is taken (app/web/bodies.py
runs outside this gate), so a client that sends its body slowly holds a connection of its own,
never a slot. Upload routes, whose bodies are too large to read ahead, pass this gate and take
a slot themselves around each piece of database work (`hold`), not while the file arrives.

`report` tells how full the gate is; /healthz answers 503 when it is stalled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

# Served without touching the database: never held back.
UNGATED_PREFIXES = ("/static/", "/healthz")
# Set in the scope by app/web/bodies.py for routes that take the gate themselves.
SELF_GATED = "safepref.self_gated"


@dataclass(frozen=True)
class GateReport:
    size: int
    in_use: int
    waiting: int
    # Seconds since a request last entered or left the gate.
    idle_seconds: float
    stall_seconds: float

    @property
    def stalled(self) -> bool:
        """Requests wait, and none has moved for `stall_seconds`: the process answers but
        serves nothing. (A busy gate lets requests in and out all the time.)"""
        return self.waiting > 0 and self.idle_seconds >= self.stall_seconds


class Gate:
    """A semaphore that knows how many wait, and when one last went in or out."""

    def __init__(self, size: int, stall_seconds: float) -> None:
        self.size = size
        self.stall_seconds = stall_seconds
        self._semaphore = asyncio.Semaphore(size)
        self._in_use = 0
        self._waiting = 0
        self._moved = time.monotonic()

    async def acquire(self) -> None:
        self._waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self._waiting -= 1
        self._in_use += 1
        self._moved = time.monotonic()

    def release(self) -> None:
        self._in_use -= 1
        self._moved = time.monotonic()
        self._semaphore.release()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *_exc: object) -> None:
        self.release()

    def report(self) -> GateReport:
        return GateReport(
            size=self.size,
            in_use=self._in_use,
            waiting=self._waiting,
            idle_seconds=time.monotonic() - self._moved,
            stall_seconds=self.stall_seconds,
        )


def gate_of(app: Any) -> Gate | None:
    """The app's gate; made in its lifespan, in the loop that serves it (None if that did not
    run)."""
    gate: Gate | None = getattr(app.state, "request_gate", None)
    return gate


def report(app: Any) -> GateReport | None:
    """How full the app's gate is (None without one): for health and readiness checks."""
    gate = gate_of(app)
    return gate.report() if gate is not None else None


@asynccontextmanager
async def hold(app: Any) -> AsyncIterator[None]:
    """A slot of the gate for one piece of database work, for routes that gate themselves."""
    gate = gate_of(app)
    if gate is None:
        yield
        return
    async with gate:
        yield


class RequestGate:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate = gate_of(scope["app"]) if scope["type"] == "http" else None
        if gate is None or scope["path"].startswith(UNGATED_PREFIXES) or scope.get(SELF_GATED):
            await self.app(scope, receive, send)
            return
        async with gate:
            await self.app(scope, receive, send)
