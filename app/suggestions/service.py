"""Uploading a named origin's suggestions into a project, and reading them back.

A suggestion is a `reference_labels` row (one per item and origin) holding labels in response
positions, plus an optional confidence and analysis. An upload replaces everything the origin
had in the project: lines update or create rows, and the origin's rows for items the file no
longer names are removed. Nothing is committed here: a bad line raises ImportRejected (naming
the line) and the caller's transaction rolls back, so a refused file leaves no trace.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import IO, Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from app.config import Settings
from app.consensus.votes import SEVERITY_NAMES
from app.db import utcnow
from app.errors import ImportRejected, Invalid
from app.imports.lines import RawLine, iter_lines
from app.imports.sources import jsonl_source
from app.items.models import Item, ReferenceLabel, Response
from app.projects.models import Project

ORIGIN_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}")
PREFERENCES = ("helpfulness", "harmlessness")
CHUNK = 1000
_FIELDS = frozenset({"item_id", "external_id", "responses", *PREFERENCES, "analysis", "confidence"})
_LABELS = ReferenceLabel.metadata.tables[ReferenceLabel.__tablename__]


@dataclass
class SuggestionResult:
    created: int = 0
    updated: int = 0
    removed: int = 0


@dataclass(frozen=True, slots=True)
class _Parsed:
    line: int
    item_id: int
    payload: dict[str, Any]
    confidence: float | None
    analysis: str | None


def check_origin(origin: str) -> str:
    if not ORIGIN_PATTERN.fullmatch(origin):
        raise Invalid(
            "origin: 1 to 64 letters, digits or _.:@- (starting with a letter or digit), "
            f"got {origin[:80]!r}",
            field="origin",
        )
    return origin


def import_suggestions(
    session: Session, project: Project, fp: IO[bytes], origin: str, *, settings: Settings
) -> SuggestionResult:
    """Replaces the origin's suggestions in `project` with the NDJSON lines of `fp`."""
    check_origin(origin)
    result = SuggestionResult()
    seen: dict[int, int] = {}  # item id -> the line that named it
    with jsonl_source(fp) as lines:
        reader = iter_lines(lines, settings.max_line_bytes)
        while chunk := list(islice(reader, CHUNK)):
            parsed = _parse_chunk(session, project, chunk, settings, seen)
            _write(session, origin, parsed, result)
    result.removed = _remove_unnamed(session, project.id, origin, set(seen))
    session.flush()
    return result


def _parse_chunk(
    session: Session,
    project: Project,
    chunk: Sequence[RawLine],
    settings: Settings,
    seen: dict[int, int],
) -> list[_Parsed]:
    by_id, by_external = _lookups(session, project.id, chunk)
    n_responses = _response_counts(session, {*by_id.values(), *_flatten(by_external)})
    taxonomy = frozenset(str(name) for name in project.taxonomy)
    out = []
    for raw in chunk:
        item_id = _item_of(raw, by_id, by_external)
        if item_id in seen:
            raise ImportRejected(
                f"item {item_id} is already given on line {seen[item_id]}", line=raw.number
            )
        seen[item_id] = raw.number
        out.append(_parse_line(raw, item_id, n_responses.get(item_id, 0), taxonomy, settings))
    return out


def _flatten(groups: dict[str, list[int]]) -> Iterator[int]:
    for ids in groups.values():
        yield from ids


def _lookups(
    session: Session, project_id: int, chunk: Sequence[RawLine]
) -> tuple[dict[int, int], dict[str, list[int]]]:
    """The chunk's item ids that belong to the project, and its external ids' items."""
    wanted_ids = {v for r in chunk if _is_int(v := r.data.get("item_id"))}
    wanted_external = {v for r in chunk if isinstance(v := r.data.get("external_id"), str)}
    by_id: dict[int, int] = {}
    if wanted_ids:
        query = select(Item.id).where(Item.project_id == project_id, Item.id.in_(wanted_ids))
        by_id = {i: i for i in session.scalars(query)}
    by_external: dict[str, list[int]] = {}
    if wanted_external:
        query2 = select(Item.external_id, Item.id).where(
            Item.project_id == project_id, Item.external_id.in_(wanted_external)
        )
        for external_id, item_id in session.execute(query2):
            by_external.setdefault(str(external_id), []).append(item_id)
    return by_id, by_external


def _response_counts(session: Session, item_ids: set[int]) -> dict[int, int]:
    if not item_ids:
        return {}
    query = (
        select(Response.item_id, func.count())
        .where(Response.item_id.in_(item_ids))
        .group_by(Response.item_id)
    )
    return {item_id: n for item_id, n in session.execute(query)}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _item_of(raw: RawLine, by_id: dict[int, int], by_external: dict[str, list[int]]) -> int:
    data, line = raw.data, raw.number
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ImportRejected("unknown field", line=line, field=unknown[0])
    if "item_id" not in data and "external_id" not in data:
        raise ImportRejected("give item_id or external_id", line=line)
    found: int | None = None
    if "item_id" in data:
        value = data["item_id"]
        if not _is_int(value):
            raise ImportRejected("expected an integer", line=line, field="item_id")
        if value not in by_id:
            raise ImportRejected(f"no item {value} in this project", line=line, field="item_id")
        found = value
    if "external_id" in data:
        external = data["external_id"]
        if not isinstance(external, str):
            raise ImportRejected("expected a string", line=line, field="external_id")
        matches = by_external.get(external, [])
        if not matches:
            raise ImportRejected(
                f"no item with external id {external[:200]!r} in this project",
                line=line,
                field="external_id",
            )
        if len(matches) > 1:
            raise ImportRejected(
                f"{len(matches)} items have external id {external[:200]!r}: use item_id",
                line=line,
                field="external_id",
            )
        if found is not None and found != matches[0]:
            raise ImportRejected(
                f"names item {matches[0]}, but item_id says {found}",
                line=line,
                field="external_id",
            )
        found = matches[0]
    assert found is not None
    return found


def _parse_line(
    raw: RawLine, item_id: int, n_responses: int, taxonomy: frozenset[str], settings: Settings
) -> _Parsed:
    data, line = raw.data, raw.number

    def fail(field: str, message: str) -> ImportRejected:
        return ImportRejected(message, line=line, field=field)

    answers = data.get("responses")
    if not isinstance(answers, list) or not answers:
        raise fail("responses", "expected a non-empty array of labels")
    labels: list[dict[str, Any]] = []
    positions: set[int] = set()
    for k, entry in enumerate(answers):
        where = f"responses[{k}]"
        if not isinstance(entry, dict):
            raise fail(where, "expected an object")
        extra = sorted(set(entry) - {"position", "is_safe", "harm_categories", "severity"})
        if extra:
            raise fail(f"{where}.{extra[0]}", "unknown field")
        position = entry.get("position")
        if not isinstance(position, int) or isinstance(position, bool):
            position = -1
        if not 0 <= position < n_responses:
            raise fail(
                f"{where}.position",
                f"expected a response position 0..{n_responses - 1} of item {item_id}",
            )
        if position in positions:
            raise fail(f"{where}.position", f"position {position} is given twice")
        positions.add(position)
        is_safe = entry.get("is_safe")
        if not isinstance(is_safe, bool):
            raise fail(f"{where}.is_safe", "expected true or false")
        categories = entry.get("harm_categories", [])
        if categories is None:
            categories = []
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise fail(f"{where}.harm_categories", "expected an array of category names")
        unknown = [c for c in categories if c not in taxonomy]
        if unknown:
            raise fail(f"{where}.harm_categories", f"unknown harm category {unknown[0][:200]!r}")
        severity = entry.get("severity")
        if severity is not None and severity not in SEVERITY_NAMES:
            raise fail(f"{where}.severity", f"expected one of {', '.join(SEVERITY_NAMES)} or null")
        if is_safe and (categories or severity is not None):
            raise fail(where, "a safe response has no harm category or severity")
        labels.append(
            {
                "position": position,
                "is_safe": is_safe,
                "harm_categories": list(dict.fromkeys(categories)),
                "severity": severity,
            }
        )
    labels.sort(key=lambda label: label["position"])
    payload: dict[str, Any] = {"responses": labels}
    for dim in PREFERENCES:
        if dim in data:
            payload[dim] = _ranking(data[dim], n_responses, lambda m, d=dim: fail(d, m))
    confidence = data.get("confidence")
    if confidence is not None:
        if isinstance(confidence, bool) or not isinstance(confidence, int | float):
            raise fail("confidence", "expected a number between 0 and 1")
        if not (math.isfinite(confidence) and 0 <= confidence <= 1):
            raise fail("confidence", "expected a number between 0 and 1")
        confidence = float(confidence)
    analysis = data.get("analysis")
    if analysis is not None:
        if not isinstance(analysis, str):
            raise fail("analysis", "expected a string (Markdown)")
        size = len(analysis.encode("utf-8"))
        if size > settings.max_field_bytes:
            raise fail("analysis", f"is {size} bytes, more than {settings.max_field_bytes}")
    return _Parsed(line, item_id, payload, confidence, analysis or None)


def _ranking(value: Any, n: int, fail: Any) -> list[int]:
    """A preference: every response position once, best first."""
    if not isinstance(value, list) or not all(_is_int(p) for p in value):
        raise fail("expected an array of response positions, best first")
    if sorted(value) != list(range(n)):
        raise fail(f"expected each response position 0..{n - 1} exactly once, best first")
    return list(value)


def _write(session: Session, origin: str, parsed: list[_Parsed], result: SuggestionResult) -> None:
    if not parsed:
        return
    query = select(ReferenceLabel.item_id, ReferenceLabel.id).where(
        ReferenceLabel.origin == origin,
        ReferenceLabel.item_id.in_([p.item_id for p in parsed]),
    )
    existing = {item_id: label_id for item_id, label_id in session.execute(query)}
    now = utcnow()  # a replaced suggestion is written anew (the dashboard's cache sees it)
    updates = [
        {
            "id": existing[p.item_id],
            "created_at": now,
            "payload": p.payload,
            "confidence": p.confidence,
            "analysis": p.analysis,
        }
        for p in parsed
        if p.item_id in existing
    ]
    inserts = [
        {
            "item_id": p.item_id,
            "origin": origin,
            "created_at": now,
            "payload": p.payload,
            "confidence": p.confidence,
            "analysis": p.analysis,
        }
        for p in parsed
        if p.item_id not in existing
    ]
    if updates:
        session.execute(update(ReferenceLabel), updates)
    if inserts:
        session.execute(insert(_LABELS), inserts)
    result.updated += len(updates)
    result.created += len(inserts)


def _remove_unnamed(session: Session, project_id: int, origin: str, kept: set[int]) -> int:
    """Deletes the origin's suggestions in the project for items the upload did not name."""
    query = (
        select(ReferenceLabel.id, ReferenceLabel.item_id)
        .join(Item, Item.id == ReferenceLabel.item_id)
        .where(Item.project_id == project_id, ReferenceLabel.origin == origin)
    )
    stale = [label_id for label_id, item_id in session.execute(query) if item_id not in kept]
    for start in range(0, len(stale), CHUNK):
        ids = stale[start : start + CHUNK]
        session.execute(delete(ReferenceLabel).where(ReferenceLabel.id.in_(ids)))
    return len(stale)


def origins_of_item(session: Session, item_id: int) -> list[ReferenceLabel]:
    """The item's suggestions, one per origin, oldest origin first."""
    query = select(ReferenceLabel).where(ReferenceLabel.item_id == item_id)
    return list(session.scalars(query.order_by(ReferenceLabel.id)))
