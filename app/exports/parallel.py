"""`safepref export --jobs N`: consensus pages exported by N worker processes, in order.

Building lines is CPU work in Python, so one process uses one core; the CLI can use more.
The parent reads the page boundaries (item ids only) and appends the results in page order;
each worker loads, labels and serializes whole pages with its own database connection, into a
temporary file. At most ``2 * jobs`` pages are in flight, so memory and disk stay bounded.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections import deque
from multiprocessing.pool import AsyncResult
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings
from app.consensus.service import item_id_pages
from app.db import get_engine, make_engine, reading
from app.exports.filters import ExportFilters
from app.exports.formats import ExportFormat
from app.exports.service import FIRST_PAGE, PAGE_SIZE, Progress, Scope, export_page

_worker: dict[str, sessionmaker[Session]] = {}


def _start_worker() -> None:
    # A forked worker must not use the connections it inherited from the parent's pool
    # (SQLAlchemy's advice for fork): drop them without closing, and open its own.
    get_engine().dispose(close=False)
    _worker["sessions"] = sessionmaker(bind=reading(make_engine(get_settings())))


def _run_page(
    task: tuple[ExportFormat, ExportFilters, Scope, list[int], str],
) -> tuple[str, int]:
    fmt, filters, scope, ids, folder = task
    with _worker["sessions"]() as session:
        data = export_page(session, fmt, filters, scope, ids)
    # Handed over as a file: the parent copies it to the output in the kernel (sendfile),
    # which costs far less than piping hundreds of megabytes through pickles.
    fd, path = tempfile.mkstemp(dir=folder, suffix=".jsonl")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return path, len(ids)


def _append(out_fd: int, path: str) -> None:
    with open(path, "rb") as page:
        size = os.fstat(page.fileno()).st_size
        offset = 0
        try:
            while offset < size:
                sent = os.sendfile(out_fd, page.fileno(), offset, size - offset)
                if sent == 0:
                    break
                offset += sent
        except OSError:  # an output sendfile cannot write to: copy in user space
            page.seek(offset)
            while chunk := page.read(1 << 20):
                os.write(out_fd, chunk)
    os.unlink(path)


def default_jobs() -> int:
    """Several processes on PostgreSQL; one on SQLite, whose transactions take the write lock
    (see app.db), so parallel readers would only queue."""
    if get_settings().is_sqlite:
        return 1
    return max(1, min(4, multiprocessing.cpu_count()))


def export_parallel(
    session: Session,
    fmt: ExportFormat,
    filters: ExportFilters,
    scope: Scope,
    jobs: int,
    out_fd: int,
    *,
    page_size: int = PAGE_SIZE,
    progress: Progress | None = None,
) -> None:
    """Writes to ``out_fd`` the same bytes as ``export_lines`` for a consensus format,
    computed by ``jobs`` processes. ``session`` must be bound to the settings' database (the
    workers open their own connections to it)."""
    batch_ids = list(scope.batches)
    if not batch_ids:
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pages = item_id_pages(session, batch_ids, page_size, first_size=FIRST_PAGE)
    with (
        tempfile.TemporaryDirectory(prefix="safepref-export-") as folder,
        context.Pool(jobs, initializer=_start_worker) as pool,
    ):
        pending: deque[AsyncResult[tuple[str, int]]] = deque()

        def collect() -> None:
            path, n = pending.popleft().get()
            _append(out_fd, path)
            if progress is not None:
                progress(n)

        for ids in pages:
            task: Any = (fmt, filters, scope, ids, folder)
            pending.append(pool.apply_async(_run_page, (task,)))
            if len(pending) >= 2 * jobs:
                collect()
        while pending:
            collect()
