"""Prometheus metrics (prometheus-client), counted by every worker process.

`safepref serve` points PROMETHEUS_MULTIPROC_DIR at an empty directory before it starts the
workers (app/ops/multiproc.py): each process then writes its samples to files there and
a scrape, answered by whichever worker, adds them all up. Without that variable (in-process
tests, a bare uvicorn) the metrics are the one process's own.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy.pool import QueuePool

from app.ops.multiproc import MULTIPROC_ENV
from app.queue.postgres import HotPool

REQUEST_SECONDS = Histogram(
    "safepref_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, per route template.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UNAVAILABLE = Counter(
    "safepref_http_unavailable_total",
    "Responses 503 (database unreachable or overloaded), per route template.",
    ["route"],
)
QUEUE_OPERATIONS = Counter(
    "safepref_queue_operations_total",
    "Queue calls (next, submit, skip) from the API and the pages, by outcome.",
    ["operation", "outcome"],
)
# Gauges: each live process reports its own pools, and a scrape adds the live ones up.
DB_POOL_CONNECTIONS = Gauge(
    "safepref_db_pool_connections",
    "Database connections of the server's pools: in use (checked out) and open.",
    ["pool", "state"],
    multiprocess_mode="livesum",
)


def observe_pools(orm_pool: object, hot: HotPool | None) -> None:
    """Sets this process's pool gauges (called after each request, and before a scrape)."""
    hot_stats = None if hot is None else hot.stats()
    if isinstance(orm_pool, QueuePool):
        DB_POOL_CONNECTIONS.labels("orm", "in_use").set(orm_pool.checkedout())
        DB_POOL_CONNECTIONS.labels("orm", "open").set(orm_pool.checkedout() + orm_pool.checkedin())
    if hot_stats is not None:
        size = hot_stats.get("pool_size", 0)
        DB_POOL_CONNECTIONS.labels("hot", "in_use").set(size - hot_stats.get("pool_available", 0))
        DB_POOL_CONNECTIONS.labels("hot", "open").set(size)


def exposition() -> tuple[bytes, str]:
    """The metrics of every worker in Prometheus's text format, and its content type."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
