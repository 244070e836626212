"""The client's address behind trusted reverse proxies (SAFEPREF_TRUSTED_PROXIES).

uvicorn's ProxyHeadersMiddleware does the work: when the TCP peer is a trusted proxy, the
client is the rightmost address of X-Forwarded-For that is not itself a trusted proxy (each
proxy appends the peer it saw, so everything left of that is whatever the client claimed),
and the scheme comes from X-Forwarded-Proto. From any other peer both headers are ignored.
`safepref serve` turns uvicorn's own handling off (it trusts 127.0.0.1 by default), so this
is the one place that decides, however the app is served.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.config import Settings


def install_trusted_proxies(app: FastAPI, settings: Settings) -> None:
    """Outermost layer when proxies are configured, so that every other layer (throttle,
    logs, cookies' scheme) sees the client, not the proxy."""
    trusted = settings.trusted_proxy_list
    if trusted:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=trusted)


def client_address(request: Request) -> str:
    """The client's address: the TCP peer, or what a trusted proxy says it is."""
    return request.client.host if request.client else "unknown"
