"""gzip-compressed JSONL and Parquet imports store exactly what the JSONL import stores."""

from __future__ import annotations

import gzip
import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.items.models import Item, ReferenceLabel, Response
from tests.imports.test_imports import new_project, upload
from tests.support.samples import beavertails_line, generic_line, jsonl, pku_pair, qa_line


def parquet(rows: list[dict[str, Any]]) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), out)
    return out.getvalue()


def stored(db: Session, project_id: int) -> list[tuple[Any, ...]]:
    """Everything an import writes for a project, without ids."""
    rows = []
    for item in db.scalars(select(Item).where(Item.project_id == project_id).order_by(Item.id)):
        responses = db.execute(
            select(Response.position, Response.text, Response.source, Response.sha256)
            .where(Response.item_id == item.id)
            .order_by(Response.position)
        ).all()
        labels = db.scalars(
            select(ReferenceLabel.payload).where(ReferenceLabel.item_id == item.id)
        ).all()
        rows.append(
            (
                item.external_id,
                item.prompt,
                item.prompt_source,
                item.meta,
                item.content_hash,
                [tuple(r) for r in responses],
                labels,
            )
        )
    return rows


CASES = {
    "pku-saferlhf": [pku_pair(i) for i in range(5)],
    "pku-saferlhf-qa": [qa_line(f"q{i // 2}", f"a{i}", safe=i % 3 == 0) for i in range(7)],
    "beavertails": [beavertails_line(f"b{i // 2}", f"r{i}") for i in range(6)],
    # A Parquet column has one type: every response as an object here.
    "generic": [
        {**line, "responses": [{"text": f"answer {i}.{k}", "source": "m"} for k in range(3)]}
        for i, line in enumerate(generic_line(i) for i in range(4))
    ],
}


@pytest.mark.parametrize("fmt", sorted(CASES))
def test_gzip_and_parquet_equal_jsonl(
    client: TestClient, admin_headers: dict[str, str], db: Session, fmt: str
) -> None:
    rows = CASES[fmt]
    preset = {"taxonomy": "beavertails-14"} if fmt == "beavertails" else {}
    labels = "ignore" if fmt == "generic" else "reference"
    answers = {}
    contents = {}
    for kind, data in (
        ("jsonl", jsonl(rows)),
        ("gzip", gzip.compress(jsonl(rows))),
        ("parquet", parquet(rows)),
        ("parquet-gzip", gzip.compress(parquet(rows))),
    ):
        pid = new_project(client, admin_headers, name=f"{fmt}-{kind}", **preset)
        r = upload(client, admin_headers, pid, data, labels_as=labels)
        assert r.status_code == 201, (kind, r.text)
        body = r.json()
        answers[kind] = (body["format"], body["items_created"], body["prompts_with_one_answer"])
        contents[kind] = stored(db, pid)
    assert answers["jsonl"][0] == fmt and answers["jsonl"][1] > 0
    for kind in ("gzip", "parquet", "parquet-gzip"):
        assert answers[kind] == answers["jsonl"], kind
        assert contents[kind] == contents["jsonl"], kind


def test_bad_compressed_and_parquet_files_name_the_problem(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    pid = new_project(client, admin_headers)
    truncated = gzip.compress(jsonl([pku_pair(i) for i in range(50)]))[:-30]
    r = upload(client, admin_headers, pid, truncated)
    assert r.status_code == 422 and "gzip" in r.json()["detail"]
    r = upload(client, admin_headers, pid, b"PAR1 not really parquet")
    assert r.status_code == 422 and "Parquet" in r.json()["detail"]
    # A bad line inside a gzip file, or a bad Parquet row, is named by its number.
    rows = [pku_pair(i) for i in range(3)]
    rows[2] = {**rows[2], "response_1": ""}
    for data in (gzip.compress(jsonl(rows)), parquet(rows)):
        r = upload(client, admin_headers, pid, data)
        assert r.status_code == 422
        assert r.json()["detail"].startswith("line 3: field 'response_1'"), r.json()
    assert db.scalars(select(Item).where(Item.project_id == pid)).first() is None
