"""bench/upload: the browser's import form with a full-scale file: wall time and server RSS.

    .venv/bin/python bench/upload.py [--rows 83400] [--backends sqlite,postgresql] [--gzip]

Uses the synthetic PKU-SafeRLHF file of bench/import.py (generated once in --workdir), starts
`safepref serve` on a fresh database, logs in as a browser does (cookies and CSRF token), and
posts the file to `/projects/{id}/imports` exactly as the form does (multipart/form-data, the
CSRF field first), streaming the body from disk in 64 KiB chunks. While the request runs it
samples the server process's resident memory; it reports the time until the result page, the
server's RSS before the upload and its peak during it, and the counts on the result page.
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _common import PYTHON, ROOT, free_port, fresh_database, postgres_server, print_table

CHUNK = 64 * 1024
_TOKEN = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def serve(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SAFEPREF_DATABASE_URL": url,
        "SAFEPREF_SECRET_KEY": "bench-" + "x" * 40,
        "SAFEPREF_ENVIRONMENT": "development",
    }
    argv = [PYTHON, "-m", "app.cli", "serve", "--port", str(port), "--no-access-log"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(log.read_text())


def csrf(html: str) -> str:
    found = _TOKEN.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def multipart(path: Path, token: str, boundary: str) -> Iterator[bytes]:
    def field(name: str, value: str) -> bytes:
        return (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()

    yield field("csrf_token", token) + field("format", "auto") + field("labels_as", "reference")
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    with path.open("rb") as fp:
        while chunk := fp.read(CHUNK):
            yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


def upload(url: str, path: Path, workdir: Path) -> list[object]:
    from sqlalchemy.orm import Session

    from app.auth.service import create_user
    from app.config import Settings
    from app.db import make_engine

    engine = make_engine(Settings(database_url=url))
    with Session(engine) as session, session.begin():
        create_user(session, "bench-admin", "bench-password-123", "admin")
    engine.dispose()
    port = free_port()
    proc = serve(url, port, workdir / "upload-server.log")
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", timeout=3600, follow_redirects=True
        ) as browser:
            token = csrf(browser.get("/login").text)
            form = {"username": "bench-admin", "password": "bench-password-123"}
            assert browser.post("/login", data={**form, "csrf_token": token}).status_code < 400
            token = csrf(browser.get("/projects/new").text)
            made = browser.post(
                "/projects",
                data={"name": "bench", "ask_safety": "1", "ask_dual": "1", "csrf_token": token},
            )
            project_id = int(str(made.url).rstrip("/").rsplit("/", 1)[1])
            token = csrf(made.text)
            before = rss_kib(proc.pid)
            peak = before
            done = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not done.wait(0.05):
                    peak = max(peak, rss_kib(proc.pid))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            boundary = uuid.uuid4().hex
            start = time.perf_counter()
            answer = browser.post(
                f"/projects/{project_id}/imports",
                content=multipart(path, token, boundary),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            seconds = time.perf_counter() - start
            done.set()
            sampler.join()
            assert answer.status_code == 201, answer.text[-2000:]
            created = re.search(r'class="import-created">(\d+)<', answer.text)
            return [
                f"{seconds:.1f}",
                f"{before / 1024:.0f}",
                f"{peak / 1024:.0f}",
                created.group(1) if created else "?",
            ]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=83_400)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--gzip", action="store_true", help="upload the file gzip-compressed")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/safepref-bench-import"))
    parser.add_argument("--postgres-url", help="use this server instead of a private one")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = importlib.import_module("import").dataset(args.workdir, args.rows)
    if args.gzip:
        zipped = path.with_suffix(".jsonl.gz")
        if not zipped.exists():
            with path.open("rb") as src, gzip.open(zipped, "wb") as dst:
                shutil.copyfileobj(src, dst)
        path = zipped
    size_mb = path.stat().st_size / 1e6
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    need_pg = "postgresql" in backends and not args.postgres_url
    rows = []
    with postgres_server(args.workdir) if need_pg else nullcontext(args.postgres_url) as pg:
        for backend in backends:
            url = fresh_database(backend, "bench_upload", workdir=args.workdir, server_url=pg)
            rows.append([backend, *upload(url, path, args.workdir)])
    print(f"\n{path.name}: {size_mb:.0f} MB, {args.rows} rows, browser form upload")
    print_table(["backend", "seconds", "server RSS before MB", "peak MB", "created"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
