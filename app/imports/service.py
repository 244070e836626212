"""Writing validated drafts: chunked inserts, de-duplication, one transaction per file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import ImportRejected
from app.imports.formats import DraftItem, Limits, ReadStats, read_items, response_sha256
from app.items.models import Item, ReferenceLabel, Response
from app.projects.models import Project

REFERENCE_ORIGIN = "import"


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
    fmt: str = "auto",
    labels_as: str = "ignore",
) -> ImportResult:
    """Imports `fp` into `project`. Raises ImportRejected on the first bad line.

    Nothing is committed here: the caller's transaction (request or CLI) commits once the
    whole file has passed, so a rejected file leaves no trace.
    """
    if labels_as not in ("reference", "ignore"):
        raise ImportRejected(f"unknown labels_as {labels_as!r}; expected reference or ignore")
    limits = Limits(settings.max_field_bytes, settings.max_line_bytes)
    stats = ReadStats()
    result = ImportResult()
    drafts = read_items(
        fp, fmt, limits, labels=labels_as == "reference", taxonomy=project.taxonomy, stats=stats
    )
    chunk: list[DraftItem] = []
    for draft in drafts:
        chunk.append(draft)
        if len(chunk) >= settings.import_chunk_size:
            _write_chunk(session, project.id, chunk, result)
            chunk = []
    if chunk:
        _write_chunk(session, project.id, chunk, result)
    result.prompts_with_one_answer = stats.prompts_with_one_answer
    result.format = stats.format
    return result


def _write_chunk(
    session: Session, project_id: int, chunk: list[DraftItem], result: ImportResult
) -> None:
    hashes = [d.content_hash() for d in chunk]
    # Earlier chunks of this file are already flushed, so this also catches in-file repeats.
    existing = set(
        session.scalars(
            select(Item.content_hash).where(
                Item.project_id == project_id, Item.content_hash.in_(set(hashes))
            )
        )
    )
    fresh: list[tuple[DraftItem, str]] = []
    for draft, digest in zip(chunk, hashes, strict=True):
        if digest in existing:
            result.items_duplicate += 1
            continue
        existing.add(digest)
        fresh.append((draft, digest))
    if not fresh:
        return
    rows = [
        {
            "project_id": project_id,
            "external_id": d.external_id,
            "prompt": d.prompt,
            "prompt_source": d.prompt_source,
            "meta": d.meta,
            "content_hash": digest,
        }
        for d, digest in fresh
    ]
    ids = list(session.scalars(insert(Item).returning(Item.id, sort_by_parameter_order=True), rows))
    response_rows: list[dict[str, Any]] = []
    label_rows: list[dict[str, Any]] = []
    for item_id, (draft, _) in zip(ids, fresh, strict=True):
        for position, r in enumerate(draft.responses):
            response_rows.append(
                {
                    "item_id": item_id,
                    "position": position,
                    "text": r.text,
                    "source": r.source,
                    "sha256": response_sha256(draft.prompt, r.text),
                }
            )
        payload = draft.reference_payload()
        if payload is not None:
            label_rows.append({"item_id": item_id, "origin": REFERENCE_ORIGIN, "payload": payload})
    session.execute(insert(Response), response_rows)
    if label_rows:
        session.execute(insert(ReferenceLabel), label_rows)
    result.items_created += len(ids)
    result.item_ids.extend(ids)
