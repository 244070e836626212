"""The figures of the batch dashboard and the campaign overview.

Cheap figures (progress, leases, skips) are read on every request. Expensive ones (agreement
metrics from app/consensus/batch_metrics.py, label distributions, completions per hour, gold
accuracy) form a snapshot kept by `SnapshotCache` for as long as the batch's fingerprint is
unchanged. Gold items are left out of progress, agreement and distributions: they are scored
against their answer key instead.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, String, cast, func, select, text
from sqlalchemy.orm import Session

from app.annotations.counted import counted
from app.annotations.models import Annotation
from app.auth.models import User
from app.batches.models import Assignment, AssignmentStatus, Batch, BatchItem
from app.batches.service import item_needs
from app.consensus.batch_metrics import batch_metrics
from app.consensus.schemas import AgreementOut, BatchMetricsOut
from app.dashboard.cache import Cached, SnapshotCache
from app.dashboard.gold import GoldScore, gold_scores
from app.db import reading, utcnow
from app.errors import NotFound
from app.items.models import GoldLabel
from app.projects.models import Project
from app.suggestions.figures import prescreening_out, suggestions_fingerprint

SEVERITY_KEYS = ("safe", "minor", "moderate", "severe")
DIMENSION_LABELS = {
    "helpfulness": "Helpfulness ranking",
    "harmlessness": "Harmlessness ranking",
    "single": "Single (trade-off) ranking",
    "is_safe": "Safe / unsafe, per response",
    "severity": "Severity, per response (ordinal)",
}


# ------------------------------------------------------------------------------ progress


@dataclass(frozen=True)
class Progress:
    """Ordinary (non-gold) items of the batch; the three item states add up to `items`."""

    items: int
    overlap: int
    done: int  # at least `overlap` submitted annotations
    untouched: int  # no lease and no annotation
    submitted: int  # annotations on ordinary items
    skips: int  # skipped assignments on ordinary items
    live_leases: int
    gold_items: int
    gold_answers: int
    # Adaptive overlap: the annotations wanted in all, as a range (equal for a fixed overlap),
    # and how many items have each number of annotations.
    wanted_at_least: int = 0
    wanted_at_most: int = 0
    per_item: tuple[tuple[int, int], ...] = ()
    adaptive: bool = False

    @property
    def in_progress(self) -> int:
        return self.items - self.done - self.untouched

    @property
    def wanted(self) -> int:
        return self.wanted_at_least

    @property
    def saved(self) -> int:
        """Annotations a fixed overlap would still ask for that this batch will not need."""
        return self.items * self.overlap - self.wanted_at_most

    @property
    def percent(self) -> float:
        """Share of the wanted annotations submitted, in percent."""
        return 100.0 * min(self.submitted, self.wanted) / self.wanted if self.wanted else 0.0


def progress(session: Session, batch: Batch, now: datetime | None = None) -> Progress:
    now = now or utcnow()
    ordinary = BatchItem.is_gold.is_(False)
    need = item_needs(batch.overlap)
    per_item: Sequence[tuple[int, int]] = []
    if batch.is_adaptive:
        per_item = session.execute(
            select(BatchItem.submitted, func.count())
            .where(BatchItem.batch_id == batch.id, ordinary)
            .group_by(BatchItem.submitted)
            .order_by(BatchItem.submitted)
        ).all()
    row = session.execute(
        select(
            func.count().filter(ordinary),
            func.count().filter(ordinary, need.complete),
            func.count().filter(ordinary, BatchItem.taken == 0),
            func.coalesce(func.sum(BatchItem.submitted).filter(ordinary), 0),
            func.count().filter(BatchItem.is_gold.is_(True)),
            func.coalesce(func.sum(BatchItem.submitted).filter(BatchItem.is_gold.is_(True)), 0),
            func.coalesce(func.sum(need.at_least).filter(ordinary), 0),
            func.coalesce(func.sum(need.at_most).filter(ordinary), 0),
        ).where(BatchItem.batch_id == batch.id)
    ).one()
    items, done, untouched, submitted, gold_items, gold_answers, at_least, at_most = row
    skips, leases = session.execute(
        select(
            func.count().filter(Assignment.status == AssignmentStatus.SKIPPED),
            func.count().filter(
                Assignment.status == AssignmentStatus.LEASED, Assignment.leased_until > now
            ),
        )
        .join(
            BatchItem,
            (BatchItem.batch_id == Assignment.batch_id) & (BatchItem.item_id == Assignment.item_id),
        )
        .where(
            Assignment.batch_id == batch.id,
            Assignment.status.in_((AssignmentStatus.SKIPPED, AssignmentStatus.LEASED)),
            ordinary,
        )
    ).one()
    return Progress(
        items=int(items),
        overlap=batch.overlap,
        done=int(done),
        untouched=int(untouched),
        submitted=int(submitted),
        skips=int(skips),
        live_leases=int(leases),
        gold_items=int(gold_items),
        gold_answers=int(gold_answers) - _qualification_answers(session, batch.id),
        wanted_at_least=int(at_least),
        wanted_at_most=int(at_most),
        per_item=tuple((int(n), int(count)) for n, count in per_item),
        adaptive=batch.is_adaptive,
    )


def _qualification_answers(session: Session, batch_id: int) -> int:
    """Submitted qualification answers: counted on their gold items, shown nowhere."""
    return int(
        session.scalar(
            select(func.count()).where(
                Assignment.batch_id == batch_id,
                Assignment.is_qualification.is_(True),
                Assignment.status == AssignmentStatus.SUBMITTED,
            )
        )
        or 0
    )


# ---------------------------------------------------------------------------- snapshot


def fingerprint(session: Session, batch_id: int) -> Hashable:
    """Changes whenever anything the snapshot reads changes: annotations (new or revised),
    skips, gold marks and answer keys, the overlap. Index-backed aggregates only."""
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFound(f"no batch {batch_id}")
    annotations = session.execute(
        select(
            func.count(),
            func.max(Annotation.id),
            func.max(Annotation.updated_at),
            # Exclusions and inclusions (app/queue/exclusion.py) change what counts.
            func.count(Annotation.excluded_at),
            func.max(Annotation.excluded_at),
        ).where(Annotation.batch_id == batch_id)
    ).one()
    skips = session.scalar(
        select(func.count()).where(
            Assignment.batch_id == batch_id, Assignment.status == AssignmentStatus.SKIPPED
        )
    )
    gold = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(BatchItem.item_id), 0),
            func.max(GoldLabel.created_at),
        )
        .select_from(BatchItem)
        .outerjoin(GoldLabel, GoldLabel.item_id == BatchItem.item_id)
        .where(BatchItem.batch_id == batch_id, BatchItem.is_gold.is_(True))
    ).one()
    suggestions = suggestions_fingerprint(session, batch)
    return (batch.created_at, batch.overlap, tuple(annotations), skips, tuple(gold), suggestions)


@dataclass(frozen=True)
class Snapshot:
    metrics: BatchMetricsOut
    severity: dict[str, int]  # SEVERITY_KEYS -> response labels given
    categories: dict[str, int]  # taxonomy order -> times flagged
    hourly: list[tuple[datetime, int]]  # UTC hour -> annotations first submitted in it
    gold: dict[int, GoldScore]  # annotator id -> gold accuracy per dimension
    taxonomy: tuple[str, ...] = ()


def compute_snapshot(session: Session, batch_id: int) -> Snapshot:
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFound(f"no batch {batch_id}")
    project = session.get_one(Project, batch.project_id)
    taxonomy = tuple(project.taxonomy)
    bind = session.get_bind()
    if isinstance(bind, Engine) and bind.dialect.name == "postgresql":
        # The distributions run in the database while Python folds the metrics: on their own
        # connection, at the same time. (Not on SQLite: one writer lock, nothing to gain, and
        # this session's open transaction would hold it while waiting.)
        with ThreadPoolExecutor(1) as pool:
            later = pool.submit(_distributions_apart, bind, batch_id)
            metrics = batch_metrics(session, batch_id)
            severity, flagged = later.result()
    else:
        metrics = batch_metrics(session, batch_id)
        severity, flagged = label_distributions(session, batch_id)
    metrics.prescreening = prescreening_out(session, batch_id)
    categories = {c: flagged.pop(c, 0) for c in taxonomy}
    categories.update(sorted(flagged.items()))  # names outside the taxonomy go last
    return Snapshot(
        metrics=metrics,
        severity=severity,
        categories=categories,
        hourly=hourly_completions(session, batch_id),
        gold=gold_scores(session, batch_id),
        taxonomy=taxonomy,
    )


# Above this many annotations a first computation takes a second or more: pages show what is
# cheap at once and fill in the rest when the background computation is done.
SLOW_ANNOTATIONS = 20_000


def is_expensive(fp: Hashable) -> bool:
    """From a `fingerprint`: whether the batch has enough annotations to be slow."""
    annotations: Any = fp[2] if isinstance(fp, tuple) and len(fp) > 2 else ()
    return bool(annotations) and int(annotations[0]) >= SLOW_ANNOTATIONS


SNAPSHOTS: SnapshotCache[Snapshot] = SnapshotCache(
    compute_snapshot, fingerprint, expensive=is_expensive
)


def snapshot(session: Session, batch: Batch, *, wait: bool = True) -> Cached[Snapshot] | None:
    """The batch's snapshot; with `wait=False`, None while a slow first one is computed."""
    return SNAPSHOTS.get(session, batch.id, wait=wait)


# The counted-annotations rule (app/annotations/counted.py) rendered for the raw SQL below.
_COUNTED = str(counted().compile(compile_kwargs={"literal_binds": True})).replace(
    "annotations.", "a."
)

# One pass: each payload is parsed once (jsonb), its response labels kept in a materialised
# CTE, then counted by severity and, for unsafe labels, by category.
_DISTRIBUTION_PG = """
WITH r AS MATERIALIZED (
  SELECT x.value->>'severity' AS severity, x.value->'harm_categories' AS categories
  FROM annotations a
  JOIN batch_items b ON b.batch_id = a.batch_id AND b.item_id = a.item_id
  CROSS JOIN LATERAL jsonb_array_elements(a.payload::jsonb->'responses') x
  WHERE a.batch_id = :batch_id AND NOT b.is_gold AND {COUNTED}
)
SELECT false, severity, count(*) FROM r GROUP BY severity
UNION ALL
SELECT true, c, count(*)
FROM r CROSS JOIN LATERAL jsonb_array_elements_text(r.categories) c
WHERE r.severity IS NOT NULL
GROUP BY c
""".replace("{COUNTED}", _COUNTED)
_SEVERITY_SQLITE = """
SELECT json_extract(r.value, '$.severity'), count(*)
FROM annotations a
JOIN batch_items b ON b.batch_id = a.batch_id AND b.item_id = a.item_id,
     json_each(a.payload, '$.responses') r
WHERE a.batch_id = :batch_id AND NOT b.is_gold AND {COUNTED}
GROUP BY 1
""".replace("{COUNTED}", _COUNTED)
_CATEGORIES_SQLITE = """
SELECT c.value, count(*)
FROM annotations a
JOIN batch_items b ON b.batch_id = a.batch_id AND b.item_id = a.item_id,
     json_each(a.payload, '$.responses') r,
     json_each(r.value, '$.harm_categories') c
WHERE a.batch_id = :batch_id AND NOT b.is_gold AND {COUNTED}
GROUP BY 1
""".replace("{COUNTED}", _COUNTED)


def _distributions_apart(engine: Engine, batch_id: int) -> tuple[dict[str, int], dict[str, int]]:
    # `engine` is the caller's bind: a background snapshot's options (its longer statement
    # timeout) carry over to this second connection.
    with Session(reading(engine)) as session:
        return label_distributions(session, batch_id)


def label_distributions(session: Session, batch_id: int) -> tuple[dict[str, int], dict[str, int]]:
    """Response labels given on ordinary items: by severity ("safe" for a safe label) and how
    often each harm category was flagged. One pass over the payloads, in the database."""
    severity = dict.fromkeys(SEVERITY_KEYS, 0)
    flagged: dict[str, int] = {}
    params = {"batch_id": batch_id}
    if session.get_bind().dialect.name == "postgresql":
        for is_category, name, n in session.execute(text(_DISTRIBUTION_PG), params):
            if is_category:
                flagged[str(name)] = int(n)
            else:
                key = name or "safe"
                severity[key] = severity.get(key, 0) + int(n)
    else:
        for level, n in session.execute(text(_SEVERITY_SQLITE), params):
            key = level or "safe"
            severity[key] = severity.get(key, 0) + int(n)
        for category, n in session.execute(text(_CATEGORIES_SQLITE), params):
            flagged[str(category)] = int(n)
    return severity, flagged


def hourly_completions(session: Session, batch_id: int) -> list[tuple[datetime, int]]:
    """Annotations of the batch by the UTC hour of their first submission, oldest first."""
    bucket: Any
    if session.get_bind().dialect.name == "postgresql":
        bucket = func.date_trunc("hour", func.timezone("UTC", Annotation.created_at))
    else:  # stored as 'YYYY-MM-DD HH:MM:SS...' in UTC
        bucket = func.substr(cast(Annotation.created_at, String), 1, 13)
    rows = session.execute(
        select(bucket.label("hour"), func.count())
        .where(Annotation.batch_id == batch_id, counted())
        .group_by(bucket)
        .order_by(bucket)
    ).all()
    out = []
    for hour, n in rows:
        if isinstance(hour, str):
            hour = datetime.strptime(hour, "%Y-%m-%d %H")
        out.append((hour.replace(tzinfo=UTC, minute=0, second=0, microsecond=0), int(n)))
    return out


Unit = Literal["hour", "day", "week"]
UNIT_SPAN = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}


def _start_of(moment: datetime, unit: Unit) -> datetime:
    if unit == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if unit == "day" else day - timedelta(days=day.weekday())


def completions_over_time(
    hourly: Sequence[tuple[datetime, int]], max_buckets: int = 72
) -> tuple[Unit, list[tuple[datetime, int]]]:
    """Hourly counts regrouped into the finest unit (hour, day, week) that spans the campaign
    in at most `max_buckets` bars; empty buckets in between are kept (a quiet day shows)."""
    if not hourly:
        return "hour", []
    first, last = hourly[0][0], hourly[-1][0]
    unit: Unit = "week"
    candidates: tuple[Unit, ...] = ("hour", "day")
    for c in candidates:
        span = (_start_of(last, c) - _start_of(first, c)) // UNIT_SPAN[c] + 1
        if span <= max_buckets:
            unit = c
            break
    counts: dict[datetime, int] = {}
    for moment, n in hourly:
        start = _start_of(moment, unit)
        counts[start] = counts.get(start, 0) + n
    step = UNIT_SPAN[unit]
    out, moment = [], _start_of(first, unit)
    end = _start_of(last, unit)
    while moment <= end:
        out.append((moment, counts.get(moment, 0)))
        moment += step
    return unit, out


def bucket_label(moment: datetime, unit: Unit) -> str:
    if unit == "hour":
        return moment.strftime("%m-%d %H:00")
    if unit == "day":
        return moment.strftime("%Y-%m-%d")
    return "wk " + moment.strftime("%Y-%m-%d")


# --------------------------------------------------------------------------- agreement


@dataclass(frozen=True)
class Reading:
    band: Literal["good", "fair", "low", "none"]
    text: str


def read_agreement(agreement: AgreementOut) -> Reading:
    """One plain sentence about a dimension's agreement, from Krippendorff's alpha (the
    conventional thresholds: 0.8 reliable, 0.667 the floor for tentative conclusions)."""
    alpha, pa = agreement.krippendorff_alpha, agreement.percent_agreement
    if alpha is None:
        why = agreement.reasons.get("krippendorff_alpha", "not enough data")
        if pa is not None and why.startswith("no variation"):
            return Reading("good", "Every annotator gave the same label: nothing to disagree on.")
        return Reading("none", f"No reading yet: {why}.")
    if alpha >= 0.8:
        return Reading("good", "Good: annotators agree reliably, well beyond chance.")
    if alpha >= 0.667:
        return Reading(
            "fair", "Tentative: usable with care; agreement is below the 0.8 usually asked for."
        )
    if alpha > 0:
        return Reading(
            "low",
            "Low: annotators often disagree beyond what chance explains; review the "
            "guidelines and the disagreements.",
        )
    return Reading("low", "No better than chance: the labels look close to random.")


@dataclass(frozen=True)
class DimensionRow:
    key: str
    label: str
    agreement: AgreementOut
    reading: Reading


def dimension_rows(metrics: BatchMetricsOut, project: Project) -> list[DimensionRow]:
    keys = []
    if project.ask_dual:
        keys += ["helpfulness", "harmlessness"]
    if project.ask_single:
        keys.append("single")
    if project.ask_safety:
        keys += ["is_safe", "severity"]
    rows = []
    for key in keys:
        agreement: AgreementOut = getattr(metrics, key)
        rows.append(DimensionRow(key, DIMENSION_LABELS[key], agreement, read_agreement(agreement)))
    return rows


# --------------------------------------------------------------------------- annotators


@dataclass(frozen=True)
class Thresholds:
    """An annotator is flagged below these (or above `max_skip_rate`); None disables one."""

    min_agreement: float | None = 0.7
    min_gold: float | None = 0.8
    max_skip_rate: float | None = 0.25
    min_median_seconds: float | None = 10.0

    def query(self) -> dict[str, str]:
        """As query parameters (for links that keep the admin's thresholds): rates in percent,
        the unit the dashboard's table shows them in; the median time in seconds."""
        names = {
            "min_agreement": _percent(self.min_agreement),
            "min_gold": _percent(self.min_gold),
            "max_skip": _percent(self.max_skip_rate),
            "min_seconds": self.min_median_seconds,
        }
        return {k: ("" if v is None else f"{v:g}") for k, v in names.items()}


def _percent(rate: float | None) -> float | None:
    # Rounded so that 0.7 shows as 70, not 70.00000000000001.
    return None if rate is None else round(rate * 100, 6)


@dataclass(frozen=True)
class AnnotatorRow:
    annotator_id: int
    username: str
    is_active: bool
    submitted: int
    skipped: int
    skip_rate: float | None
    median_seconds: float | None
    agreement: float | None
    agreement_by_dimension: dict[str, float | None]
    gold: GoldScore
    flags: tuple[str, ...] = field(default=())


def _sort_value(row: AnnotatorRow, key: str) -> Any:
    values: dict[str, Any] = {
        "annotator": row.username.lower(),
        "submitted": row.submitted,
        "skip_rate": row.skip_rate,
        "median": row.median_seconds,
        "agreement": row.agreement,
        "gold": row.gold.overall,
        "flags": len(row.flags),
    }
    return values[key]


SortKey = Literal["annotator", "submitted", "skip_rate", "median", "agreement", "gold", "flags"]


def _flags(row: AnnotatorRow, t: Thresholds) -> tuple[str, ...]:
    flags = []
    agreement, gold, skips = row.agreement, row.gold.overall, row.skip_rate
    time = row.median_seconds
    if t.min_agreement is not None and agreement is not None and agreement < t.min_agreement:
        flags.append(f"agreement below {t.min_agreement:.0%}")
    if t.min_gold is not None and gold is not None and gold < t.min_gold:
        flags.append(f"gold accuracy below {t.min_gold:.0%}")
    if t.max_skip_rate is not None and skips is not None and skips > t.max_skip_rate:
        flags.append(f"skips over {t.max_skip_rate:.0%}")
    if t.min_median_seconds is not None and time is not None and time < t.min_median_seconds:
        flags.append(f"median time under {t.min_median_seconds:g} s")
    return tuple(flags)


def annotator_rows(
    session: Session,
    snap: Snapshot,
    thresholds: Thresholds,
    sort: SortKey = "annotator",
    descending: bool = False,
    gold_floor: float | None = None,
    below_floor: Collection[int] = (),
) -> list[AnnotatorRow]:
    """The per-annotator table, flagged and sorted (missing values last in both orders).
    `below_floor`: annotator ids under the batch's `gold_floor` (app/dashboard/gold_floor.py)."""
    ids = [a.annotator_id for a in snap.metrics.annotators]
    active = dict(session.execute(select(User.id, User.is_active).where(User.id.in_(ids))).all())
    rows = []
    for a in snap.metrics.annotators:
        row = AnnotatorRow(
            annotator_id=a.annotator_id,
            username=a.username,
            is_active=bool(active.get(a.annotator_id, False)),
            submitted=a.submitted,
            skipped=a.skipped,
            skip_rate=a.skip_rate,
            median_seconds=a.median_duration_ms / 1000
            if a.median_duration_ms is not None
            else None,
            agreement=a.leave_one_out_agreement,
            agreement_by_dimension=a.agreement_by_dimension,
            gold=snap.gold.get(a.annotator_id, GoldScore()),
        )
        flags = _flags(row, thresholds)
        if a.annotator_id in below_floor and gold_floor is not None:
            flags += (f"below the batch's gold floor of {gold_floor:.0%}",)
        rows.append(AnnotatorRow(**{**row.__dict__, "flags": flags}))  # frozen copy
    present = [r for r in rows if _sort_value(r, sort) is not None]
    missing = [r for r in rows if _sort_value(r, sort) is None]
    present.sort(key=lambda r: r.username.lower())
    present.sort(key=lambda r: _sort_value(r, sort), reverse=descending)  # stable: ties by name
    missing.sort(key=lambda r: r.username.lower())
    return present + missing


# ----------------------------------------------------------------------------- overview


OVERVIEW_DIMENSIONS = ("helpfulness", "harmlessness", "is_safe", "severity")


@dataclass(frozen=True)
class OverviewRow:
    batch: Batch
    project: Project
    progress: Progress
    snapshot: Cached[Snapshot] | None  # None while its first computation runs
    flagged: int  # annotators flagged with the default thresholds

    @property
    def agreement(self) -> dict[str, AgreementOut]:
        if self.snapshot is None:
            return {}
        m = self.snapshot.value.metrics
        return {key: getattr(m, key) for key in OVERVIEW_DIMENSIONS}

    @property
    def readings(self) -> dict[str, Reading]:
        return {key: read_agreement(a) for key, a in self.agreement.items()}


def overview(session: Session, project_id: int | None = None) -> list[OverviewRow]:
    query = select(Batch).order_by(Batch.project_id, Batch.id)
    if project_id is not None:
        query = query.where(Batch.project_id == project_id)
    batches = list(session.scalars(query))
    projects = {
        p.id: p
        for p in session.scalars(
            select(Project).where(Project.id.in_({b.project_id for b in batches}))
        )
    }
    now = utcnow()
    rows = []
    for b in batches:
        snap = snapshot(session, b, wait=False)
        people = annotator_rows(session, snap.value, Thresholds()) if snap else []
        flagged = sum(1 for r in people if r.flags)
        rows.append(
            OverviewRow(b, projects[b.project_id], progress(session, b, now), snap, flagged)
        )
    return rows
