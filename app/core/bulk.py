"""Helpers for bulk reads (exports, batch metrics).

``prefetch`` runs a producer a few steps ahead of its consumer, in a worker thread: the export
loads page N+1 from the database while page N is being turned into lines, so the wait for the
server overlaps with Python work instead of adding to it. The producer runs entirely in the
worker (a database session it uses is never touched by two threads at once), and the queue is
bounded, so memory stays at ``depth`` pages.

``gc_paused`` suspends the cyclic garbage collector around CPU-heavy loops that allocate
millions of short-lived, acyclic objects (parsed payloads, output records): reference counting
frees them, and the collector's repeated scans would otherwise cost as much as the work.
"""

from __future__ import annotations

import gc
import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, TypeVarTuple

from sqlalchemy import Connection, Row, Select

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
_POLL_SECONDS = 0.1
_IDLE_LIMIT_SECONDS = 600.0


def prefetch(source: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Yields what ``source`` yields, in order; its errors are raised in the consumer.

    Closing the returned generator stops the worker after its current step and waits for it.
    """
    slots: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(message: tuple[str, Any]) -> bool:
        waited = 0.0
        # A consumer that vanished without closing (it always closes, but a worker must never
        # hold a database connection forever) is given up on after a long idle time.
        while not stop.is_set() and waited < _IDLE_LIMIT_SECONDS:
            try:
                slots.put(message, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                waited += _POLL_SECONDS
        return False

    def work() -> None:
        try:
            for value in source:
                if not put(("value", value)):
                    return
            put(("done", None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(("error", exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name="export-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == "value":
                yield value
            elif kind == "done":
                return
            else:
                raise value
    finally:
        stop.set()
        # An abandoned generator is finalised by whichever thread collects it, possibly its
        # own worker, which then stops by itself once this returns.
        if worker is not threading.current_thread():
            worker.join()


_pauses = 0
_pauses_lock = threading.Lock()
_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disables the cyclic collector for the block (nested and concurrent uses are counted; it
    is re-enabled when the last one ends, and only if it was enabled before the first)."""
    global _pauses, _was_enabled
    with _pauses_lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pauses_lock:
            _pauses -= 1
            if _pauses == 0 and _was_enabled:
                gc.enable()


def fetch_all(conn: Connection, statement: Select[*Ts]) -> Sequence[Row[*Ts]]:
    """Every row at once: iterating a result fetches row by row, several times slower."""
    return conn.execute(statement).all()


def fetch_plain(conn: Connection, statement: Select[*Ts]) -> list[tuple[Any, ...]]:
    """``fetch_all`` straight from the driver's cursor, for the export's bulk reads of plain
    columns (integers, text): no result objects, no type processing, so it must not select a
    column whose type converts values (JSON, timestamps, booleans on SQLite)."""
    compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params: Any = compiled.construct_params()
    if compiled.positional and compiled.positiontup is not None:
        params = tuple(params[name] for name in compiled.positiontup)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(compiled.string, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()
