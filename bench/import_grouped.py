"""bench/import_grouped: peak memory of importing a one-answer-per-line file (QA shape).

    .venv/bin/python bench/import_grouped.py [--lines 600000] [--backends sqlite,postgresql]

The PKU-SafeRLHF-QA and BeaverTails formats hold one answer per line, so an import groups the
lines by prompt before it can build items. This script generates (once, cached in --workdir)
a QA file of --lines lines, two answers per prompt, with short texts (the figure of interest
is what the grouping costs per line, not the size of the texts), imports it into a fresh
database in a child process, and reports the child's wall time and peak RSS. A second,
smaller file (--small-lines) shows whether peak RSS grows with the number of lines.
Target: the difference between the two peaks stays under 40 MB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    fresh_database,
    postgres_server,
    print_table,
    run_measured,
    vm_hwm_kib,
)

GENERATOR_VERSION = 2
TARGET_GROWTH_MB = 40.0


def dataset(workdir: Path, lines: int) -> Path:
    path = workdir / f"qa-{lines}-v{GENERATOR_VERSION}.jsonl"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for n in range(lines):
            # Answers of one prompt are far apart in the file, as in the public dataset.
            q = n % (lines // 2)
            prompt = f"Question {q}: how would one go about task {q * 7919 % 997}?"
            response = f"Answer {n}: a short reply that does not help with anything harmful."
            digest = hashlib.sha256((prompt + response).encode("utf-8")).hexdigest()
            row = {
                "prompt": prompt,
                "response": response,
                "prompt_source": "bench",
                "response_source": "bench-model",
                "sha256": digest,
                "is_safe": True,
                "harm_category": {},
                "severity_level": 0,
            }
            out.write(json.dumps(row) + "\n")
    tmp.rename(path)
    return path


def child_import(path: Path) -> None:
    """`safepref import FILE --project bench --format pku-saferlhf-qa` as app/cli.py does it."""
    from app.config import get_settings
    from app.db import get_sessionmaker
    from app.imports.service import import_file
    from app.projects.service import create_project, get_project_by_name

    settings = get_settings()
    with get_sessionmaker().begin() as session, path.open("rb") as fp:
        project = get_project_by_name(session, "bench") or create_project(session, "bench")
        result = import_file(session, project, fp, settings=settings, fmt="pku-saferlhf-qa")
    print(json.dumps({"items": result.items_created, "vm_hwm_kib": vm_hwm_kib()}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=600_000)
    parser.add_argument("--small-lines", type=int, default=20_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/safepref-bench-import"))
    parser.add_argument("--postgres-url", help="use this server instead of a private one")
    parser.add_argument("--child-import", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_import:
        child_import(args.child_import)
        return 0

    args.workdir.mkdir(parents=True, exist_ok=True)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    sizes = sorted({n for n in (args.small_lines, args.lines) if n > 0})
    files = {n: dataset(args.workdir, n) for n in sizes}
    need_pg = "postgresql" in backends and not args.postgres_url
    server = postgres_server(args.workdir) if need_pg else nullcontext(args.postgres_url)
    rows: list[list[object]] = []
    peaks: dict[str, dict[int, float]] = {}
    failures: list[str] = []
    with server as server_url:
        for backend in backends:
            for n in sizes:
                url = fresh_database(
                    backend, f"bench_grouped_{n}", workdir=args.workdir, server_url=server_url
                )
                print(f"  {backend}, {n} lines ...", flush=True)
                run = run_measured(
                    [PYTHON, str(Path(__file__)), "--child-import", str(files[n])],
                    env={"SAFEPREF_DATABASE_URL": url},
                )
                items = run.last_json()["items"]
                if items != n // 2:
                    failures.append(f"{backend} {n}: {items} items, expected {n // 2}")
                peaks.setdefault(backend, {})[n] = run.peak_rss_mb
                rows.append(
                    [
                        backend,
                        n,
                        f"{files[n].stat().st_size / 2**20:.0f}",
                        f"{run.seconds:.1f}",
                        f"{run.peak_rss_mb:.0f}",
                    ]
                )
    print()
    print(f"bench/import_grouped: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print_table(["backend", "lines", "file MB", "seconds", "peak RSS MB"], rows)
    for backend, by_size in peaks.items():
        if len(by_size) == 2:
            growth = by_size[max(by_size)] - by_size[min(by_size)]
            low, high = min(by_size), max(by_size)
            print(f"{backend}: peak RSS grows {growth:.0f} MB from {low} to {high} lines")
            if growth > TARGET_GROWTH_MB:
                failures.append(f"{backend}: peak RSS grows {growth:.0f} MB")
    for failure in failures:
        print("FAILED:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
