"""Consensus of one item in a batch, and admin adjudication (database side)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.annotations.counted import counted
from app.annotations.models import Adjudication, Annotation
from app.annotations.schemas import AnnotationIn
from app.annotations.validation import validate_annotation
from app.auth.models import User
from app.batches.models import Batch, BatchItem
from app.consensus.aggregate import ItemConsensus, item_consensus
from app.consensus.labels import (
    FinalLabels,
    labels_from_consensus,
    labels_from_payload,
    vote_from_payload,
)
from app.consensus.schemas import (
    AdjudicationIn,
    AdjudicationOut,
    ConsensusOut,
    DimensionOut,
    ItemConsensusOut,
    PairOut,
    ResponseConsensusOut,
    VoteOut,
)
from app.consensus.votes import SEVERITY_NAMES
from app.errors import NotFound
from app.items.models import Response
from app.projects.models import Project


def item_id_pages(
    session: Session, batch_ids: Sequence[int], page_size: int, *, first_size: int | None = None
) -> Iterator[list[int]]:
    """Item ids of the batches in ascending keyset pages (each id once).

    Pages start at ``first_size`` and double up to ``page_size``: a small first page gets the
    first bytes of a stream out sooner.
    """
    after = 0
    size = min(first_size or page_size, page_size)
    while True:
        query = (
            select(BatchItem.item_id)
            .where(BatchItem.batch_id.in_(list(batch_ids)), BatchItem.item_id > after)
            .order_by(BatchItem.item_id)
            .limit(size)
        )
        if len(batch_ids) > 1:
            query = query.distinct()
        ids = list(session.scalars(query))
        if not ids:
            return
        yield ids
        after = ids[-1]
        size = min(2 * size, page_size)


def labels_payload(labels: FinalLabels) -> dict[str, Any]:
    """Final labels in the stored payload shape (response ids, severity names)."""
    out: dict[str, Any] = {
        "responses": [
            {
                "response_id": rid,
                "is_safe": r.is_safe,
                "harm_categories": list(r.categories),
                "severity": SEVERITY_NAMES[r.severity - 1] if r.severity else None,
            }
            for rid, r in labels.responses.items()
        ]
    }
    for dim in ("helpfulness", "harmlessness", "single"):
        ranking = labels.ranking(dim)
        if ranking is not None:
            out[dim] = list(ranking)
    return out


def _batch_item(session: Session, batch_id: int, item_id: int) -> tuple[Batch, Project]:
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFound(f"no batch {batch_id}")
    if session.get(BatchItem, (batch_id, item_id)) is None:
        raise NotFound(f"no item {item_id} in batch {batch_id}")
    project = session.get(Project, batch.project_id)
    assert project is not None  # enforced by the foreign key
    return batch, project


def _responses(session: Session, item_id: int) -> list[tuple[int, int]]:
    """(response id, position) of an item, in position order."""
    rows = session.execute(
        select(Response.id, Response.position)
        .where(Response.item_id == item_id)
        .order_by(Response.position)
    )
    return [(rid, position) for rid, position in rows]


def _adjudication_out(adj: Adjudication, admin: str | None) -> AdjudicationOut:
    return AdjudicationOut(
        id=adj.id,
        batch_id=adj.batch_id,
        item_id=adj.item_id,
        admin=admin,
        created_at=adj.created_at,
        note=adj.note,
        labels=adj.payload,
    )


def adjudications(session: Session, batch_id: int, item_id: int) -> list[AdjudicationOut]:
    """Every adjudication of the item, oldest first (the last one is in force)."""
    _batch_item(session, batch_id, item_id)
    rows = session.execute(
        select(Adjudication, User.username)
        .outerjoin(User, User.id == Adjudication.admin_id)
        .where(Adjudication.batch_id == batch_id, Adjudication.item_id == item_id)
        .order_by(Adjudication.id)
    )
    return [_adjudication_out(adj, name) for adj, name in rows]


def _consensus_out(consensus: ItemConsensus, positions: dict[int, int]) -> ConsensusOut:
    def dim(d: Any) -> DimensionOut:
        value = list(d.value) if d.value is not None else None
        pairs = [PairOut(responses=list(key), preferred=winner) for key, winner in d.pairs.items()]
        return DimensionOut(
            value=value,
            agreement=d.agreement,
            n_votes=d.n_votes,
            resolved=d.resolved,
            pairs=sorted(pairs, key=lambda p: p.responses),
        )

    return ConsensusOut(
        helpfulness=dim(consensus.helpfulness),
        harmlessness=dim(consensus.harmlessness),
        single=dim(consensus.single) if consensus.single is not None else None,
        responses=[
            ResponseConsensusOut(
                response_id=r.response_id,
                position=positions.get(r.response_id, -1),
                is_safe=r.is_safe,
                agreement=r.safety_agreement,
                severity=SEVERITY_NAMES[r.severity - 1] if r.severity else None,
                harm_categories=list(r.categories),
                resolved=r.resolved,
                n_votes=r.n_votes,
            )
            for r in consensus.responses.values()
        ],
        unresolved=consensus.unresolved,
        inconsistent=consensus.inconsistent,
        reasons=list(consensus.reasons),
    )


def item_consensus_view(session: Session, batch_id: int, item_id: int) -> ItemConsensusOut:
    """Votes, consensus, adjudication and the labels an export would write for the item."""
    batch, project = _batch_item(session, batch_id, item_id)
    taxonomy = tuple(project.taxonomy)
    positions = dict(_responses(session, item_id))
    rows = session.execute(
        select(Annotation, User.username)
        .join(User, User.id == Annotation.annotator_id)
        .where(Annotation.batch_id == batch_id, Annotation.item_id == item_id, counted())
        .order_by(Annotation.id)
    )
    annotations = [(a, name) for a, name in rows]
    votes = [vote_from_payload(str(a.annotator_id), a.payload) for a, _ in annotations]
    consensus = item_consensus(votes, taxonomy)
    history = adjudications(session, batch_id, item_id)
    current = history[-1] if history else None
    final: FinalLabels | None = None
    source: Any = None
    if current is not None:
        final, source = labels_from_payload(current.labels, taxonomy), "adjudication"
    elif votes and not consensus.unresolved and not consensus.inconsistent:
        final, source = labels_from_consensus(consensus, votes, taxonomy), "consensus"
    return ItemConsensusOut(
        batch_id=batch.id,
        item_id=item_id,
        overlap=batch.overlap,
        n_annotations=len(votes),
        consensus=_consensus_out(consensus, positions),
        adjudication=current,
        final_source=source,
        final=labels_payload(final) if final is not None else None,
        annotations=[
            VoteOut(
                annotation_id=a.id,
                assignment_id=a.assignment_id,
                annotator=name,
                revision=a.revision,
                updated_at=a.updated_at,
                labels=a.payload,
            )
            for a, name in annotations
        ],
    )


def record_adjudication(
    session: Session, batch_id: int, item_id: int, admin: User, body: AdjudicationIn
) -> AdjudicationOut:
    """Stores the admin's final labels; the newest adjudication replaces the consensus."""
    _, project = _batch_item(session, batch_id, item_id)
    response_ids = [rid for rid, _ in _responses(session, item_id)]
    # The same rules as an annotation, from the same validator.
    as_annotation = AnnotationIn(
        responses=body.responses,
        helpfulness=body.helpfulness,
        harmlessness=body.harmlessness,
        single=body.single,
        rationale=(body.note.strip() or "adjudicated") if project.ask_rationale else None,
    )
    payload = validate_annotation(project, response_ids, as_annotation)
    adj = Adjudication(
        batch_id=batch_id, item_id=item_id, admin_id=admin.id, payload=payload, note=body.note
    )
    session.add(adj)
    session.flush()
    return _adjudication_out(adj, admin.username)
