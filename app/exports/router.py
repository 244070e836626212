"""`GET /api/v1/exports/{format}`: agreement-filtered NDJSON, streamed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from app.auth.access import allow
from app.auth.dependencies import AdminUser
from app.consensus.aggregate import Dimension
from app.core.json_body import JSONRulesRoute
from app.db import DbSession
from app.exports.filters import ExportFilters, Split, parse_dimensions
from app.exports.formats import ExportFormat
from app.exports.gzipped import accepts_gzip, gzip_stream
from app.exports.keys import pseudonym_key
from app.exports.service import export_lines, resolve_scope

router = APIRouter(prefix="/api/v1/exports", tags=["exports"], route_class=JSONRulesRoute)

NDJSON = "application/x-ndjson"


def _stream(
    bind: Engine | Connection, fmt: ExportFormat, filters: ExportFilters, secret: str
) -> Iterator[bytes]:
    # The request's session is closed once the endpoint returns, before the body is sent:
    # the body gets its own session on the same engine (or connection, under the tests).
    with Session(bind=bind, join_transaction_mode="create_savepoint") as session:
        scope = resolve_scope(session, filters)
        yield from export_lines(session, fmt, filters, scope, secret=secret)


@router.get(
    "/{format}",
    response_class=StreamingResponse,
    responses={200: {"content": {NDJSON: {}}, "description": "one JSON object per line"}},
)
@allow("admin")
def export(
    request: Request,
    format: ExportFormat,
    session: DbSession,
    _admin: AdminUser,
    batch_id: Annotated[int | None, Query(ge=1)] = None,
    project_id: Annotated[int | None, Query(ge=1)] = None,
    min_annotations: Annotated[
        int | None, Query(ge=1, description="default: the batch overlap")
    ] = None,
    min_agreement: Annotated[
        float | None, Query(ge=0, le=1, description="default: a strict majority")
    ] = None,
    dimensions: Annotated[
        list[str] | None,
        Query(
            description="dimensions that must agree (repeat or comma-separate): helpfulness, "
            "harmlessness, single, is_safe; default: those the format writes"
        ),
    ] = None,
    include_unresolved: bool = False,
    split: Split | None = None,
    test_fraction: Annotated[float, Query(gt=0, lt=1)] = 0.1,
    accepted_only: Annotated[
        bool,
        Query(description="keep only items whose annotations were all accepted in review"),
    ] = False,
) -> StreamingResponse:
    dims: tuple[Dimension, ...] | None = parse_dimensions(dimensions)
    filters = ExportFilters(
        project_id=project_id,
        batch_id=batch_id,
        min_annotations=min_annotations,
        min_agreement=min_agreement,
        dimensions=dims,
        include_unresolved=include_unresolved,
        split=split,
        test_fraction=test_fraction,
        accepted_only=accepted_only,
    )
    return export_response(request, session, format, filters)


def export_response(
    request: Request, session: Session, fmt: ExportFormat, filters: ExportFilters
) -> StreamingResponse:
    """The streamed export file, gzip-compressed as it streams when the client accepts it."""
    resolve_scope(session, filters)  # a bad batch or project fails here, before streaming
    secret = pseudonym_key(session)
    name = fmt + (f"-{filters.split}" if filters.split else "") + ".jsonl"
    body: Iterator[bytes] = _stream(session.get_bind(), fmt, filters, secret)
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Vary": "Accept-Encoding"}
    if accepts_gzip(request.headers.get("accept-encoding", "")):
        body = gzip_stream(body)
        headers["Content-Encoding"] = "gzip"
    return StreamingResponse(body, media_type=NDJSON, headers=headers)
