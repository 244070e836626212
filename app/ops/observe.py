"""One observation per request: a JSON log line, the metrics, and a request id.

The request id is the caller's X-Request-ID when it sends a sensible one (a proxy's, so that
its log and ours can be joined), otherwise a new one; it is returned in the response's
X-Request-ID either way. An exception that nothing else handled is logged here once, with
its traceback and the request id, and the client gets a bare 500 that shows neither.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from typing import Any

import orjson
from starlette.datastructures import MutableHeaders
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.ops import metrics

log = logging.getLogger("safepref.requests")
REQUEST_ID_HEADER = "x-request-id"
_SENSIBLE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
UNMATCHED = "<unmatched>"

# (method, route template) -> queue operation, for the API and the pages alike.
QUEUE_ROUTES = {
    ("POST", "/api/v1/batches/{batch_id}/next"): "next",
    ("POST", "/batches/{batch_id}/next"): "next",
    ("PUT", "/api/v1/assignments/{assignment_id}/annotation"): "submit",
    ("POST", "/assignments/{assignment_id}"): "submit",
    ("POST", "/api/v1/assignments/{assignment_id}/skip"): "skip",
    ("POST", "/assignments/{assignment_id}/skip"): "skip",
}


class RequestObserver:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        seen: dict[str, Any] = {"status": 500, "started": False, "location": "", "body": b""}

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                seen["started"] = True
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                seen["location"] = headers.get("location", "")
            elif message["type"] == "http.response.body" and seen["capture"]:
                seen["body"] += message.get("body", b"")
            await send(message)

        # The submit's outcome (created, unchanged, revised) is in its small JSON answer.
        path: str = scope["path"]
        seen["capture"] = (
            scope["method"] == "PUT"
            and path.startswith("/api/v1/assignments/")
            and path.endswith("/annotation")
        )
        error: BaseException | None = None
        try:
            await self.app(scope, receive, observed_send)
        except Exception as exc:  # logged below, once; never shown to the client
            error = exc
            if not seen["started"]:
                await _bare_500(observed_send)
        seconds = time.perf_counter() - started
        route = _route(scope)
        status = int(seen["status"])
        record(scope, request_id, route, status, seconds, error)
        _count(scope["method"], route, status, seen)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _SENSIBLE_ID.fullmatch(candidate):
                return candidate
            break
    return os.urandom(16).hex()  # as random as a uuid4's hex, without building the UUID


def _route(scope: Scope) -> str:
    """The matched route's path template (scope["route"], set by the router), or the one
    that would match (a request refused before routing, by CSRF or the gate)."""
    route = scope.get("route")
    if route is None:
        app = scope.get("app")
        router = getattr(app, "router", None)
        for candidate in getattr(router, "routes", ()):
            match, _ = candidate.matches(scope)
            if match is not Match.NONE:
                route = candidate
                break
    path: object = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


def _user_id(scope: Scope) -> int | None:
    user = scope.get("state", {}).get("user")
    user_id = getattr(user, "id", None)
    if isinstance(user_id, int):
        return user_id
    uid = scope.get("state", {}).get("user_id")
    return uid if isinstance(uid, int) else None


def record(
    scope: Scope,
    request_id: str,
    route: str,
    status: int,
    seconds: float,
    error: BaseException | None,
) -> None:
    metrics.REQUEST_SECONDS.labels(scope["method"], route, str(status)).observe(seconds)
    if status == 503:
        metrics.UNAVAILABLE.labels(route).inc()
    _observe_pools(scope)
    if error is None and not log.isEnabledFor(logging.INFO):
        return  # the request log is off: nothing to build
    client = scope.get("client")
    fields = {
        "request_id": request_id,
        "method": scope["method"],
        "route": route,
        "path": scope["path"],
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "user_id": _user_id(scope),
        "client": client[0] if client else None,
        "pid": os.getpid(),
    }
    if error is not None:
        log.error("request failed", extra={"fields": fields}, exc_info=error)
    else:
        log.info("request", extra={"fields": fields})


# The pool gauges are refreshed at most this often after requests (and always before a
# scrape): reading the pools on every request cost the queue's hot path measurable CPU.
POOL_OBSERVE_SECONDS = 1.0
_pools_observed_at = [0.0]


def _observe_pools(scope: Scope) -> None:
    now = time.monotonic()
    if now - _pools_observed_at[0] < POOL_OBSERVE_SECONDS:
        return
    _pools_observed_at[0] = now
    app = scope.get("app")
    observe = getattr(getattr(app, "state", None), "observe_pools", None)
    if observe is not None:
        observe()


def _count(method: str, route: str, status: int, seen: dict[str, Any]) -> None:
    operation = QUEUE_ROUTES.get((method, route))
    if operation is None:
        return
    metrics.QUEUE_OPERATIONS.labels(operation, _outcome(operation, status, seen)).inc()


def _outcome(operation: str, status: int, seen: dict[str, Any]) -> str:
    if status == 503:
        return "unavailable"
    if status >= 500:
        return "error"
    if status == 409:
        return "conflict"  # a closed batch, or a lease that went to someone else
    if status == 422:
        return "invalid"
    if status >= 400:
        return "refused"
    if operation == "next":
        empty = status == 204 or str(seen["location"]).endswith("/done")
        return "empty" if empty else "leased"
    if operation == "submit" and seen["body"]:
        try:
            outcome = orjson.loads(seen["body"]).get("outcome")
        except (orjson.JSONDecodeError, AttributeError):
            outcome = None
        if isinstance(outcome, str):
            return outcome  # created, unchanged, revised
    return "ok"


async def _bare_500(send: Send) -> None:
    body = b'{"detail":"internal server error"}'
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class JsonLines(logging.Formatter):
    """A JSON object per line: time, level, logger, message, the record's `fields`, and the
    traceback (as one string) of an error."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_request_log(enabled: bool) -> None:
    """JSON lines on standard error; errors always, one line per request when `enabled`."""
    if any(isinstance(h.formatter, JsonLines) for h in log.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonLines()
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    log.addHandler(handler)
    log.setLevel(logging.INFO if enabled else logging.ERROR)
    log.propagate = False
