"""The import writer across chunk boundaries (both backends: COPY on PostgreSQL)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import ImportRejected
from app.imports.service import import_file
from app.items.models import Item, ReferenceLabel, Response
from app.projects.models import Project
from app.projects.service import create_project
from app.projects.taxonomy import PKU_SAFERLHF_19
from tests.support.samples import categories, generic_line, jsonl, pku_pair

SMALL_CHUNKS = Settings(import_chunk_size=2)


def run_import(db: Session, project: Project, rows: list[Any], **kw: str) -> Any:
    return import_file(db, project, io.BytesIO(jsonl(rows)), settings=SMALL_CHUNKS, **kw)


def count(db: Session, model: Any) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


def test_repeats_inside_and_across_chunks_are_stored_once(db: Session) -> None:
    project = create_project(db, "p")
    # Chunks of two: [0, 0] [1, 2] [0, 3] [2]: one in-chunk repeat, two across chunks.
    order = [0, 0, 1, 2, 0, 3, 2]
    result = run_import(db, project, [pku_pair(i) for i in order], labels_as="reference")
    assert (result.items_created, result.items_duplicate) == (4, 3)
    assert result.item_ids == sorted(result.item_ids)  # ids follow first-occurrence order
    prompts = [db.get_one(Item, item_id).prompt for item_id in result.item_ids]
    assert prompts == [pku_pair(i)["prompt"] for i in (0, 1, 2, 3)]
    assert (count(db, Item), count(db, Response), count(db, ReferenceLabel)) == (4, 8, 4)
    stored = db.scalars(
        select(Response.sha256)
        .where(Response.item_id == result.item_ids[3])
        .order_by(Response.position)
    ).all()
    assert stored == [pku_pair(3)["response_0_sha256"], pku_pair(3)["response_1_sha256"]]


def test_harm_categories_are_stored_in_taxonomy_order(db: Session) -> None:
    project = create_project(db, "p")
    flags = categories("Animal Abuse", "Violence", "Insulting Behavior")
    reversed_flags = dict(reversed(list(flags.items())))
    row = {**pku_pair(0), "response_1_harm_category": reversed_flags}
    result = run_import(db, project, [row], labels_as="reference")
    label = db.scalar(select(ReferenceLabel).where(ReferenceLabel.item_id == result.item_ids[0]))
    assert label is not None
    expected = [c for c in PKU_SAFERLHF_19 if flags[c]]
    assert label.payload["responses"][1]["harm_categories"] == expected
    assert label.payload["helpfulness"] == [1, 0]


def test_meta_and_external_id_round_trip(db: Session) -> None:
    project = create_project(db, "p")
    line = {**generic_line(0), "id": 17, "meta": {"lang": "en", "n": [1, 2]}}
    generic = db.get_one(Item, run_import(db, project, [line]).item_ids[0])
    assert (generic.external_id, generic.meta) == ("17", {"lang": "en", "n": [1, 2]})
    assert generic.created_at.tzinfo is not None
    pair = db.get_one(Item, run_import(db, project, [pku_pair(0)]).item_ids[0])
    assert (pair.external_id, pair.meta) == (None, None)
    assert count(db, ReferenceLabel) == 0


def test_a_bad_line_after_written_chunks_leaves_nothing(db: Session) -> None:
    project = create_project(db, "p")
    rows: list[Any] = [pku_pair(i) for i in range(5)]
    rows.append({**pku_pair(9), "response_0": ""})
    with pytest.raises(ImportRejected) as caught, db.begin_nested():
        run_import(db, project, rows, labels_as="reference")
    assert (caught.value.line, caught.value.field) == (6, "response_0")
    assert (count(db, Item), count(db, Response), count(db, ReferenceLabel)) == (0, 0, 0)


def test_a_database_error_while_writing_reaches_the_caller(db: Session) -> None:
    # A project that is not in the database: the first chunk breaks the foreign key. On
    # PostgreSQL that happens on the writer thread; the error must still surface here.
    ghost = Project(id=10**6, name="ghost", taxonomy=list(PKU_SAFERLHF_19))
    rows = [pku_pair(i) for i in range(7)]
    with pytest.raises(IntegrityError), db.begin_nested():
        run_import(db, ghost, rows)
    assert count(db, Item) == 0
