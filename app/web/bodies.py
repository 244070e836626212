"""Request bodies: how large, how slow, and read for whom.

Every body has a limit, answered with 413 naming it: uploads (routes marked `@accepts_upload`)
the `max_upload_bytes` setting, any other body `max_body_bytes`. A Content-Length past the limit
is refused before a byte is read; a chunked body is counted as it arrives.

A body sent to a route that needs an account, by a request without any credentials, is refused
the way the route would refuse it (401, or the login redirect for pages) without being read.

Other bodies than uploads are read whole here, within `body_timeout_seconds` (else 408), and
handed on from memory. This runs outside the request gate (app/web/gate.py), so a client that
sends its body slowly holds a connection of its own, never a slot of the gate. Uploads stream
through to their route, which checks the caller before it reads a byte and takes the gate only
around its database work; each chunk must come within `body_timeout_seconds` of the last.
Both deadlines are the client's time: a stall of this server does not count against it
(app/web/deadlines.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.access import route_table
from app.auth.dependencies import credentials
from app.config import Settings, get_settings
from app.errors import DomainError, PayloadTooLarge, RequestTimeout, Unauthorized
from app.web.deadlines import Deadline
from app.web.errors import domain_response
from app.web.gate import SELF_GATED

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CLOSE = (b"connection", b"close")
_UPLOAD = "__safepref_upload__"
_UNAUTHENTICATED = "__safepref_body_without_credentials__"
F = TypeVar("F", bound=Callable[..., Any])


def accepts_upload(endpoint: F) -> F:
    """Marks a route whose body is a file upload: limited by `max_upload_bytes`, streamed to
    the endpoint (not read ahead), which must check its caller before reading it and take the
    gate itself (`app.web.gate.hold`) around database work."""
    setattr(endpoint, _UPLOAD, True)
    return endpoint


def reads_without_credentials(endpoint: F) -> F:
    """Marks a page route whose body is read (within the usual limits) even without
    credentials, because the endpoint keeps it for after the login: the annotation submit,
    whose answers must survive a session that ended (app/annotations/drafts.py)."""
    setattr(endpoint, _UNAUTHENTICATED, True)
    return endpoint


def _size(number: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if number >= scale and number % scale == 0:
            return f"{number // scale} {unit}"
    return f"{number} bytes"


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body too large: the limit is {_size(limit)} for this route")


def too_slow(seconds: float) -> RequestTimeout:
    return RequestTimeout(f"request body not received within {seconds:g} seconds")


class BodyRefused(Exception):
    """Raised from `receive` when the body breaks a limit; the middleware answers."""

    def __init__(self, error: DomainError) -> None:
        super().__init__(error.detail)
        self.error = error


@dataclass(frozen=True, slots=True)
class _Route:
    regex: re.Pattern[str]
    method: str
    rule: str | None
    upload: bool
    unauthenticated: bool = False


def _routes(app: Any) -> list[_Route]:
    """The app's routes that take a body, in the router's order."""
    found = []
    for method, _path, rule, route in route_table(app):
        regex = getattr(route, "path_regex", None)
        if method in BODY_METHODS and regex is not None:
            endpoint = getattr(route, "endpoint", None)
            upload = bool(getattr(endpoint, _UPLOAD, False))
            unauthenticated = bool(getattr(endpoint, _UNAUTHENTICATED, False))
            found.append(_Route(regex, method, rule, upload, unauthenticated))
    return found


class BodyLimits:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._table: list[_Route] | None = None
        self._uploads: list[_Route] = []

    def _route_table(self, app: Any) -> list[_Route]:
        if self._table is None:
            self._table = _routes(app)
            self._uploads = [r for r in self._table if r.upload]
        return self._table

    def _match(self, routes: list[_Route], method: str, path: str) -> _Route | None:
        for route in routes:
            if method == route.method and route.regex.match(path):
                return route
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        table = self._route_table(scope["app"])
        upload = self._match(self._uploads, method, path) is not None
        if upload:
            # Even without a body: the route takes the gate itself, and a slot taken here as
            # well would be a second one for the same request.
            scope[SELF_GATED] = True
        length, chunked, authorization, cookie = _framing(scope)
        if not chunked and not length:  # no body at all
            await self.app(scope, receive, send)
            return
        settings = get_settings()
        limit = settings.max_upload_bytes if upload else settings.max_body_bytes
        if length is not None and length > limit:
            await _answer(scope, receive, send, too_large(limit))
            return
        # Any Authorization header is left for the route to judge (in the database); a cookie
        # counts only with a valid signature.
        if not authorization and (not cookie or credentials(Request(scope)) is None):
            route = self._match(table, method, path)
            if (
                route is not None
                and route.rule not in (None, "public")
                and not route.unauthenticated
            ):
                await _answer(scope, receive, send, Unauthorized("not authenticated"))
                return
        if upload:
            await self._stream(scope, receive, send, limit, settings)
            return
        try:
            body = await _read_whole(receive, limit, settings.body_timeout_seconds)
        except BodyRefused as refused:
            await _answer(scope, receive, send, refused.error)
            return
        if body is None:  # the client went away
            return
        await self.app(scope, _replay(body, receive), send)

    async def _stream(
        self, scope: Scope, receive: Receive, send: Send, limit: int, settings: Settings
    ) -> None:
        received = 0
        refused: DomainError | None = None
        started = complete = False
        timeout = settings.body_timeout_seconds

        async def counted() -> Message:
            nonlocal received, refused, complete
            try:
                message = await Deadline(timeout).receive(receive)
            except TimeoutError:
                refused = too_slow(timeout)
                raise BodyRefused(refused) from None
            received += len(message.get("body", b""))
            if received > limit:
                refused = too_large(limit)
                raise BodyRefused(refused)
            complete = complete or not message.get("more_body", False)
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused is not None:
                return  # whatever the app makes of the error, the refusal is the answer
            if message["type"] == "http.response.start":
                started = True
                if not complete:
                    # Answered before the upload was read (refused, say): close rather than
                    # let the server read and throw away the rest of it.
                    message = {**message, "headers": [*message.get("headers", []), CLOSE]}
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except BodyRefused:
            pass
        finally:
            if refused is not None and not started:
                await _answer(scope, receive, send, refused)


def _framing(scope: Scope) -> tuple[int | None, bool, bool, bool]:
    """(Content-Length or None, chunked?, an Authorization header?, a Cookie header?)."""
    length: int | None = None
    chunked = authorization = cookie = False
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = None  # the server refuses a malformed length before the app
        elif key == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif key == b"authorization":
            authorization = True
        elif key == b"cookie":
            cookie = True
    return length, chunked, authorization, cookie


async def _read_whole(receive: Receive, limit: int, timeout: float) -> bytes | None:
    """The whole body, or None if the client disconnected; BodyRefused past the limit or the
    deadline."""
    chunks: list[bytes] = []
    size = 0
    deadline = Deadline(timeout)  # for the whole body, with the grace of app/web/deadlines.py
    while True:
        try:
            message = await deadline.receive(receive)
        except TimeoutError:
            raise BodyRefused(too_slow(timeout)) from None
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyRefused(too_large(limit))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the disconnect, when it comes

    return replay


async def _answer(scope: Scope, receive: Receive, send: Send, error: DomainError) -> None:
    """The error's usual answer (app/web/errors.py), closing the connection: the rest of the
    body is never read."""
    response = domain_response(Request(scope), error)
    response.headers["connection"] = "close"
    await response(scope, receive, send)
