"""Importing from the browser: a form on the project page, a result page.

The same import as `POST /api/v1/projects/{id}/imports` (app/imports/service.py): the file is
spooled to disk by the multipart parser as it arrives (memory stays flat), then read line by
line. The result page shows what the API answers: the counts, or the refused line and field.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import Response

from app.auth.access import allow
from app.auth.dependencies import AdminUser
from app.config import get_settings
from app.core.templating import render
from app.db import DbSession
from app.errors import ImportRejected
from app.imports.router import FormatParam
from app.imports.service import import_file
from app.projects.service import get_project

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.post("/projects/{project_id}/imports")
@allow("admin")
def import_page(
    request: Request,
    project_id: int,
    session: DbSession,
    _admin: AdminUser,
    file: UploadFile,
    format: Annotated[FormatParam, Form()] = "auto",
    labels_as: Annotated[str, Form(max_length=16)] = "ignore",
) -> Response:
    project = get_project(session, project_id)
    ctx: dict[str, object] = {"project": project, "filename": file.filename or "", "format": format}
    try:
        result = import_file(
            session, project, file.file, settings=get_settings(), fmt=format, labels_as=labels_as
        )
    except ImportRejected as exc:
        session.rollback()  # nothing of a refused file is kept
        ctx["error"] = exc
        return render(request, "import_result.html", ctx, status_code=422)
    ctx["result"] = result
    return render(request, "import_result.html", ctx, status_code=201)
