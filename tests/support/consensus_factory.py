"""Builds projects, batches and submitted annotations directly in the database.

Labels are written by response *position* and stored by response id, as the API stores them.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.annotations.models import Annotation
from app.auth.models import User
from app.batches.models import Assignment, Batch, BatchItem
from app.items.models import Item, Response
from app.projects.models import Project
from app.projects.taxonomy import PKU_SAFERLHF_19

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def sha(prompt: str, text: str) -> str:
    return hashlib.sha256((prompt + text).encode("utf-8")).hexdigest()


@dataclass
class Built:
    project: Project
    batch: Batch
    items: list[Item]
    responses: dict[int, list[Response]]  # item id -> responses by position

    def ids(self, item: Item) -> list[int]:
        return [r.id for r in self.responses[item.id]]


def user(db: Session, role: str = "annotator", name: str | None = None) -> User:
    u = User(
        username=name or f"u{uuid.uuid4().hex[:8]}", role=role, password_hash="x", is_active=True
    )
    db.add(u)
    db.flush()
    return u


def build(
    db: Session,
    n_items: int = 3,
    n_responses: int = 2,
    *,
    overlap: int = 3,
    taxonomy: Sequence[str] = PKU_SAFERLHF_19,
    ask_single: bool = False,
    project: Project | None = None,
    prompts: Sequence[str] | None = None,
    reversed_ids: bool = False,
) -> Built:
    """``reversed_ids``: every other item gets its responses inserted last position first, so
    that response ids do not follow positions."""
    if project is None:
        project = Project(
            name=f"p-{uuid.uuid4().hex[:8]}",
            taxonomy=list(taxonomy),
            taxonomy_preset="pku-saferlhf-19"
            if list(taxonomy) == list(PKU_SAFERLHF_19)
            else "custom",
            ask_single=ask_single,
        )
        db.add(project)
        db.flush()
    items: list[Item] = []
    responses: dict[int, list[Response]] = {}
    for i in range(n_items):
        prompt = prompts[i] if prompts else f"Prompt {i} {uuid.uuid4().hex[:6]}: is this safe?"
        item = Item(
            project_id=project.id,
            prompt=prompt,
            prompt_source="Alpaca3-70B",
            content_hash=hashlib.sha256(prompt.encode()).hexdigest(),
        )
        db.add(item)
        db.flush()
        rows = []
        for k in range(n_responses):
            text = f"Answer {k} to prompt {i} ✓"
            rows.append(
                Response(
                    item_id=item.id,
                    position=k,
                    text=text,
                    source=f"model-{k}",
                    sha256=sha(prompt, text),
                )
            )
        if reversed_ids and i % 2:
            for row in reversed(rows):
                db.add(row)
                db.flush()
        else:
            db.add_all(rows)
            db.flush()
        items.append(item)
        responses[item.id] = rows
    batch = Batch(project_id=project.id, name=f"b-{uuid.uuid4().hex[:8]}", overlap=overlap)
    db.add(batch)
    db.flush()
    db.add_all(BatchItem(batch_id=batch.id, item_id=item.id) for item in items)
    db.flush()
    return Built(project, batch, items, responses)


SAFE: dict[str, Any] = {"is_safe": True, "harm_categories": [], "severity": None}


def unsafe(severity: str = "minor", *categories: str) -> dict[str, Any]:
    return {
        "is_safe": False,
        "harm_categories": list(categories or ("Insulting Behavior",)),
        "severity": severity,
    }


def payload(
    ids: Sequence[int],
    labels: Sequence[dict[str, Any]] | None = None,
    helpful: Sequence[int] = (0, 1),
    harmless: Sequence[int] = (0, 1),
    single: Sequence[int] | None = None,
) -> dict[str, Any]:
    """A stored payload from labels and rankings given by position."""
    labels = labels if labels is not None else [SAFE] * len(ids)
    out: dict[str, Any] = {
        "responses": [
            {"response_id": rid, **label} for rid, label in zip(ids, labels, strict=True)
        ],
        "helpfulness": [ids[p] for p in helpful],
        "harmlessness": [ids[p] for p in harmless],
    }
    if single is not None:
        out["single"] = [ids[p] for p in single]
    return out


def annotate(
    db: Session,
    built: Built,
    item: Item,
    annotator: User,
    body: dict[str, Any],
    *,
    duration_ms: int | None = 1000,
    batch: Batch | None = None,
) -> Annotation:
    batch = batch or built.batch
    assignment = Assignment(
        batch_id=batch.id,
        item_id=item.id,
        annotator_id=annotator.id,
        status="submitted",
        leased_until=NOW + timedelta(hours=1),
        display_order=built.ids(item),
        submitted_at=NOW,
    )
    db.add(assignment)
    db.flush()
    ann = Annotation(
        assignment_id=assignment.id,
        batch_id=batch.id,
        item_id=item.id,
        annotator_id=annotator.id,
        payload=body,
        duration_ms=duration_ms,
        created_at=NOW,
        updated_at=NOW,
    )
    db.add(ann)
    db.flush()
    return ann


def skip(db: Session, built: Built, item: Item, annotator: User) -> Assignment:
    assignment = Assignment(
        batch_id=built.batch.id,
        item_id=item.id,
        annotator_id=annotator.id,
        status="skipped",
        leased_until=NOW,
        display_order=built.ids(item),
    )
    db.add(assignment)
    db.flush()
    return assignment
