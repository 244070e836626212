"""bench/import: time `safepref import` on a full-scale PKU-SafeRLHF file.

    .venv/bin/python bench/import.py [--rows 83400] [--small-rows 20000] [--backends ...]

1. Generates (once, cached in --workdir) a synthetic file in the PKU-SafeRLHF pair shape: all
   16 keys in order, correct sha256 values, prompts of 100-300 characters, answers of 1-2 KB
   (some non-ASCII), labels that keep the dataset's invariants.
2. For each file size and backend: a fresh migrated database, then the import as a child
   process making the calls of `safepref import FILE --project bench --labels-as reference`
   (app/cli.py: one transaction around import_file; --via-cli runs the CLI itself), measuring
   its wall time and its own peak RSS; then the same import again (every line a duplicate).
3. On PostgreSQL, a baseline child that loads the same rows into the same tables (items,
   responses, reference_labels) with psycopg COPY and no validation, in one transaction; the
   stored rows of both are compared by fingerprint.

PostgreSQL is a private server started with scripts/pg.sh with fsync on (or --postgres-url).
Targets: PostgreSQL import under 30 s, at most 3x the COPY baseline, peak RSS under 400 MB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    fresh_database,
    postgres_server,
    print_table,
    process_cpu_seconds,
    psycopg_url,
    run_measured,
    vm_hwm_kib,
)

from app.projects.taxonomy import PKU_SAFERLHF_19

FULL_ROWS = 83_400
GENERATOR_VERSION = 1
TARGET_PG_SECONDS = 30.0
TARGET_RATIO = 3.0
TARGET_RSS_MB = 400.0
LABELS = ("--labels-as", "reference")

CATEGORIES = PKU_SAFERLHF_19
SEVERITY_NAMES = {1: "minor", 2: "moderate", 3: "severe"}
PROMPT_SOURCES = ("Alpaca3-70B", "Beavertails", "WizardLM-30B-Uncensored")
RESPONSE_SOURCES = ("Alpaca-7B", "Alpaca2-7B", "Alpaca3-8B")
# Severity marginals over answers in the public train split (docs/ml-engineers/dataset.md).
SEVERITY_WEIGHTS = (71_689, 9_104, 56_537, 10_484)

_VOCAB = (
    "the a an of to and in that is for it as with be on not this you are or by your can "
    "should may will would could if when their they some other people person help safe risk "
    "law legal illegal advice consider important however also first second finally steps "
    "information health money account friend family neighbour company police doctor support "
    "situation problem question answer example reason because therefore instead always never "
    "often usually careful respect privacy report contact professional local community online "
    "website software password security data harm damage injury dangerous weapon drug "
    "medicine animal environment water food school work job manager employee customer bank"
)
_WORDS = tuple(_VOCAB.split())
# Rare non-ASCII words, so that UTF-8 decoding and byte lengths are exercised.
_RARE = ("naïve", "café", "résumé", "façade", "—", "“quoted”", "déjà")


def _corpus(rng: random.Random, chars: int, sentence_words: tuple[int, int]) -> str:
    parts: list[str] = []
    size = 0
    while size < chars:
        words = rng.choices(_WORDS, k=rng.randint(*sentence_words))
        if rng.random() < 0.1:
            words[rng.randrange(len(words))] = rng.choice(_RARE)
        sentence = " ".join(words).capitalize() + rng.choice((". ", ". ", ", ", "; ", "? "))
        parts.append(sentence)
        size += len(sentence)
    return "".join(parts)


def _slice(corpus: str, rng: random.Random, lo: int, hi: int, taken: set[tuple[int, int]]) -> str:
    """A word-aligned slice of lo..hi characters that no earlier call returned."""
    while True:
        length = rng.randint(lo, hi)
        start = corpus.index(" ", rng.randrange(len(corpus) - hi - 100)) + 1
        end = corpus.rindex(" ", start, start + length)
        if (start, end) not in taken:
            taken.add((start, end))
            text = corpus[start:end].rstrip(",;")
            return text[0].upper() + text[1:]


def _response_labels(rng: random.Random) -> tuple[bool, dict[str, bool], int]:
    severity = rng.choices((0, 1, 2, 3), weights=SEVERITY_WEIGHTS)[0]
    flagged = set(rng.sample(CATEGORIES, rng.randint(1, 3))) if severity else set()
    return severity == 0, {c: c in flagged for c in CATEGORIES}, severity


def _sha(prompt: str, text: str) -> str:
    return hashlib.sha256((prompt + text).encode("utf-8")).hexdigest()


def generate(path: Path, rows: int, seed: int = 2024) -> None:
    """Writes `rows` PKU-SafeRLHF pair records (1-3 pairs per prompt, like the public data)."""
    rng = random.Random(seed)
    answers = _corpus(rng, 4_000_000, (8, 24))
    prompts = _corpus(rng, 1_000_000, (6, 14))
    taken_answers: set[tuple[int, int]] = set()
    taken_prompts: set[tuple[int, int]] = set()
    tmp = path.with_suffix(".part")
    with tmp.open("w", encoding="utf-8") as out:
        written = 0
        while written < rows:
            prompt = _slice(prompts, rng, 100, 300, taken_prompts).rstrip(".?, ") + "?"
            prompt_source = rng.choice(PROMPT_SOURCES)
            for _ in range(min(rng.randint(1, 3), rows - written)):
                r = [_slice(answers, rng, 1000, 2000, taken_answers) for _ in range(2)]
                labels = [_response_labels(rng) for _ in range(2)]
                safe = [lab[0] for lab in labels]
                # Harmless answers always outrank harmful ones; otherwise either may be safer.
                safer = safe.index(True) if safe.count(True) == 1 else rng.randint(0, 1)
                # Helpfulness is independent of harm; the two agree in ~76% of public rows.
                better = safer if rng.random() < 0.76 else 1 - safer
                record = {
                    "prompt": prompt,
                    "response_0": r[0],
                    "response_1": r[1],
                    "prompt_source": prompt_source,
                    "response_0_source": rng.choice(RESPONSE_SOURCES),
                    "response_1_source": rng.choice(RESPONSE_SOURCES),
                    "is_response_0_safe": safe[0],
                    "is_response_1_safe": safe[1],
                    "response_0_harm_category": labels[0][1],
                    "response_1_harm_category": labels[1][1],
                    "response_0_severity_level": labels[0][2],
                    "response_1_severity_level": labels[1][2],
                    "better_response_id": better,
                    "safer_response_id": safer,
                    "response_0_sha256": _sha(prompt, r[0]),
                    "response_1_sha256": _sha(prompt, r[1]),
                }
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                written += 1
    tmp.rename(path)


def dataset(workdir: Path, rows: int) -> Path:
    path = workdir / f"pku-saferlhf-{rows}-v{GENERATOR_VERSION}.jsonl"
    if not path.exists():
        print(f"generating {path} ({rows} rows) ...", flush=True)
        generate(path, rows)
    return path


# --- the COPY baseline (runs as a child process: `import.py --baseline-copy FILE URL`) -------


def _content_hash(prompt: str, texts: list[str]) -> str:
    h = hashlib.sha256(prompt.encode("utf-8"))
    for text in sorted(texts):
        h.update(b"\x00")
        h.update(hashlib.sha256(text.encode("utf-8")).digest())
    return h.hexdigest()


def _reference_payload(d: dict[str, Any]) -> str:
    responses = []
    for i in (0, 1):
        flags = d[f"response_{i}_harm_category"]
        responses.append(
            {
                "position": i,
                "is_safe": d[f"is_response_{i}_safe"],
                "harm_categories": [c for c in CATEGORIES if flags.get(c) is True],
                "severity": SEVERITY_NAMES.get(d[f"response_{i}_severity_level"]),
            }
        )
    better, safer = d["better_response_id"], d["safer_response_id"]
    return json.dumps(
        {
            "responses": responses,
            "helpfulness": [better, 1 - better],
            "harmlessness": [safer, 1 - safer],
        }
    )


def baseline_copy(path: Path, url: str, chunk_size: int = 5000) -> None:
    """Parses the file and COPYs items, responses and reference labels: no validation."""
    import psycopg

    now = datetime.now(UTC)
    rows = 0
    with psycopg.connect(psycopg_url(url)) as conn, conn.cursor() as cur:
        backend_pid = conn.info.backend_pid
        server_cpu = process_cpu_seconds(backend_pid)
        project_id = cur.execute("SELECT id FROM projects WHERE name = 'bench'").fetchone()
        assert project_id is not None

        def flush(chunk: list[dict[str, Any]]) -> None:
            cur.execute(
                "SELECT nextval(pg_get_serial_sequence('items', 'id')) FROM generate_series(1, %s)",
                (len(chunk),),
            )
            ids = [r[0] for r in cur.fetchall()]
            with cur.copy(
                "COPY items (id, project_id, prompt, prompt_source, meta, content_hash, "
                "created_at) FROM STDIN"
            ) as cp:
                for item_id, d in zip(ids, chunk, strict=True):
                    texts = [d["response_0"], d["response_1"]]
                    cp.write_row(
                        (
                            item_id,
                            project_id[0],
                            d["prompt"],
                            d["prompt_source"],
                            "null",
                            _content_hash(d["prompt"], texts),
                            now,
                        )
                    )
            with cur.copy(
                "COPY responses (item_id, position, text, source, sha256) FROM STDIN"
            ) as cp:
                for item_id, d in zip(ids, chunk, strict=True):
                    for i in (0, 1):
                        cp.write_row(
                            (
                                item_id,
                                i,
                                d[f"response_{i}"],
                                d[f"response_{i}_source"],
                                d[f"response_{i}_sha256"],
                            )
                        )
            with cur.copy(
                "COPY reference_labels (item_id, origin, payload, created_at) FROM STDIN"
            ) as cp:
                for item_id, d in zip(ids, chunk, strict=True):
                    cp.write_row((item_id, "import", _reference_payload(d), now))

        chunk: list[dict[str, Any]] = []
        with path.open("rb") as fp:
            for line in fp:
                if line.strip():
                    chunk.append(json.loads(line))
                    if len(chunk) >= chunk_size:
                        flush(chunk)
                        rows += len(chunk)
                        chunk = []
        if chunk:
            flush(chunk)
            rows += len(chunk)
        conn.commit()
        server_cpu = process_cpu_seconds(backend_pid) - server_cpu
    print(json.dumps({"rows": rows, "server_cpu_s": server_cpu, "vm_hwm_kib": vm_hwm_kib()}))


# --- the driver -------------------------------------------------------------------------------


def child_import(path: Path) -> None:
    """What `safepref import FILE --project bench --labels-as reference` does (app/cli.py):
    one transaction around get-or-create project + import_file; prints the same summary,
    then its own peak RSS and the CPU time its PostgreSQL backend spent (a local server)."""
    from app.config import get_settings
    from app.db import get_sessionmaker
    from app.imports.service import import_file
    from app.projects.service import create_project, get_project_by_name

    settings = get_settings()
    backend_pid = None
    with get_sessionmaker().begin() as session, path.open("rb") as fp:
        if not settings.is_sqlite:
            backend_pid = session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
            server_cpu = process_cpu_seconds(backend_pid)
        project = get_project_by_name(session, "bench") or create_project(session, "bench")
        result = import_file(session, project, fp, settings=settings, labels_as="reference")
    print(f"{result.items_created} items created, {result.items_duplicate} duplicates skipped")
    report: dict[str, float] = {"vm_hwm_kib": vm_hwm_kib()}
    if backend_pid is not None:
        report["server_cpu_s"] = process_cpu_seconds(backend_pid) - server_cpu
    print(json.dumps(report))


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float
    server_cpu_seconds: float | None
    created: int = 0
    duplicates: int = 0


def run_import(path: Path, url: str, via_cli: bool) -> Run:
    """The import in a child process."""
    argv = (
        [PYTHON, "-m", "app.cli", "import", str(path), "--project", "bench", *LABELS]
        if via_cli
        else [PYTHON, str(Path(__file__)), "--child-import", str(path)]
    )
    m = run_measured(argv, env={"SAFEPREF_DATABASE_URL": url})
    found = re.search(r"(\d+) items created, (\d+) duplicates skipped", m.output)
    if found is None:
        raise RuntimeError(f"unexpected import output:\n{m.output}")
    server = m.last_json().get("server_cpu_s") if not via_cli else None
    return Run(m.seconds, m.peak_rss_mb, m.cpu_seconds, server, int(found[1]), int(found[2]))


def run_baseline(path: Path, url: str) -> Run:
    m = run_measured([PYTHON, str(Path(__file__)), "--baseline-copy", str(path), url])
    return Run(m.seconds, m.peak_rss_mb, m.cpu_seconds, m.last_json()["server_cpu_s"])


def stored_counts(url: str) -> tuple[int, int, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return tuple(  # type: ignore[return-value]
                conn.scalar(text(f"SELECT count(*) FROM {t}")) or 0
                for t in ("items", "responses", "reference_labels")
            )
    finally:
        engine.dispose()


def fingerprint(url: str) -> str:
    """A digest of what was stored, independent of ids and insertion order (PostgreSQL)."""
    import psycopg

    query = """
        SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
            SELECT i.content_hash || i.prompt_source || md5(i.prompt) || coalesce(i.meta::text, '')
                || r.position || r.sha256 || md5(r.text) || r.source AS x
            FROM items i JOIN responses r ON r.item_id = i.id
            UNION ALL
            SELECT i.content_hash || l.origin || (l.payload::jsonb)::text
            FROM items i JOIN reference_labels l ON l.item_id = i.id
        ) s
    """
    with psycopg.connect(psycopg_url(url)) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return str(row[0])


def create_bench_project(url: str) -> None:
    from sqlalchemy.orm import Session

    from app.config import Settings
    from app.db import make_engine
    from app.projects.service import create_project

    engine = make_engine(Settings(database_url=url))
    with Session(engine) as session, session.begin():
        create_project(session, "bench")
    engine.dispose()


@dataclass
class Figures:
    first: Run
    again: Run
    copy: Run | None


def _best(runs: list[Run]) -> Run:
    best = min(runs, key=lambda r: r.seconds)
    best.peak_rss_mb = max(r.peak_rss_mb for r in runs)  # memory: the worst run
    return best


def measure(
    backend: str, path: Path, rows: int, args: argparse.Namespace, server_url: str | None
) -> tuple[Figures, list[str]]:
    """Best of --repeat runs of: import into a fresh database, re-import, COPY baseline."""
    problems: list[str] = []
    firsts: list[Run] = []
    agains: list[Run] = []
    copies: list[Run] = []
    ours = ""
    expected = (rows, 2 * rows, rows)
    for _ in range(args.repeat):
        url = fresh_database(
            backend, f"bench_import_{rows}", workdir=args.workdir, server_url=server_url
        )
        print(f"  {backend}, {rows} rows: import ...", flush=True)
        first = run_import(path, url, args.via_cli)
        if (first.created, first.duplicates) != (rows, 0) or stored_counts(url) != expected:
            problems.append(f"{backend} {rows}: {first}, stored {stored_counts(url)}")
        print(f"  {backend}, {rows} rows: re-import ...", flush=True)
        again = run_import(path, url, args.via_cli)
        if (again.created, again.duplicates) != (0, rows) or stored_counts(url) != expected:
            problems.append(f"{backend} {rows} re-import: {again}, stored {stored_counts(url)}")
        firsts.append(first)
        agains.append(again)
        if backend == "postgresql":
            ours = fingerprint(url)
    if backend == "postgresql":
        for _ in range(args.repeat):
            base_url = fresh_database(
                backend, f"bench_copy_{rows}", workdir=args.workdir, server_url=server_url
            )
            create_bench_project(base_url)
            print(f"  {backend}, {rows} rows: COPY baseline ...", flush=True)
            copies.append(run_baseline(path, base_url))
            if stored_counts(base_url) != expected or fingerprint(base_url) != ours:
                problems.append(f"{rows}: the COPY baseline stored other rows than our import")
    discard(backend, [f"bench_import_{rows}", f"bench_copy_{rows}"], args.workdir, server_url)
    return Figures(_best(firsts), _best(agains), _best(copies) if copies else None), problems


def discard(backend: str, names: list[str], workdir: Path, server_url: str | None) -> None:
    """Drops the benchmark's databases (hundreds of MB each at full scale)."""
    if backend == "sqlite":
        for name in names:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{workdir / name}.db{suffix}").unlink(missing_ok=True)
        return
    import psycopg

    assert server_url is not None
    with psycopg.connect(psycopg_url(server_url), autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def _cpu(run: Run | None) -> str:
    if run is None:
        return "-"
    if run.server_cpu_seconds is None:
        return f"{run.cpu_seconds:.1f}"
    return f"{run.cpu_seconds:.1f} + {run.server_cpu_seconds:.1f}"


def server_settings(url: str) -> str:
    import psycopg

    with psycopg.connect(psycopg_url(url)) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        fsync = conn.execute("SHOW fsync").fetchone()
        sync = conn.execute("SHOW synchronous_commit").fetchone()
    assert version and fsync and sync
    return f"PostgreSQL {version[0]}, fsync={fsync[0]}, synchronous_commit={sync[0]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=FULL_ROWS, help="pair records (full scale)")
    parser.add_argument(
        "--small-rows",
        type=int,
        default=20_000,
        help="a second, smaller file to show that peak RSS does not grow (0: skip)",
    )
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=1, help="report the best of N runs")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/safepref-bench-import"))
    parser.add_argument(
        "--postgres-url", help="use this server instead of starting a private one (fsync on)"
    )
    parser.add_argument(
        "--via-cli",
        action="store_true",
        help="run `python -m app.cli import` itself rather than the same calls in this script",
    )
    parser.add_argument("--baseline-copy", nargs=2, metavar=("FILE", "URL"), help=argparse.SUPPRESS)
    parser.add_argument("--child-import", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.baseline_copy:
        baseline_copy(Path(args.baseline_copy[0]), args.baseline_copy[1])
        return 0
    if args.child_import:
        child_import(args.child_import)
        return 0

    args.workdir.mkdir(parents=True, exist_ok=True)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    sizes = sorted({n for n in (args.small_rows, args.rows) if n > 0})
    files = {n: dataset(args.workdir, n) for n in sizes}

    need_pg = "postgresql" in backends
    server = (
        nullcontext(args.postgres_url)
        if args.postgres_url or not need_pg
        else postgres_server(args.workdir, fsync=True)
    )
    load_before = os.getloadavg()[0]
    times: list[list[object]] = []
    memory: list[list[object]] = []
    failures: list[str] = []
    with server as server_url:
        pg_info = server_settings(server_url) if need_pg and server_url else ""
        for n in sizes:
            path = files[n]
            size_mb = path.stat().st_size / 2**20
            print(f"{n} rows, {size_mb:.0f} MB:", flush=True)
            for backend in backends:
                fig, problems = measure(backend, path, n, args, server_url)
                failures += problems
                if fig.first.peak_rss_mb > TARGET_RSS_MB:
                    failures.append(f"{backend} {n}: peak RSS {fig.first.peak_rss_mb:.0f} MB")
                ratio = None
                if fig.copy is not None:
                    ratio = fig.first.seconds / fig.copy.seconds
                    # Time targets are for the full-scale file (start-up dominates small ones).
                    if n >= FULL_ROWS and fig.first.seconds > TARGET_PG_SECONDS:
                        failures.append(f"postgresql {n}: {fig.first.seconds:.1f} s")
                    if n >= FULL_ROWS and ratio > TARGET_RATIO:
                        failures.append(f"postgresql {n}: {ratio:.2f}x the COPY baseline")
                times.append(
                    [
                        backend,
                        n,
                        f"{fig.first.seconds:.1f}",
                        f"{n / fig.first.seconds:,.0f}",
                        _cpu(fig.first),
                        f"{fig.again.seconds:.1f}",
                        _cpu(fig.again),
                        _opt(fig.copy and fig.copy.seconds, "{:.1f}"),
                        _cpu(fig.copy),
                        _opt(ratio, "{:.2f}x"),
                    ]
                )
                memory.append(
                    [
                        backend,
                        n,
                        f"{size_mb:.0f}",
                        f"{fig.first.peak_rss_mb:.0f}",
                        f"{fig.again.peak_rss_mb:.0f}",
                        _opt(fig.copy and fig.copy.peak_rss_mb, "{:.0f}"),
                    ]
                )
    print()
    print(
        f"bench/import: import --labels-as reference "
        f"({'the CLI' if args.via_cli else 'the CLI calls'}) in a child process, one "
        f"transaction; best of {args.repeat}; {os.cpu_count()} CPUs, load average "
        f"{load_before:.1f} before / {os.getloadavg()[0]:.1f} after"
    )
    if pg_info:
        print(pg_info)
    print("CPU s = the importing process + its PostgreSQL backend")
    print()
    print_table(
        [
            "backend",
            "rows",
            "import s",
            "rows/s",
            "CPU s",
            "re-import s",
            "CPU s",
            "COPY s",
            "CPU s",
            "ours/COPY",
        ],
        times,
    )
    print()
    print_table(
        ["backend", "rows", "file MB", "peak RSS MB", "re-import RSS MB", "COPY RSS MB"],
        memory,
    )
    print()
    print(
        f"targets: PostgreSQL import < {TARGET_PG_SECONDS:.0f} s at {FULL_ROWS} rows, "
        f"<= {TARGET_RATIO:.0f}x the COPY baseline, peak RSS < {TARGET_RSS_MB:.0f} MB"
    )
    for failure in failures:
        print(f"MISSED: {failure}")
    if not failures:
        print("all targets met; counts checked; stored rows identical to the COPY baseline's")
    return 1 if failures else 0


def _opt(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


if __name__ == "__main__":
    sys.exit(main())
