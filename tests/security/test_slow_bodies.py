"""Slow request bodies: many connections that send a large body a byte at a time must not
keep anyone else out (no gate slot is held while a body arrives), a body that takes too long
is answered 408, and /healthz reports a gate where requests wait and none moves."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.config import get_settings
from app.web.gate import Gate, GateReport
from tests.conftest import DatabaseFactory
from tests.security import rawhttp
from tests.security.livekit import Live, live_server
from tests.support.queue_factory import valid_annotation

# More slow connections than the gate has slots (db_pool_size, 20 by default).
SLOW = 28
# Long enough that no slow body is cut off while the test runs.
PATIENT_SECONDS = 600
# How long the slow senders keep going at most (they stop as soon as the test is done).
SLOW_FOR = 120


@pytest.fixture(scope="module")
def patient(databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    env = {"SAFEPREF_BODY_TIMEOUT_SECONDS": str(PATIENT_SECONDS)}
    with live_server(databases.new_url(), tmp_path_factory.mktemp("tmp"), env) as server:
        yield server


def _slow_requests(live: Live) -> list[tuple[str, str, dict[str, str], bytes]]:
    """(method, path, headers, start of the body) of the slow senders: JSON bodies with
    credentials that only the database can judge (wrong or right), and uploads by an admin."""
    json_route = "/api/v1/assignments/1/annotation"
    boundary = "slow-boundary"
    part = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="slow.jsonl"\r\n\r\n'
    ).encode()
    kinds = [
        ("PUT", json_route, {"Content-Type": "application/json", **live.headers("wrong")}, b"{"),
        (
            "PUT",
            json_route,
            {"Content-Type": "application/json", **live.headers(live.annotators[1])},
            b"{",
        ),
        (
            "POST",
            f"/api/v1/projects/{live.project_id}/imports",
            {
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                **live.headers(live.admin),
            },
            part,
        ),
    ]
    return [kinds[i % len(kinds)] for i in range(SLOW)]


@pytest.mark.live
def test_slow_bodies_do_not_keep_authenticated_requests_out(patient: Live) -> None:
    stop = threading.Event()
    answered: list[bool] = []
    opened = threading.Barrier(SLOW + 1)

    def slow(method: str, path: str, headers: dict[str, str], start: bytes) -> None:
        sock = rawhttp.connect(patient.base, timeout=SLOW_FOR)
        try:
            sock.sendall(rawhttp.head(method, path, {**headers, "Content-Length": "1000000"}))
            sock.sendall(start)
            opened.wait(timeout=60)
            until = time.monotonic() + SLOW_FOR
            while not stop.is_set() and time.monotonic() < until:
                if rawhttp.trickle(sock, b"x", every=0.5, until=until):
                    answered.append(True)
                    return
        finally:
            sock.close()

    threads = [
        threading.Thread(target=slow, args=request, daemon=True)
        for request in _slow_requests(patient)
    ]
    for thread in threads:
        thread.start()
    try:
        opened.wait(timeout=60)
        time.sleep(1)  # every slow request is in (a byte or more of each body sent)
        token = patient.annotators[0]
        # An annotator still gets work and submits it; an admin still reads a page.
        assignment, ids = patient.lease(token)
        r = httpx.put(
            f"{patient.base}/api/v1/assignments/{assignment}/annotation",
            json=valid_annotation(ids),
            headers=patient.headers(token),
            timeout=60,
        )
        assert r.status_code == 200, r.text
        r = httpx.get(
            f"{patient.base}/api/v1/batches/{patient.batch_id}/progress",
            headers=patient.headers(patient.admin),
            timeout=60,
        )
        assert r.status_code == 200, r.text
        health = httpx.get(f"{patient.base}/healthz", timeout=60)
        assert health.status_code == 200 and health.text == "ok"
        assert answered == [], "a slow body was answered before it was complete"
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


@pytest.mark.live
def test_a_body_too_slow_is_answered_408(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = {"SAFEPREF_BODY_TIMEOUT_SECONDS": "2"}
    with live_server(databases.new_url(), tmp_path_factory.mktemp("tmp"), env) as live:
        # A JSON body with an annotator's token, and an admin's upload.
        cases = _slow_requests(live)[1:3]
        for method, path, headers, start in cases:
            sock = rawhttp.connect(live.base, timeout=120)
            try:
                sock.sendall(rawhttp.head(method, path, {**headers, "Content-Length": "1000"}))
                sock.sendall(start)
                # Nothing more is sent: the server gives up after its deadline.
                answer = rawhttp.read_answer(sock, timeout=120)
            finally:
                sock.close()
            assert answer.status == 408, (path, answer)
            assert b"within 2 seconds" in answer.body
            assert answer.headers["connection"] == "close"
        # The head has limits too: a header past 64 KiB is refused (uvicorn alone kept
        # reading it into memory), half a head or nothing at all is not waited for forever.
        rss = live.process().memory_info().rss
        sock = rawhttp.connect(live.base, timeout=120)
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            sent = rawhttp.send_watching(sock, [b"a" * 65536] * 800)
        finally:
            sock.close()
        assert sent.answer is not None and sent.answer.status == 431, sent
        assert sent.bytes_sent < 25 * 2**20
        assert live.process().memory_info().rss - rss < 20 * 2**20
        for start in (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b""):
            sock = rawhttp.connect(live.base, timeout=120)
            try:
                sock.sendall(start)
                got = sock.recv(65536)  # the answer, or b"" when the server closes
            finally:
                sock.close()
            assert got.startswith(b"HTTP/1.1 408") if start else got == b"", got
        assert httpx.get(f"{live.base}/healthz", timeout=60).status_code == 200


def _across_a_stall(live: Live, first: bytes, rest: bytes) -> rawhttp.Answer:
    """Sends `first`, stops the worker (SIGSTOP, as a loaded or paused machine stops it) until
    the 2 s deadline has passed, and sends `rest` just after the worker runs again."""
    worker = live.process()
    sock = rawhttp.connect(live.base, timeout=120)
    try:
        sock.sendall(first)
        time.sleep(0.5)  # the worker reads `first` and starts its deadline
        worker.suspend()
        try:
            time.sleep(3)
        finally:
            worker.resume()
        time.sleep(0.3)  # the worker runs its due timers first
        with contextlib.suppress(OSError):  # a worker that refused at once may have closed
            sock.sendall(rest)
        return rawhttp.read_answer(sock, timeout=120)
    finally:
        sock.close()


@pytest.mark.live
def test_a_server_stall_past_the_deadline_is_not_blamed_on_the_client(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A half-sent request whose deadline passed while the worker was not running: the rest,
    sent the moment it runs again, is read and answered. Without the grace of
    app/web/deadlines.py the worker refused it at once with 408 (a loaded fresh-clone run got
    two such 408s): the event loop runs due timers before it reads its sockets."""
    env = {"SAFEPREF_BODY_TIMEOUT_SECONDS": "2"}
    with live_server(databases.new_url(), tmp_path_factory.mktemp("tmp"), env) as live:
        token = live.annotators[0]
        assignment, ids = live.lease(token)
        body = json.dumps(valid_annotation(ids)).encode()
        headers = {"Content-Type": "application/json", **live.headers(token)}
        head = rawhttp.head(
            "PUT",
            f"/api/v1/assignments/{assignment}/annotation",
            {**headers, "Content-Length": str(len(body))},
        )
        answer = _across_a_stall(live, head, body)
        assert answer.status == 200, answer
        assert json.loads(answer.body)["outcome"] == "created", answer
        # The head's deadline (app/web/protocol.py) alike: half a head, then the rest.
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        answer = _across_a_stall(live, request[:20], request[20:])
        assert answer.status == 200 and answer.body == b"ok", answer


async def _release(gate: Gate) -> None:
    gate.release()


def test_healthz_reports_a_stalled_gate(client: TestClient) -> None:
    gate: Gate = client.app.state.request_gate  # type: ignore[attr-defined]
    portal = client.portal
    assert portal is not None
    size = get_settings().db_pool_size
    for _ in range(size):
        portal.call(gate.acquire)
    # Every slot taken but nobody waiting: busy, not stalled.
    assert client.get("/healthz").status_code == 200
    answers: list[int] = []
    waiting = threading.Thread(target=lambda: answers.append(client.get("/login").status_code))
    waiting.start()
    try:
        deadline = time.monotonic() + 60
        while gate.report().waiting == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        report: GateReport = gate.report()
        assert report.waiting == 1 and report.in_use == size
        gate.stall_seconds = 0  # "waited long enough", without waiting in a test
        health = client.get("/healthz")
        assert health.status_code == 503, health.text
        assert "stalled" in health.text and "1 requests waiting" in health.text
    finally:
        gate.stall_seconds = get_settings().gate_stall_seconds
        for _ in range(size):
            portal.call(_release, gate)
        waiting.join(60)
    assert answers == [200]
    assert client.get("/healthz").status_code == 200


def test_gate_report_tells_busy_from_stalled() -> None:
    def report(**kw: Any) -> GateReport:
        base = {"size": 2, "in_use": 2, "waiting": 0, "idle_seconds": 0.0, "stall_seconds": 5.0}
        return GateReport(**(base | kw))

    assert not report().stalled
    assert not report(waiting=3, idle_seconds=1.0).stalled  # requests move: busy
    assert not report(waiting=0, idle_seconds=100.0).stalled  # quiet
    assert report(waiting=1, idle_seconds=5.0).stalled


def test_an_upload_route_takes_one_slot_at_a_time(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    # The import takes the gate itself; with one slot left, a request without a body (which
    # the middleware does not read) must not take a second slot and wait for it forever.
    gate: Gate = client.app.state.request_gate  # type: ignore[attr-defined]
    portal = client.portal
    assert portal is not None
    taken = get_settings().db_pool_size - 1
    for _ in range(taken):
        portal.call(gate.acquire)
    answers: list[int] = []
    request = threading.Thread(
        target=lambda: answers.append(
            client.post("/api/v1/projects/999999/imports", headers=admin_headers).status_code
        )
    )
    request.start()
    try:
        request.join(60)
        assert answers == [404]
    finally:
        for _ in range(taken):
            portal.call(_release, gate)
        request.join(60)
