"""The queue on PostgreSQL: each step is one call of a function of app/queue/sql/.

A call runs either in the request's session (pages, services, in-process tests) or from the
event loop on the hot path's own pool (the API's `next` and submit: no thread hop, no ORM
session, no BEGIN or COMMIT round trip). One round trip replaces the seven to nine statements
a step takes through the ORM; that is what lets two processes on two cores serve several
hundred annotations a second (bench/queue).

Each operation is written once, as a generator of calls (`next_steps`, `submit_steps`): it
yields (sql, params) and is sent back the row. `run` drives it on a session and `run_async`
on the pool, so "load the context, validate, submit" exists in one place for both transports.

The caller is given either as a user id (pages and services, which have the User already) or
as the request's credentials, which the database checks in the same call (the API's hot path
loads no ORM object at all).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.annotations.models import Annotation
from app.auth.dependencies import Credentials
from app.batches.models import Assignment, BatchItem
from app.config import Settings
from app.queue import messages
from app.queue.order import Draws
from app.queue.results import LeaseView, Outcome, Stored

T = TypeVar("T")
Caller = int | Credentials
Row = tuple[Any, ...]
Call = tuple[str, dict[str, Any]]
Steps = Generator[Call, Row, T]
# Told the caller's user id (None: the credentials named nobody) once the database checked them.
Identified = Callable[[int | None], None] | None

_BY_ID = "%(user)s::int"
_BY_CREDENTIALS = "safepref_caller(%(token)s::text, %(uid)s::int, %(version)s::int, %(now)s)"
# The caller is worked out once (a CTE with a volatile function is evaluated once); whether
# they are an admin decides if the lease shows where the prompt and answers come from. The
# caller's id comes back last, whatever the outcome, for the request log.
_NEXT = (
    "WITH c AS MATERIALIZED (SELECT {caller} AS uid) "
    "SELECT n.*, (SELECT u.role = 'admin' FROM users u WHERE u.id = c.uid), c.uid "
    "FROM c, LATERAL safepref_next(%(batch)s::int, c.uid, %(now)s, %(gold_draw)s::float8, "
    "%(sweep)s::bool) n"
)
_CONTEXT = "SELECT * FROM safepref_submit_context(%(assignment)s::int, {caller})"
_SUBMIT = (
    "SELECT * FROM safepref_submit(%(assignment)s::int, %(user)s::int, %(payload)s::json, "
    "%(duration)s::int, %(viewed)s::bool, %(now)s)"
)


def _with_caller(template: str, caller: Caller, now: datetime, params: dict[str, Any]) -> Call:
    if isinstance(caller, Credentials):
        params.update(token=caller.token_hash, uid=caller.uid, version=caller.version, now=now)
        return template.format(caller=_BY_CREDENTIALS), params
    params.update(user=caller, now=now)
    return template.format(caller=_BY_ID), params


# ---------------------------------------------------------------- the operations


def next_steps(
    batch_id: int,
    caller: Caller,
    now: datetime,
    draws: Draws,
    *,
    admin_hint: bool,
    identified: Identified = None,
) -> Steps[LeaseView | None]:
    """The caller's next lease, or None when nothing is left for them; the refusals of
    app/queue/messages.py otherwise. `identified` is told who the caller turned out to be."""
    row = yield _with_caller(_NEXT, caller, now, {"batch": batch_id, **draws})
    if identified is not None:
        identified(row[-1])
    outcome = row[0]
    if outcome == "ok":
        lease_id, resumed, until, item_id, prompt, prompt_source, ids, texts, sources = row[1:10]
        return LeaseView(
            lease_id,
            batch_id,
            resumed,
            until.astimezone(UTC),
            item_id,
            prompt,
            prompt_source,
            ids,
            texts,
            sources,
            caller_is_admin=bool(row[10]),
        )
    if outcome == "empty":
        return None
    raise messages.next_refused(outcome, batch_id, admin_hint=admin_hint)


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


def submit_steps(
    assignment_id: int,
    caller: Caller,
    now: datetime,
    validate: Callable[[SubmitContext], dict[str, Any]],
    duration_ms: int | None,
    suggestion_viewed: bool,
    identified: Identified = None,
) -> Steps[Stored]:
    """Load the context (which checks the credentials), validate the answer against it with
    `validate` (the payload to store, or Invalid), then the write, which checks ownership and
    state again under the locks. Conflict, writing nothing, when the batch closed, the
    assignment was skipped, or its lease expired and the item has since gone to others.
    `identified` is told who the caller turned out to be."""
    outcome, *fields = yield _with_caller(_CONTEXT, caller, now, {"assignment": assignment_id})
    if identified is not None:
        identified(fields[0])
    if outcome != "ok":
        raise messages.submit_refused(outcome, assignment_id, fields[1] or 0, 0)
    user_id, batch_id, taxonomy, safety, dual, single, rationale, response_ids = fields
    context = SubmitContext(
        user_id, batch_id, taxonomy, safety, dual, single, rationale, response_ids or []
    )
    payload = validate(context)
    params = {
        "assignment": assignment_id,
        "user": user_id,
        "payload": orjson.dumps(payload).decode(),
        "duration": duration_ms,
        "viewed": suggestion_viewed,
        "now": now,
    }
    outcome, *row = yield _SUBMIT, params
    # row: annotation id, revision, batch, item, submitted at, updated at, duration, viewed,
    # detail (the overlap, for 'gone'; 'gold_floor' for a gold answer to check)
    if outcome not in ("created", "revised", "unchanged"):
        # The function leaves the batch empty when it refuses early (an excluded caller): the
        # context read above already named the assignment's batch.
        refused_in = row[2] or batch_id
        raise messages.submit_refused(outcome, assignment_id, refused_in, int(row[8] or 0))
    annotation_id, revision, batch, item, submitted_at, updated_at, duration, viewed = row[:8]
    result: Outcome = outcome
    return Stored(
        result,
        assignment_id,
        annotation_id,
        revision,
        batch,
        item,
        submitted_at.astimezone(UTC),
        updated_at.astimezone(UTC),
        duration,
        viewed,
        payload,
        check_gold_floor=row[8] == "gold_floor",
    )


# ---------------------------------------------------------------- the two transports


def run(session: Session, steps: Steps[T]) -> T:
    """Runs an operation's calls on the session's connection, in its transaction."""
    session.flush()  # the functions read the tables, not this session's pending objects
    try:
        call = next(steps)
        while True:
            call = steps.send(_one(session, *call))
    except StopIteration as done:
        result: T = done.value
        return result
    finally:
        expire_queue_rows(session)  # the functions may have changed rows the session holds


async def run_async(pool: AsyncConnectionPool, steps: Steps[T]) -> T:
    """Runs an operation's calls on the hot path's pool, each its own transaction."""
    try:
        call = next(steps)
        while True:
            call = steps.send(await _one_async(pool, *call))
    except StopIteration as done:
        result: T = done.value
        return result


def expire_queue_rows(session: Session) -> None:
    """Marks this session's assignments, batch items and annotations stale after a queue
    function changed rows behind its back (users, batches and projects it never touches)."""
    for instance in list(session.identity_map.values()):
        if isinstance(instance, Assignment | BatchItem | Annotation):
            session.expire(instance)


def _one(session: Session, sql: str, params: Mapping[str, Any]) -> Row:
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


async def _one_async(pool: AsyncConnectionPool, sql: str, params: Mapping[str, Any]) -> Row:
    """The one row of `sql` on a connection of the hot path's pool (autocommit: the function
    call is the whole transaction, so there is no BEGIN or COMMIT round trip).

    A pooled connection that the server dropped (a restart) fails at once; the call is then
    made once more on another. Every function is safe to repeat even if the first call had
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


class HotPool:
    """PostgreSQL connections for the queue's hot path (`next` and the submit): psycopg's
    async pool in autocommit mode, used from the event loop. Opened on first use, in the loop
    that serves the app; closed with the app's lifespan (app/main.py).

    Not used while `get_session` is overridden: tests run each case in one transaction that is
    rolled back, which only the overriding session can see. The live-server tests
    (tests/queue/test_queue_concurrency.py, with a PostgreSQL restart) exercise this path.
    """

    def __init__(self, settings: Settings) -> None:
        url = make_url(settings.database_url).set(drivername="postgresql")
        self._pool = AsyncConnectionPool(
            url.render_as_string(hide_password=False),
            min_size=1,
            max_size=settings.db_hot_pool_size,
            # Waiting longer than a connect would take means the database is gone: 503.
            timeout=settings.db_connect_timeout_seconds,
            open=False,
            kwargs={
                "autocommit": True,
                "connect_timeout": settings.db_connect_timeout_seconds,
                "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
            },
        )
        self._opened = False

    async def get(self) -> AsyncConnectionPool:
        if not self._opened:
            self._opened = True
            await self._pool.open(wait=False)
        return self._pool

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()

    def stats(self) -> dict[str, int] | None:
        """The pool's sizes (psycopg_pool's `get_stats`), None before first use."""
        return self._pool.get_stats() if self._opened else None
