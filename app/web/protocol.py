"""uvicorn's HTTP protocol (httptools) with the two limits it lacks on a request's head.

uvicorn reads a request line and headers of any size, for as long as the client likes: a
50 MB header grew a worker by 50 MB, and a connection that sent half a head (or nothing) was
kept forever. Here the head must fit in `MAX_HEAD_BYTES` (else 431) and arrive within
`body_timeout_seconds` of the connection or of its first byte (else 408, or a plain close if
nothing came), in the client's time (app/web/deadlines.py). Bodies have their own limits
(app/web/bodies.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config import get_settings
from app.web.deadlines import Deadline

# Request line and headers together; browsers send a few KiB at most.
MAX_HEAD_BYTES = 64 * 1024


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._marks = 0  # heads and requests completed on this connection
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_seconds = get_settings().body_timeout_seconds

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        marks = self._marks
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        if marks != self._marks:
            # A request ended in this data: at most the start of the next head is left (not
            # counted: at most one read's worth).
            self._head_bytes = 0
            return
        # Still in the same head after this data: it all counts towards the head.
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(b"431 Request Header Fields Too Large", b"request head too large")
        elif self._head_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._marks += 1
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._marks += 1
        # What comes next on this connection is another request's head (idle time before it
        # is uvicorn's keep-alive timeout).
        self._in_head = True
        self._head_bytes = 0

    def _arm(self) -> None:
        self._disarm()
        deadline = Deadline(self._head_seconds, self.loop)
        self._head_timer = self.loop.call_at(deadline.when, self._head_timed_out, deadline)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self, deadline: Deadline) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if not deadline.passed():  # its grace starts: the loop reads its sockets first
            self._head_timer = self.loop.call_at(deadline.when, self._head_timed_out, deadline)
            return
        if self._head_bytes:
            self._refuse(b"408 Request Timeout", b"request head not received in time")
        else:
            self.transport.close()

    def _refuse(self, status: bytes, message: bytes) -> None:
        self._disarm()
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(message)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + message
        )
        self.transport.close()
