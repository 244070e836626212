"""`safepref serve --workers N`: one listening socket per worker (SO_REUSEPORT), so that
connections spread over the workers; a dead worker is replaced; a taken port is refused."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from anyio import to_thread
from fastapi.testclient import TestClient

from app.config import get_settings
from tests.support.live_server import ROOT, app_server, free_port, listeners

SECRET = "serving-test-" + uuid.uuid4().hex


def _served_by(port: int, workers: set[int]) -> Counter[int]:
    """How many established connections each worker holds on `port`."""
    counts: Counter[int] = Counter()
    for pid in workers:
        for conn in psutil.Process(pid).net_connections(kind="tcp"):
            if conn.status == psutil.CONN_ESTABLISHED and conn.laddr.port == port:
                counts[pid] += 1
    return counts


@pytest.mark.live
def test_each_worker_listens_on_its_own_socket_and_connections_spread(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    with app_server(url, workers=2, secret=SECRET) as base:
        port = int(base.rsplit(":", 1)[1])
        sockets = listeners(port)
        assert len(sockets) == 2, sockets
        # Two sockets, not one shared by both processes: the kernel balances between them.
        assert len(set(sockets.values())) == 2
        clients = [httpx.Client(base_url=base) for _ in range(24)]
        try:
            for client in clients:  # each a keep-alive connection of its own
                assert client.get("/healthz").status_code == 200
            counts = _served_by(port, set(sockets))
        finally:
            for client in clients:
                client.close()
        # 24 connections hashed over 2 sockets: all on one would happen once in 8 million.
        assert sum(counts.values()) == 24
        assert all(counts[pid] >= 1 for pid in sockets), counts


@pytest.mark.live
def test_a_worker_that_dies_is_replaced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    with app_server(url, workers=2, secret=SECRET) as base:
        port = int(base.rsplit(":", 1)[1])
        before = listeners(port)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = listeners(port)
            if len(now) == 2 and victim not in now:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"worker {victim} was not replaced: {listeners(port)}")
        for _ in range(10):
            assert httpx.get(f"{base}/healthz").status_code == 200


@pytest.mark.live
def test_serve_refuses_a_port_that_is_taken(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        env = {
            **os.environ,
            "SAFEPREF_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
            "SAFEPREF_SECRET_KEY": SECRET,
            "SAFEPREF_ENVIRONMENT": "development",
        }
        argv = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "2"]
        result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_worker_threads_match_the_connection_pool(client: TestClient) -> None:
    # More threads than pooled connections would open and close a connection per request
    # beyond the pool (PostgreSQL forks a backend for each).
    async def tokens() -> float:
        return to_thread.current_default_thread_limiter().total_tokens

    portal = client.portal
    assert portal is not None
    assert portal.call(tokens) == get_settings().db_pool_size == 20


def test_requests_beyond_the_gate_wait_instead_of_taking_threads(client: TestClient) -> None:
    # Every slot of the gate taken: a request waits in the event loop (no thread, no
    # connection) and goes through as soon as one is given back.
    gate = client.app.state.request_gate  # type: ignore[attr-defined]
    portal = client.portal
    assert portal is not None
    size = get_settings().db_pool_size
    for _ in range(size):
        portal.call(gate.acquire)
    answers: list[int] = []
    waiting = threading.Thread(target=lambda: answers.append(client.get("/login").status_code))
    waiting.start()
    waiting.join(0.5)
    assert answers == [] and waiting.is_alive()
    portal.call(_release, gate)
    waiting.join(10)
    assert answers == [200]
    assert client.get("/healthz").status_code == 200  # never gated
    for _ in range(size - 1):
        portal.call(_release, gate)


async def _release(gate: Any) -> None:
    gate.release()
