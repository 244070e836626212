"""Writing validated drafts: chunked inserts, de-duplication, one transaction per file.

Two writers with the same result: a portable one (SQLAlchemy Core, used on SQLite), and one
for PostgreSQL that inserts a chunk's items with a single statement and streams responses and
reference labels with COPY, inside the same transaction.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import psycopg
from sqlalchemy import insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import utcnow
from app.errors import ImportRejected
from app.imports.formats import (
    LABELS_AS,
    DraftItem,
    FormatChoice,
    LabelsAs,
    Limits,
    ReadStats,
    read_items,
    response_sha256,
)
from app.imports.sources import jsonl_source
from app.items.models import Item, ReferenceLabel, Response
from app.projects.models import Project

REFERENCE_ORIGIN = "import"
_ITEMS = Item.metadata.tables[Item.__tablename__]
_RESPONSES = Response.metadata.tables[Response.__tablename__]
_REFERENCE_LABELS = ReferenceLabel.metadata.tables[ReferenceLabel.__tablename__]

# (session, project id, drafts by content hash) -> the (item id, draft) pairs it created.
Created = list[tuple[int, DraftItem]]
ItemWriter = Callable[[Session, int, dict[str, DraftItem]], Created]


@dataclass
class ImportResult:
    items_created: int = 0
    items_duplicate: int = 0
    item_ids: list[int] = field(default_factory=list)
    prompts_with_one_answer: int = 0
    format: str = ""


def import_file(
    session: Session,
    project: Project,
    fp: IO[bytes],
    *,
    settings: Settings,
    fmt: FormatChoice = "auto",
    labels_as: LabelsAs = "ignore",
) -> ImportResult:
    """Imports `fp` (seekable: JSONL, gzip-compressed JSONL or Parquet) into `project`.
    Raises ImportRejected on the first bad line.

    Nothing is committed here: the caller's transaction (request or CLI) commits once the
    whole file has passed, so a rejected file leaves no trace.
    """
    if labels_as not in LABELS_AS:
        expected = " or ".join(LABELS_AS)
        raise ImportRejected(f"unknown labels_as {labels_as!r}; expected {expected}")
    # gzip and Parquet files are read as the JSON lines they hold (app/imports/sources.py).
    with jsonl_source(fp) as lines:
        return _import_lines(session, project, lines, settings, fmt, labels_as)


def _import_lines(
    session: Session,
    project: Project,
    fp: IO[bytes],
    settings: Settings,
    fmt: FormatChoice,
    labels_as: LabelsAs,
) -> ImportResult:
    limits = Limits(settings.max_field_bytes, settings.max_line_bytes)
    stats = ReadStats()
    result = ImportResult()
    drafts = read_items(
        fp, fmt, limits, labels=labels_as == "reference", taxonomy=project.taxonomy, stats=stats
    )
    project_id = project.id
    dialect = session.get_bind().dialect
    postgres = dialect.name == "postgresql" and dialect.driver == "psycopg"
    insert_items = _insert_items_postgres if postgres else _insert_items_portable

    def write(chunk: list[DraftItem]) -> None:
        _write_chunk(session, project_id, chunk, result, insert_items)

    # On PostgreSQL the server stores one chunk while this thread parses the next; SQLite
    # works in this process, so there is nothing to overlap.
    writer = _BackgroundWriter(write) if postgres else None
    submit = writer.submit if writer else write
    try:
        chunk: list[DraftItem] = []
        for draft in drafts:
            chunk.append(draft)
            if len(chunk) >= settings.import_chunk_size:
                submit(chunk)
                chunk = []
        if chunk:
            submit(chunk)
    except BaseException:
        if writer:
            writer.close(cancel=True)  # no write runs, and the session is free, after this
        raise
    if writer:
        writer.close()
        writer.raise_failure()
    result.prompts_with_one_answer = stats.prompts_with_one_answer
    result.format = stats.format
    return result


class _BackgroundWriter:
    """Runs `write(chunk)` on one worker thread, one chunk queued at most (memory stays flat).

    Only the worker touches the session until close() has returned. The first failure stops
    the writing; it is raised in the caller's thread by the next submit() or raise_failure().
    close(cancel=True) drops what is still queued (the caller is about to roll back).
    """

    def __init__(self, write: Callable[[list[DraftItem]], None]) -> None:
        self._write = write
        self._queue: queue.Queue[list[DraftItem] | None] = queue.Queue(maxsize=1)
        self._failure: BaseException | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name="import-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._failure is None and not self._cancelled:
                try:
                    self._write(chunk)
                except BaseException as exc:  # handed over to the caller's thread
                    self._failure = exc

    def submit(self, chunk: list[DraftItem]) -> None:
        self.raise_failure()
        self._queue.put(chunk)

    def close(self, *, cancel: bool = False) -> None:
        self._cancelled = cancel
        self._queue.put(None)
        self._thread.join()

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure


def _write_chunk(
    session: Session,
    project_id: int,
    chunk: list[DraftItem],
    result: ImportResult,
    insert_items: ItemWriter,
) -> None:
    # Repeats inside the chunk keep their first line; repeats of earlier chunks (already
    # flushed in this transaction) and of earlier imports are found by the database.
    unique: dict[str, DraftItem] = {}
    for draft in chunk:
        unique.setdefault(draft.content_hash(), draft)
    created = insert_items(session, project_id, unique)
    result.items_duplicate += len(chunk) - len(created)
    result.items_created += len(created)
    result.item_ids.extend(item_id for item_id, _ in created)


def _response_rows(created: Created) -> Iterator[tuple[int, int, str, str, str]]:
    for item_id, draft in created:
        for position, r in enumerate(draft.responses):
            digest = r.sha256 or response_sha256(draft.prompt, r.text)
            yield item_id, position, r.text, r.source, digest


def _label_rows(created: Created) -> Iterator[tuple[int, dict[str, Any]]]:
    for item_id, draft in created:
        payload = draft.reference_payload()
        if payload is not None:
            yield item_id, payload


def _insert_items_portable(
    session: Session, project_id: int, unique: dict[str, DraftItem]
) -> Created:
    def ids_of(hashes: list[str]) -> dict[str, int]:
        query = select(Item.content_hash, Item.id).where(
            Item.project_id == project_id, Item.content_hash.in_(hashes)
        )
        return {digest: item_id for digest, item_id in session.execute(query)}

    existing = ids_of(list(unique))
    fresh = [(digest, d) for digest, d in unique.items() if digest not in existing]
    if not fresh:
        return []
    # Core inserts on the tables (executemany), not ORM bulk inserts: no per-row ORM work,
    # and no per-row RETURNING, which SQLite would need to keep ids in parameter order.
    rows = [
        {
            "project_id": project_id,
            "external_id": d.external_id,
            "prompt": d.prompt,
            "prompt_source": d.prompt_source,
            "meta": d.meta,
            "content_hash": digest,
        }
        for digest, d in fresh
    ]
    session.execute(insert(_ITEMS), rows)
    ids = ids_of([digest for digest, _ in fresh])
    created = [(ids[digest], d) for digest, d in fresh]
    keys = ("item_id", "position", "text", "source", "sha256")
    responses = [dict(zip(keys, row, strict=True)) for row in _response_rows(created)]
    session.execute(insert(_RESPONSES), responses)
    labels = [
        {"item_id": item_id, "origin": REFERENCE_ORIGIN, "payload": payload}
        for item_id, payload in _label_rows(created)
    ]
    if labels:
        session.execute(insert(_REFERENCE_LABELS), labels)
    return created


# One statement per chunk: arrays in, the unique index decides what is new, ids back. ON
# CONFLICT uses the (project_id, content_hash) index whatever the planner thinks of the
# table's statistics (a table filled by this very transaction has none), and it also settles
# a concurrent import of the same items. A skipped duplicate still uses up a sequence number.
_INSERT_ITEMS_PG = text(
    """
    INSERT INTO items (project_id, external_id, prompt, prompt_source, meta, content_hash,
                       created_at)
    SELECT :project_id, t.external_id, t.prompt, t.prompt_source, CAST(t.meta AS json),
           t.content_hash, :created_at
    FROM unnest(CAST(:external_ids AS varchar[]), CAST(:prompts AS text[]),
                CAST(:sources AS varchar[]), CAST(:metas AS text[]),
                CAST(:hashes AS varchar[]))
         WITH ORDINALITY AS t(external_id, prompt, prompt_source, meta, content_hash, n)
    ORDER BY t.n
    ON CONFLICT (project_id, content_hash) DO NOTHING
    RETURNING id, content_hash
    """
)


def _insert_items_postgres(
    session: Session, project_id: int, unique: dict[str, DraftItem]
) -> Created:
    drafts = list(unique.values())
    now = utcnow()
    returned = session.execute(
        _INSERT_ITEMS_PG,
        {
            "project_id": project_id,
            "created_at": now,
            "external_ids": [d.external_id for d in drafts],
            "prompts": [d.prompt for d in drafts],
            "sources": [d.prompt_source for d in drafts],
            # The JSON column stores Python None as JSON null, as the portable writer does.
            "metas": [json.dumps(d.meta) for d in drafts],
            "hashes": list(unique),
        },
    )
    ids = {digest: item_id for item_id, digest in returned}
    created = [(ids[digest], d) for digest, d in unique.items() if digest in ids]
    if not created:
        return []
    # The session's own connection, so the COPYs belong to the import's transaction.
    driver = session.connection().connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    statement = "COPY responses (item_id, position, text, source, sha256) FROM STDIN"
    try:
        with driver.cursor() as cur:
            with cur.copy(statement) as cp:
                for row in _response_rows(created):
                    cp.write_row(row)
            statement = "COPY reference_labels (item_id, origin, payload, created_at) FROM STDIN"
            with cur.copy(statement) as cp:
                for item_id, payload in _label_rows(created):
                    cp.write_row((item_id, REFERENCE_ORIGIN, json.dumps(payload), now))
    except psycopg.Error as exc:
        # Surface driver errors as SQLAlchemy's, like every other statement (a lost server
        # becomes OperationalError, which the web layer turns into a 503).
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc
    return created
