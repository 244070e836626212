"""The queue on PostgreSQL: each step is one call of a function from the migration
`queue_functions_on_postgresql` (1ada494eb64e): in the request's session (pages, services,
in-process tests), or from the event loop on the hot path's own pool (the API; app/db.py).

Those functions hold the same rules and the same lock order as the Python implementation in
app/batches/queue.py and app/annotations/service.py, which SQLite uses. One round trip replaces
the seven to nine statements a step takes from Python; that is what lets two processes on two
cores serve several hundred annotations a second (bench/queue).

The caller is given either as a user id (pages and services, which have the User already) or
as the request's credentials, which the database checks in the same call (the API's hot path
loads no ORM object at all).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.annotations.models import Annotation
from app.annotations.schemas import AnnotationIn
from app.auth.dependencies import Credentials
from app.batches.models import Assignment, BatchItem
from app.errors import Conflict, NotFound, Unauthorized

Caller = int | Credentials

_BY_ID = "%(user)s::int"
_BY_CREDENTIALS = "safepref_caller(%(token)s::text, %(uid)s::int, %(version)s::int, %(now)s)"
# The caller is worked out once (a CTE with a volatile function is evaluated once); whether
# they are an admin decides if the lease shows where the prompt and answers come from.
_NEXT = (
    "WITH c AS MATERIALIZED (SELECT {caller} AS uid) "
    "SELECT n.*, (SELECT u.role = 'admin' FROM users u WHERE u.id = c.uid) "
    "FROM c, LATERAL safepref_next(%(batch)s::int, c.uid, %(now)s, %(draw)s::float8, "
    "%(sweep)s::bool) n"
)
_CONTEXT = "SELECT * FROM safepref_submit_context(%(assignment)s::int, {caller})"
_SUBMIT = (
    "SELECT * FROM safepref_submit(%(assignment)s::int, %(user)s::int, %(payload)s::json, "
    "%(duration)s::int, %(viewed)s::bool, %(now)s)"
)


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def expire_queue_rows(session: Session) -> None:
    """Marks this session's assignments, batch items and annotations stale after a queue
    function changed rows behind its back (users, batches and projects it never touches)."""
    for instance in list(session.identity_map.values()):
        if isinstance(instance, Assignment | BatchItem | Annotation):
            session.expire(instance)


def _caller_sql(template: str, caller: Caller, now: datetime, params: dict[str, Any]) -> str:
    if isinstance(caller, Credentials):
        params.update(token=caller.token_hash, uid=caller.uid, version=caller.version, now=now)
        return template.format(caller=_BY_CREDENTIALS)
    params.update(user=caller, now=now)
    return template.format(caller=_BY_ID)


def _one(session: Session, sql: str, params: Mapping[str, Any]) -> tuple[Any, ...]:
    """The one row of `sql`, run on the session's connection in its transaction.

    Straight through psycopg's cursor: SQLAlchemy would compile nothing here but would still
    build result metadata per call, a tenth of a worker's CPU on the hot path. Driver errors
    are wrapped as SQLAlchemy's (OperationalError -> 503, DataError -> 422: app/web/errors.py).
    """
    connection = session.connection().connection.driver_connection
    assert isinstance(connection, psycopg.Connection)
    try:
        # Pipeline mode: the BEGIN psycopg sends first in a new transaction travels with the
        # statement, one round trip instead of two.
        with connection.pipeline(), connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
    except psycopg.Error as error:
        raise DBAPIError.instance(sql, params, error, psycopg.Error) from error
    assert row is not None
    return tuple(row)


async def _one_async(
    pool: AsyncConnectionPool, sql: str, params: Mapping[str, Any]
) -> tuple[Any, ...]:
    """The one row of `sql` on a connection of the hot path's pool (autocommit: the function
    call is the whole transaction, so there is no BEGIN or COMMIT round trip).

    A pooled connection that the server dropped (a restart) fails at once; the call is then
    made once more on another. Both functions are safe to repeat even if the first call had
    committed: `next` hands back the lease it made, and a repeated submit is "unchanged".
    """
    for attempt in (1, 2):
        row = None
        try:
            async with pool.connection() as connection:
                try:
                    async with connection.cursor() as cursor:
                        await cursor.execute(sql, params)
                        row = await cursor.fetchone()
                except psycopg.OperationalError:
                    # The pool discards a broken connection when it is given back.
                    if attempt == 2 or not connection.broken:
                        raise
        except psycopg.Error as error:
            raise DBAPIError.instance(sql, params, error, psycopg.Error) from error
        if row is not None:
            return tuple(row)
    raise DBAPIError.instance(sql, params, psycopg.OperationalError("no row"), psycopg.Error)


@dataclass(frozen=True)
class LeaseRow:
    """A lease as safepref_next returns it, responses in display order."""

    assignment_id: int
    resumed: bool
    leased_until: datetime
    item_id: int
    prompt: str
    prompt_source: str
    response_ids: Sequence[int]
    response_texts: Sequence[str]
    response_sources: Sequence[str]
    caller_is_admin: bool


def next_lease(
    session: Session,
    batch_id: int,
    caller: Caller,
    now: datetime,
    *,
    gold_draw: float,
    sweep: bool,
    admin_hint: bool = True,
) -> LeaseRow | None:
    """The caller's next lease, or None when nothing is left for them. NotFound for a batch
    that does not exist or of which the caller is not a member (with a hint for admins when
    `admin_hint`), Conflict when it is closed, Unauthorized for unknown credentials."""
    sql, params = _next_call(batch_id, caller, now, gold_draw, sweep)
    return _next_result(_one(session, sql, params), batch_id, admin_hint)


async def next_lease_async(
    pool: AsyncConnectionPool,
    batch_id: int,
    caller: Caller,
    now: datetime,
    *,
    gold_draw: float,
    sweep: bool,
) -> LeaseRow | None:
    """`next_lease` on the hot path's own pool (autocommit: the call is its transaction)."""
    sql, params = _next_call(batch_id, caller, now, gold_draw, sweep)
    return _next_result(await _one_async(pool, sql, params), batch_id, True)


def _next_call(
    batch_id: int, caller: Caller, now: datetime, gold_draw: float, sweep: bool
) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"batch": batch_id, "draw": gold_draw, "sweep": sweep}
    return _caller_sql(_NEXT, caller, now, params), params


def _next_result(row: tuple[Any, ...], batch_id: int, admin_hint: bool) -> LeaseRow | None:
    outcome = row[0]
    if outcome == "ok":
        fields = (*row[1:3], row[3].astimezone(UTC), *row[4:10], bool(row[10]))
        return LeaseRow(*fields)
    if outcome == "empty":
        return None
    if outcome == "unauthenticated":
        raise Unauthorized("not authenticated")
    if outcome == "closed":
        raise Conflict(f"batch {batch_id} is closed")
    if outcome == "not_member_admin" and admin_hint:
        raise NotFound(f"batch {batch_id}: you are not a member of it; add yourself to annotate")
    raise NotFound(f"no batch {batch_id}")


@dataclass(frozen=True)
class SubmitContext:
    """What validating a submit needs (app.annotations.validation.Questions)."""

    user_id: int
    batch_id: int
    taxonomy: list[str]
    ask_safety: bool
    ask_dual: bool
    ask_single: bool
    ask_rationale: bool
    response_ids: list[int]


def submit_context(
    session: Session, assignment_id: int, caller: Caller, now: datetime
) -> SubmitContext:
    """The project's questions and the item's response ids for the caller's assignment:
    NotFound if it is not theirs (or they left the batch), Conflict if the batch is closed."""
    sql, params = _context_call(assignment_id, caller, now)
    return _context_result(_one(session, sql, params), assignment_id)


async def submit_context_async(
    pool: AsyncConnectionPool, assignment_id: int, caller: Caller, now: datetime
) -> SubmitContext:
    sql, params = _context_call(assignment_id, caller, now)
    return _context_result(await _one_async(pool, sql, params), assignment_id)


def _context_call(assignment_id: int, caller: Caller, now: datetime) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"assignment": assignment_id}
    return _caller_sql(_CONTEXT, caller, now, params), params


def _context_result(row: tuple[Any, ...], assignment_id: int) -> SubmitContext:
    outcome, *fields = row
    if outcome == "unauthenticated":
        raise Unauthorized("not authenticated")
    if outcome == "not_found":
        raise NotFound(f"no assignment {assignment_id}")
    if outcome == "closed":
        raise Conflict(f"batch {fields[1]} is closed: annotations can no longer be submitted")
    user_id, batch_id, taxonomy, safety, dual, single, rationale, response_ids = fields
    return SubmitContext(
        user_id, batch_id, taxonomy, safety, dual, single, rationale, response_ids or []
    )


@dataclass(frozen=True)
class SubmitRow:
    outcome: str  # "created", "revised" or "unchanged"
    annotation_id: int
    revision: int
    batch_id: int
    item_id: int
    submitted_at: datetime
    updated_at: datetime
    duration_ms: int | None
    suggestion_viewed: bool


def submit(
    session: Session,
    assignment_id: int,
    user_id: int,
    payload: dict[str, Any],
    body: AnnotationIn,
    now: datetime,
) -> SubmitRow:
    """Stores `payload`, the validated form of `body` (first submit, revision, or an
    unchanged repeat). Conflict, writing nothing, when the batch closed, the assignment was
    skipped, or its lease expired and the item has since gone to others."""
    params = _submit_params(assignment_id, user_id, payload, body, now)
    return _submit_result(_one(session, _SUBMIT, params), assignment_id)


async def submit_async(
    pool: AsyncConnectionPool,
    assignment_id: int,
    user_id: int,
    payload: dict[str, Any],
    body: AnnotationIn,
    now: datetime,
) -> SubmitRow:
    params = _submit_params(assignment_id, user_id, payload, body, now)
    return _submit_result(await _one_async(pool, _SUBMIT, params), assignment_id)


def _submit_params(
    assignment_id: int, user_id: int, payload: dict[str, Any], body: AnnotationIn, now: datetime
) -> dict[str, Any]:
    return {
        "assignment": assignment_id,
        "user": user_id,
        "payload": orjson.dumps(payload).decode(),
        "duration": body.duration_ms,
        "viewed": body.suggestion_viewed,
        "now": now,
    }


def _submit_result(result: tuple[Any, ...], assignment_id: int) -> SubmitRow:
    outcome, *row = result
    # row: annotation id, revision, batch, item, submitted at, updated at, duration, viewed,
    # detail
    if outcome == "not_found":
        raise NotFound(f"no assignment {assignment_id}")
    if outcome == "closed":
        raise Conflict(f"batch {row[2]} is closed: annotations can no longer be submitted")
    if outcome == "skipped":
        raise Conflict(f"assignment {assignment_id} was skipped; the item went to other annotators")
    if outcome == "gone":
        raise Conflict(
            f"assignment {assignment_id}: your lease expired and the item has since gone to "
            f"other annotators ({row[8]} of {row[8]} slots taken); this answer was "
            "not saved"
        )
    annotation_id, revision, batch_id, item_id, submitted_at, updated_at, duration, viewed = row[:8]
    return SubmitRow(
        outcome,
        annotation_id,
        revision,
        batch_id,
        item_id,
        submitted_at.astimezone(UTC),
        updated_at.astimezone(UTC),
        duration,
        viewed,
    )
