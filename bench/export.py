"""bench/export: time the `pku-saferlhf` export and the batch metrics at full scale.

    .venv/bin/python bench/export.py [--items 83400] [--workdir DIR] [--postgres-url URL]

1. A private PostgreSQL server (scripts/pg.sh, fsync on) and a fresh migrated database, filled
   directly with COPY: one project, one batch (overlap 3) of --items items with two answers
   each (prompts of 100-300 characters, answers of 1-2 KB, some non-ASCII), and three submitted
   annotations per item (assignments + annotations) that agree with a base label ~90% of the
   time per question, every vote keeping the labelling rules.
2. The CLI export (`python -m app.cli export --format pku-saferlhf --batch ID`, default
   filters and default --jobs: one worker process per core) as a child process writing to a
   pipe: time to first byte, total time, peak RSS (the largest of the process and its
   workers), lines and bytes.
3. The baseline: a child process that streams the rows the export reads (items joined with
   their responses, and the batch's annotations, both in item order) with COPY ... TO STDOUT
   into the same kind of pipe.
4. The HTTP export (`GET /api/v1/exports/pku-saferlhf?batch_id=`) from `safepref serve`:
   time to the first byte of the body (a client that then hangs up), total time with curl,
   and the server's peak RSS (VmHWM) after it; then `GET /api/v1/batches/{id}/metrics`.

Each measurement runs --repeat times, each export right after a baseline run; times are the
best run, the ratio is the median of the (baseline, export) pairs, and every run is printed,
since the machine is shared. Targets on the 2-core dev machine:
export under 20 s and at most 3x the baseline, first byte under 2 s, peak RSS under 300 MB;
metrics under 3 s.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    ROOT,
    admin_token,
    free_port,
    fresh_database,
    postgres_server,
    print_table,
    psycopg_url,
)

from app.projects.taxonomy import PKU_SAFERLHF_19

TARGET_SECONDS = 20.0
TARGET_RATIO = 3.0
TARGET_FIRST_BYTE = 2.0
TARGET_RSS_MB = 300.0
TARGET_METRICS_SECONDS = 3.0
SECRET = "bench-export-" + "x" * 40

CATEGORIES = PKU_SAFERLHF_19
SEVERITIES = ("minor", "moderate", "severe")
# Answer severity marginals of the public train split: safe, minor, moderate, severe.
SEVERITY_WEIGHTS = (71_689, 9_104, 56_537, 10_484)
WORDS = [
    "the",
    "a",
    "to",
    "of",
    "and",
    "in",
    "is",
    "you",
    "it",
    "that",
    "for",
    "can",
    "your",
    "with",
    "this",
    "be",
    "are",
    "or",
    "not",
    "as",
    "on",
    "have",
    "people",
    "should",
    "would",
    "could",
    "about",
    "their",
    "some",
    "more",
    "other",
    "when",
    "if",
    "they",
    "will",
    "which",
    "time",
    "help",
    "make",
    "use",
    "way",
    "any",
    "also",
    "may",
    "such",
    "only",
    "like",
    "what",
    "how",
    "do",
    "get",
    "because",
    "good",
    "need",
    "first",
    "person",
    "question",
    "answer",
    "safe",
    "harm",
    "risk",
    "law",
    "legal",
    "illegal",
    "money",
    "bank",
    "account",
    "data",
    "report",
    "information",
    "important",
    "consider",
    "however",
    "always",
    "never",
    "instead",
    "try",
    "ask",
    "please",
]
RARE = ("naïve", "café", "résumé", "—", "“quoted”", "déjà")


# ------------------------------------------------------------------------------ data


def corpus(rng: random.Random, chars: int) -> str:
    parts, size = [], 0
    while size < chars:
        words = rng.choices(WORDS, k=rng.randint(6, 20))
        if rng.random() < 0.1:
            words[rng.randrange(len(words))] = rng.choice(RARE)
        sentence = " ".join(words).capitalize() + rng.choice((". ", ", ", "? "))
        parts.append(sentence)
        size += len(sentence)
    return "".join(parts)


def piece(text: str, rng: random.Random, lo: int, hi: int, serial: int) -> str:
    start = rng.randrange(len(text) - hi - 1)
    # The serial number keeps every text distinct (items are de-duplicated by content).
    return f"{serial}. " + text[start : start + rng.randint(lo, hi)].strip()


def base_label(rng: random.Random) -> dict[str, Any]:
    level = rng.choices((0, 1, 2, 3), weights=SEVERITY_WEIGHTS)[0]
    if level == 0:
        return {"is_safe": True, "harm_categories": [], "severity": None}
    flagged = set(rng.sample(CATEGORIES, rng.randint(1, 3)))
    return {
        "is_safe": False,
        "harm_categories": [c for c in CATEGORIES if c in flagged],
        "severity": SEVERITIES[level - 1],
    }


def vote(rng: random.Random, base: dict[str, Any], ids: list[int]) -> dict[str, Any]:
    """One annotator's labels: the base label ~90% of the time per question, always valid."""
    labels = [dict(b) if rng.random() < 0.9 else base_label(rng) for b in base["responses"]]
    helpful = base["helpfulness"] if rng.random() < 0.9 else base["helpfulness"][::-1]
    harmless = base["harmlessness"] if rng.random() < 0.9 else base["harmlessness"][::-1]
    safe = [lab["is_safe"] for lab in labels]
    if safe.count(True) == 1:  # a lone safe answer ranks first for harmlessness
        first = safe.index(True)
        harmless = [first, 1 - first]
    return {
        "responses": [{"response_id": ids[i], **labels[i]} for i in range(2)],
        "helpfulness": [ids[p] for p in helpful],
        "harmlessness": [ids[p] for p in harmless],
    }


def seed(url: str, n_items: int, rng_seed: int = 7) -> int:
    """Fills the database; returns the batch id."""
    import psycopg
    from sqlalchemy.orm import Session

    from app.auth.models import User
    from app.batches.models import Batch
    from app.config import Settings
    from app.db import make_engine
    from app.projects.models import Project

    engine = make_engine(Settings(database_url=url))
    with Session(engine) as session, session.begin():
        project = Project(name="bench", taxonomy=list(CATEGORIES))
        session.add(project)
        users = [User(username=f"ann{k}", role="annotator", password_hash="x") for k in range(3)]
        session.add_all(users)
        session.flush()
        batch = Batch(project_id=project.id, name="bench", overlap=3)
        session.add(batch)
        session.flush()
        project_id, batch_id, user_ids = project.id, batch.id, [u.id for u in users]
    engine.dispose()

    rng = random.Random(rng_seed)
    answers, prompts = corpus(rng, 3_000_000), corpus(rng, 600_000)
    now = datetime.now(UTC)
    with psycopg.connect(psycopg_url(url)) as conn, conn.cursor() as cur:
        items, responses, batch_items, assignments, annotations = [], [], [], [], []
        for i in range(1, n_items + 1):
            prompt = piece(prompts, rng, 100, 300, i).rstrip(".,? ") + "?"
            texts = [piece(answers, rng, 1000, 2000, i) for _ in range(2)]
            content = hashlib.sha256(prompt.encode() + b"\x00".join(t.encode() for t in texts))
            items.append((i, project_id, prompt, "Alpaca3-70B", content.hexdigest(), now))
            ids = [2 * i - 1, 2 * i]
            for k in range(2):
                sha = hashlib.sha256((prompt + texts[k]).encode("utf-8")).hexdigest()
                responses.append((ids[k], i, k, texts[k], f"Alpaca-{k + 7}B", sha))
            batch_items.append((batch_id, i, 3, 3, rng.randrange(2**31), False))
            labels = [base_label(rng) for _ in range(2)]
            safe = [lab["is_safe"] for lab in labels]
            safer = safe.index(True) if safe.count(True) == 1 else rng.randint(0, 1)
            better = safer if rng.random() < 0.76 else 1 - safer
            base = {
                "responses": labels,
                "helpfulness": [better, 1 - better],
                "harmlessness": [safer, 1 - safer],
            }
            for k, user_id in enumerate(user_ids):
                aid = 3 * (i - 1) + k + 1
                order = json.dumps(ids if rng.random() < 0.5 else ids[::-1])
                at = now - timedelta(seconds=n_items - i)
                assignments.append(
                    (aid, batch_id, i, user_id, "submitted", at, order, False, at, at)
                )
                payload = json.dumps(vote(rng, base, ids))
                duration = rng.randint(20_000, 180_000)
                annotations.append(
                    (aid, aid, batch_id, i, user_id, 1, payload, duration, False, at, at)
                )
        tables = {
            "items (id, project_id, prompt, prompt_source, content_hash, created_at)": items,
            "responses (id, item_id, position, text, source, sha256)": responses,
            "batch_items (batch_id, item_id, taken, submitted, shuffle_key, is_gold)": batch_items,
            "assignments (id, batch_id, item_id, annotator_id, status, leased_until, "
            "display_order, is_gold, created_at, submitted_at)": assignments,
            "annotations (id, assignment_id, batch_id, item_id, annotator_id, revision, "
            "payload, duration_ms, suggestion_viewed, created_at, updated_at)": annotations,
        }
        for target, rows in tables.items():
            with cur.copy(f"COPY {target} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        for table in ("items", "responses", "assignments", "annotations"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        conn.commit()
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE")
    return batch_id


# -------------------------------------------------------------------------- children


def baseline(url: str, batch_id: int) -> None:
    """The rows the export reads, with COPY ... TO STDOUT, written to standard output."""
    import psycopg

    queries = [
        "COPY (SELECT i.id, i.project_id, i.prompt, i.prompt_source, r.id, r.position, r.text,"
        " r.source, r.sha256 FROM batch_items b JOIN items i ON i.id = b.item_id"
        " JOIN responses r ON r.item_id = i.id"
        f" WHERE b.batch_id = {batch_id} ORDER BY i.id, r.position) TO STDOUT",
        "COPY (SELECT a.batch_id, a.item_id, a.annotator_id, a.payload FROM annotations a"
        f" WHERE a.batch_id = {batch_id} ORDER BY a.item_id, a.id) TO STDOUT",
    ]
    out = sys.stdout.buffer
    with psycopg.connect(psycopg_url(url)) as conn, conn.cursor() as cur:
        for query in queries:
            with cur.copy(query) as copy:
                for chunk in copy:
                    out.write(chunk)
    out.flush()


@dataclass
class Streamed:
    first_byte: float
    seconds: float
    peak_rss_mb: float
    lines: int
    size_mb: float
    head: bytes


def run_streamed(argv: Sequence[str], env: dict[str, str]) -> Streamed:
    """Runs a child writing to a pipe; times its first byte and its end; its own peak RSS."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(argv), cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    first = 0.0
    lines = size = 0
    head = b""
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        if not size:
            first = time.perf_counter() - start
        if len(head) < 65536:
            head += chunk[:65536]
        size += len(chunk)
        lines += chunk.count(b"\n")
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} failed")
    return Streamed(first, seconds, usage.ru_maxrss / 1024, lines, size / 2**20, head)


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def http_figures(url: str, batch_id: int, env: dict[str, str], repeat: int) -> dict[str, Any]:
    token = admin_token(url)
    port = free_port()
    server = subprocess.Popen(
        [PYTHON, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        idle_rss = vm_hwm_mb(server.pid)

        def get(path: str) -> tuple[float, float, int]:
            # curl reads the body in C, so the client's own work does not weigh on the figures.
            out = subprocess.run(
                [
                    "curl", "-sS", "--fail", "-o", "/dev/null",
                    "-H", f"Authorization: Bearer {token}",
                    "-w", "%{time_starttransfer} %{time_total} %{size_download}",
                    base + path,
                ],
                check=True, capture_output=True, text=True,
            ).stdout.split()  # fmt: skip
            return float(out[0]), float(out[1]), int(float(out[2]))

        def first_body_byte(path: str) -> float:
            # curl's time_starttransfer counts the headers, sent before the body is computed:
            # time the first byte of the body instead, then hang up (the server must cope).
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            start = time.perf_counter()
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            assert response.status == 200 and response.read(1)
            first = time.perf_counter() - start
            conn.close()
            return first

        export_path = f"/api/v1/exports/pku-saferlhf?batch_id={batch_id}"
        firsts = [first_body_byte(export_path) for _ in range(repeat)]
        exports = [get(export_path) for _ in range(repeat)]
        export_rss = vm_hwm_mb(server.pid)
        metrics = [get(f"/api/v1/batches/{batch_id}/metrics")[1] for _ in range(repeat)]
        best = min(exports, key=lambda e: e[1])
        return {
            "http_first_byte_s": min(firsts),
            "http_export_s": best[1],
            "http_export_runs_s": [e[1] for e in exports],
            "http_export_mb": best[2] / 2**20,
            "server_idle_rss_mb": idle_rss,
            "server_peak_rss_mb": export_rss,
            "metrics_s": min(metrics),
            "metrics_runs_s": metrics,
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


# ------------------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=83_400)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/safepref-bench-export"))
    parser.add_argument("--postgres-url", help="use this server instead of a private one")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measurement")
    parser.add_argument("--baseline", nargs=2, metavar=("URL", "BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--seed", nargs=2, metavar=("URL", "ITEMS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        baseline(args.baseline[0], int(args.baseline[1]))
        return 0
    if args.seed:
        print(seed(args.seed[0], int(args.seed[1])))
        return 0

    args.workdir.mkdir(parents=True, exist_ok=True)
    server = (
        nullcontext(args.postgres_url)
        if args.postgres_url
        else postgres_server(args.workdir, fsync=True)
    )
    with server as server_url:
        url = fresh_database(
            "postgresql", "bench_export", workdir=args.workdir, server_url=server_url
        )
        started = time.perf_counter()
        # Seeded by a child process: the children measured below are forked from this one,
        # and a parent holding the generated rows would lend them its memory (peak RSS).
        seeded = subprocess.run(
            [PYTHON, str(Path(__file__)), "--seed", url, str(args.items)],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        batch_id = int(seeded.stdout.strip().splitlines()[-1])
        print(f"seeded {args.items} items x 3 annotations in {time.perf_counter() - started:.1f} s")
        env = {"SAFEPREF_DATABASE_URL": url, "SAFEPREF_SECRET_KEY": SECRET}

        baseline_argv = [PYTHON, str(Path(__file__)), "--baseline", url, str(batch_id)]
        export_argv = [PYTHON, "-m", "app.cli", "export", "--format", "pku-saferlhf"]
        export_argv += ["--batch", str(batch_id)]
        # Alternated and repeated: on a shared machine the best of a few runs is the figure
        # least disturbed by other work; every run is reported.
        bases: list[Streamed] = []
        ours_runs: list[Streamed] = []
        for _ in range(args.repeat):
            bases.append(run_streamed(baseline_argv, env))
            ours_runs.append(run_streamed(export_argv, env))
        http = http_figures(url, batch_id, env, args.repeat)
    base = min(bases, key=lambda r: r.seconds)
    ours = min(ours_runs, key=lambda r: r.seconds)
    first_line = json.loads(ours.head.split(b"\n", 1)[0])
    # Each export ran right after its baseline, under much the same load: the median of these
    # pairwise ratios is steadier than a ratio of two minima.
    pair_ratios = sorted(o.seconds / b.seconds for b, o in zip(bases, ours_runs, strict=True))
    ratio = pair_ratios[len(pair_ratios) // 2]

    def row(name: str, r: Streamed, runs: list[Streamed]) -> list[object]:
        every = " ".join(f"{x.seconds:.1f}" for x in runs)
        first = min(x.first_byte for x in runs)
        peak = max(x.peak_rss_mb for x in runs)
        return [name, f"{first:.2f}", f"{r.seconds:.2f}", every, f"{peak:.0f}", r.lines,
                f"{r.size_mb:.0f}"]  # fmt: skip

    print_table(
        ["run", "first byte s", "best s", "all runs s", "peak RSS MB", "lines", "MB out"],
        [
            row("COPY baseline", base, bases),
            row("CLI export", ours, ours_runs),
            ["HTTP export", f"{http['http_first_byte_s']:.2f}", f"{http['http_export_s']:.2f}",
             " ".join(f"{x:.1f}" for x in http["http_export_runs_s"]),
             f"{http['server_peak_rss_mb']:.0f} (server)", "", f"{http['http_export_mb']:.0f}"],
        ],
    )  # fmt: skip
    print(
        f"ratio CLI export / COPY baseline: median of pairs {ratio:.2f}x (pairs "
        + " ".join(f"{r:.2f}" for r in pair_ratios)
        + f"; best runs {ours.seconds / base.seconds:.2f}x)"
    )
    print(
        f"GET metrics: best {http['metrics_s']:.2f} s, runs "
        + " ".join(f"{x:.2f}" for x in http["metrics_runs_s"])
        + f"; server RSS idle {http['server_idle_rss_mb']:.0f} MB"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (2 cores)")
    failures = []
    if list(first_line)[:3] != ["prompt", "response_0", "response_1"] or len(first_line) != 16:
        failures.append("the first line is not a 16-key pku-saferlhf record")
    peak = max(x.peak_rss_mb for x in ours_runs)
    first_byte = min(x.first_byte for x in ours_runs)
    for name, value, limit in (
        ("CLI export s", ours.seconds, TARGET_SECONDS),
        ("HTTP export s", http["http_export_s"], TARGET_SECONDS),
        ("ratio", ratio, TARGET_RATIO),
        ("CLI first byte s", first_byte, TARGET_FIRST_BYTE),
        ("HTTP first byte s", http["http_first_byte_s"], TARGET_FIRST_BYTE),
        ("CLI peak RSS MB", peak, TARGET_RSS_MB),
        ("server peak RSS MB", http["server_peak_rss_mb"], TARGET_RSS_MB),
        ("metrics s", http["metrics_s"], TARGET_METRICS_SECONDS),
    ):
        if value > limit:
            failures.append(f"{name}: {value:.2f} > {limit}")
    report = {
        "items": args.items,
        "baseline_s": base.seconds,
        "baseline_runs_s": [x.seconds for x in bases],
        "export_s": ours.seconds,
        "export_runs_s": [x.seconds for x in ours_runs],
        "ratio": ratio,
        "pair_ratios": pair_ratios,
        "first_byte_s": first_byte,
        "peak_rss_mb": peak,
        "lines": ours.lines,
        **http,
        "load_average": os.getloadavg()[0],
        "failures": failures,
    }
    print(json.dumps(report))
    for failure in failures:
        print(f"TARGET MISSED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
