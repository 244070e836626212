"""bench/queue: the annotation queue under load on PostgreSQL.

Setup: a private PostgreSQL server (fsync on), a batch of 20,000 two-answer items with overlap
3, 300 annotators (created directly in the database: argon2 for 300 passwords is beside the
point), and the app served by uvicorn with 2 worker processes.

(a) open loop: annotations start at an offered rate (default 100/s, Poisson arrivals), each
    by an idle annotator picked at random: POST next, a short think time, PUT the annotation.
    Latency of next is measured from the scheduled arrival (no coordinated omission), of
    submit from its scheduled send time. Prints p50/p99 of both (target p99 < 100 ms).
(b) closed loop: 32 clients, no think time, next -> submit as fast as the server answers.
    Prints the sustained annotations/s (target >= 300/s) and the latencies.

The load generator runs on the same machine: a small asyncio HTTP/1.1 keep-alive client, so
that it takes as little CPU from the server as possible.

    .venv/bin/python bench/queue [--items 20000] [--rate 100] [--open-seconds 30] ...
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# bench/ holds the shared helpers; a directory named `queue` cannot shadow the stdlib module.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import ROOT, free_port, fresh_database, postgres_server, print_table

WORKDIR = Path("/tmp/safepref-bench-queue")


# ------------------------------------------------------------------ setup


@dataclass
class Seeded:
    batch_id: int
    tokens: list[str]


def seed(url: str, *, items: int, overlap: int, annotators: int) -> Seeded:
    from sqlalchemy import create_engine, insert, select
    from sqlalchemy.orm import Session

    from app.auth.models import ApiToken, User
    from app.auth.security import new_api_token, token_digest
    from app.batches.models import BatchMember
    from app.batches.service import create_batch
    from app.items.models import Item, Response
    from app.projects.service import create_project

    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        project = create_project(session, "bench-queue")
        rows = []
        for i in range(items):
            prompt = f"Question {i}: how should I handle a situation like number {i}?"
            rows.append(
                {
                    "project_id": project.id,
                    "prompt": prompt,
                    "prompt_source": "bench",
                    "content_hash": hashlib.sha256(prompt.encode()).hexdigest(),
                }
            )
        session.execute(insert(Item), rows)
        ids = list(session.scalars(select(Item.id).where(Item.project_id == project.id)))
        answer = "A careful answer of realistic length. " * 30
        session.execute(
            insert(Response),
            [
                {
                    "item_id": item_id,
                    "position": pos,
                    "text": f"{answer} ({item_id}/{pos})",
                    "source": f"model-{pos}",
                    "sha256": hashlib.sha256(f"{item_id}/{pos}".encode()).hexdigest(),
                }
                for item_id in ids
                for pos in (0, 1)
            ],
        )
        batch = create_batch(session, project, "bench", overlap=overlap, lease_seconds=600)
        users = [
            User(username=f"bench-{i:03d}", role="annotator", password_hash="!")
            for i in range(annotators)
        ]
        session.add_all(users)
        session.flush()
        tokens = [new_api_token() for _ in users]
        session.execute(
            insert(ApiToken),
            [
                {"user_id": u.id, "token_hash": token_digest(t)}
                for u, t in zip(users, tokens, strict=True)
            ],
        )
        session.execute(
            insert(BatchMember), [{"batch_id": batch.id, "user_id": u.id} for u in users]
        )
        batch_id = batch.id
    engine.dispose()
    return Seeded(batch_id, tokens)


def start_server(url: str, workers: int, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SAFEPREF_DATABASE_URL": url,
        "SAFEPREF_SECRET_KEY": "bench-" + "x" * 40,
        "SAFEPREF_ENVIRONMENT": "production",
    }
    # The product's own command: with several workers, each accepts on its own socket.
    argv = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", str(workers)]
    argv += ["--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                time.sleep(1.0 if workers > 1 else 0.2)  # let every worker come up
                return proc
        except OSError:
            time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError("server did not start")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# ------------------------------------------------------------------ load generator


class Connection:
    """A minimal HTTP/1.1 keep-alive client (JSON bodies, Content-Length responses)."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.auth = f"Authorization: Bearer {token}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: bench\r\n{self.auth}"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        ).encode()
        reused = self.writer is not None
        try:
            return await self._exchange(head + data)
        except (ConnectionError, IndexError):
            # The server closes idle keep-alive connections (after 5 s); resend once.
            self.close()
            if not reused:
                raise
            return await self._exchange(head + data)

    async def _exchange(self, raw_request: bytes) -> tuple[int, Any]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(raw_request)
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        raw = await self.reader.readexactly(length) if length else b""
        return status, (json.loads(raw) if raw else None)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def answer(lease: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    a, b = sorted(r["id"] for r in lease["item"]["responses"])
    unsafe_b = rng.random() < 0.5
    return {
        "responses": [
            {"response_id": a, "is_safe": True, "harm_categories": [], "severity": None},
            {
                "response_id": b,
                "is_safe": not unsafe_b,
                "harm_categories": ["Violence"] if unsafe_b else [],
                "severity": "moderate" if unsafe_b else None,
            },
        ],
        "helpfulness": [b, a] if rng.random() < 0.5 else [a, b],
        "harmlessness": [a, b],
        "duration_ms": rng.randint(5000, 60000),
    }


@dataclass
class Stats:
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    done: int = 0
    all_done: int = 0  # warm-up included, for the CPU figures
    empty: int = 0
    errors: dict[int, int] = field(default_factory=dict)
    dropped: int = 0

    def error(self, status: int) -> None:
        self.errors[status] = self.errors.get(status, 0) + 1


async def annotate(
    conn: Connection,
    batch_id: int,
    stats: Stats,
    rng: random.Random,
    start: float,
    think: float,
    record: bool,
) -> None:
    """One annotation: next (timed from `start`), think, submit (timed from its due time)."""
    status, lease = await conn.request("POST", f"/api/v1/batches/{batch_id}/next")
    if record:
        stats.next_ms.append((time.perf_counter() - start) * 1000)
    if status == 204:
        stats.empty += 1
        return
    if status != 200:
        stats.error(status)
        return
    if think:
        await asyncio.sleep(think)
    due = time.perf_counter()
    body = answer(lease, rng)
    status, _ = await conn.request(
        "PUT", f"/api/v1/assignments/{lease['assignment_id']}/annotation", body
    )
    if record:
        stats.submit_ms.append((time.perf_counter() - due) * 1000)
    if status == 200:
        stats.all_done += 1
        if record:
            stats.done += 1
    else:
        stats.error(status)


async def open_loop(
    port: int, seeded: Seeded, rate: float, seconds: float, warmup: float
) -> tuple[Stats, float]:
    rng = random.Random(1)
    idle = [Connection(port, t) for t in seeded.tokens]
    rng.shuffle(idle)
    stats = Stats()
    tasks: set[asyncio.Task[None]] = set()
    begin = time.perf_counter()
    due = begin

    async def one(conn: Connection, at: float, record: bool) -> None:
        try:
            await annotate(conn, seeded.batch_id, stats, rng, at, rng.uniform(0.2, 2.0), record)
        finally:
            idle.append(conn)

    while due < begin + warmup + seconds:
        due += rng.expovariate(rate)
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if not idle:
            stats.dropped += 1
            continue
        conn = idle.pop(rng.randrange(len(idle)))
        task = asyncio.create_task(one(conn, due, due >= begin + warmup))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.close()
    return stats, seconds


async def closed_loop(
    port: int, seeded: Seeded, clients: int, seconds: float, warmup: float
) -> tuple[Stats, float]:
    stats = Stats()
    begin = time.perf_counter()
    record_from = begin + warmup
    end = record_from + seconds

    async def client(token: str, seed: int) -> None:
        conn = Connection(port, token)
        rng = random.Random(seed)
        while (now := time.perf_counter()) < end:
            await annotate(conn, seeded.batch_id, stats, rng, now, 0.0, now >= record_from)
        conn.close()

    await asyncio.gather(*(client(t, i) for i, t in enumerate(seeded.tokens[-clients:])))
    return stats, seconds


def cpu_seconds(pids: list[int], *, children: bool = True) -> float:
    """User + system CPU of these processes (and of their live children)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if children:  # children that have exited (PostgreSQL backends of closed connections)
                reaped = proc.cpu_times()
                total += reaped.children_user + reaped.children_system
            for p in [proc, *(proc.children(recursive=True) if children else [])]:
                times = p.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def worker_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each app worker process (the server's children), by pid."""
    import psutil

    found = {}
    for child in psutil.Process(pid).children(recursive=True):
        try:
            times = child.cpu_times()
            if times.user + times.system > 0.5:  # a worker, not the resource tracker
                found[child.pid] = times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return found


def postmaster_pid(url: str) -> int | None:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute(
            "SELECT setting FROM pg_settings WHERE name = 'data_directory'"
        ).fetchone()
    if row is None:
        return None
    pid_file = Path(row[0]) / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


def pct(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.1f}"


# ------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--annotators", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=100.0, help="open loop: annotations/s")
    parser.add_argument("--open-seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=32, help="closed loop clients")
    parser.add_argument("--closed-seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--database-url", help="use this PostgreSQL server instead of our own")
    args = parser.parse_args()

    # World-traversable, so that the postgres user can reach its data directory inside it.
    WORKDIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    if args.database_url:
        return run(args, args.database_url, WORKDIR)
    with postgres_server(WORKDIR, fsync=True) as server_url:
        return run(args, server_url, WORKDIR)


def run(args: argparse.Namespace, server_url: str, workdir: Path) -> int:
    url = fresh_database("postgresql", "bench_queue", workdir=workdir, server_url=server_url)
    started = time.perf_counter()
    seeded = seed(url, items=args.items, overlap=args.overlap, annotators=args.annotators)
    print(
        f"seeded {args.items} items, overlap {args.overlap}, {args.annotators} annotators "
        f"in {time.perf_counter() - started:.1f} s; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    port = free_port()
    proc = start_server(url, args.workers, port)
    pg = postmaster_pid(url)
    watched = {"app": [proc.pid], "postgres": [pg] if pg else [], "load": [os.getpid()]}
    cpu: dict[str, list[float]] = {}
    split: dict[str, list[float]] = {}
    try:
        for name, run_loop in (
            ("a", lambda: open_loop(port, seeded, args.rate, args.open_seconds, args.warmup)),
            (
                "b",
                lambda: closed_loop(port, seeded, args.clients, args.closed_seconds, args.warmup),
            ),
        ):
            before = {k: cpu_seconds(v, children=k != "load") for k, v in watched.items()}
            workers_before = worker_cpu(proc.pid)
            result = asyncio.run(run_loop())
            cpu[name] = [
                cpu_seconds(v, children=k != "load") - before[k] for k, v in watched.items()
            ]
            used = worker_cpu(proc.pid)
            split[name] = [used[pid] - workers_before.get(pid, 0.0) for pid in sorted(used)]
            if name == "a":
                a, a_seconds = result
            else:
                b, b_seconds = result
    finally:
        stop_server(proc)
    print()
    print(
        f"PostgreSQL (fsync on), {args.workers} uvicorn workers, {args.items} items, "
        f"overlap {args.overlap}; load generator on the same {os.cpu_count()}-core machine"
    )
    print_table(
        [
            "run",
            "annotations/s",
            "next p50 ms",
            "next p99 ms",
            "submit p50 ms",
            "submit p99 ms",
            "errors",
            "dropped",
        ],
        [
            [
                f"(a) open loop, offered {args.rate:g}/s, {args.annotators} annotators",
                f"{a.done / a_seconds:.1f}",
                pct(a.next_ms, 0.5),
                pct(a.next_ms, 0.99),
                pct(a.submit_ms, 0.5),
                pct(a.submit_ms, 0.99),
                sum(a.errors.values()),
                a.dropped,
            ],
            [
                f"(b) closed loop, {args.clients} clients, no think time",
                f"{b.done / b_seconds:.1f}",
                pct(b.next_ms, 0.5),
                pct(b.next_ms, 0.99),
                pct(b.submit_ms, 0.5),
                pct(b.submit_ms, 0.99),
                sum(b.errors.values()),
                "-",
            ],
        ],
    )
    total_a, total_b = a.all_done or 1, b.all_done or 1
    print(
        "CPU ms per annotation (app / PostgreSQL / load generator), warm-up included: "
        f"(a) {' / '.join(f'{1000 * c / total_a:.1f}' for c in cpu['a'])}; "
        f"(b) {' / '.join(f'{1000 * c / total_b:.1f}' for c in cpu['b'])}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    shares = " / ".join(f"{100 * c / (sum(split['b']) or 1):.0f}%" for c in split["b"])
    print(f"(b) CPU split between the app's worker processes: {shares}")
    if a.errors or b.errors:
        print("error statuses:", a.errors, b.errors)
    # No sample at all (everything dropped on an overloaded machine) misses the target.
    a_next, a_submit = (
        float(pct(a.next_ms, 0.99)) if a.next_ms else float("inf"),
        float(pct(a.submit_ms, 0.99)) if a.submit_ms else float("inf"),
    )
    verdict = {True: "met", False: "MISSED"}
    print(
        f"targets: (a) p99 < 100 ms: next {verdict[a_next < 100]}, submit "
        f"{verdict[a_submit < 100]}; (b) >= 300/s: {verdict[b.done / b_seconds >= 300]}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
