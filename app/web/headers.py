"""Security headers on every response (pure ASGI, so streamed exports are not buffered)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import get_settings

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
# Pages and API answers hold annotation data: no shared cache may keep them. Static files
# may be cached.
NO_STORE = (b"cache-control", b"no-store")
HSTS = (b"strict-transport-security", b"max-age=31536000")


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = list(HEADERS)
        if not scope["path"].startswith("/static/"):
            wanted.append(NO_STORE)
        if get_settings().cookie_secure:
            # Cookies marked Secure mean the site is served over HTTPS: keep browsers there.
            wanted.append(HSTS)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                existing = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in wanted if k not in existing]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # Starlette's last-resort 500 is sent from outside every middleware; answer here
            # so that it carries the headers too, then let the error be logged as usual.
            if not started:
                json = scope["path"].startswith("/api/")
                body = b'{"detail":"internal server error"}' if json else b"internal server error"
                kind = b"application/json" if json else b"text/plain; charset=utf-8"
                await send_with_headers(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", kind)],
                    }
                )
                await send_with_headers({"type": "http.response.body", "body": body})
            raise
