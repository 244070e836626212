"""The admin console in a real browser: upload a file to a project (good and bad), download an
export from the batch page, and the first-run setup page, with JavaScript off."""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.browserkit import login, screenshot
from tests.support.consensus_factory import SAFE, annotate, build, payload, unsafe, user

pytestmark = pytest.mark.browser


def pku_line(i: int, tag: str) -> dict[str, Any]:
    return {
        "prompt": f"Browser prompt {tag} {i}",
        "response_0": f"first answer {i}",
        "response_1": f"second answer {i}",
        "prompt_source": "browser",
        "response_0_source": "m0",
        "response_1_source": "m1",
    }


def write_jsonl(path: Path, rows: list[dict[str, Any]], *, compress: bool = False) -> Path:
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def test_upload_a_good_file_then_a_bad_one(
    open_page: Any, live_server: Any, tmp_path: Path
) -> None:
    name = "upload-" + uuid.uuid4().hex[:6]
    created = live_server.api("POST", "/api/v1/projects", json={"name": name})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    tag = uuid.uuid4().hex[:6]
    good = write_jsonl(
        tmp_path / "good.jsonl.gz", [pku_line(i, tag) for i in range(25)], compress=True
    )
    bad_rows = [pku_line(100 + i, tag) for i in range(4)]
    bad_rows[3] = {**bad_rows[3], "response_1": ["not", "text"]}
    bad = write_jsonl(tmp_path / "bad.jsonl", bad_rows)

    page = open_page(js=False, allow_status=(422,))  # a plain form: no script needed
    login(page, "admin")
    page.goto(f"/projects/{pid}")
    page.set_input_files("form.stack input[name=file]", str(good))
    assert page.locator("select[name=format]").input_value() == "auto"
    with page.expect_navigation():
        page.click("section.import-form button[type=submit]")
    assert page.locator(".import-created").inner_text() == "25"
    assert page.locator(".import-duplicates").inner_text() == "0"
    assert page.locator(".import-format").inner_text() == "pku-saferlhf"
    screenshot(page, "import-result", live_server.backend)

    page.goto(f"/projects/{pid}")
    assert "25 items" in page.locator("p.muted").first.inner_text()
    page.set_input_files("section.import-form input[name=file]", str(bad))
    with page.expect_navigation():
        page.click("section.import-form button[type=submit]")
    assert page.locator(".import-line").inner_text() == "4"
    assert page.locator(".import-field").inner_text() == "response_1"
    assert "Refused" in page.locator("[role=alert]").inner_text()
    screenshot(page, "import-refused", live_server.backend)
    page.goto(f"/projects/{pid}")
    assert "25 items" in page.locator("p.muted").first.inner_text()  # nothing was added


def test_export_form_downloads_the_streamed_file(open_page: Any, live_server: Any) -> None:
    with live_server.session() as db:
        built = build(db, 3, overlap=1)
        for item in built.items:
            body = payload(built.ids(item), [SAFE, unsafe("minor", "Violence")], helpful=(1, 0))
            annotate(db, built, item, user(db), body)
        batch_id = built.batch.id
    api = live_server.api("GET", "/api/v1/exports/annotations", params={"batch_id": batch_id})
    assert api.status_code == 200 and api.text

    page = open_page(js=False)
    login(page, "admin")
    page.goto(f"/batches/{batch_id}")
    form = page.locator("section.export-form")
    assert form.locator("input[name=test_fraction]").input_value() == "0.1"
    form.locator("select[name=format]").select_option("annotations")
    with page.expect_download() as info:
        form.locator("button[type=submit]").click()
    download = info.value
    assert download.suggested_filename == "annotations.jsonl"
    assert Path(download.path()).read_text() == api.text
