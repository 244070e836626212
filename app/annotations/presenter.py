"""What the annotation page shows: the user's current answers (from a stored annotation or a
refused form), errors placed next to their fields, the model suggestion and progress."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from app.annotations.forms import DIMENSIONS
from app.annotations.schemas import MAX_DURATION_MS
from app.batches.answer_keys import batch_has_answer_keys
from app.batches.models import Assignment, AssignmentStatus, Batch, BatchItem
from app.errors import Invalid
from app.items.models import ReferenceLabel
from app.projects.markdown import render_markdown
from app.projects.models import Project
from app.queue.views import AssignmentView
from app.suggestions.service import origins_of_item

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def letter(index: int) -> str:
    return LETTERS[index] if index < len(LETTERS) else f"#{index + 1}"


@dataclass
class LabelValues:
    safe: str = ""  # "safe", "unsafe" or "" (not answered yet)
    cats: list[str] = field(default_factory=list)
    sev: str = ""


@dataclass
class FormValues:
    """The answers shown in the form, keyed by response id; rankings as ids per rank."""

    labels: dict[int, LabelValues] = field(default_factory=dict)
    ranks: dict[str, list[int | None]] = field(default_factory=dict)
    rationale: str = ""


def asked_dimensions(view: AssignmentView) -> list[str]:
    return project_dimensions(view.project)


def project_dimensions(project: Project) -> list[str]:
    asked = {"helpfulness": project.ask_dual, "harmlessness": project.ask_dual}
    asked["single"] = project.ask_single
    return [d for d in DIMENSIONS if asked[d]]


def blank_values(view: AssignmentView) -> FormValues:
    n = len(view.responses)
    return FormValues(
        labels={r.id: LabelValues() for r in view.responses},
        ranks={d: [None] * n for d in DIMENSIONS},
    )


def values_from_annotation(view: AssignmentView) -> FormValues:
    values = blank_values(view)
    annotation = view.annotation
    if annotation is None:
        return values
    payload = annotation.payload
    for label in payload.get("responses") or []:
        values.labels[label["response_id"]] = LabelValues(
            "safe" if label["is_safe"] else "unsafe",
            list(label.get("harm_categories") or []),
            label.get("severity") or "",
        )
    for dimension in DIMENSIONS:
        ranking = payload.get(dimension)
        if ranking:
            values.ranks[dimension] = list(ranking)
    values.rationale = payload.get("rationale") or ""
    return values


def _int(raw: Any) -> int | None:
    try:
        return int(str(raw))
    except ValueError:
        return None


def values_from_form(form: FormData, view: AssignmentView) -> FormValues:
    """Exactly what the user sent, to refill the form after a refusal."""
    values = blank_values(view)
    for r in view.responses:
        key = f"r{r.id}"
        choice = str(form.get(f"{key}_safe") or "")
        values.labels[r.id] = LabelValues(
            choice if choice in ("safe", "unsafe") else "",
            [str(c) for c in form.getlist(f"{key}_cat")],
            str(form.get(f"{key}_sev") or ""),
        )
    for dimension in DIMENSIONS:
        values.ranks[dimension] = [
            _int(form.get(f"{dimension}_{rank}", "")) for rank in range(1, len(view.responses) + 1)
        ]
    values.rationale = str(form.get("rationale") or "")
    return values


def complete_rankings(form: FormData, view: AssignmentView) -> FormData:
    """Fills in the last rank of each ranking when all others are given: with two responses
    the page asks only for the preferred one, and the other is necessarily second."""
    return completed_rankings(form, [r.id for r in view.responses])


def completed_rankings(form: FormData, ids: list[int]) -> FormData:
    """`complete_rankings` for any label form of these responses."""
    items = list(form.multi_items())
    for dimension in DIMENSIONS:
        given = [_int(form.get(f"{dimension}_{rank}", "")) for rank in range(1, len(ids) + 1)]
        chosen = [g for g in given[:-1] if g is not None]
        if len(chosen) == len(ids) - 1 and given[-1] is None and len(set(chosen)) == len(chosen):
            rest = [i for i in ids if i not in chosen]
            if len(rest) == 1:
                items = [(k, v) for k, v in items if k != f"{dimension}_{len(ids)}"]
                items.append((f"{dimension}_{len(ids)}", str(rest[0])))
    return FormData(items)


def form_duration_ms(form: FormData, view: AssignmentView, now: datetime) -> int | None:
    """Visible time measured by the page's script; without it, time since the lease began."""
    measured = _int(form.get("duration_ms", ""))
    if measured is not None and measured >= 0:
        return min(measured, MAX_DURATION_MS)
    assignment = view.assignment
    if assignment.status not in (AssignmentStatus.LEASED, AssignmentStatus.EXPIRED):
        return None
    lease_ms = view.batch.lease_seconds * 1000
    started = assignment.leased_until.timestamp() * 1000 - lease_ms
    return int(min(max(now.timestamp() * 1000 - started, 0), lease_ms, MAX_DURATION_MS))


_FIELD = re.compile(r"^responses(?:\[(\d+)\]|\.(\d+))\.(\w+)")
_SUFFIX = {"is_safe": "safe", "harm_categories": "cat", "severity": "sev"}


def field_errors(exc: Invalid, view: AssignmentView) -> dict[str, str]:
    """The error keyed by where the page shows it: `r<id>_safe|cat|sev`, a dimension,
    `rationale`, or `form` for anything else. Response ids in the text become letters."""
    name = str(exc.extra.get("field") or exc.detail.split(":", 1)[0])
    message = exc.detail.split(": ", 1)[1] if ": " in exc.detail else exc.detail
    message = letters_for_ids(message, view)
    match = _FIELD.match(name)
    if match:
        index = int(match.group(1) or match.group(2))
        suffix = _SUFFIX.get(match.group(3))
        if suffix and index < len(view.responses):
            return {f"r{view.responses[index].id}_{suffix}": message}
    root = re.split(r"[.\[]", name, maxsplit=1)[0]
    if root in (*DIMENSIONS, "rationale"):
        return {root: message}
    return {"form": exc.detail if root not in ("responses",) else message}


def letters_for_ids(message: str, view: AssignmentView) -> str:
    names = {str(r.id): letter(i) for i, r in enumerate(view.responses)}

    def swap(match: re.Match[str]) -> str:
        return names.get(match.group(0), match.group(0))

    return re.sub(r"\b\d+\b", swap, message)


@dataclass(frozen=True)
class SuggestedLabel:
    letter: str
    is_safe: bool
    categories: list[str]
    severity: str | None


@dataclass(frozen=True)
class Suggestion:
    origin: str
    labels: list[SuggestedLabel]
    rankings: dict[str, list[str]]  # dimension -> letters, best first
    confidence: float | None = None
    analysis: Markup | None = None  # the origin's Markdown, rendered as guidelines are


def suggestions_for(session: Session, view: AssignmentView) -> list[Suggestion]:
    """The item's suggestions (one per origin, oldest origin first) in this assignment's
    letters, if the project shows suggestions and no item of the batch has an answer key (see
    batch_has_answer_keys)."""
    if not view.project.show_suggestions:
        return []
    if batch_has_answer_keys(session, view.batch.id):
        return []
    by_position = {r.position: letter(i) for i, r in enumerate(view.responses)}
    return [_suggestion(ref, by_position) for ref in origins_of_item(session, view.item.id)]


def _suggestion(ref: ReferenceLabel, by_position: dict[int, str]) -> Suggestion:
    labels = [
        SuggestedLabel(
            by_position.get(entry.get("position", -1), "?"),
            bool(entry.get("is_safe")),
            list(entry.get("harm_categories") or []),
            entry.get("severity"),
        )
        for entry in ref.payload.get("responses") or []
    ]
    labels.sort(key=lambda s: s.letter)
    rankings = {
        d: [by_position.get(p, "?") for p in ref.payload[d]]
        for d in DIMENSIONS
        if ref.payload.get(d)
    }
    analysis = render_markdown(ref.analysis) if ref.analysis else None
    return Suggestion(ref.origin, labels, rankings, ref.confidence, analysis)


@dataclass(frozen=True)
class PageProgress:
    wanted: int
    submitted: int
    mine: int

    @property
    def percent(self) -> int:
        return round(100 * self.submitted / self.wanted) if self.wanted else 0


# The batch totals scan every batch item (20,000 rows is a few ms): cached per process for a
# few seconds, which a bar measuring tens of thousands of annotations cannot show anyway. The
# caller's own count is exact and cheap (an index range).
BATCH_TOTALS_TTL = 10.0
_batch_totals: dict[tuple[str, int], tuple[float, int, int]] = {}


def _totals(session: Session, batch_id: int) -> tuple[int, int]:
    key = (session.get_bind().engine.url.render_as_string(), batch_id)
    cached = _batch_totals.get(key)
    if cached is not None and time.monotonic() - cached[0] < BATCH_TOTALS_TTL:
        return cached[1], cached[2]
    items, submitted = session.execute(
        select(func.count(), func.coalesce(func.sum(BatchItem.submitted), 0)).where(
            BatchItem.batch_id == batch_id
        )
    ).one()
    _batch_totals[key] = (time.monotonic(), int(items), int(submitted))
    return int(items), int(submitted)


def page_progress(session: Session, batch: Batch, user_id: int) -> PageProgress:
    """The batch's submitted annotations (see BATCH_TOTALS_TTL) and the caller's."""
    items, submitted = _totals(session, batch.id)
    mine = session.scalar(
        select(func.count()).where(
            Assignment.batch_id == batch.id,
            Assignment.annotator_id == user_id,
            Assignment.status == AssignmentStatus.SUBMITTED,
        )
    )
    return PageProgress(items * batch.overlap, submitted, int(mine or 0))


# Embedding, override and isolate controls: they can make text read differently from what it
# is (e.g. "invoice\u202egpj.exe" shows as "invoiceexe.jpg"), so the page points them out.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def has_bidi_controls(text: str) -> bool:
    return _BIDI_CONTROLS.search(text) is not None


@lru_cache(maxsize=64)
def guidelines_html(text: str) -> Markup:
    # Guidelines change rarely and are the same for every item of a project.
    return render_markdown(text)
