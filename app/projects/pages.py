"""Admin pages for projects and their items."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from app.auth.dependencies import AdminUser
from app.db import DbSession
from app.items.models import Item
from app.items.service import list_items
from app.projects.models import Project
from app.projects.service import get_project
from app.web.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)
PAGE_SIZE = 50


@router.get("/projects")
def projects_page(request: Request, session: DbSession, _admin: AdminUser) -> Response:
    rows = session.execute(
        select(Project, func.count(Item.id))
        .outerjoin(Item, Item.project_id == Project.id)
        .group_by(Project.id)
        .order_by(Project.id)
    ).all()
    return render(request, "projects.html", {"rows": [r.tuple() for r in rows]})


@router.get("/projects/{project_id}")
def project_page(
    request: Request,
    project_id: int,
    session: DbSession,
    _admin: AdminUser,
    after_id: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    project = get_project(session, project_id)
    items, total = list_items(session, project_id, after_id=after_id, limit=PAGE_SIZE)
    next_after = items[-1].id if len(items) == PAGE_SIZE else None
    ctx = {"project": project, "items": items, "total": total, "next_after": next_after}
    return render(request, "project.html", ctx)
