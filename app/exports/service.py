"""Streaming exports with constant memory.

Items are read in keyset pages (``PAGE_SIZE`` item ids at a time, in id order); each page
loads its items, responses, batch memberships, annotations and adjudications with one query
each, so the number of queries grows with pages, never with items. A worker thread loads the
next page while the current one is turned into lines (``bulk.prefetch``). Each page's reads run
in their own short transaction: on SQLite a transaction holds the write lock, and a long export
must not block annotators.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Text, cast, exists, func, select
from sqlalchemy.orm import Session

from app.annotations.counted import counted
from app.annotations.models import Adjudication, Annotation
from app.batches.models import Assignment, Batch, BatchItem
from app.consensus.aggregate import item_consensus
from app.consensus.labels import FinalLabels, labels_from_payload, vote_from_payload
from app.consensus.service import item_id_pages
from app.core.bulk import fetch_all, fetch_plain, gc_paused, prefetch
from app.errors import Invalid, NotFound
from app.exports.filters import (
    ExportFilters,
    has_dimensions,
    select_labels,
    select_majority,
    split_of,
)
from app.exports.formats import FORMATS, LINES, NEEDS, ExportFormat, ItemRow, ResponseRow
from app.exports.reviewed import accepted_items
from app.items.models import Item, Response
from app.projects.models import Project
from app.suggestions.viewed import origins_viewed

PAGE_SIZE = 1000
FIRST_PAGE = 250
CHUNK_ITEMS = 500
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class BatchInfo:
    id: int
    project_id: int
    overlap: int
    # The annotations an item needs by default: the overlap, or its minimum when adaptive.
    min_annotations: int


@dataclass(frozen=True, slots=True)
class Scope:
    """The batches an export reads, and the taxonomy of each of their projects."""

    batches: dict[int, BatchInfo]
    taxonomies: dict[int, tuple[str, ...]]


def resolve_scope(session: Session, filters: ExportFilters) -> Scope:
    """Checks the filters against the database (404 for an unknown batch or project)."""
    query = select(Batch).order_by(Batch.id)
    if filters.batch_id is not None:
        batch = session.get(Batch, filters.batch_id)
        if batch is None:
            raise NotFound(f"no batch {filters.batch_id}")
        if filters.project_id is not None and batch.project_id != filters.project_id:
            raise Invalid(f"batch_id: batch {batch.id} is not in project {filters.project_id}")
        query = query.where(Batch.id == filters.batch_id)
    if filters.project_id is not None:
        if session.get(Project, filters.project_id) is None:
            raise NotFound(f"no project {filters.project_id}")
        query = query.where(Batch.project_id == filters.project_id)
    batches = {
        b.id: BatchInfo(b.id, b.project_id, b.overlap, b.min_overlap)
        for b in session.scalars(query)
    }
    project_ids = {b.project_id for b in batches.values()}
    taxonomies = {
        row.id: tuple(row.taxonomy)
        for row in session.execute(
            select(Project.id, Project.taxonomy).where(Project.id.in_(project_ids))
        )
    }
    return Scope(batches, taxonomies)


def count_units(session: Session, fmt: ExportFormat, scope: Scope) -> int:
    """What the progress callback counts up to: annotations for the ``annotations`` format,
    else distinct items of the scope's batches."""
    if not scope.batches:
        return 0
    batch_ids = list(scope.batches)
    if fmt == "annotations":
        query = select(func.count()).where(Annotation.batch_id.in_(batch_ids), counted())
    else:
        query = select(func.count(func.distinct(BatchItem.item_id))).where(
            BatchItem.batch_id.in_(batch_ids)
        )
    return int(session.scalar(query) or 0)


def pseudonym(secret: str, user_id: int) -> str:
    """Stable, keyed, non-reversible annotator name: the same user always gets the same one."""
    mac = hmac.new(secret.encode("utf-8"), f"annotator:{user_id}".encode(), hashlib.sha256)
    return "a-" + mac.hexdigest()[:16]


def _dumps(record: dict[str, Any]) -> bytes:
    # orjson keeps insertion order, writes UTF-8 unescaped and is several times faster.
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


def export_lines(
    session: Session,
    fmt: ExportFormat,
    filters: ExportFilters,
    scope: Scope,
    *,
    secret: str = "",
    page_size: int = PAGE_SIZE,
    progress: Progress | None = None,
) -> Iterator[bytes]:
    """NDJSON as UTF-8 bytes, one chunk per page (many lines, each ending in a newline)."""
    if fmt not in FORMATS:
        raise Invalid(f"format: unknown export format {fmt!r}; use {', '.join(FORMATS)}")
    if fmt == "annotations":
        records = _annotation_pages(session, filters, scope, secret, page_size, progress)
    else:
        records = _consensus_pages(session, fmt, filters, scope, page_size, progress)
    for page in records:
        if page:
            with gc_paused():
                chunk = b"".join([_dumps(r) for r in page])
            yield chunk


# ------------------------------------------------------------------------ consensus formats


@dataclass(slots=True)
class _Page:
    items: list[ItemRow]
    batches_of: dict[int, list[int]]
    votes: dict[tuple[int, int], list[tuple[str, str]]]  # (annotator, payload text)
    adjudications: dict[tuple[int, int], dict[str, Any]]
    # With `accepted_only`: the (batch, item) pairs that pass it; None without the filter.
    accepted: set[tuple[int, int]] | None = None


def _load_page(
    session: Session, ids: list[int], batch_ids: list[int], *, accepted_only: bool = False
) -> _Page:
    # Every scope item in [lo, hi] is on this page (the ids are the next ones in scope), so
    # range conditions select exactly the page and use the (item_id, ...) indexes.
    lo, hi = ids[0], ids[-1]
    conn = session.connection()  # Core rows: no ORM result machinery on the hot path
    batches_of: dict[int, list[int]] = {}
    # A gold item's answers never make its exported labels in that batch (issue 7).
    for batch_id, item_id in fetch_plain(
        conn,
        select(BatchItem.batch_id, BatchItem.item_id)
        .where(BatchItem.batch_id.in_(batch_ids), BatchItem.item_id >= lo, BatchItem.item_id <= hi)
        .where(BatchItem.is_gold.is_(False))
        .order_by(BatchItem.batch_id.desc()),
    ):
        batches_of.setdefault(item_id, []).append(batch_id)

    def in_scope(column: Any) -> Any:
        return exists().where(BatchItem.item_id == column, BatchItem.batch_id.in_(batch_ids))

    responses: dict[int, list[ResponseRow]] = {i: [] for i in ids}
    for item_id, rid, position, text, source, sha in fetch_plain(
        conn,
        select(
            Response.item_id,
            Response.id,
            Response.position,
            Response.text,
            Response.source,
            Response.sha256,
        )
        .where(Response.item_id >= lo, Response.item_id <= hi, in_scope(Response.item_id))
        .order_by(Response.item_id, Response.position),
    ):
        responses[item_id].append(ResponseRow(rid, position, text, source, sha))
    items = [
        ItemRow(item_id, project_id, prompt, prompt_source, responses[item_id])
        for item_id, project_id, prompt, prompt_source in fetch_plain(
            conn,
            select(Item.id, Item.project_id, Item.prompt, Item.prompt_source)
            .where(Item.id >= lo, Item.id <= hi, in_scope(Item.id))
            .order_by(Item.id),
        )
    ]
    votes: dict[tuple[int, int], list[tuple[str, str]]] = {}
    # Payloads come as text, parsed later with orjson (several times faster than the driver's
    # json module), and only once when an item's votes are identical.
    for batch_id, item_id, annotator_id, payload in fetch_plain(
        conn,
        select(
            Annotation.batch_id,
            Annotation.item_id,
            Annotation.annotator_id,
            cast(Annotation.payload, Text),
        )
        .where(
            Annotation.batch_id.in_(batch_ids),
            Annotation.item_id >= lo,
            Annotation.item_id <= hi,
            counted(),
        )
        .order_by(Annotation.id),
    ):
        votes.setdefault((batch_id, item_id), []).append((str(annotator_id), payload))
    adjudications: dict[tuple[int, int], dict[str, Any]] = {}
    for batch_id, item_id, adjudicated in fetch_all(
        conn,
        select(Adjudication.batch_id, Adjudication.item_id, Adjudication.payload)
        .where(
            Adjudication.batch_id.in_(batch_ids),
            Adjudication.item_id >= lo,
            Adjudication.item_id <= hi,
        )
        .order_by(Adjudication.id),
    ):
        adjudications[(batch_id, item_id)] = adjudicated  # the newest one wins
    accepted = accepted_items(conn, batch_ids, ids) if accepted_only else None
    return _Page(items, batches_of, votes, adjudications, accepted)


def _labels_for(
    fmt: ExportFormat,
    filters: ExportFilters,
    scope: Scope,
    page: _Page,
    item: ItemRow,
    taxonomy: Sequence[str],
) -> FinalLabels | None:
    """Labels of the newest batch of the item that passes the filters (one line set per item)."""
    needs = NEEDS[fmt]
    response_ids = [r.id for r in item.responses]
    for batch_id in page.batches_of.get(item.id, ()):
        key = (batch_id, item.id)
        if page.accepted is not None and key not in page.accepted:
            continue
        adjudicated = page.adjudications.get(key)
        if adjudicated is not None:
            labels = labels_from_payload(adjudicated, taxonomy)
            if has_dimensions(labels, needs, response_ids):
                return labels
            continue
        raw = page.votes.get(key)
        if not raw:
            continue
        overlap = scope.batches[batch_id].min_annotations
        texts = [text for _, text in raw]
        top = max(texts, key=texts.count)  # a handful of votes: cheaper than a Counter
        top_count = texts.count(top)
        payloads = {text: orjson.loads(text) for text in set(texts)}
        same_questions = len({frozenset(p) for p in payloads.values()}) == 1
        if top_count == len(texts) or (
            2 * top_count > len(texts) and same_questions and filters.min_agreement is None
        ):
            found = select_majority(
                filters,
                needs,
                overlap=overlap,
                n_votes=len(raw),
                payload=payloads[top],
                taxonomy=taxonomy,
                response_ids=response_ids,
            )
        else:
            votes = [vote_from_payload(a, payloads[text]) for a, text in raw]
            found = select_labels(
                filters,
                needs,
                overlap=overlap,
                votes=votes,
                consensus=item_consensus(votes, taxonomy),
                taxonomy=taxonomy,
                response_ids=response_ids,
            )
        if found is not None:
            return found
    return None


def _consensus_pages(
    session: Session,
    fmt: ExportFormat,
    filters: ExportFilters,
    scope: Scope,
    page_size: int,
    progress: Progress | None,
) -> Iterator[list[dict[str, Any]]]:
    batch_ids = list(scope.batches)
    if not batch_ids:
        return

    def pages() -> Iterator[tuple[int, _Page]]:
        for ids in item_id_pages(session, batch_ids, page_size, first_size=FIRST_PAGE):
            with gc_paused():
                page = _load_page(session, ids, batch_ids, accepted_only=filters.accepted_only)
            yield len(ids), page

    for n_ids, page in prefetch(pages()):
        yield from page_records(fmt, filters, scope, page)
        if progress is not None:
            progress(n_ids)


def page_records(
    fmt: ExportFormat, filters: ExportFilters, scope: Scope, page: _Page
) -> Iterator[list[dict[str, Any]]]:
    """A page's lines, in a few chunks of CHUNK_ITEMS items: a smaller peak than one chunk per
    page, still few writes."""
    make_lines = LINES[fmt]
    for start in range(0, len(page.items), CHUNK_ITEMS):
        with gc_paused():
            out: list[dict[str, Any]] = []
            for item in page.items[start : start + CHUNK_ITEMS]:
                if filters.split is not None and (
                    split_of(item.prompt, filters.test_fraction) != filters.split
                ):
                    continue
                taxonomy = scope.taxonomies[item.project_id]
                labels = _labels_for(fmt, filters, scope, page, item, taxonomy)
                if labels is not None:
                    out.extend(make_lines(item, labels, taxonomy))
        yield out


def export_page(
    session: Session, fmt: ExportFormat, filters: ExportFilters, scope: Scope, ids: list[int]
) -> bytes:
    """One page of a consensus format as NDJSON bytes (the unit of work of a parallel export)."""
    with gc_paused():
        page = _load_page(session, ids, list(scope.batches), accepted_only=filters.accepted_only)
    chunks = []
    for records in page_records(fmt, filters, scope, page):
        with gc_paused():
            chunks.append(b"".join([_dumps(r) for r in records]))
    return b"".join(chunks)


# ------------------------------------------------------------------------ annotations format


def _annotation_pages(
    session: Session,
    filters: ExportFilters,
    scope: Scope,
    secret: str,
    page_size: int,
    progress: Progress | None,
) -> Iterator[list[dict[str, Any]]]:
    """Every annotation of the scope, in id order; only project, batch, split and review
    acceptance filter."""
    batch_ids = list(scope.batches)
    if not batch_ids:
        return
    names: dict[int, str] = {}
    after = 0
    while True:
        rows = session.execute(
            select(
                Annotation.id,
                Annotation.item_id,
                Annotation.batch_id,
                Annotation.assignment_id,
                Annotation.annotator_id,
                Annotation.revision,
                Annotation.duration_ms,
                Annotation.suggestion_viewed,
                Annotation.created_at,
                Annotation.updated_at,
                Annotation.payload,
                Annotation.guideline_version_id,
                Assignment.submitted_at,
            )
            .join(Assignment, Assignment.id == Annotation.assignment_id)
            .where(
                Annotation.batch_id.in_(batch_ids),
                Annotation.id > after,
                counted(),
                # Qualification answers are a member's test, never data.
                Assignment.is_qualification.is_(False),
            )
            .order_by(Annotation.id)
            .limit(page_size)
        ).all()
        if not rows:
            return
        item_ids = list({r.item_id for r in rows})
        accepted = (
            accepted_items(session.connection(), batch_ids, item_ids)
            if filters.accepted_only
            else None
        )
        viewed = origins_viewed(session, [r.assignment_id for r in rows])
        positions = dict(
            session.execute(
                select(Response.id, Response.position).where(Response.item_id.in_(item_ids))
            ).all()
        )
        sides: dict[int, str] = {}
        items: dict[int, tuple[str | None, Any]] = {}
        columns = [Item.id, Item.external_id, Item.meta]
        if filters.split is not None:
            columns.append(Item.prompt)
        for row in session.execute(select(*columns).where(Item.id.in_(item_ids))):
            items[row.id] = (row.external_id, row.meta)
            if filters.split is not None:
                sides[row.id] = split_of(row.prompt, filters.test_fraction)
        with gc_paused():
            out = []
            for r in rows:
                if filters.split is not None and sides.get(r.item_id) != filters.split:
                    continue
                if accepted is not None and (r.batch_id, r.item_id) not in accepted:
                    continue
                if r.annotator_id not in names:
                    names[r.annotator_id] = pseudonym(secret, r.annotator_id)
                submitted = r.submitted_at or r.created_at
                external_id, meta = items.get(r.item_id, (None, None))
                record: dict[str, Any] = {
                    "item_id": r.item_id,
                    "external_id": external_id,
                    "item_meta": meta,
                    "batch_id": r.batch_id,
                    "assignment_id": r.assignment_id,
                    "annotator": names[r.annotator_id],
                    "submitted_at": submitted.isoformat(),
                    "updated_at": r.updated_at.isoformat(),
                    "revision": r.revision,
                    "duration_ms": r.duration_ms,
                    "suggestion_viewed": r.suggestion_viewed,
                    "suggestion_origins_viewed": viewed.get(r.assignment_id, []),
                    "guideline_version_id": r.guideline_version_id,
                }
                for key, value in r.payload.items():
                    if key == "responses":
                        value = [
                            {
                                "response_id": v["response_id"],
                                "position": positions.get(v["response_id"]),
                                **{k: x for k, x in v.items() if k != "response_id"},
                            }
                            for v in value
                        ]
                    record[key] = value
                out.append(record)
        if progress is not None:
            progress(len(rows))
        yield out
        after = rows[-1].id
