"""Item endpoints (admins: annotators reach items only through their assignments)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.auth.access import allow
from app.auth.dependencies import AdminUser
from app.core.json_body import JSONRulesRoute
from app.db import DbSession
from app.items import service
from app.items.schemas import ItemOut, ItemPage
from app.projects.service import get_project

router = APIRouter(prefix="/api/v1", tags=["items"], route_class=JSONRulesRoute)


@router.get("/projects/{project_id}/items", response_model=ItemPage)
@allow("admin")
def list_items(
    project_id: int,
    session: DbSession,
    _admin: AdminUser,
    after_id: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
    prompt_source: Annotated[str | None, Query(max_length=200)] = None,
) -> ItemPage:
    get_project(session, project_id)
    items, total = service.list_items(
        session, project_id, after_id=after_id, limit=limit, prompt_source=prompt_source
    )
    next_after = items[-1].id if len(items) == limit else None
    return ItemPage(
        items=[ItemOut.model_validate(i) for i in items], total=total, next_after_id=next_after
    )


@router.get("/items/{item_id}", response_model=ItemOut)
@allow("admin")
def get_item(item_id: int, session: DbSession, _admin: AdminUser) -> ItemOut:
    return ItemOut.model_validate(service.get_item(session, item_id))
