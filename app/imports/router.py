"""`POST /api/v1/projects/{id}/imports`: a multipart upload, validated then written.

The caller and the project are checked before a byte of the file is read (nothing is spooled
for a caller who may not import), and the file arrives outside the request gate: the route
takes a slot only for those checks and for the import itself (app/web/gate.py).
"""

from __future__ import annotations

from functools import partial
from typing import IO, Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from app.auth.access import allow
from app.auth.dependencies import admin_user, authenticated
from app.config import get_settings
from app.core.json_body import JSONRulesRoute
from app.db import run_in_session
from app.errors import Invalid
from app.imports.formats import FormatChoice, LabelsAs
from app.imports.schemas import ImportOut
from app.imports.service import ImportResult, import_file
from app.projects.service import get_project
from app.web.bodies import accepts_upload
from app.web.gate import hold

router = APIRouter(prefix="/api/v1/projects", tags=["imports"], route_class=JSONRulesRoute)

FILE_FIELD = "file"
# The body is read by the endpoint (after the checks), so FastAPI cannot describe it.
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {FILE_FIELD: {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


def check_importer(request: Request, project_id: int, session: Session) -> str:
    """The caller must be an admin and the project exist; returns the project's name."""
    admin_user(authenticated(request, session))
    return get_project(session, project_id).name


def run_import(
    request: Request,
    project_id: int,
    fp: IO[bytes],
    fmt: FormatChoice,
    labels_as: LabelsAs,
    session: Session,
) -> ImportResult:
    check_importer(request, project_id, session)  # again: the file took time to arrive
    project = get_project(session, project_id)
    return import_file(session, project, fp, settings=get_settings(), fmt=fmt, labels_as=labels_as)


@router.post(
    "/{project_id}/imports", status_code=201, response_model=ImportOut, openapi_extra=UPLOAD_BODY
)
@allow("admin")
@accepts_upload
async def create_import(
    project_id: int,
    request: Request,
    format: Annotated[FormatChoice, Query()] = "auto",
    labels_as: Annotated[LabelsAs, Query()] = "ignore",
) -> ImportOut:
    """Imports the multipart field `file` into the project; writes nothing unless every line
    passes. 413 past the upload limit."""
    async with hold(request.app):
        await run_in_session(request, partial(check_importer, request, project_id))
    form = await request.form(max_files=1, max_fields=16)
    try:
        file = form.get(FILE_FIELD)
        if not isinstance(file, UploadFile):
            raise Invalid(f"field {FILE_FIELD!r}: a file is required (multipart/form-data)")
        async with hold(request.app):
            work = partial(run_import, request, project_id, file.file, format, labels_as)
            result = await run_in_session(request, work)
    finally:
        await form.close()
    return ImportOut(
        format=result.format,
        items_created=result.items_created,
        items_duplicate=result.items_duplicate,
        item_ids=result.item_ids,
        prompts_with_one_answer=result.prompts_with_one_answer,
    )
