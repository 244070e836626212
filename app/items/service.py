"""Reading items with their responses (eager-loaded: relationships are lazy="raise")."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from app.errors import NotFound
from app.items.models import Item

MAX_PAGE = 500


def list_items(
    session: Session,
    project_id: int,
    *,
    after_id: int = 0,
    limit: int = 50,
    prompt_source: str | None = None,
) -> tuple[list[Item], int]:
    """One page by keyset (id order) and the project's total under the same filter."""
    where = [Item.project_id == project_id]
    if prompt_source is not None:
        where.append(Item.prompt_source == prompt_source)
    total = session.scalar(select(func.count()).select_from(Item).where(*where)) or 0
    items = session.scalars(
        select(Item)
        .where(*where, Item.id > after_id)
        .order_by(Item.id)
        .limit(max(1, min(limit, MAX_PAGE)))
        .options(selectinload(Item.responses))
    ).all()
    return list(items), total


def get_item(session: Session, item_id: int) -> Item:
    item = session.scalar(
        select(Item).where(Item.id == item_id).options(selectinload(Item.responses))
    )
    if item is None:
        raise NotFound(f"no item {item_id}")
    return item
