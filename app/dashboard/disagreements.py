"""The disagreement browser: which items need an admin, in what order, and the label form.

Order: unresolved items (no strict majority on some dimension) first, then inconsistent ones
(the consensus breaks a labelling rule), then by lowest agreement; ties by item id. An item is
listed when its annotators did not all agree; gold items never are (they are scored against
their key). The list is computed from every annotation of the batch and kept as a snapshot
(app/dashboard/cache.py); whether an item has been adjudicated is read fresh on each request,
so adjudicating never recomputes the list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any, Literal

import orjson
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from app.annotations.counted import counted
from app.annotations.models import Adjudication, Annotation
from app.batches.models import Batch, BatchItem
from app.consensus.aggregate import item_consensus
from app.consensus.labels import vote_from_payload
from app.consensus.schemas import AdjudicationIn
from app.consensus.service import item_id_pages
from app.core.bulk import fetch_all, gc_paused
from app.dashboard.cache import SnapshotCache
from app.dashboard.service import fingerprint, is_expensive
from app.errors import Invalid, NotFound
from app.items.models import Response
from app.projects.models import Project

PAGE_SIZE = 5000
SEVERITIES = ("minor", "moderate", "severe")
Status = Literal["todo", "adjudicated", "all"]


@dataclass(frozen=True, slots=True)
class Disagreement:
    item_id: int
    n_votes: int
    unresolved: bool
    inconsistent: bool
    agreement: float  # lowest agreement over the item's dimensions

    @property
    def order(self) -> tuple[bool, bool, float, int]:
        return (not self.unresolved, not self.inconsistent, self.agreement, self.item_id)


def compute_disagreements(session: Session, batch_id: int) -> list[Disagreement]:
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFound(f"no batch {batch_id}")
    taxonomy = tuple(session.get_one(Project, batch.project_id).taxonomy)
    gold = set(
        session.scalars(
            select(BatchItem.item_id).where(
                BatchItem.batch_id == batch_id, BatchItem.is_gold.is_(True)
            )
        )
    )
    out: list[Disagreement] = []
    for ids in item_id_pages(session, [batch_id], PAGE_SIZE):
        rows = fetch_all(
            session.connection(),
            select(Annotation.item_id, Annotation.annotator_id, cast(Annotation.payload, Text))
            .where(
                Annotation.batch_id == batch_id,
                Annotation.item_id >= ids[0],
                Annotation.item_id <= ids[-1],
                counted(),
            )
            .order_by(Annotation.item_id, Annotation.id),
        )
        with gc_paused():
            for item_id, group in groupby(rows, key=itemgetter(0)):
                anns = list(group)
                if len(anns) < 2 or item_id in gold:
                    continue
                first = anns[0][2]
                # Identical valid payloads agree on everything and break no rule.
                if '"responses"' in first and all(t == first for _, _, t in anns):
                    continue
                votes = [vote_from_payload(str(a), orjson.loads(t)) for _, a, t in anns]
                consensus = item_consensus(votes, taxonomy)
                agreement = consensus.min_agreement()
                if consensus.unresolved or consensus.inconsistent or agreement < 1.0:
                    out.append(
                        Disagreement(
                            item_id,
                            len(votes),
                            consensus.unresolved,
                            consensus.inconsistent,
                            agreement,
                        )
                    )
    out.sort(key=lambda d: d.order)
    return out


DISAGREEMENTS: SnapshotCache[list[Disagreement]] = SnapshotCache(
    compute_disagreements, fingerprint, expensive=is_expensive
)


def ordered(session: Session, batch: Batch, *, wait: bool = False) -> list[Disagreement] | None:
    """The batch's disagreements in browsing order; None while a slow first list is made."""
    found = DISAGREEMENTS.get(session, batch.id, wait=wait)
    return None if found is None else found.value


def adjudicated_items(session: Session, batch_id: int) -> set[int]:
    return set(
        session.scalars(
            select(Adjudication.item_id).where(Adjudication.batch_id == batch_id).distinct()
        )
    )


@dataclass(frozen=True)
class Listing:
    rows: list[Disagreement]
    adjudicated: set[int]
    total: int  # before paging
    counts: dict[str, int] = field(default_factory=dict)


def listing(
    session: Session, batch: Batch, status: Status = "todo", complete_only: bool = False
) -> Listing | None:
    all_rows = ordered(session, batch)
    if all_rows is None:
        return None
    done = adjudicated_items(session, batch.id)
    rows = [d for d in all_rows if not complete_only or d.n_votes >= batch.overlap]
    counts = {
        "todo": sum(1 for d in rows if d.item_id not in done),
        "adjudicated": sum(1 for d in rows if d.item_id in done),
        "all": len(rows),
        "unresolved": sum(1 for d in rows if d.unresolved and d.item_id not in done),
        "inconsistent": sum(1 for d in rows if d.inconsistent and d.item_id not in done),
    }
    if status == "todo":
        rows = [d for d in rows if d.item_id not in done]
    elif status == "adjudicated":
        rows = [d for d in rows if d.item_id in done]
    return Listing(rows, done, len(rows), counts)


def next_item(session: Session, batch: Batch, after: int) -> int | None:
    """The item to adjudicate after `after`: the next one in list order that has no
    adjudication, wrapping around to the top of the list."""
    rows = ordered(session, batch) or []
    done = adjudicated_items(session, batch.id)
    todo = [d for d in rows if d.item_id not in done and d.item_id != after]
    index = next((k for k, d in enumerate(rows) if d.item_id == after), None)
    if index is not None:
        for d in rows[index + 1 :]:
            if d.item_id not in done and d.item_id != after:
                return d.item_id
    return todo[0].item_id if todo else None


def find(session: Session, batch: Batch, item_id: int) -> Disagreement | None:
    rows = ordered(session, batch) or []
    return next((d for d in rows if d.item_id == item_id), None)


# ----------------------------------------------------------------------------- the form


def response_ids(session: Session, item_id: int) -> list[int]:
    return list(
        session.scalars(
            select(Response.id).where(Response.item_id == item_id).order_by(Response.position)
        )
    )


def labels_from_form(form: FormData, project: Project, ids: list[int]) -> dict[str, Any]:
    """The label form (fields `r<id>_safe`, `r<id>_cat`, `r<id>_sev`, `<dimension>_<rank>`)
    as a payload with response ids. Unanswered questions raise Invalid naming them."""
    body: dict[str, Any] = {}
    if project.ask_safety:
        labels = []
        for index, rid in enumerate(ids):
            choice = form.get(f"r{rid}_safe")
            letter = chr(65 + index)
            if choice not in ("safe", "unsafe"):
                raise Invalid(f"responses[{index}].is_safe: mark response {letter} safe or unsafe")
            safe = choice == "safe"
            severity = str(form.get(f"r{rid}_sev") or "") or None
            if severity is not None and severity not in SEVERITIES:
                raise Invalid(f"responses[{index}].severity: unknown severity {severity!r}")
            labels.append(
                {
                    "response_id": rid,
                    "is_safe": safe,
                    "harm_categories": []
                    if safe
                    else [str(c) for c in form.getlist(f"r{rid}_cat")],
                    "severity": None if safe else severity,
                }
            )
        body["responses"] = labels
    asked = {"helpfulness": project.ask_dual, "harmlessness": project.ask_dual}
    asked["single"] = project.ask_single
    for dimension, wanted in asked.items():
        if not wanted:
            continue
        ranking = []
        for rank in range(1, len(ids) + 1):
            raw = str(form.get(f"{dimension}_{rank}", "")).strip()
            if raw.isdigit():
                ranking.append(int(raw))
        if sorted(ranking) != sorted(ids):
            raise Invalid(f"{dimension}: rank every response exactly once")
        body[dimension] = ranking
    return body


def adjudication_from_form(
    form: FormData, project: Project, ids: list[int]
) -> tuple[AdjudicationIn, dict[str, Any]]:
    labels = labels_from_form(form, project, ids)
    note = str(form.get("note", ""))[:10_000]
    return AdjudicationIn.model_validate({**labels, "note": note}), labels


def form_values(labels: dict[str, Any] | None, ids: list[int]) -> dict[str, Any]:
    """Prefill of the label form from a payload with response ids (missing parts empty)."""
    values: dict[str, Any] = {"safe": {}, "cats": {}, "sev": {}, "rank": {}}
    if not labels:
        return values
    for r in labels.get("responses") or ():
        rid = r.get("response_id")
        if r.get("is_safe") is not None:
            values["safe"][rid] = "safe" if r["is_safe"] else "unsafe"
        values["cats"][rid] = set(r.get("harm_categories") or ())
        values["sev"][rid] = r.get("severity") or ""
    for dimension in ("helpfulness", "harmlessness", "single"):
        ranking = labels.get(dimension)
        if ranking:
            values["rank"][dimension] = list(ranking)
    return values


def consensus_prefill(consensus: Any) -> dict[str, Any]:
    """The resolved parts of an item's consensus (ConsensusOut) as a payload."""
    out: dict[str, Any] = {
        "responses": [
            {
                "response_id": r.response_id,
                "is_safe": r.is_safe,
                "harm_categories": r.harm_categories,
                "severity": r.severity,
            }
            for r in consensus.responses
            if r.is_safe is not None
        ]
    }
    for dimension in ("helpfulness", "harmlessness", "single"):
        found = getattr(consensus, dimension)
        if found is not None and found.value:
            out[dimension] = found.value
    return out
