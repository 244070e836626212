"""HTTP/1.1 over a plain socket, for bodies no client library sends: a Content-Length that
is never honoured, chunks that come slowly, a body that goes on after the server answered."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Sent:
    """What became of a body sent while watching for an early answer."""

    bytes_sent: int = 0
    # The server answered (or closed) before the whole body was sent.
    interrupted: bool = False
    answer: Answer | None = None
    errors: list[str] = field(default_factory=list)


def connect(base: str, timeout: float = 30) -> socket.socket:
    parts = urlsplit(base)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout)
    sock.settimeout(timeout)
    return sock


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


LAST_CHUNK = b"0\r\n\r\n"


def read_answer(sock: socket.socket, timeout: float = 30) -> Answer:
    """Reads one response (status line, headers, body by Content-Length or to the close)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        got = sock.recv(65536)
        if not got:
            raise ConnectionError(f"closed before a whole response head: {data[:200]!r}")
        data += got
    raw_head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        got = sock.recv(65536)
        if not got:
            break
        body += got
    return Answer(int(status_line.split()[1]), headers, body[:length])


def send_watching(
    sock: socket.socket, pieces: Iterable[bytes], *, stall_seconds: float = 10
) -> Sent:
    """Sends `pieces` one by one, stopping as soon as the server has something to say (or
    closes, or stops reading for `stall_seconds`); then reads its answer if there is one."""
    sent = Sent()
    for piece in pieces:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            sent.interrupted = True
            break
        try:
            sock.settimeout(stall_seconds)
            sock.sendall(piece)
        except (TimeoutError, OSError) as error:
            sent.errors.append(type(error).__name__)
            sent.interrupted = True
            break
        sent.bytes_sent += len(piece)
    try:
        sent.answer = read_answer(sock, timeout=stall_seconds)
    except (TimeoutError, OSError) as error:
        sent.errors.append(type(error).__name__)
    return sent


def trickle(sock: socket.socket, data: bytes, every: float, until: float) -> bool:
    """Sends `data` a byte at a time, one every `every` seconds, until the monotonic time
    `until` or until the server answers or closes; True if the server answered or closed."""
    for byte in data:
        if time.monotonic() >= until:
            return False
        readable, _, _ = select.select([sock], [], [], every)
        if readable:
            return True
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return True
    return False
