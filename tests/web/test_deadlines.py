"""The client's deadlines (app/web/deadlines.py): one grace period after the deadline, then a
refusal; a message that comes during the grace is taken."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from app.web import deadlines
from app.web.deadlines import Deadline


def test_a_message_in_the_grace_period_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deadlines, "GRACE_SECONDS", 30.0)

    async def run() -> Message:
        arrived = asyncio.Event()

        async def receive() -> Message:
            await arrived.wait()
            return {"type": "http.request", "body": b"late", "more_body": False}

        deadline = Deadline(0.01)
        # Comes after the deadline, well inside the grace.
        asyncio.get_running_loop().call_later(0.2, arrived.set)
        return await deadline.receive(receive)

    assert asyncio.run(run())["body"] == b"late"


def test_nothing_by_the_end_of_the_grace_is_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deadlines, "GRACE_SECONDS", 0.01)
    calls = 0

    async def run() -> None:
        async def receive() -> Message:
            nonlocal calls
            calls += 1
            await asyncio.Event().wait()  # never
            raise AssertionError("unreachable")

        await Deadline(0.01).receive(receive)

    with pytest.raises(TimeoutError):
        asyncio.run(run())
    assert calls == 2  # until the deadline, then once more for the grace


def test_passed_starts_the_grace_once(monkeypatch: pytest.MonkeyPatch) -> None:
    async def run(grace: float) -> list[bool]:
        monkeypatch.setattr(deadlines, "GRACE_SECONDS", grace)
        deadline = Deadline(0.0)
        first = deadline.passed()  # the deadline is here: the grace starts instead
        return [first, deadline.passed()]

    # Inside a long grace it has not passed; after a grace of nothing it has.
    assert asyncio.run(run(3600.0)) == [False, False]
    assert asyncio.run(run(0.0)) == [False, True]
