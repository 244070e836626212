"""Export filter rules without a database: the unanimous fast path, and the prefetch worker."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from app.consensus.aggregate import item_consensus
from app.consensus.labels import vote_from_payload
from app.core.bulk import gc_paused, prefetch
from app.errors import Invalid
from app.exports.filters import ExportFilters, parse_dimensions, select_labels, select_majority
from app.exports.formats import NEEDS

TAXONOMY = ("a", "b", "c", "d")


def random_payload(rng: random.Random, ids: list[int], single: bool) -> dict[str, Any]:
    labels = []
    for rid in ids:
        if rng.random() < 0.5:
            labels.append(
                {"response_id": rid, "is_safe": True, "harm_categories": [], "severity": None}
            )
        else:
            cats = sorted(rng.sample(TAXONOMY, rng.randint(1, 2)), key=TAXONOMY.index)
            severity = rng.choice(["minor", "moderate", "severe"])
            labels.append(
                {
                    "response_id": rid,
                    "is_safe": False,
                    "harm_categories": cats,
                    "severity": severity,
                }
            )
    harmless = rng.sample(ids, len(ids))
    safe = [lab["response_id"] for lab in labels if lab["is_safe"]]
    if len(safe) == 1:
        harmless.remove(safe[0])
        harmless.insert(0, safe[0])
    out: dict[str, Any] = {
        "responses": labels,
        "helpfulness": rng.sample(ids, len(ids)),
        "harmlessness": harmless,
    }
    if single:
        out["single"] = rng.sample(ids, len(ids))
    return out


FILTERS = [
    ExportFilters(min_annotations=m, min_agreement=x, dimensions=d, include_unresolved=u)
    for m, x, d, u in itertools.product(
        (None, 2),
        (None, 0.0, 1.0),
        (None, ("single",), ("helpfulness", "is_safe")),
        (False, True),
    )
]


def test_majority_fast_path_equals_the_general_consensus() -> None:
    """Identical votes (any filters), or a strict majority of identical votes among votes that
    answer the same questions (no min_agreement): same result as building the consensus."""
    rng = random.Random(3)
    checked = 0
    for case in range(150):
        ids = [10 * case + k for k in range(rng.choice([2, 2, 3]))]
        single = rng.random() < 0.5
        body = random_payload(rng, ids, single)
        n = rng.randint(1, 5)
        majority = rng.randint(n // 2 + 1, n)
        bodies = [body] * majority + [random_payload(rng, ids, single) for _ in range(n - majority)]
        rng.shuffle(bodies)
        votes = [vote_from_payload(f"a{k}", b) for k, b in enumerate(bodies)]
        consensus = item_consensus(votes, TAXONOMY)
        for filters, needs in itertools.product(FILTERS, NEEDS.values()):
            if majority < n and filters.min_agreement is not None:
                continue
            expected = select_labels(
                filters,
                needs,
                overlap=3,
                votes=votes,
                consensus=consensus,
                taxonomy=TAXONOMY,
                response_ids=ids,
            )
            fast = select_majority(
                filters,
                needs,
                overlap=3,
                n_votes=n,
                payload=body,
                taxonomy=TAXONOMY,
                response_ids=ids,
            )
            assert fast == expected, (bodies, filters, needs)
            checked += expected is not None
    assert checked > 1000  # the comparison is not vacuous


def test_parse_dimensions_accepts_commas_and_repeats() -> None:
    assert parse_dimensions(["helpfulness,is_safe", "harmlessness", "is_safe"]) == (
        "helpfulness",
        "is_safe",
        "harmlessness",
    )
    assert parse_dimensions([]) is None
    with pytest.raises(Invalid):
        parse_dimensions(["kindness"])


def test_prefetch_keeps_order_and_raises_the_producers_error() -> None:
    assert list(prefetch(iter(range(50)), depth=2)) == list(range(50))

    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("boom")

    got = prefetch(failing())
    assert next(got) == 1
    with pytest.raises(ValueError, match="boom"):
        next(got)


def test_closing_prefetch_stops_and_closes_the_producer() -> None:
    closed = threading.Event()
    produced: list[int] = []

    def endless() -> Iterator[int]:
        try:
            for i in itertools.count():
                produced.append(i)
                yield i
        finally:
            closed.set()

    consumer = prefetch(endless(), depth=1)
    assert [next(consumer) for _ in range(3)] == [0, 1, 2]
    consumer.close()
    assert closed.is_set()
    assert len(produced) <= 6  # bounded: it never ran far ahead
    assert not any(t.name == "export-prefetch" for t in threading.enumerate())


def test_a_prefetch_closed_from_its_own_worker_does_not_join_itself() -> None:
    # An abandoned stream (an HTTP export whose client hung up) is finalised by whichever
    # thread collects it, its own worker included: it must stop without joining itself.
    consumed, finished = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    holder: dict[str, Any] = {}

    def source() -> Iterator[int]:
        yield 1
        consumed.wait(30)
        try:
            holder["consumer"].close()  # what a collection in this thread does
        except BaseException as exc:
            errors.append(exc)
        finished.set()
        yield 2

    consumer = prefetch(source(), depth=1)
    holder["consumer"] = consumer
    assert next(consumer) == 1
    consumed.set()
    assert finished.wait(30)
    assert errors == []


def test_gc_paused_nests_and_restores_the_collector() -> None:
    import gc

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # it was off before: left off
    finally:
        gc.enable()
