"""bench/scale: one batch of 333,400 items x 3 = 1,000,200 annotations on PostgreSQL.

    .venv/bin/python bench/scale.py [--items 333400] [--repeat 2] [--rate 100]
                                    [--open-seconds 30] [--workdir DIR] [--postgres-url URL]

1. A private PostgreSQL server (scripts/pg.sh, fsync on) and a fresh migrated database.
2. The state a finished batch would have, written in bulk rather than through the API (a
   million next + submit calls over HTTP would take hours here): one project (created by the
   app's own service, so its guideline version exists), three annotators who are members of
   one batch (overlap 3), and for each of --items items with two answers (bench/export.py's
   generator: prompts of 100-300 characters, answers of 1-2 KB) the rows the queue writes when
   three annotators each take and submit it (app/queue/sql/next.sql and submit.sql):
   - batch_items: taken = submitted = 3, a random shuffle key;
   - assignments: status 'submitted', the lease's end as the claim left it, the display order
     (the answer ids, shuffled), submitted_at;
   - annotations: revision 1, the payload in the stored form (answer labels in position order,
     categories in taxonomy order), duration, created_at = updated_at = the submit; the
     guideline version is set by the database's own trigger, as for every insert;
   - annotation_revisions: revision 1 with the same payload, duration and time.
   Everything goes in with COPY, streamed in chunks (memory stays flat), then VACUUM ANALYZE.
   A consistency query then checks the counters against the rows (what the queue's
   invariants say), and after the load test below a second one checks that the rows the real
   `safepref serve` wrote have the same shape (which columns are set, the payload's keys) as
   the bulk-written ones.
3. Measured against the targets on the 2-core development machine:
   - CLI export (`safepref export --format pku-saferlhf --batch ID`) at most 2x a COPY
     baseline of the same rows (bench/export.py's baseline), peak RSS under 300 MB;
   - HTTP export: first byte of the body under 1 s;
   - `GET /api/v1/batches/{id}/metrics` under 5 s;
   - the dashboard under 0.2 s warm, its cold snapshot ready in under 10 s;
   - the disagreement list under 1 s warm;
   - next and submit p99 under 50 ms with 100 annotations/s offered (open loop, Poisson
     arrivals; bench/queue's load generator) through `safepref serve --workers 2`, on the big
     batch itself: its overlap is raised from 3 to 4 and 300 new annotators join, so every
     claim searches the batch that holds the million annotations, and every submit adds to it.
A table of figure against target is printed; the exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import importlib.util
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    ROOT,
    free_port,
    fresh_database,
    postgres_server,
    print_table,
    psycopg_url,
)
from export import Streamed, base_label, corpus, piece, run_streamed, vote

# bench/queue is a directory named like the stdlib module: loaded by path.
_spec = importlib.util.spec_from_file_location("bench_queue", ROOT / "bench/queue/__main__.py")
assert _spec is not None and _spec.loader is not None
bench_queue = importlib.util.module_from_spec(_spec)
sys.modules["bench_queue"] = bench_queue
_spec.loader.exec_module(bench_queue)

SECRET = "bench-scale-" + "x" * 40
INF = float("inf")
CHUNK = 5_000
OVERLAP = 3
LEASE_SECONDS = 30 * 60
TARGETS = {
    "CLI export / COPY baseline": 2.0,
    "CLI export peak RSS MB": 300.0,
    "HTTP export first byte s": 1.0,
    "metrics s": 5.0,
    "dashboard warm s": 0.2,
    "dashboard cold snapshot s": 10.0,
    "disagreement list warm s": 1.0,
    "next p99 ms": 50.0,
    "submit p99 ms": 50.0,
}


# ------------------------------------------------------------------------------ state


def seed(url: str, n_items: int, rng_seed: int = 7) -> int:
    """Writes the finished batch (see the module docstring); returns its id."""
    import psycopg
    from sqlalchemy.orm import Session

    from app.auth.models import User
    from app.batches.models import Batch, BatchMember
    from app.config import Settings
    from app.db import make_engine
    from app.projects.service import create_project

    engine = make_engine(Settings(database_url=url))
    with Session(engine) as session, session.begin():
        project = create_project(session, "bench-scale")
        # The batch row as create_batch makes it; its batch_items come with the items below.
        batch = Batch(
            project_id=project.id, name="scale", overlap=OVERLAP, lease_seconds=LEASE_SECONDS
        )
        session.add(batch)
        session.flush()
        users = [User(username=f"ann{k}", role="annotator", password_hash="!") for k in range(3)]
        session.add_all(users)
        session.flush()
        session.add_all(BatchMember(batch_id=batch.id, user_id=u.id) for u in users)
        project_id, batch_id, user_ids = project.id, batch.id, [u.id for u in users]
    engine.dispose()

    rng = random.Random(rng_seed)
    answers, prompts = corpus(rng, 3_000_000), corpus(rng, 600_000)
    start = datetime.now(UTC) - timedelta(seconds=3 * n_items)
    targets = (
        "items (id, project_id, prompt, prompt_source, content_hash, created_at)",
        "responses (id, item_id, position, text, source, sha256)",
        "batch_items (batch_id, item_id, taken, submitted, shuffle_key, is_gold)",
        "assignments (id, batch_id, item_id, annotator_id, status, leased_until, display_order,"
        " is_gold, suggestion_viewed, created_at, submitted_at)",
        "annotations (id, assignment_id, batch_id, item_id, annotator_id, revision, payload,"
        " duration_ms, suggestion_viewed, created_at, updated_at)",
        "annotation_revisions (id, annotation_id, revision, payload, duration_ms, created_at)",
    )
    with psycopg.connect(psycopg_url(url)) as conn, conn.cursor() as cur:
        for first in range(1, n_items + 1, CHUNK):
            rows: list[list[tuple[Any, ...]]] = [[] for _ in targets]
            for i in range(first, min(first + CHUNK, n_items + 1)):
                _item_rows(i, project_id, batch_id, user_ids, rng, prompts, answers, start, rows)
            for target, table_rows in zip(targets, rows, strict=True):
                with cur.copy(f"COPY {target} FROM STDIN") as copy:
                    for row in table_rows:
                        copy.write_row(row)
            conn.commit()
        for table in ("items", "responses", "assignments", "annotations", "annotation_revisions"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        conn.commit()
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE")
    return batch_id


def _item_rows(
    i: int,
    project_id: int,
    batch_id: int,
    user_ids: list[int],
    rng: random.Random,
    prompts: str,
    answers: str,
    start: datetime,
    rows: list[list[tuple[Any, ...]]],
) -> None:
    items, responses, batch_items, assignments, annotations, revisions = rows
    prompt = piece(prompts, rng, 100, 300, i).rstrip(".,? ") + "?"
    texts = [piece(answers, rng, 1000, 2000, i) for _ in range(2)]
    content = hashlib.sha256(prompt.encode() + b"\x00".join(t.encode() for t in texts))
    created = start + timedelta(seconds=i)
    items.append((i, project_id, prompt, "Alpaca3-70B", content.hexdigest(), created))
    ids = [2 * i - 1, 2 * i]
    for k in range(2):
        sha = hashlib.sha256((prompt + texts[k]).encode("utf-8")).hexdigest()
        responses.append((ids[k], i, k, texts[k], f"Alpaca-{k + 7}B", sha))
    batch_items.append((batch_id, i, OVERLAP, OVERLAP, rng.randrange(2**31), False))
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
        row_id = 3 * (i - 1) + k + 1  # one assignment, annotation and revision per vote
        claimed = created + timedelta(seconds=k)
        duration = rng.randint(20_000, 180_000)
        submitted = claimed + timedelta(milliseconds=duration)
        order = orjson.dumps(ids if rng.random() < 0.5 else ids[::-1]).decode()
        assignments.append(
            (row_id, batch_id, i, user_id, "submitted", claimed + timedelta(seconds=LEASE_SECONDS),
             order, False, False, claimed, submitted)
        )  # fmt: skip
        payload = orjson.dumps(vote(rng, base, ids)).decode()
        annotations.append(
            (row_id, row_id, batch_id, i, user_id, 1, payload, duration, False, submitted,
             submitted)
        )  # fmt: skip
        revisions.append((row_id, row_id, 1, payload, duration, submitted))


# The queue's invariants over the batch: each must count 0.
CONSISTENCY = {
    "batch items whose taken differs from their live or submitted assignments": """
        SELECT count(*) FROM batch_items bi WHERE bi.batch_id = %(b)s AND bi.taken <> (
            SELECT count(*) FROM assignments a WHERE a.batch_id = bi.batch_id
               AND a.item_id = bi.item_id AND a.status IN ('leased', 'submitted'))""",
    "batch items whose submitted differs from their annotations": """
        SELECT count(*) FROM batch_items bi WHERE bi.batch_id = %(b)s AND bi.submitted <> (
            SELECT count(*) FROM annotations n WHERE n.batch_id = bi.batch_id
               AND n.item_id = bi.item_id)""",
    "submitted assignments without exactly one annotation of the same person and item": """
        SELECT count(*) FROM assignments a WHERE a.batch_id = %(b)s AND a.status = 'submitted'
           AND (SELECT count(*) FROM annotations n WHERE n.assignment_id = a.id
                   AND n.annotator_id = a.annotator_id AND n.item_id = a.item_id) <> 1""",
    "annotations without their revisions 1..n": """
        SELECT count(*) FROM annotations n WHERE n.batch_id = %(b)s AND n.revision <> (
            SELECT count(*) FROM annotation_revisions r WHERE r.annotation_id = n.id)""",
    "annotations without a guideline version": """
        SELECT count(*) FROM annotations n WHERE n.batch_id = %(b)s
           AND n.guideline_version_id IS NULL""",
    "annotators with two assignments of one item": """
        SELECT count(*) FROM (SELECT 1 FROM assignments WHERE batch_id = %(b)s
         GROUP BY item_id, annotator_id HAVING count(*) > 1) d""",
}

# The shape of a row (which columns are set, the payload's keys), per table: the rows written
# by the real server after `first_live` must look like the bulk-written ones before it.
SHAPES = {
    "assignments": """
        SELECT DISTINCT status, leased_until IS NULL, json_array_length(display_order),
               is_gold, skip_reason IS NULL, submitted_at IS NULL
          FROM assignments WHERE batch_id = %(b)s AND status = 'submitted' AND {side}""",
    "annotations": """
        SELECT DISTINCT revision, duration_ms IS NULL, guideline_version_id IS NULL,
               created_at = updated_at,
               (SELECT array_agg(k ORDER BY k) FROM json_object_keys(payload) k),
               (SELECT array_agg(k ORDER BY k) FROM json_object_keys(payload->'responses'->0) k)
          FROM annotations WHERE batch_id = %(b)s AND {side}""",
    "annotation_revisions": """
        SELECT DISTINCT r.revision, r.duration_ms IS NULL, r.payload::jsonb = n.payload::jsonb
          FROM annotation_revisions r JOIN annotations n ON n.id = r.annotation_id
         WHERE n.batch_id = %(b)s AND {side}""",
}


def consistency(url: str, batch_id: int) -> list[str]:
    import psycopg

    problems = []
    with psycopg.connect(psycopg_url(url)) as conn:
        for name, query in CONSISTENCY.items():
            row = conn.execute(query, {"b": batch_id}).fetchone()
            if row is None or row[0]:
                problems.append(f"{name}: {row[0] if row else '?'}")
    return problems


def _max_annotation(url: str) -> int:
    import psycopg

    with psycopg.connect(psycopg_url(url)) as conn:
        return int(
            (conn.execute("SELECT coalesce(max(id), 0) FROM annotations").fetchone() or (0,))[0]
        )


def same_shape(url: str, batch_id: int, bulk_last_id: int) -> list[str]:
    """Differences between the rows written in bulk (ids up to `bulk_last_id`: one id per
    vote in all three tables) and those the real server wrote afterwards."""
    import psycopg

    problems = []
    with psycopg.connect(psycopg_url(url)) as conn:
        for table, query in SHAPES.items():
            column = "r.id" if table == "annotation_revisions" else "id"
            params = {"b": batch_id, "last": bulk_last_id}
            bulk, live = (
                {
                    tuple(tuple(v) if isinstance(v, list) else v for v in row)
                    for row in conn.execute(query.format(side=f"{column} {op} %(last)s"), params)
                }
                for op in ("<=", ">")
            )
            if not live:
                problems.append(f"{table}: the load test wrote no rows")
            elif not live <= bulk:
                problems.append(
                    f"{table}: live {sorted(live - bulk)} not among bulk {sorted(bulk)}"
                )
    return problems


# ------------------------------------------------------------------------ measurements


def wait_ready(base: str) -> None:
    for _ in range(600):
        try:
            urllib.request.urlopen(base + "/readyz", timeout=2).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not become ready")


def timed_get(base: str, path: str, token: str) -> tuple[float, bytes]:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=900) as response:
        body = bytes(response.read())
    return time.perf_counter() - start, body


def first_body_byte(port: int, path: str, token: str) -> float:
    """Time to the first byte of the body (the headers go out before the body is computed),
    then hang up."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    start = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    assert response.status == 200 and response.read(1)
    first = time.perf_counter() - start
    conn.close()
    return first


def poll(check: Callable[[], bool], limit: float) -> bool:
    """Whether `check` came true within `limit` seconds."""
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > limit:
            return False
        time.sleep(0.25)
    return True


def serve(url: str, port: int) -> subprocess.Popen[bytes]:
    """The product's own `safepref serve --workers 2` (bench/queue's launcher)."""
    proc: subprocess.Popen[bytes] = bench_queue.start_server(url, 2, port)
    wait_ready(f"http://127.0.0.1:{port}")
    return proc


def admin_token(url: str) -> str:
    """A new admin (a new name each run: --existing measures a database again) and a token."""
    from sqlalchemy.orm import Session

    from app.auth.service import create_token, create_user
    from app.config import Settings
    from app.db import make_engine

    engine = make_engine(Settings(database_url=url))
    with Session(engine) as session, session.begin():
        user = create_user(session, f"scale-admin-{os.getpid()}", "bench-password-123", "admin")
        _, token = create_token(session, user)
    engine.dispose()
    return token


def reads(url: str, batch_id: int, repeat: int, wait: float, out: dict[str, float]) -> None:
    token = admin_token(url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve(url, port)
    try:
        export = f"/api/v1/exports/pku-saferlhf?batch_id={batch_id}"
        out["HTTP export first byte s"] = min(
            first_body_byte(port, export, token) for _ in range(repeat)
        )
        out["metrics s"] = min(
            timed_get(base, f"/api/v1/batches/{batch_id}/metrics", token)[0] for _ in range(repeat)
        )
        page = f"/batches/{batch_id}/dashboard"
        started = time.perf_counter()
        first, _ = timed_get(base, page, token)
        out["dashboard first s (progress only)"] = first
        # A large batch's first dashboard shows progress at once and computes the rest in
        # the background (a small one is computed in the request).
        # Given up after `wait` seconds: the figure is then infinite (a missed target).
        ready = poll(lambda: b'id="pending"' not in timed_get(base, page + "/live", token)[1], wait)
        out["dashboard cold snapshot s"] = time.perf_counter() - started if ready else INF
        warm = min(timed_get(base, page, token)[0] for _ in range(5))
        out["dashboard warm s"] = warm if ready else INF  # else: timed without a snapshot
        listing = f"/batches/{batch_id}/disagreements"
        started = time.perf_counter()
        out["disagreement list first s (computing)"] = timed_get(base, listing, token)[0]
        ready = poll(lambda: b"being computed" not in timed_get(base, listing, token)[1], wait)
        out["disagreement list ready after s"] = time.perf_counter() - started if ready else INF
        warm = min(timed_get(base, listing, token)[0] for _ in range(5))
        out["disagreement list warm s"] = warm if ready else INF
    finally:
        bench_queue.stop_server(proc)


def exports(url: str, batch_id: int, repeat: int, out: dict[str, float]) -> None:
    env = {"SAFEPREF_DATABASE_URL": url, "SAFEPREF_SECRET_KEY": SECRET}
    baseline_argv = [PYTHON, str(ROOT / "bench/export.py"), "--baseline", url, str(batch_id)]
    export_argv = [PYTHON, "-m", "app.cli", "export", "--format", "pku-saferlhf"]
    export_argv += ["--batch", str(batch_id)]
    bases: list[Streamed] = []
    ours: list[Streamed] = []
    for _ in range(repeat):  # alternated: each pair ran under much the same load
        bases.append(run_streamed(baseline_argv, env))
        ours.append(run_streamed(export_argv, env))
        print(f"  COPY baseline {bases[-1].seconds:.1f} s, CLI export {ours[-1].seconds:.1f} s, "
              f"{ours[-1].lines} lines, {ours[-1].size_mb:.0f} MB", flush=True)  # fmt: skip
    ratios = sorted(o.seconds / b.seconds for b, o in zip(bases, ours, strict=True))
    out["COPY baseline s"] = min(b.seconds for b in bases)
    out["CLI export s"] = min(o.seconds for o in ours)
    out["CLI export / COPY baseline"] = ratios[len(ratios) // 2]
    out["CLI export peak RSS MB"] = max(o.peak_rss_mb for o in ours)
    out["CLI export lines"] = float(ours[0].lines)


def offered_load(url: str, batch_id: int, args: argparse.Namespace, out: dict[str, float]) -> None:
    """Overlap 3 -> 4 and 300 new members: the load lands on the batch of a million."""
    import psycopg
    from sqlalchemy import create_engine, insert
    from sqlalchemy.orm import Session

    from app.auth.models import ApiToken, User
    from app.auth.security import new_api_token, token_digest
    from app.batches.models import BatchMember

    with psycopg.connect(psycopg_url(url)) as conn:
        conn.execute("UPDATE batches SET overlap = %s WHERE id = %s", (OVERLAP + 1, batch_id))
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        users = [User(username=f"load-{os.getpid()}-{i:03d}", role="annotator", password_hash="!")
                 for i in range(args.annotators)]  # fmt: skip
        session.add_all(users)
        session.flush()
        tokens = [new_api_token() for _ in users]
        pairs = zip(users, tokens, strict=True)
        session.execute(
            insert(ApiToken), [{"user_id": u.id, "token_hash": token_digest(t)} for u, t in pairs]
        )
        session.execute(
            insert(BatchMember), [{"batch_id": batch_id, "user_id": u.id} for u in users]
        )
    engine.dispose()
    port = free_port()
    proc = serve(url, port)
    try:
        seeded = bench_queue.Seeded(batch_id, tokens)
        stats, seconds = asyncio.run(
            bench_queue.open_loop(port, seeded, args.rate, args.open_seconds, 3.0)
        )
    finally:
        bench_queue.stop_server(proc)
    out["offered annotations/s"] = args.rate
    out["served annotations/s"] = stats.done / seconds
    out["next p50 ms"] = float(bench_queue.pct(stats.next_ms, 0.5))
    out["next p99 ms"] = float(bench_queue.pct(stats.next_ms, 0.99))
    out["submit p50 ms"] = float(bench_queue.pct(stats.submit_ms, 0.5))
    out["submit p99 ms"] = float(bench_queue.pct(stats.submit_ms, 0.99))
    out["load errors"] = float(sum(stats.errors.values()) + stats.dropped)


# ------------------------------------------------------------------------------ main


def _fill(url: str, items: int) -> int:
    started = time.perf_counter()
    # A child process: the exports measured below are forked from this one, and a parent
    # that had held the generated rows would lend them its memory (peak RSS).
    seeded = subprocess.run(
        [PYTHON, str(Path(__file__)), "--seed", url, str(items)],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    print(f"wrote {items} items x 3 annotations in {time.perf_counter() - started:.0f} s;"
          f" load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    return int(seeded.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=333_400)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each timed read")
    parser.add_argument("--rate", type=float, default=100.0, help="offered annotations/s")
    parser.add_argument("--open-seconds", type=float, default=30.0)
    parser.add_argument("--annotators", type=int, default=300)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/safepref-bench-scale"))
    parser.add_argument("--postgres-url", help="use this server instead of a private one")
    parser.add_argument("--skip", default="", help="comma-separated: exports,reads,load")
    parser.add_argument(
        "--wait", type=float, default=600.0, help="longest wait for a computed page (s)"
    )
    parser.add_argument(
        "--existing",
        nargs=2,
        metavar=("URL", "BATCH"),
        help="measure a database this script filled before (its `bench_scale`), not a new one",
    )
    parser.add_argument("--seed", nargs=2, metavar=("URL", "ITEMS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        print(seed(args.seed[0], int(args.seed[1])))
        return 0
    skip = set(filter(None, args.skip.split(",")))
    # World-traversable, so that the postgres user can reach its data directory inside it.
    args.workdir.mkdir(mode=0o755, parents=True, exist_ok=True)
    server = (
        nullcontext(args.postgres_url)
        if args.postgres_url
        else postgres_server(args.workdir, fsync=True)
    )
    out: dict[str, float] = {}
    if args.existing:
        server = nullcontext(args.existing[0])
    with server as server_url:
        if args.existing:
            url, batch_id = args.existing[0], int(args.existing[1])
        else:
            url = fresh_database(
                "postgresql", "bench_scale", workdir=args.workdir, server_url=server_url
            )
            batch_id = _fill(url, args.items)
        import psycopg

        with psycopg.connect(psycopg_url(url)) as conn:
            fsync = str((conn.execute("SHOW fsync").fetchone() or ("?",))[0])
        problems = consistency(url, batch_id)
        bulk_last = _max_annotation(url)  # the rows written in bulk end here
        print("consistency:", "; ".join(problems) or "every invariant holds", flush=True)
        if "exports" not in skip:
            exports(url, batch_id, args.repeat, out)
        if "reads" not in skip:
            reads(url, batch_id, args.repeat, args.wait, out)
        if "load" not in skip:
            offered_load(url, batch_id, args, out)
            problems += consistency(url, batch_id)
            problems += same_shape(url, batch_id, bulk_last)
            print("after the load:", "; ".join(problems) or "invariants hold; same row shapes")
    rows = []
    missed = []
    for name, value in out.items():
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            verdict = (
                "met"
                if value < target or (name.startswith("CLI export /") and value <= target)
                else "MISSED"
            )
            if verdict == "MISSED":
                missed.append(name)
        rows.append(
            [
                name,
                f"{value:.3f}" if value < 100 else f"{value:.0f}",
                "" if target is None else f"{target:g}",
                verdict,
            ]
        )
    print(f"\n{args.items} items, {3 * args.items} annotations; PostgreSQL, fsync {fsync}; "
          f"load average {os.getloadavg()[0]:.1f} (2 cores)")  # fmt: skip
    print_table(["figure", "value", "target", ""], rows)
    print(json.dumps({"items": args.items, **out, "missed": missed, "problems": problems}))
    return 1 if missed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
