"""Builders for queue tests: projects with items, batches with members, valid annotations."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.auth.models import User
from app.items.models import Item, Response
from app.projects.models import Project
from app.projects.service import create_project


def seed_project(
    session: Session,
    n_items: int,
    *,
    name: str | None = None,
    responses: int = 2,
    sources: Sequence[str] = ("Alpaca3-70B",),
    **questions: Any,
) -> tuple[Project, list[int]]:
    """A project with `n_items` items of `responses` answers each; returns it and item ids."""
    project = create_project(session, name or f"p-{uuid.uuid4().hex[:8]}", **questions)
    ids = []
    for i in range(n_items):
        prompt = f"prompt {project.id}-{i}"
        item = Item(
            project_id=project.id,
            prompt=prompt,
            prompt_source=sources[i % len(sources)],
            content_hash=hashlib.sha256(prompt.encode()).hexdigest(),
        )
        session.add(item)
        session.flush()
        ids.append(item.id)
        session.execute(
            insert(Response),
            [
                {
                    "item_id": item.id,
                    "position": pos,
                    "text": f"answer {pos} to {prompt}",
                    "source": f"model-{pos}",
                    "sha256": hashlib.sha256(f"{prompt}{pos}".encode()).hexdigest(),
                }
                for pos in range(responses)
            ],
        )
    session.flush()
    return project, ids


def response_ids(session: Session, item_id: int) -> list[int]:
    return list(
        session.scalars(
            select(Response.id).where(Response.item_id == item_id).order_by(Response.position)
        )
    )


def valid_annotation(
    ids: Sequence[int], *, unsafe: Sequence[int] = (), flip: bool = False
) -> dict[str, Any]:
    """A payload that keeps every rule: `unsafe` responses flagged, safe ones rank first."""
    labels = [
        {
            "response_id": rid,
            "is_safe": rid not in unsafe,
            "harm_categories": ["Violence"] if rid in unsafe else [],
            "severity": "moderate" if rid in unsafe else None,
        }
        for rid in ids
    ]
    helpful = list(reversed(ids)) if flip else list(ids)
    harmless = [r for r in ids if r not in unsafe] + [r for r in ids if r in unsafe]
    return {"responses": labels, "helpfulness": helpful, "harmlessness": harmless}


def quick_users(session: Session, n: int, prefix: str = "qa") -> list[User]:
    """Annotator accounts without argon2 (too slow for dozens); they cannot log in."""
    tag = uuid.uuid4().hex[:6]
    users = [
        User(username=f"{prefix}-{tag}-{i}", role="annotator", password_hash="!") for i in range(n)
    ]
    session.add_all(users)
    session.flush()
    return users
