"""The directory where each worker process writes its metrics (prometheus-client's
multiprocess mode), set up by `safepref serve` before any worker starts.

Kept apart from app/ops/metrics.py on purpose: prometheus-client decides between one process
and many when a metric is created, from PROMETHEUS_MULTIPROC_DIR, so that variable must be set
before that module is imported.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir() -> tuple[Path, bool]:
    """An empty directory for this start's samples, and whether it was made here: the
    operator's PROMETHEUS_MULTIPROC_DIR emptied, or a new temporary one. Samples of an
    earlier start would otherwise be added to this one's."""
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        return directory, False
    directory = Path(tempfile.mkdtemp(prefix="safepref-metrics-"))
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory, True


def remove_multiprocess_dir(directory: Path, *, created: bool) -> None:
    if created:
        shutil.rmtree(directory, ignore_errors=True)


def worker_exited(pid: int) -> None:
    """Drops a dead worker's live gauges (its counters and histograms stay counted)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
