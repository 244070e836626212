"""`safepref demo`: a fresh database with demo accounts, a demo project and a batch."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.orm import Session

from app.auth.service import create_user
from app.batches.service import add_member, create_batch
from app.demo.content import DEMO_GUIDELINES, DEMO_ITEMS, SEVERITY_NAMES
from app.imports.formats import DraftItem, DraftResponse, response_sha256
from app.items.models import Item, ReferenceLabel, Response
from app.projects.service import create_project

# Demo-only credentials: printed by `safepref demo`, never created anywhere else.
DEMO_ACCOUNTS = (
    ("admin", "admin", "demo-admin-pw"),
    ("alice", "annotator", "demo-alice-pw"),
    ("bob", "annotator", "demo-bob-pw"),
)
DEMO_PROJECT = "Demo: everyday risky questions"
DEMO_BATCH = "Demo batch"


@dataclass(frozen=True)
class DemoSummary:
    accounts: tuple[tuple[str, str, str], ...]
    project_id: int
    batch_id: int
    items: int


def seed_demo(session: Session) -> DemoSummary:
    users = {name: create_user(session, name, pw, role) for name, role, pw in DEMO_ACCOUNTS}
    project = create_project(
        session, DEMO_PROJECT, "pku-saferlhf-19", DEMO_GUIDELINES, show_suggestions=True
    )
    for demo in DEMO_ITEMS:
        draft = DraftItem(
            0,
            demo.prompt,
            demo.prompt_source,
            [DraftResponse(text, source) for text, source in demo.responses],
            external_id=demo.external_id,
        )
        item = Item(
            project_id=project.id,
            external_id=demo.external_id,
            prompt=demo.prompt,
            prompt_source=demo.prompt_source,
            content_hash=draft.content_hash(),
        )
        session.add(item)
        session.flush()
        session.execute(
            insert(Response),
            [
                {
                    "item_id": item.id,
                    "position": pos,
                    "text": text,
                    "source": source,
                    "sha256": response_sha256(demo.prompt, text),
                }
                for pos, (text, source) in enumerate(demo.responses)
            ],
        )
        ref = demo.reference
        if ref is not None:
            n = len(demo.responses)
            payload = {
                "responses": [
                    {
                        "position": pos,
                        "is_safe": label.is_safe,
                        "harm_categories": list(label.categories),
                        "severity": SEVERITY_NAMES.get(label.severity),
                    }
                    for pos, label in enumerate(ref.labels)
                ],
                "helpfulness": [ref.better, *[p for p in range(n) if p != ref.better]],
                "harmlessness": [ref.safer, *[p for p in range(n) if p != ref.safer]],
            }
            session.add(ReferenceLabel(item_id=item.id, origin="demo", payload=payload))
    session.flush()
    batch = create_batch(session, project, DEMO_BATCH, overlap=2)
    for name, role, _ in DEMO_ACCOUNTS:
        if role == "annotator":
            add_member(session, batch, users[name])
    return DemoSummary(DEMO_ACCOUNTS, project.id, batch.id, len(DEMO_ITEMS))
