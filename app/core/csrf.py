"""CSRF protection for every state-changing request a browser could be tricked into sending.

A request that carries a session cookie (or posts the login form) and uses an unsafe method
must carry the token of its cookie in the `X-CSRF-Token` header or the `csrf_token` form field.
Bearer-token requests are exempt: a browser never adds an Authorization header cross-site.

The token is an HMAC of the session cookie, so it needs no server state and dies with the
session. Before login it is bound to a random pre-session cookie that the login page sets, so a
forged login (logging a victim into the attacker's account) fails too: a login posted without
that cookie is refused, and a browser that sends no cookie at all is given no token.

Browsers also say where a request comes from. A checked request whose `Sec-Fetch-Site` is
neither same-origin nor none (typed by the user), or whose `Origin` is another host, is refused
before its token is looked at. Clients that send neither header (scripts, old browsers) still
need the token.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.cookies import SESSION_COOKIE
from app.core.csrf_tokens import CSRF_FIELD, CSRF_HEADER, binding_of, token_for_binding
from app.core.htmx import is_htmx
from app.core.templating import render

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Where the login and first-run forms post: protected even though the caller has no session.
LOGIN_PATH = "/login"
BAD_TOKEN = "CSRF token missing or invalid: reload the page and try again"
NO_COOKIE = (
    "Your browser did not send the login page's cookie. Reload the login page and try again; "
    "if this happens again, allow cookies for this site."
)
SETUP_PREFIX = "/setup/"
# The invitation sign-up form posts without a session too (app/invites/pages.py).
JOIN_PREFIX = "/join/"
# How much of a form body is read looking for the field; the form templates put it first.
SCAN_LIMIT = 1024 * 1024


def cross_site(scope: Scope) -> bool:
    """True when the browser says that the request comes from another site or origin."""
    fetch_site = _header(scope, b"sec-fetch-site").lower()
    if fetch_site:
        return fetch_site not in ("same-origin", "none")
    origin = _header(scope, b"origin")
    if not origin:
        return False
    host = _header(scope, b"host").lower()
    scheme, _, netloc = origin.lower().partition("://")
    # "null" (a sandboxed frame, a redirect chain) and any other host are foreign.
    return scheme not in ("http", "https") or not host or netloc != host


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


def _bearer(scope: Scope) -> bool:
    scheme, _, value = _header(scope, b"authorization").partition(" ")
    return scheme.lower() == "bearer" and bool(value.strip())


def needs_check(scope: Scope, request: Request) -> bool:
    # Safe methods and bearer requests are decided before any cookie is parsed (the API's
    # hot path never parses them).
    if scope["method"] not in UNSAFE_METHODS or _bearer(scope):
        return False
    path = scope["path"]
    return (
        bool(request.cookies.get(SESSION_COOKIE))
        or path == LOGIN_PATH
        or path.startswith((SETUP_PREFIX, JOIN_PREFIX))
    )


class _FieldFinder:
    """Streams a multipart body and keeps the value of the `csrf_token` part."""

    def __init__(self, boundary: bytes) -> None:
        self.found: str | None = None
        self._header_field = b""
        self._header_value = b""
        self._in_field = False
        self._value = bytearray()
        callbacks = {
            "on_part_begin": self._part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._header_end,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }
        self.parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]

    def _part_begin(self) -> None:
        self._in_field = False
        self._value.clear()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_field.lower() == b"content-disposition":
            _, options = parse_options_header(self._header_value)
            self._in_field = options.get(b"name") == CSRF_FIELD.encode()
        self._header_field = b""
        self._header_value = b""

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_field and len(self._value) < 256:
            self._value += data[start:end]

    def _part_end(self) -> None:
        if self._in_field and self.found is None:
            self.found = self._value.decode("utf-8", "replace")


class CSRFMiddleware:
    """Pure ASGI: reads only as much of a form body as it needs, then replays it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if not needs_check(scope, request):
            await self.app(scope, receive, send)
            return
        if cross_site(scope):
            detail = "cross-site request refused: use the form on this site"
            await self._refuse(request, detail)(scope, receive, send)
            return
        binding = binding_of(request.cookies)
        if binding is None:
            # Only the login form gets here without cookies: its token needs the cookie that
            # the login page sets.
            await self._refuse(request, NO_COOKIE)(scope, receive, send)
            return
        expected = token_for_binding(binding)
        given = _header(scope, CSRF_HEADER.encode())
        buffered: list[Message] = []
        if not given:
            given, buffered = await self._token_from_body(scope, receive)
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            await self._refuse(request, BAD_TOKEN)(scope, receive, send)
            return
        await self.app(scope, self._replay(buffered, receive), send)

    async def _token_from_body(self, scope: Scope, receive: Receive) -> tuple[str, list[Message]]:
        content_type, options = parse_options_header(_header(scope, b"content-type"))
        buffered: list[Message] = []
        if content_type == b"application/x-www-form-urlencoded":
            body = b""
            more = True
            while more and len(body) <= SCAN_LIMIT:
                message = await receive()
                buffered.append(message)
                body += message.get("body", b"")
                more = message.get("more_body", False)
            if more:
                return "", buffered
            values = parse_qs(body.decode("latin-1")).get(CSRF_FIELD, [])
            return (values[0] if values else ""), buffered
        if content_type == b"multipart/form-data" and b"boundary" in options:
            finder = _FieldFinder(options[b"boundary"])
            scanned = 0
            more = True
            while more and finder.found is None and scanned <= SCAN_LIMIT:
                message = await receive()
                buffered.append(message)
                chunk = message.get("body", b"")
                scanned += len(chunk)
                finder.parser.write(chunk)
                more = message.get("more_body", False)
            return finder.found or "", buffered
        return "", buffered

    @staticmethod
    def _replay(buffered: list[Message], receive: Receive) -> Receive:
        pending = list(buffered)

        async def replay() -> Message:
            if pending:
                return pending.pop(0)
            return await receive()

        return replay

    @staticmethod
    def _refuse(request: Request, detail: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": detail}, status_code=403)
        name = "fragments/error.html" if is_htmx(request) else "error.html"
        return render(request, name, {"status": 403, "detail": detail}, status_code=403)
