"""Serving with several worker processes, each accepting on a socket of its own.

uvicorn's own `--workers` shares one listening socket between the processes, and whichever
process wakes first accepts every connection waiting: a burst of keep-alive connections (a
load balancer's pool, a crowd starting a batch at nine o'clock) can all land on one process
while the other idles. Measured with bench/queue: all 32 connections on one of two workers,
half the machine unused. Here each worker binds its own socket with SO_REUSEPORT, so the
kernel spreads new connections over the workers by a hash of their addresses.

The parent process only supervises: it restarts a worker that dies and stops them all on
SIGTERM or SIGINT.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from app.ops.multiproc import worker_exited

APP = "app.main:app"
BACKLOG = 2048
# A worker that dies within this many seconds of its start is failing to start, not crashing:
# after a few of those the server gives up instead of restarting it forever.
STARTUP_SECONDS = 5.0
STARTUP_FAILURES = 3


def _listen(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


def _protocol() -> type[Any]:
    # uvicorn's httptools protocol, with limits on the request head (app/web/protocol.py).
    from app.web.protocol import GuardedHttpToolsProtocol

    return GuardedHttpToolsProtocol


def _worker(host: str, port: int, options: dict[str, Any]) -> None:
    import uvicorn

    sock = _listen(host, port)
    sock.listen(BACKLOG)
    config = uvicorn.Config(APP, host=host, port=port, http=_protocol(), **options)
    uvicorn.Server(config).run(sockets=[sock])


def serve(host: str, port: int, workers: int, **options: Any) -> int:
    """Runs the app with `workers` processes; returns the exit status. `options` go to
    uvicorn.Config (log level, access log, proxy headers)."""
    import uvicorn

    if workers <= 1 or not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(APP, host=host, port=port, workers=max(workers, 1), http=_protocol(), **options)
        return 0
    try:  # fail here, with a clear message, when the port is taken
        _listen(host, port).close()
    except OSError as error:
        print(f"safepref serve: cannot listen on {host}:{port}: {error}", file=sys.stderr)
        return 2
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def start() -> tuple[BaseProcess, float]:
        process = context.Process(target=_worker, args=(host, port, options), daemon=False)
        process.start()
        return process, time.monotonic()

    running = [start() for _ in range(workers)]
    print(f"safepref: {workers} workers on http://{host}:{port} (SO_REUSEPORT)", flush=True)
    failures = 0
    status = 0
    while not stopping:
        time.sleep(0.2)
        for index, (process, started) in enumerate(running):
            if process.is_alive() or stopping:
                continue
            if time.monotonic() - started < STARTUP_SECONDS:
                failures += 1
                if failures >= STARTUP_FAILURES:
                    print("safepref serve: workers keep failing to start", file=sys.stderr)
                    stopping, status = True, 1
                    break
            print(f"safepref: worker {process.pid} exited ({process.exitcode}); restarting")
            if process.pid is not None:
                worker_exited(process.pid)
            running[index] = start()
    for process, _ in running:
        if process.is_alive() and process.pid is not None:
            process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
    deadline = time.monotonic() + 30
    for process, _ in running:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    return status
