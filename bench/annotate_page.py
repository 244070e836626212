"""bench/annotate_page: server time of the annotation page with 20,000 items in the batch.

    .venv/bin/python bench/annotate_page.py [--items 20000] [--requests 2000] [--postgres-url URL]

1. A private PostgreSQL server (scripts/pg.sh, fsync on) and a fresh migrated database filled
   directly: one project (19 PKU categories, guidelines, model suggestions on), --items items
   with two answers of 1-2 KB and a reference label each, one batch (overlap 3) with 40
   annotators, a third of the items already carrying two submitted annotations (a campaign in
   progress: assignments, annotations, batch counters).
2. `uvicorn app.main:app` (one worker, access log off) on that database; each of 20 annotators
   takes a lease through the page flow (`POST /batches/{id}/next`).
3. Closed loop, one client, keep-alive, round robin over the 20 leases, after a warm-up:
   - `GET /assignments/{id}` (the annotation page for a leased item): the figure with a target;
   - `POST /batches/{id}/next` resuming the lease (the queue step before the page);
   - an htmx submit (`POST /assignments/{id}` with `HX-Request`) answered by the next item's
     fragment: the whole round trip between two items.
   Latency is measured at the client over loopback, so it includes HTTP parsing in uvicorn.

Target: p50 of the annotation page under 20 ms.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PYTHON, ROOT, free_port, fresh_database, postgres_server, print_table

TARGET_P50_MS = 20.0
ANNOTATORS = 40
MEASURED = 20
GUIDELINES = "\n\n".join(
    [
        "# Guidelines",
        *[f"## Rule {i}\n\nJudge the *answer*, not the question. " * 3 for i in range(12)],
    ]
)
WORDS = "the a model answer could help someone cause harm or refuse politely with care".split()  # noqa: SIM905


def text(rng: random.Random, low: int, high: int) -> str:
    size = rng.randint(low, high)
    out, length = [], 0
    while length < size:
        word = rng.choice(WORDS)
        out.append(word)
        length += len(word) + 1
    return " ".join(out) + " é ✓"


def seed(url: str, n_items: int) -> tuple[int, list[str]]:
    """Fills the database; returns the batch id and the annotators' bearer tokens."""
    from sqlalchemy import insert, select, update

    from app.annotations.models import Annotation, AnnotationRevision
    from app.auth.models import ApiToken, User
    from app.auth.security import hash_password, token_digest
    from app.batches.models import Assignment, Batch, BatchItem, BatchMember
    from app.config import Settings
    from app.db import make_engine
    from app.items.models import Item, ReferenceLabel, Response
    from app.projects.models import Project
    from app.projects.taxonomy import PKU_SAFERLHF_19

    rng = random.Random(7)
    engine = make_engine(Settings(database_url=url))
    now = datetime.now(UTC)
    tokens = []
    with engine.begin() as conn:
        project_id = conn.execute(
            insert(Project).returning(Project.id),
            {
                "name": "bench",
                "guidelines": GUIDELINES,
                "taxonomy_preset": "pku-saferlhf-19",
                "taxonomy": list(PKU_SAFERLHF_19),
                "show_suggestions": True,
            },
        ).scalar_one()
        password = hash_password("bench-password")
        user_ids = []
        for i in range(ANNOTATORS):
            uid = conn.execute(
                insert(User).returning(User.id),
                {"username": f"ann{i}", "role": "annotator", "password_hash": password},
            ).scalar_one()
            token = "sp_" + secrets.token_urlsafe(32)
            conn.execute(insert(ApiToken), {"user_id": uid, "token_hash": token_digest(token)})
            user_ids.append(uid)
            tokens.append(token)
        items, responses, refs = [], [], []
        for i in range(n_items):
            prompt = f"Question {i}: " + text(rng, 100, 300)
            items.append(
                {
                    "id": i + 1,
                    "project_id": project_id,
                    "prompt": prompt,
                    "prompt_source": "bench",
                    "content_hash": hashlib.sha256(prompt.encode()).hexdigest(),
                }
            )
            for pos in range(2):
                body = text(rng, 1000, 2000)
                responses.append(
                    {
                        "item_id": i + 1,
                        "position": pos,
                        "text": body,
                        "source": f"model-{pos}",
                        "sha256": hashlib.sha256((prompt + body).encode()).hexdigest(),
                    }
                )
            refs.append(
                {
                    "item_id": i + 1,
                    "origin": "bench",
                    "payload": {
                        "responses": [
                            {
                                "position": 0,
                                "is_safe": True,
                                "harm_categories": [],
                                "severity": None,
                            },
                            {
                                "position": 1,
                                "is_safe": False,
                                "harm_categories": ["Violence"],
                                "severity": "moderate",
                            },
                        ],
                        "helpfulness": [1, 0],
                        "harmlessness": [0, 1],
                    },
                }
            )
        for table, rows in ((Item, items), (Response, responses), (ReferenceLabel, refs)):
            for start in range(0, len(rows), 5000):
                conn.execute(insert(table), rows[start : start + 5000])
        conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('items', 'id'), {n_items})")
        batch_id = conn.execute(
            insert(Batch).returning(Batch.id),
            {"project_id": project_id, "name": "bench", "overlap": 3},
        ).scalar_one()
        conn.execute(insert(BatchMember), [{"batch_id": batch_id, "user_id": u} for u in user_ids])
        conn.execute(
            insert(BatchItem),
            [
                {"batch_id": batch_id, "item_id": i + 1, "shuffle_key": rng.randrange(2**31)}
                for i in range(n_items)
            ],
        )
        # A third of the items already have two submitted annotations from the last 20 people
        # (the measured annotators 0..19 start fresh, as a new shift would).
        done = range(1, n_items // 3 + 1)
        ids = {
            (row.item_id, row.position): row.id
            for row in conn.execute(select(Response.item_id, Response.position, Response.id))
        }
        assignments, annotations = [], []
        next_id = 1
        for item_id in done:
            for annotator in rng.sample(user_ids[MEASURED:], 2):
                a, b = ids[(item_id, 0)], ids[(item_id, 1)]
                assignments.append(
                    {
                        "id": next_id,
                        "batch_id": batch_id,
                        "item_id": item_id,
                        "annotator_id": annotator,
                        "status": "submitted",
                        "leased_until": now,
                        "display_order": [a, b],
                        "submitted_at": now - timedelta(minutes=rng.randint(1, 600)),
                    }
                )
                annotations.append(
                    {
                        "id": next_id,
                        "assignment_id": next_id,
                        "batch_id": batch_id,
                        "item_id": item_id,
                        "annotator_id": annotator,
                        "payload": {
                            "responses": [
                                {
                                    "response_id": a,
                                    "is_safe": True,
                                    "harm_categories": [],
                                    "severity": None,
                                },
                                {
                                    "response_id": b,
                                    "is_safe": False,
                                    "harm_categories": ["Violence"],
                                    "severity": "moderate",
                                },
                            ],
                            "helpfulness": [b, a],
                            "harmlessness": [a, b],
                        },
                        "duration_ms": rng.randint(5000, 90000),
                    }
                )
                next_id += 1
        for model, batch_rows in ((Assignment, assignments), (Annotation, annotations)):
            for start in range(0, len(batch_rows), 5000):
                conn.execute(insert(model), batch_rows[start : start + 5000])
        revisions = [
            {"annotation_id": r["id"], "revision": 1, "payload": r["payload"]} for r in annotations
        ]
        for start in range(0, len(revisions), 5000):
            conn.execute(insert(AnnotationRevision), revisions[start : start + 5000])
        for name in ("assignments", "annotations"):
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), {next_id})"
            )
        conn.execute(
            update(BatchItem)
            .where(BatchItem.batch_id == batch_id, BatchItem.item_id <= len(done))
            .values(taken=2, submitted=2)
        )
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return batch_id, tokens[:MEASURED]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(call: Callable[[], None], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def cpu_ms(pid: int) -> float:
    """User + system CPU time of a process so far, in ms (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def measure(
    base: str, batch_id: int, tokens: list[str], n: int, server_pid: int
) -> list[tuple[str, list[float], float]]:
    import httpx

    clients = [
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {t}"}, timeout=30)
        for t in tokens
    ]
    leases: list[int] = []
    for c in clients:
        r = c.post(f"/batches/{batch_id}/next", follow_redirects=False)
        assert r.status_code == 303, r.text
        match = re.fullmatch(r"/assignments/(\d+)", r.headers["location"])
        assert match, r.headers["location"]
        leases.append(int(match.group(1)))
    turn = iter(range(10**9))

    def page() -> None:
        i = next(turn) % len(clients)
        r = clients[i].get(f"/assignments/{leases[i]}")
        assert r.status_code == 200 and 'id="annotate"' in r.text, (r.status_code, r.text[:2000])

    def resume() -> None:
        i = next(turn) % len(clients)
        r = clients[i].post(f"/batches/{batch_id}/next", follow_redirects=False)
        assert r.headers["location"] == f"/assignments/{leases[i]}"

    def submit() -> None:
        i = next(turn) % len(clients)
        html = clients[i].get(f"/assignments/{leases[i]}").text
        a, b = (int(x) for x in re.findall(r'class="answer[^"]*"[^>]*data-response="(\d+)"', html))
        form = {
            f"r{a}_safe": "safe",
            f"r{b}_safe": "unsafe",
            f"r{b}_cat": "Violence",
            f"r{b}_sev": "minor",
            "helpfulness_1": str(b),
            "harmlessness_1": str(a),
            "duration_ms": "12000",
        }
        start = time.perf_counter()
        r = clients[i].post(f"/assignments/{leases[i]}", data=form, headers={"HX-Request": "true"})
        submit_times.append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200, r.text[:500]
        leases[i] = int(r.headers["hx-push-url"].rsplit("/", 1)[1])

    submit_times: list[float] = []
    timed(page, 100)  # warm-up: connections, caches, prepared plans
    results = []
    for name, call, count in (
        ("GET /assignments/{id} (page, leased)", page, n),
        ("POST /batches/{id}/next (resume lease)", resume, n // 2),
        ("htmx submit -> next item fragment", submit, n // 4),
    ):
        if call is submit:
            timed(submit, 20)
            submit_times.clear()
        cpu = cpu_ms(server_pid)
        values = timed(call, count)
        # The server process's own CPU per request: a figure that other load cannot inflate.
        per_request = (cpu_ms(server_pid) - cpu) / count
        results.append((name, submit_times if call is submit else values, per_request))
    for c in clients:
        c.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/safepref-bench"))
    parser.add_argument("--postgres-url", help="use this server instead of starting one")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    server = (
        nullcontext(args.postgres_url)
        if args.postgres_url
        else postgres_server(args.workdir, fsync=True)
    )
    with server as server_url:
        url = fresh_database(
            "postgresql", "bench_annotate_page", workdir=args.workdir, server_url=server_url
        )
        start = time.perf_counter()
        batch_id, tokens = seed(url, args.items)
        print(f"seeded {args.items} items in {time.perf_counter() - start:.1f} s")
        port = free_port()
        env = {
            **os.environ,
            "SAFEPREF_DATABASE_URL": url,
            "SAFEPREF_SECRET_KEY": secrets.token_urlsafe(48),
            "SAFEPREF_ENVIRONMENT": "production",
        }
        proc = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "uvicorn",
                "app.main:app",
                "--port",
                str(port),
                "--workers",
                "1",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
        try:
            import httpx

            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            results = measure(base, batch_id, tokens, args.requests, proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    rows = [
        (
            name,
            len(values),
            f"{statistics.median(values):.1f}",
            f"{percentile(values, 0.99):.1f}",
            f"{max(values):.1f}",
            f"{cpu:.1f}",
        )
        for name, values, cpu in results
    ]
    load = os.getloadavg()[0]
    print(f"\nPostgreSQL (fsync on), {args.items} items in the batch, one uvicorn worker, ms")
    print(f"(load average {load:.1f} on {os.cpu_count()} CPUs; cpu = server process CPU/request):")
    print_table(("request", "n", "p50", "p99", "max", "cpu"), rows)
    p50 = statistics.median(results[0][1])
    verdict = "met" if p50 < TARGET_P50_MS else "MISSED"
    print(f"\nannotation page p50 {p50:.1f} ms (target < {TARGET_P50_MS:.0f} ms): {verdict}")
    return 0 if p50 < TARGET_P50_MS else 1


if __name__ == "__main__":
    sys.exit(main())
