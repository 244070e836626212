"""The admin console's import and export forms, in process (browser tests: tests/browser)."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.items.models import Item
from tests.support.authkit import logged_in
from tests.support.consensus_factory import SAFE, annotate, build, payload, unsafe, user
from tests.support.samples import jsonl, pku_pair

MakeUser = Callable[..., tuple[Any, str]]


def admin_browser(client: TestClient, make_user: MakeUser) -> str:
    admin, _ = make_user(None, "admin")
    return logged_in(client, admin.username)  # type: ignore[attr-defined]


def new_project(client: TestClient, csrf: str, name: str = "console") -> int:
    r = client.post(
        "/projects",
        data={"name": name, "ask_safety": "1", "ask_dual": "1", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return int(r.headers["location"].rsplit("/", 1)[1])


def post_import(client: TestClient, csrf: str, pid: int, data: bytes, **fields: str) -> Any:
    # The CSRF field comes first, as in the page's form.
    form = {"csrf_token": csrf, "format": "auto", "labels_as": "ignore", **fields}
    return client.post(
        f"/projects/{pid}/imports",
        data=form,
        files={"file": ("data.jsonl.gz", data, "application/gzip")},
    )


def test_import_form_reports_what_the_api_reports(
    client: TestClient, make_user: MakeUser, db: Session, admin_headers: dict[str, str]
) -> None:
    csrf = admin_browser(client, make_user)
    pid = new_project(client, csrf)
    page = client.get(f"/projects/{pid}")
    assert f'action="/projects/{pid}/imports"' in page.text
    assert 'enctype="multipart/form-data"' in page.text

    rows = [pku_pair(i) for i in range(4)] + [pku_pair(0)]  # one duplicate
    done = post_import(client, csrf, pid, gzip.compress(jsonl(rows)), labels_as="reference")
    assert done.status_code == 201, done.text
    assert '<dd class="import-created">4</dd>' in done.text
    assert '<dd class="import-duplicates">1</dd>' in done.text
    assert '<dd class="import-format">pku-saferlhf</dd>' in done.text
    n = db.scalar(select(func.count()).select_from(Item).where(Item.project_id == pid))
    assert n == 4

    # The API refuses this file with a message; the page shows the same line, field and text.
    bad = [pku_pair(10), pku_pair(11), {**pku_pair(12), "response_0": 7}]
    api = client.post(
        f"/api/v1/projects/{pid}/imports",
        files={"file": ("bad.jsonl", jsonl(bad), "application/jsonl")},
        headers=admin_headers,
    )
    assert api.status_code == 422
    detail = api.json()["detail"]
    assert detail.startswith("line 3: field 'response_0'")
    refused = post_import(client, csrf, pid, jsonl(bad))
    assert refused.status_code == 422
    assert '<dd class="import-line">3</dd>' in refused.text
    assert '<dd class="import-field">response_0</dd>' in refused.text
    assert detail.replace("'", "&#39;") in refused.text
    n = db.scalar(select(func.count()).select_from(Item).where(Item.project_id == pid))
    assert n == 4  # nothing of the refused file was kept

    # Without the CSRF token the upload is refused before anything is read.
    assert (
        client.post(
            f"/projects/{pid}/imports", files={"file": ("x.jsonl", jsonl(rows), "text/plain")}
        ).status_code
        == 403
    )


def test_import_form_is_for_admins_only(client: TestClient, make_user: MakeUser) -> None:
    annotator, _ = make_user()
    csrf = logged_in(client, annotator.username)  # type: ignore[attr-defined]
    r = post_import(client, csrf, 1, jsonl([pku_pair(1)]))
    assert r.status_code == 403


def test_export_form_downloads_the_api_file_with_the_same_filters(
    client: TestClient, make_user: MakeUser, db: Session, admin_headers: dict[str, str]
) -> None:
    built = build(db, 3, overlap=2)
    for k, item in enumerate(built.items):
        ids = built.ids(item)
        body = payload(ids, [SAFE, unsafe("minor", "Violence")], helpful=(1, 0))
        annotate(db, built, item, user(db), body)
        if k < 2:
            annotate(db, built, item, user(db), body)
    db.commit()
    admin_browser(client, make_user)
    page = client.get(f"/batches/{built.batch.id}")
    assert 'action="/export"' in page.text and 'value="0.1"' in page.text
    assert 'placeholder="2 (the batch overlap)"' in page.text
    for dim in ("helpfulness", "harmlessness", "single", "is_safe"):
        assert f'name="dimensions" value="{dim}"' in page.text

    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"format": "pku-saferlhf", "min_annotations": "", "min_agreement": ""}, {}),
        ({"format": "pku-saferlhf", "min_annotations": "1"}, {"min_annotations": 1}),
        ({"format": "annotations"}, {}),
        (
            {
                "format": "dpo-helpful",
                "dimensions": ["helpfulness"],
                "split": "train",
                "test_fraction": "0.01",
                "min_annotations": "1",
                "include_unresolved": "1",
            },
            {
                "dimensions": ["helpfulness"],
                "split": "train",
                "test_fraction": 0.01,
                "min_annotations": 1,
                "include_unresolved": True,
            },
        ),
    ]
    for form, params in cases:
        fmt = form["format"]
        got = client.get("/export", params={"batch_id": built.batch.id, **form})
        assert got.status_code == 200, got.text
        assert got.headers["content-disposition"].startswith("attachment;")
        api = client.get(
            f"/api/v1/exports/{fmt}",
            params={"batch_id": built.batch.id, **params},
            headers=admin_headers,
        )
        assert got.text == api.text and got.text, form
    # The default filters keep the two items with two votes; min_annotations=1 keeps three.
    default = client.get("/export", params={"batch_id": built.batch.id})
    assert len(default.text.splitlines()) == 2

    bad = client.get("/export", params={"batch_id": built.batch.id, "min_agreement": "lots"})
    assert bad.status_code == 422 and "min_agreement" in bad.text
    assert client.get("/export", params={"format": "nope"}).status_code == 422
    assert client.get("/export", params={"batch_id": 999999}).status_code == 404


def test_exports_honour_accept_encoding_gzip(
    client: TestClient, db: Session, admin_headers: dict[str, str]
) -> None:
    built = build(db, 2, overlap=1)
    for item in built.items:
        annotate(db, built, item, user(db), payload(built.ids(item), [SAFE, SAFE], helpful=(0, 1)))
    db.commit()
    url = f"/api/v1/exports/annotations?batch_id={built.batch.id}"
    plain = client.get(url, headers={**admin_headers, "Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    with client.stream("GET", url, headers={**admin_headers, "Accept-Encoding": "gzip"}) as r:
        assert r.headers["content-encoding"] == "gzip"
        assert "accept-encoding" in r.headers["vary"].lower()
        raw = b"".join(r.iter_raw())
    assert zlib.decompress(raw, 16 + zlib.MAX_WBITS) == plain.content
    assert [json.loads(x)["item_id"] for x in plain.text.splitlines()]
    refused = client.get(url, headers={**admin_headers, "Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers
