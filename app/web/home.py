"""The landing page: admins go to their projects, annotators see their open batches."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from app.auth.access import allow
from app.auth.dependencies import CurrentUser
from app.batches.service import BatchSummary, Counts, annotator_counts, list_batches
from app.core.templating import render
from app.db import DbSession, utcnow
from app.projects.models import Project

router = APIRouter(tags=["pages"], include_in_schema=False)


@dataclass(frozen=True)
class HomeRow:
    summary: BatchSummary
    project_name: str
    mine: Counts


@router.get("/")
@allow("authenticated")
def home(request: Request, session: DbSession, user: CurrentUser) -> Response:
    if user.is_admin:
        return RedirectResponse("/projects", status_code=303)
    summaries = list_batches(session, user, open_only=True)
    project_ids = {s.batch.project_id for s in summaries}
    names = {
        pid: name
        for pid, name in session.execute(
            select(Project.id, Project.name).where(Project.id.in_(project_ids))
        )
    }
    now = utcnow()
    rows = [
        HomeRow(
            s,
            names.get(s.batch.project_id, ""),
            annotator_counts(session, s.batch.id, now, user.id).get(user.id, Counts()),
        )
        for s in summaries
    ]
    return render(request, "home.html", {"rows": rows})
