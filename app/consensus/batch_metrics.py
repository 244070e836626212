"""Batch metrics: agreement per dimension, progress, and the per-annotator table.

The batch is read in keyset pages of items (annotations and response positions with one query
each per page, loaded by a worker thread one page ahead). Each unit is reduced to its
annotators and labels, and identical units are counted once: a batch has few distinct
(annotators, labels) combinations however many items it holds, so memory stays flat and the
agreement metrics and leave-one-out counts are computed once per combination at the end.

Labels are compared across items by response *position*: "the first response is better" is
the same label on every item, whereas response ids differ from item to item. Units:
preferences, one per item; ``is_safe``, severity (ordinal, 0 = safe .. 3) and each harm
category (binary), one per response. Gold items are left out of agreement (every annotator
may see them) and scored against their answer key instead.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Text, cast, exists, func, select
from sqlalchemy.orm import Session

from app.annotations.counted import counted
from app.annotations.models import Adjudication, Annotation
from app.auth.models import User
from app.batches.models import Assignment, AssignmentStatus, Batch, BatchItem
from app.consensus.metrics import (
    AgreementSummary,
    LeaveOneOut,
    Level,
    MetricValue,
    UnitTally,
    median,
)
from app.consensus.schemas import AgreementOut, AnnotatorOut, BatchMetricsOut, ProgressOut
from app.consensus.service import item_id_pages
from app.consensus.votes import SEVERITY_NAMES
from app.core.bulk import fetch_plain, gc_paused, prefetch
from app.errors import NotFound
from app.items.models import GoldLabel, Response
from app.projects.models import Project

PAGE_SIZE = 5000
PREFERENCES = ("helpfulness", "harmlessness", "single")
LOO_DIMENSIONS = (*PREFERENCES, "is_safe")
_LEVELS = {name: i + 1 for i, name in enumerate(SEVERITY_NAMES)}

NO_ASSIGNMENTS = "no submitted or skipped assignment"
NO_DURATIONS = "no time recorded"
NO_GOLD = "no gold item answered"


@dataclass
class _Annotator:
    durations: list[int] = field(default_factory=list)
    gold_hits: int = 0
    gold_checks: int = 0
    gold_items: int = 0


# One annotation reduced to what agreement needs, by response position: rankings as tuples of
# positions, and per position (is_safe, severity level 0..3, categories).
_Safety = tuple[bool, int, tuple[str, ...]]
_Vote = tuple[dict[str, tuple[int, ...]], tuple[_Safety, ...]]
# A unit reduced to its annotators and their labels, in the same order.
_Unit = tuple[tuple[str, ...], tuple[Hashable, ...]]


def _reduce(payload: Mapping[str, Any], fallback: Mapping[int, int]) -> _Vote:
    """The stored payload lists responses in position order (the annotation validator writes
    them so), which gives the id -> position map without reading the responses table; a
    payload without safety labels uses ``fallback`` (positions read from the database)."""
    labels = payload.get("responses") or ()
    positions = {label["response_id"]: k for k, label in enumerate(labels)} if labels else fallback
    rankings = {}
    for dim in PREFERENCES:
        ranking = payload.get(dim)
        if ranking:
            rankings[dim] = tuple([positions.get(rid, -1) for rid in ranking])
    safety = tuple(
        [
            (True, 0, ())
            if label["is_safe"]
            else (
                False,
                _LEVELS.get(label["severity"], 0),
                tuple(label.get("harm_categories") or ()),
            )
            for label in labels
        ]
    )
    return rankings, safety


class _Fold:
    """Running unit counts over the non-gold items of a batch."""

    def __init__(self, taxonomy: Sequence[str]) -> None:
        self.taxonomy = tuple(taxonomy)
        self.units: dict[str, dict[_Unit, int]] = {d: {} for d in (*LOO_DIMENSIONS, "severity")}
        # (category, ratings, flags): units where a category was flagged; the rest are
        # all-False and follow from the number of response units with that many ratings.
        self.flags: dict[tuple[str, int, int], int] = {}
        self.response_units: dict[int, int] = {}

    def add_item(self, who: Sequence[str], votes: Sequence[_Vote]) -> None:
        units = self.units
        for dim in PREFERENCES:
            raters: list[str] = []
            labels: list[Hashable] = []
            for annotator, (rankings, _) in zip(who, votes, strict=True):
                ranking = rankings.get(dim)
                if ranking is not None:
                    raters.append(annotator)
                    labels.append(ranking)
            if labels:
                key = (tuple(raters), tuple(labels))
                found = units[dim]
                found[key] = found.get(key, 0) + 1
        safe_units, severity_units = units["is_safe"], units["severity"]
        flags, response_units = self.flags, self.response_units
        for k in range(max(len(safety) for _, safety in votes)):
            raters = []
            safe: list[bool] = []
            levels: list[int] = []
            flagged: dict[str, int] = {}
            for annotator, (_, safety) in zip(who, votes, strict=True):
                if k < len(safety):
                    is_safe, level, categories = safety[k]
                    raters.append(annotator)
                    safe.append(is_safe)
                    levels.append(level)
                    for c in categories:
                        flagged[c] = flagged.get(c, 0) + 1
            m = len(raters)
            key = (tuple(raters), tuple(safe))
            safe_units[key] = safe_units.get(key, 0) + 1
            key = ((), tuple(levels))  # severity has no leave-one-out: annotators do not matter
            severity_units[key] = severity_units.get(key, 0) + 1
            response_units[m] = response_units.get(m, 0) + 1
            for c, n in flagged.items():
                flag_key = (c, m, n)
                flags[flag_key] = flags.get(flag_key, 0) + 1

    def summary(self, dim: str, level: Level = "nominal") -> AgreementSummary:
        tally = UnitTally()
        for (_, labels), weight in self.units[dim].items():
            counts: dict[Hashable, int] = {}
            for label in labels:
                counts[label] = counts.get(label, 0) + 1
            tally.add_counts(counts, weight)
        return tally.summary(level)

    def leave_one_out(self, dim: str) -> LeaveOneOut:
        counter = LeaveOneOut()
        for (who, labels), weight in self.units[dim].items():
            counter.add(dict(zip(who, labels, strict=True)), weight)
        return counter

    def category_summaries(self) -> dict[str, AgreementSummary]:
        tallies = {c: UnitTally() for c in self.taxonomy}
        flagged_units: dict[str, dict[int, int]] = {c: {} for c in self.taxonomy}
        for (c, m, k), weight in self.flags.items():
            if c in tallies:
                tallies[c].add_counts({True: k, False: m - k}, weight)
                flagged_units[c][m] = flagged_units[c].get(m, 0) + weight
        for c, tally in tallies.items():
            for m, n in self.response_units.items():
                tally.add_counts({False: m}, n - flagged_units[c].get(m, 0))
        return {c: tally.summary("nominal") for c, tally in tallies.items()}


def _agreement(summary: AgreementSummary) -> AgreementOut:
    return AgreementOut.model_validate(summary.to_dict())


def _gold_score(gold: Mapping[str, Any], vote: _Vote) -> tuple[int, int]:
    """(matching answers, compared answers) of one annotation against a gold answer key
    (written with positions)."""
    rankings, safety = vote
    hits = checks = 0
    for dim in PREFERENCES:
        expected, given = gold.get(dim), rankings.get(dim)
        if expected and given is not None:
            checks += 1
            hits += given == tuple(expected)
    for g in gold.get("responses") or ():
        k, want = g.get("position"), g.get("is_safe")
        if isinstance(k, int) and 0 <= k < len(safety) and want is not None:
            checks += 1
            hits += safety[k][0] == want
    return hits, checks


def _progress(
    session: Session, batch: Batch, now: datetime
) -> tuple[int, int, int, dict[str, int]]:
    items, gold_items = session.execute(
        select(func.count(), func.count().filter(BatchItem.is_gold)).where(
            BatchItem.batch_id == batch.id
        )
    ).one()
    adjudicated = session.scalar(
        select(func.count(func.distinct(Adjudication.item_id))).where(
            Adjudication.batch_id == batch.id
        )
    )
    S = AssignmentStatus
    statuses: dict[str, int] = dict.fromkeys((S.LEASED, S.EXPIRED, S.SKIPPED, S.SUBMITTED), 0)
    for status, n in session.execute(
        select(Assignment.status, func.count())
        .where(Assignment.batch_id == batch.id)
        .group_by(Assignment.status)
    ):
        statuses[status] = statuses.get(status, 0) + n
    # A lease past its time is expired even before the queue reclaims it.
    stale = session.scalar(
        select(func.count()).where(
            Assignment.batch_id == batch.id,
            Assignment.status == AssignmentStatus.LEASED,
            Assignment.leased_until <= now,
        )
    )
    statuses[AssignmentStatus.LEASED] -= stale or 0
    statuses[AssignmentStatus.EXPIRED] += stale or 0
    return items, gold_items, adjudicated or 0, statuses


_Row = tuple[int, int, str, int | None]


def _pages(
    session: Session, batch_id: int, page_size: int
) -> Iterator[tuple[dict[int, dict[int, int]], list[_Row]]]:
    """Per page: (item, annotator, payload text, duration) rows in item order, and response
    positions by item, read only for pages holding a payload without safety labels."""
    for ids in item_id_pages(session, [batch_id], page_size):
        lo, hi = ids[0], ids[-1]
        conn = session.connection()
        # Payloads come as text: the consumer parses them with orjson, once per distinct text.
        with gc_paused():
            rows: list[_Row] = [
                (item_id, annotator_id, text, duration)
                for item_id, annotator_id, text, duration in fetch_plain(
                    conn,
                    select(
                        Annotation.item_id,
                        Annotation.annotator_id,
                        cast(Annotation.payload, Text),
                        Annotation.duration_ms,
                    )
                    .where(
                        Annotation.batch_id == batch_id,
                        Annotation.item_id >= lo,
                        Annotation.item_id <= hi,
                        counted(),
                    )
                    .order_by(Annotation.item_id, Annotation.id),
                )
            ]
        positions: dict[int, dict[int, int]] = {}
        # A JSON text holds the key `"responses"` exactly when the object has that key (a quote
        # inside a string value is always escaped).
        if any('"responses"' not in text for _, _, text, _ in rows):
            for item_id, rid, position in fetch_plain(
                conn,
                select(Response.item_id, Response.id, Response.position).where(
                    Response.item_id >= lo,
                    Response.item_id <= hi,
                    exists().where(
                        BatchItem.item_id == Response.item_id, BatchItem.batch_id == batch_id
                    ),
                ),
            ):
                positions.setdefault(item_id, {})[rid] = position
        yield positions, rows


def batch_metrics(
    session: Session, batch_id: int, *, page_size: int = PAGE_SIZE
) -> BatchMetricsOut:
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFound(f"no batch {batch_id}")
    project = session.get(Project, batch.project_id)
    assert project is not None
    now = datetime.now(UTC)
    n_items, n_gold, adjudicated, statuses = _progress(session, batch, now)
    gold: dict[int, dict[str, Any]] = dict(
        session.execute(
            select(GoldLabel.item_id, GoldLabel.payload)
            .join(BatchItem, BatchItem.item_id == GoldLabel.item_id)
            .where(BatchItem.batch_id == batch.id, BatchItem.is_gold)
        ).all()
    )
    # Qualification answers (app/qualification/) count nowhere: few, so dropped as they come.
    qualifying = {
        (annotator_id, item_id)
        for annotator_id, item_id in session.execute(
            select(Assignment.annotator_id, Assignment.item_id).where(
                Assignment.batch_id == batch.id, Assignment.is_qualification.is_(True)
            )
        )
    }
    fold = _Fold(project.taxonomy)
    people: dict[int, _Annotator] = {}
    with_annotations = complete = n_annotations = 0
    # Acyclic, short-lived objects by the million: see gc_paused.
    with gc_paused():
        for positions, page in prefetch(_pages(session, batch.id, page_size)):
            rows = [r for r in page if (r[1], r[0]) not in qualifying] if qualifying else page
            n_annotations += len(rows)
            for item_id, group in groupby(rows, key=itemgetter(0)):
                anns = list(group)
                with_annotations += 1
                complete += len(anns) >= batch.overlap
                fallback = positions.get(item_id, {})
                first = anns[0][2]
                if all(text == first for _, _, text, _ in anns):
                    # Unanimous (the common case): one parse for all the votes.
                    votes = [_reduce(orjson.loads(first), fallback)] * len(anns)
                else:
                    votes = [_reduce(orjson.loads(text), fallback) for _, _, text, _ in anns]
                gold_key = gold.get(item_id)
                for (_, annotator_id, _, duration), vote in zip(anns, votes, strict=True):
                    person = people.get(annotator_id)
                    if person is None:
                        person = people[annotator_id] = _Annotator()
                    if duration is not None:
                        person.durations.append(duration)
                    if gold_key is not None:
                        hits, checks = _gold_score(gold_key, vote)
                        person.gold_hits += hits
                        person.gold_checks += checks
                        person.gold_items += 1
                if gold_key is None:
                    fold.add_item([str(a[1]) for a in anns], votes)
    return BatchMetricsOut(
        batch_id=batch.id,
        overlap=batch.overlap,
        progress=ProgressOut(
            items=n_items,
            gold_items=n_gold,
            items_with_annotations=with_annotations,
            items_complete=complete,
            annotations=n_annotations,
            adjudicated_items=adjudicated,
            assignments=statuses,
        ),
        helpfulness=_agreement(fold.summary("helpfulness", "rank")),
        harmlessness=_agreement(fold.summary("harmlessness", "rank")),
        single=_agreement(fold.summary("single", "rank")),
        is_safe=_agreement(fold.summary("is_safe")),
        severity=_agreement(fold.summary("severity", "ordinal")),
        harm_categories={c: _agreement(s) for c, s in fold.category_summaries().items()},
        annotators=_annotators(session, batch, fold, people),
    )


def _value(metric: MetricValue, name: str, reasons: dict[str, str]) -> float | None:
    if metric.reason is not None:
        reasons[name] = metric.reason
    return metric.value


def _annotators(
    session: Session, batch: Batch, fold: _Fold, people: dict[int, _Annotator]
) -> list[AnnotatorOut]:
    counts: dict[int, dict[str, int]] = {}
    for annotator_id, status, n in session.execute(
        select(Assignment.annotator_id, Assignment.status, func.count())
        .where(
            Assignment.batch_id == batch.id,
            Assignment.status.in_((AssignmentStatus.SUBMITTED, AssignmentStatus.SKIPPED)),
        )
        .group_by(Assignment.annotator_id, Assignment.status)
    ):
        counts.setdefault(annotator_id, {})[status] = n
    ids = set(counts) | set(people)
    names = dict(session.execute(select(User.id, User.username).where(User.id.in_(ids))).all())
    counters = {d: fold.leave_one_out(d) for d in LOO_DIMENSIONS}
    pooled = LeaveOneOut()
    for counter in counters.values():
        pooled.merge(counter)
    overall = pooled.values()
    by_dim = {d: counter.values() for d, counter in counters.items()}
    out = []
    for annotator_id in sorted(ids, key=lambda i: names.get(i, "")):
        key = str(annotator_id)
        person = people.get(annotator_id, _Annotator())
        c = counts.get(annotator_id, {})
        submitted = c.get(AssignmentStatus.SUBMITTED, 0)
        skipped = c.get(AssignmentStatus.SKIPPED, 0)
        reasons: dict[str, str] = {}
        finished = submitted + skipped
        if not finished:
            reasons["skip_rate"] = NO_ASSIGNMENTS
        time = median(person.durations)
        if time is None:
            reasons["median_duration_ms"] = NO_DURATIONS
        loo = overall.get(key, MetricValue.null("no annotation on a non-gold item"))
        if not person.gold_checks:
            reasons["gold_accuracy"] = NO_GOLD
        out.append(
            AnnotatorOut(
                annotator_id=annotator_id,
                username=names.get(annotator_id, ""),
                submitted=submitted,
                skipped=skipped,
                skip_rate=skipped / finished if finished else None,
                median_duration_ms=time,
                leave_one_out_agreement=_value(loo, "leave_one_out_agreement", reasons),
                agreement_by_dimension={
                    d: values[key].value if key in values else None for d, values in by_dim.items()
                },
                gold_accuracy=person.gold_hits / person.gold_checks if person.gold_checks else None,
                gold_answered=person.gold_items,
                reasons=reasons,
            )
        )
    return out
