"""`POST /api/v1/projects/{id}/suggestions?origin=NAME`: an origin's suggestions, as a file.

Same flow as imports (app/imports/router.py): caller and project checked before the body is
read, the file validated and written in one transaction, 422 naming the first bad line.
"""

from __future__ import annotations

from functools import partial
from typing import IO, Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from app.auth.access import allow
from app.config import get_settings
from app.core.json_body import JSONRulesRoute
from app.db import run_in_session
from app.errors import Invalid
from app.imports.router import FILE_FIELD, UPLOAD_BODY, check_importer
from app.projects.service import get_project
from app.suggestions.schemas import SuggestionsOut
from app.suggestions.service import SuggestionResult, check_origin, import_suggestions
from app.web.bodies import accepts_upload
from app.web.gate import hold

router = APIRouter(prefix="/api/v1/projects", tags=["suggestions"], route_class=JSONRulesRoute)


def _run(
    request: Request, project_id: int, fp: IO[bytes], origin: str, session: Session
) -> SuggestionResult:
    check_importer(request, project_id, session)  # again: the file took time to arrive
    project = get_project(session, project_id)
    return import_suggestions(session, project, fp, origin, settings=get_settings())


@router.post("/{project_id}/suggestions", response_model=SuggestionsOut, openapi_extra=UPLOAD_BODY)
@allow("admin")
@accepts_upload
async def upload_suggestions(
    project_id: int,
    request: Request,
    origin: Annotated[str | None, Query()] = None,
) -> SuggestionsOut:
    """Replaces the origin's suggestions in the project with the NDJSON lines of the multipart
    field `file`; writes nothing unless every line passes."""
    async with hold(request.app):
        await run_in_session(request, partial(check_importer, request, project_id))
    # Checked after the caller: a request without rights learns nothing about its parameters.
    origin = check_origin(origin or "")
    form = await request.form(max_files=1, max_fields=16)
    try:
        file = form.get(FILE_FIELD)
        if not isinstance(file, UploadFile):
            raise Invalid(f"field {FILE_FIELD!r}: a file is required (multipart/form-data)")
        async with hold(request.app):
            work = partial(_run, request, project_id, file.file, origin)
            result = await run_in_session(request, work)
    finally:
        await form.close()
    return SuggestionsOut(
        suggestions_created=result.created,
        suggestions_updated=result.updated,
        suggestions_removed=result.removed,
    )
