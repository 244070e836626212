"""At most `db_pool_size` requests inside the app at once, per process; the rest wait here.

A request may hold a database resource (a pooled connection, a row lock, SQLite's write lock)
while it waits for a worker thread for its next step (FastAPI runs each sync dependency and
endpoint as a step of its own). If every thread were taken by requests waiting for that same
resource, nothing would move until a timeout: the SQLite concurrency test hung this way. With
no more requests inside than connections and threads, each request in gets a connection and
a thread without waiting for either; the others wait here, in the event loop, for free.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

# Served without touching the database: never held back.
UNGATED_PREFIXES = ("/static/", "/healthz")


class RequestGate:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Made in the app's lifespan, in the loop that serves it (absent if it did not run).
        gate: asyncio.Semaphore | None = getattr(scope["app"].state, "request_gate", None)
        if gate is None or scope["type"] != "http" or scope["path"].startswith(UNGATED_PREFIXES):
            await self.app(scope, receive, send)
            return
        async with gate:
            await self.app(scope, receive, send)
