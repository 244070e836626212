"""Readiness and metrics endpoints (liveness, /healthz, is answered in app/main.py without
touching the database)."""

from __future__ import annotations

from functools import lru_cache

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from app.auth.access import allow
from app.auth.dependencies import AdminUser
from app.db import DbSession
from app.errors import Forbidden
from app.migrate import alembic_config
from app.ops import metrics

router = APIRouter(include_in_schema=False)


@lru_cache
def schema_heads() -> frozenset[str]:
    """The revisions this code expects the database to be at."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


@router.get("/readyz")
@allow("public")
def readyz(session: DbSession) -> Response:
    """200 when the database answers and its schema is the one this code expects, else 503:
    a load balancer sends no traffic here until then (a migration pending, a lost database).
    """
    try:
        current = frozenset(MigrationContext.configure(session.connection()).get_current_heads())
    except SQLAlchemyError:
        return _not_ready("database unreachable")
    if current != schema_heads():
        return _not_ready("database schema is not at the latest revision (run safepref migrate)")
    return JSONResponse({"status": "ready"})


def _not_ready(reason: str) -> Response:
    return JSONResponse(
        {"status": "not ready", "detail": reason}, status_code=503, headers={"Retry-After": "5"}
    )


@router.get("/metrics")
@allow("admin")
def prometheus_metrics(request: Request, _admin: AdminUser) -> Response:
    """Prometheus's text format, for an admin's API token only (a scraper's credential; a
    browser session is refused, so that a page cannot be made to fetch it)."""
    if getattr(request.state, "auth_via", None) != "token":
        raise Forbidden("metrics need an admin's API token (Authorization: Bearer ...)")
    observe = getattr(request.app.state, "observe_pools", None)
    if observe is not None:
        observe()
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
