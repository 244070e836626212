"""The queue under real concurrency: uvicorn worker processes, dozens of annotators over HTTP.

PostgreSQL runs with 2 worker processes, SQLite with 1. A second test restarts its own
PostgreSQL server mid-run: requests must fail fast with 503 while it is down, the app must
recover by itself, and the same promises must hold afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import DatabaseFactory, missing
from tests.support.live_server import (
    PostgresServer,
    app_server,
    listeners,
    migrated,
    pg_binaries_available,
)
from tests.support.queue_load import (
    Record,
    check_adaptive,
    check_database,
    run_annotators,
    seed,
)

pytestmark = [pytest.mark.slow, pytest.mark.live]

ITEMS = 60
OVERLAP = 3
ANNOTATORS = 30
LEASE_SECONDS = 2
# Only a guard against a hang (the run takes 10 to 30 s): well beyond a loaded machine's
# slowness, and below pytest's own timeout, so that a hang fails with the clients' record.
RUN_TIMEOUT = 200
# After PostgreSQL is back, the first success comes within a second or two: pooled connections
# are checked (pre-ping) or found broken and replaced. The bound is for a loaded machine.
RECOVERY = 30
SECRET = "queue-test-" + uuid.uuid4().hex


def assert_clean(record: Record) -> None:
    assert not record.problems, record.problems
    assert not record.server_errors, record.server_errors[:5]
    assert not record.transport_errors, record.transport_errors[:5]


def assert_exercised(record: Record) -> None:
    """The run really went through the paths it claims to test."""
    assert record.outcomes["created"] == ITEMS * OVERLAP
    assert record.outcomes["unchanged"] > 0  # duplicate submits
    assert record.outcomes["late-accepted"] + record.outcomes["late-refused"] > 0
    assert record.statuses[204] >= ANNOTATORS


def test_queue_keeps_its_promises_with_concurrent_annotators(
    backend: str, databases: DatabaseFactory
) -> None:
    url = migrated(databases.new_url())
    seeded = seed(
        url, items=ITEMS, overlap=OVERLAP, annotators=ANNOTATORS, lease_seconds=LEASE_SECONDS
    )
    workers = 2 if backend == "postgresql" else 1
    record = Record()
    with app_server(url, workers=workers, secret=SECRET) as base:
        started = time.monotonic()
        threads = run_annotators(
            base, seeded, record, lease_seconds=LEASE_SECONDS, timeout=RUN_TIMEOUT
        )
        for thread in threads:
            thread.join()
        print(f"{backend}: {time.monotonic() - started:.1f} s", record.summary())
    assert_clean(record)
    assert record.statuses[503] == 0
    assert_exercised(record)
    check_database(url, seeded, record, items=ITEMS, overlap=OVERLAP)


def test_adaptive_batch_keeps_its_promises_with_concurrent_annotators_and_a_quota(
    backend: str, databases: DatabaseFactory
) -> None:
    """The same run on an adaptive batch (2 to 3 annotations, helpfulness gating: random
    answers agree half the time) with a per-annotator quota, served by two worker processes
    on both backends. Every item must end complete by the rule, none above the overlap, no
    one above the quota, and items must end with both 2 and 3 annotations."""
    url = migrated(databases.new_url())
    quota = 12  # 30 x 12 places for at most 180 annotations: the batch can still complete
    seeded = seed(
        url,
        items=ITEMS,
        overlap=OVERLAP,
        annotators=ANNOTATORS,
        lease_seconds=LEASE_SECONDS,
        options={"overlap_min": 2, "gating": ["helpfulness"], "max_items_per_annotator": quota},
    )
    record = Record()
    with app_server(url, workers=2, secret=SECRET) as base:
        threads = run_annotators(
            base, seeded, record, lease_seconds=LEASE_SECONDS, timeout=RUN_TIMEOUT
        )
        for thread in threads:
            thread.join()
        print(f"{backend} adaptive:", record.summary())
    assert_clean(record)
    assert record.outcomes["unchanged"] > 0 and record.statuses[204] >= ANNOTATORS
    sizes = check_adaptive(url, seeded, record, items=ITEMS, quota=quota)
    assert record.outcomes["created"] == sum(n * count for n, count in sizes.items())
    assert set(sizes) == {2, 3}, sizes


def test_queue_keeps_its_promises_through_a_killed_worker_and_on_two_servers(
    backend: str, databases: DatabaseFactory, tmp_path: Path
) -> None:
    """A worker process is killed (SIGKILL: no cleanup, requests in flight cut) in the middle
    of the run and the server starts another. On PostgreSQL a second `safepref serve` on
    another port (another host, one database) serves half of the annotators at the same time.
    Cut requests are retried by the clients, as real ones would; nothing acknowledged may be
    lost or doubled, and every item must still end with exactly k."""
    url = migrated(databases.new_url())
    seeded = seed(
        url, items=ITEMS, overlap=OVERLAP, annotators=ANNOTATORS, lease_seconds=LEASE_SECONDS
    )
    # Held at two thirds until the kill, so that there is always work left for it to cut.
    record = Record(pause_at=ITEMS * OVERLAP * 2 // 3)
    with contextlib.ExitStack() as servers:
        # Each server's request log is kept: a refusal the clients did not expect is shown
        # with its lines (worker, timing), to tell the machine's load from a defect.
        logs = [tmp_path / "first.log", tmp_path / "second.log"]
        first = servers.enter_context(
            app_server(url, workers=2, secret=SECRET, log_path=logs[0], request_log=True)
        )
        bases = [first]
        if backend == "postgresql":
            bases.append(
                servers.enter_context(
                    app_server(url, workers=2, secret=SECRET, log_path=logs[1], request_log=True)
                )
            )
        threads = run_annotators(
            bases, seeded, record, lease_seconds=LEASE_SECONDS, timeout=RUN_TIMEOUT
        )
        while len(record.acked) < ITEMS * OVERLAP // 3:
            assert any(t.is_alive() for t in threads), record.problems
            time.sleep(0.05)
        port = int(first.rsplit(":", 1)[1])
        workers = listeners(port)
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        record.resume.set()
        for thread in threads:
            thread.join()
        # The server starts another worker (its start may outlast the run on a loaded machine).
        deadline = time.monotonic() + 120
        while (victim in listeners(port) or len(listeners(port)) < 2) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.2)
        replaced = listeners(port)
    cut = len(record.transport_errors)
    print(f"{backend}: killed worker {victim}, {cut} requests cut; {record.summary()}")
    assert victim not in replaced and len(replaced) == 2
    assert not record.problems, (record.problems, _unexpected_lines(logs))
    assert not record.server_errors, record.server_errors[:5]
    assert record.statuses[204] >= ANNOTATORS
    # Every annotation acknowledged is stored as acknowledged, none twice, k per item.
    check_database(url, seeded, record, items=ITEMS, overlap=OVERLAP)


def _unexpected_lines(logs: list[Path]) -> list[str]:
    """The servers' log lines of answers a client never expects here (408, 5xx) and of worker
    restarts, at most 20."""
    found = []
    for log in logs:
        if log.exists():
            for line in log.read_text(errors="replace").splitlines():
                if '"status":408' in line or '"status":5' in line or "restarting" in line:
                    found.append(f"{log.name}: {line}")
    return found[:20]


def test_queue_survives_a_postgres_restart_mid_run() -> None:
    if not pg_binaries_available():
        missing("PostgreSQL binaries (pg_ctl) not available for a private server")
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="safepref-fault-")))
    try:
        url = migrated(server.start())
        seeded = seed(
            url, items=ITEMS, overlap=OVERLAP, annotators=ANNOTATORS, lease_seconds=LEASE_SECONDS
        )
        # The clients hold still at two thirds until PostgreSQL is down: on a loaded machine
        # stopping it can take seconds, and without this the batch could be finished by then
        # (seen: the whole run done before the outage began, so no request saw it).
        record = Record(pause_at=ITEMS * OVERLAP * 2 // 3)
        with app_server(url, workers=2, secret=SECRET) as base:
            threads = run_annotators(
                base, seeded, record, lease_seconds=LEASE_SECONDS, timeout=RUN_TIMEOUT
            )
            while len(record.acked) < ITEMS * OVERLAP // 3:
                assert any(t.is_alive() for t in threads), record.problems
                time.sleep(0.05)
            down_at = time.monotonic()
            server.stop_server()  # in flight: connections are cut in the middle of the run
            record.resume.set()
            time.sleep(3)  # a real outage, long enough for every client to hit it
            server.restart()
            up_at = time.monotonic()
            for thread in threads:
                thread.join()
        # Requests sent during the outage may wait for a connection and succeed once the
        # server is back, even before pg_ctl reports it started.
        recovered = min((t for t in record.ok_times if t >= down_at), default=None)
        print(
            f"fault: {len(record.unavailable)} answers 503 (slowest "
            f"{max((t for _, t in record.unavailable), default=0):.2f} s),",
            "first success sent",
            "never" if recovered is None else f"{recovered - up_at:.2f} s",
            "after the restart;",
            record.summary(),
        )
        assert_clean(record)
        outage = [(sent, took) for sent, took in record.unavailable if sent >= down_at]
        assert outage, "no request saw the outage"
        # Fail fast: nothing hangs on a dead database. A 503 takes at most a pool wait and a
        # connect attempt (3 s each); a hang would run into the statement timeout (30 s) or
        # the clients' own (120 s). The bound leaves room for a loaded machine's slowness.
        assert max(took for _, took in record.unavailable) < 15
        # Only the outage and its aftermath answer 503; the app recovers by itself.
        assert all(down_at - 1 <= sent <= up_at + RECOVERY for sent, _ in record.unavailable)
        assert recovered is not None and recovered - up_at < RECOVERY
        assert_exercised(record)
        check_database(url, seeded, record, items=ITEMS, overlap=OVERLAP)
    finally:
        server.remove()
