"""The landing page: admins go to their projects, annotators see their batches."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from app.auth.dependencies import CurrentUser
from app.batches.models import Batch, BatchMember
from app.db import DbSession
from app.web.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/")
def home(request: Request, session: DbSession, user: CurrentUser) -> Response:
    if user.is_admin:
        return RedirectResponse("/projects", status_code=303)
    batches = session.scalars(
        select(Batch)
        .join(BatchMember, BatchMember.batch_id == Batch.id)
        .where(BatchMember.user_id == user.id, Batch.is_open.is_(True))
        .order_by(Batch.id)
    ).all()
    return render(request, "home.html", {"batches": batches})
