"""Importing from the browser: a form on the project page, a result page.

The same import as `POST /api/v1/projects/{id}/imports`, with the same upload handling
(app/web/bodies.py): the `max_upload_bytes` limit, the caller and project checked before a byte
of the file is read, the file spooled to disk as it arrives (memory stays flat) outside the
request gate. The result page shows what the API answers: the counts, or the refused line and
field.
"""

from __future__ import annotations

from functools import partial
from typing import get_args

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from app.auth.access import allow
from app.core.templating import render
from app.db import run_in_session
from app.errors import ImportRejected, Invalid
from app.imports.router import FILE_FIELD, FormatParam, check_importer, run_import
from app.web.bodies import accepts_upload
from app.web.gate import hold

router = APIRouter(tags=["pages"], include_in_schema=False)
FORMATS: tuple[str, ...] = get_args(FormatParam)
LABELS_AS = ("ignore", "reference")


def _choice(form_value: object, allowed: tuple[str, ...], name: str) -> str:
    value = form_value if isinstance(form_value, str) and form_value else allowed[0]
    if value not in allowed:
        raise Invalid(f"{name}: {value!r}; use one of {', '.join(allowed)}")
    return value


@router.post("/projects/{project_id}/imports")
@allow("admin")
@accepts_upload
async def import_page(request: Request, project_id: int) -> Response:
    async with hold(request.app):
        name = await run_in_session(request, partial(check_importer, request, project_id))
    project = {"id": project_id, "name": name}
    form = await request.form(max_files=1, max_fields=16)
    try:
        file = form.get(FILE_FIELD)
        if not isinstance(file, UploadFile):
            raise Invalid(f"field {FILE_FIELD!r}: choose a file to import")
        fmt = _choice(form.get("format"), FORMATS, "format")
        labels_as = _choice(form.get("labels_as"), LABELS_AS, "labels_as")
        ctx: dict[str, object] = {"project": project, "filename": file.filename or ""}
        try:
            async with hold(request.app):
                work = partial(run_import, request, project_id, file.file, fmt, labels_as)
                ctx["result"] = await run_in_session(request, work)  # rolled back on error
        except ImportRejected as exc:
            ctx["error"] = exc
            return render(request, "import_result.html", ctx, status_code=422)
    finally:
        await form.close()
    return render(request, "import_result.html", ctx, status_code=201)
