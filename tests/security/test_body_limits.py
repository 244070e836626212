"""Request bodies against a live server: limited before they are read (413 naming the limit),
refused unread when the caller has no credentials (401) or may not upload (401/403/404), an
upload never spooled for such a caller, chunked bodies counted, and list fields refused on
their length before their items are validated (422)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from tests.conftest import DatabaseFactory
from tests.security import rawhttp
from tests.security.livekit import Live, live_server
from tests.support.queue_factory import valid_annotation

MiB = 1024 * 1024
# Uploads: large enough that the socket buffers between client and server (a few MiB on
# loopback) cannot hold a whole refused upload, so "not read" shows as "not all sent".
UPLOAD_LIMIT = 48 * MiB
BIG = 50 * MiB
PIECE = 64 * 1024


@pytest.fixture(scope="module")
def live(databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmpdir = tmp_path_factory.mktemp("server-tmp")
    env = {"SAFEPREF_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT)}
    with live_server(databases.new_url(), tmpdir, env) as server:
        yield server


def _annotation_path(assignment: int = 1) -> str:
    return f"/api/v1/assignments/{assignment}/annotation"


def _json_body(size: int) -> Iterator[bytes]:
    """`size` bytes of one long JSON string, in pieces."""
    yield b'{"rationale": "'
    for _ in range(size // PIECE):
        yield b"x" * PIECE
    yield b'"}'


def _chunked(pieces: Iterator[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield rawhttp.chunk(piece)
    yield rawhttp.LAST_CHUNK


def _send(
    live: Live, method: str, path: str, headers: dict[str, str], body: Iterator[bytes]
) -> rawhttp.Sent:
    sock = rawhttp.connect(live.base)
    try:
        return rawhttp.send_watching(sock, [rawhttp.head(method, path, headers), *body])
    finally:
        sock.close()


@pytest.mark.live
def test_a_declared_length_past_the_limit_is_refused_before_the_body(live: Live) -> None:
    for token in (None, "not-a-token", live.annotators[0]):
        sock = rawhttp.connect(live.base)
        try:
            headers = {"Content-Type": "application/json", "Content-Length": str(BIG)}
            sock.sendall(rawhttp.head("PUT", _annotation_path(), headers | live.headers(token)))
            # Not a byte of the body sent: the answer comes from the headers alone.
            answer = rawhttp.read_answer(sock, timeout=60)
        finally:
            sock.close()
        assert answer.status == 413, answer
        assert "1 MiB" in json.loads(answer.body)["detail"]
        assert answer.headers["connection"] == "close"
    # A page's form: the error page, naming the limit.
    sock = rawhttp.connect(live.base)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(BIG)}
        sock.sendall(rawhttp.head("POST", "/projects", headers))
        page = rawhttp.read_answer(sock, timeout=60)
    finally:
        sock.close()
    assert page.status == 413 and b"1 MiB" in page.body
    assert page.headers["content-type"].startswith("text/html")


@pytest.mark.live
def test_a_50_mb_body_is_refused_unread_and_memory_stays_flat(live: Live) -> None:
    server = live.process()
    for _ in range(3):  # warm up: first requests load code and fill caches
        assert httpx.get(f"{live.base}/healthz", timeout=60).status_code == 200
        live.lease(live.annotators[1])
    before = server.memory_info().rss
    json_headers = {"Content-Type": "application/json"}
    cases = [
        # No credentials at all: refused before a byte is read.
        ({**json_headers, "Transfer-Encoding": "chunked"}, True, {401}),
        ({**json_headers, "Content-Length": str(BIG)}, False, {413}),
        # Credentials to check in the database: read up to the limit, then refused.
        ({**json_headers, "Transfer-Encoding": "chunked", **live.headers("nope")}, True, {413}),
    ]
    for headers, chunked, statuses in cases:
        body = _json_body(BIG)
        sent = _send(live, "PUT", _annotation_path(), headers, _chunked(body) if chunked else body)
        assert sent.answer is not None and sent.answer.status in statuses, (headers, sent)
        assert sent.bytes_sent < BIG // 2, f"the server read the body: {sent}"
    grown = server.memory_info().rss - before
    assert grown < 40 * MiB, f"RSS grew by {grown / MiB:.0f} MiB"
    assert httpx.get(f"{live.base}/healthz", timeout=60).status_code == 200


@pytest.mark.live
def test_a_chunked_body_is_counted_as_it_comes(live: Live) -> None:
    token = live.annotators[0]
    assignment, ids = live.lease(token)
    headers = {
        "Content-Type": "application/json",
        "Transfer-Encoding": "chunked",
        **live.headers(token),
    }
    over = _send(live, "PUT", _annotation_path(assignment), headers, _chunked(_json_body(2 * MiB)))
    assert over.answer is not None and over.answer.status == 413, over
    assert "1 MiB" in json.loads(over.answer.body)["detail"]
    # Under the limit, chunked or not, the body reaches the endpoint whole.
    payload = json.dumps(valid_annotation(ids)).encode()
    pieces = [payload[i : i + 7] for i in range(0, len(payload), 7)]
    ok = _send(live, "PUT", _annotation_path(assignment), headers, _chunked(iter(pieces)))
    assert ok.answer is not None and ok.answer.status == 200, ok
    assert json.loads(ok.answer.body)["outcome"] == "created"


@pytest.mark.live
def test_list_fields_are_refused_on_their_length_before_their_items(live: Live) -> None:
    token = live.annotators[0]
    assignment, ids = live.lease(token)
    url = f"{live.base}{_annotation_path(assignment)}"
    # 200,000 entries that are not even integers: one error about the length, not 200,000
    # about the entries (each of which would have been validated first).
    body = {**valid_annotation(ids), "helpfulness": ["x"] * 200_000}
    r = httpx.put(url, json=body, headers=live.headers(token), timeout=60)
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]
    assert len(errors) == 1, str(errors)[:300]
    assert errors[0]["type"] == "too_long" and errors[0]["loc"] == ["body", "helpfulness"]
    # An item has at most 16 responses: no request may label more.
    labels = valid_annotation(list(range(1, 18)))["responses"]
    r = httpx.put(
        url,
        json={**body, "helpfulness": ids, "responses": labels},
        headers=live.headers(token),
        timeout=60,
    )
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "responses"]]
    assert "at most 16" in r.json()["detail"][0]["msg"]


def _multipart_head(boundary: str) -> bytes:
    return (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="data.jsonl"\r\n'
        "Content-Type: application/jsonl\r\n\r\n"
    ).encode()


def _upload(size: int, boundary: str) -> Iterator[bytes]:
    yield _multipart_head(boundary)
    line = b'{"prompt": "p", "responses": ["a", "b"]}\n'
    filler = line * (PIECE // len(line))
    for _ in range(size // len(filler)):
        yield filler


def _spooled(live: Live) -> list[str]:
    """Files the server has open in, or left in, its temp directory; not the metrics files
    that `safepref serve` keeps in a directory there (app/ops/multiproc.py)."""
    opened = [f.path for f in live.process().open_files() if f.path.startswith(str(live.tmpdir))]
    found = opened + [str(p) for p in Path(live.tmpdir).iterdir()]
    return [path for path in found if f"{live.tmpdir}/safepref-metrics-" not in path]


@pytest.mark.live
def test_an_upload_is_neither_read_nor_spooled_for_a_caller_who_may_not_import(
    live: Live,
) -> None:
    boundary = "safepref-boundary"
    size = UPLOAD_LIMIT - MiB
    path = f"/api/v1/projects/{live.project_id}/imports"
    callers = [
        (None, 401, path),
        ("not-a-token", 401, path),
        (live.annotators[0], 403, path),
        (live.admin, 404, f"/api/v1/projects/{live.project_id + 1000}/imports"),
    ]
    for token, status, target in callers:
        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(size + 1000),
            **live.headers(token),
        }
        sent = _send(live, "POST", target, headers, _upload(size, boundary))
        assert sent.answer is not None and sent.answer.status == status, (token, sent)
        assert sent.answer.headers.get("connection") == "close"  # the rest is not read
        assert sent.bytes_sent < size // 2, f"the server read the upload: {sent}"
        assert _spooled(live) == []


@pytest.mark.live
def test_uploads_have_the_upload_limit(live: Live) -> None:
    boundary = "safepref-boundary"
    path = f"/api/v1/projects/{live.project_id}/imports"
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        **live.headers(live.admin),
    }
    # Declared past the limit: refused at once, naming it.
    declared = _send(
        live, "POST", path, {**headers, "Content-Length": str(UPLOAD_LIMIT + 1)}, iter([])
    )
    assert declared.answer is not None and declared.answer.status == 413, declared
    assert "48 MiB" in json.loads(declared.answer.body)["detail"]
    # Chunked past the limit: counted as it arrives, refused, nothing imported.
    chunked = _send(
        live,
        "POST",
        path,
        {**headers, "Transfer-Encoding": "chunked"},
        _chunked(_upload(UPLOAD_LIMIT + 2 * MiB, boundary)),
    )
    assert chunked.answer is not None and chunked.answer.status == 413, chunked
    assert _spooled(live) == []
    # Past the JSON limit but under the upload limit: imported.
    lines = b"".join(
        json.dumps({"prompt": f"p{i} " + "y" * 2000, "responses": ["a", "b"]}).encode() + b"\n"
        for i in range(1000)
    )
    assert len(lines) > 1 * MiB
    r = httpx.post(
        f"{live.base}{path}",
        files={"file": ("data.jsonl", lines, "application/jsonl")},
        headers=live.headers(live.admin),
        timeout=120,
    )
    assert r.status_code == 201, r.text
    assert r.json()["items_created"] == 1000
    missing = httpx.post(
        f"{live.base}{path}",
        files={"other": ("data.jsonl", b"{}", "application/jsonl")},
        headers=live.headers(live.admin),
        timeout=60,
    )
    assert missing.status_code == 422 and "'file'" in missing.json()["detail"]


def test_the_openapi_document_names_the_body_refusals() -> None:
    document = create_app().openapi()
    put = document["paths"]["/api/v1/assignments/{assignment_id}/annotation"]["put"]
    upload = document["paths"]["/api/v1/projects/{project_id}/imports"]["post"]
    for operation in (put, upload):
        assert {"408", "413"} <= set(operation["responses"])
    # The upload is read by the endpoint itself: its body is still described.
    schema = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["required"] == ["file"]
    responses = put["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    annotation = document["components"]["schemas"][responses.rsplit("/", 1)[1]]
    assert annotation["properties"]["responses"]["anyOf"][0]["maxItems"] == 16
