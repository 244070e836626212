"""Importing from the browser: a form on the project page, a result page.

The same import as `POST /api/v1/projects/{id}/imports`, with the same upload handling
(app/web/bodies.py): the `max_upload_bytes` limit, the caller and project checked before a byte
of the file is read, the file spooled to disk as it arrives (memory stays flat) outside the
request gate. The result page shows what the API answers: the counts, or the refused line and
field.
"""

from __future__ import annotations

from functools import partial
from typing import IO, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from app.auth.access import allow
from app.core.templating import render
from app.db import run_in_session
from app.errors import ImportRejected, Invalid
from app.imports.formats import FORMAT_CHOICES, FormatChoice, LabelsAs
from app.imports.router import FILE_FIELD, check_importer, run_import
from app.imports.service import ImportResult
from app.web.bodies import accepts_upload
from app.web.gate import hold

router = APIRouter(tags=["pages"], include_in_schema=False)
FORMATS: tuple[FormatChoice, ...] = FORMAT_CHOICES
# "ignore" first: it is the form's default.
LABELS_AS: tuple[LabelsAs, ...] = ("ignore", "reference")
Choice = TypeVar("Choice", bound=str)


def _import_or_refusal(
    request: Request,
    project_id: int,
    fp: IO[bytes],
    fmt: FormatChoice,
    labels_as: LabelsAs,
    session: Session,
) -> ImportResult | ImportRejected:
    try:
        return run_import(request, project_id, fp, fmt, labels_as, session)
    except ImportRejected as refused:
        session.rollback()  # nothing of a refused file is kept
        return refused


def _choice(form_value: object, allowed: tuple[Choice, ...], name: str) -> Choice:
    if form_value is None or form_value == "":
        return allowed[0]
    for choice in allowed:
        if form_value == choice:
            return choice
    raise Invalid(f"{name}: {form_value!r}; use one of {', '.join(allowed)}")


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
        async with hold(request.app):
            work = partial(_import_or_refusal, request, project_id, file.file, fmt, labels_as)
            outcome = await run_in_session(request, work)
    finally:
        await form.close()
    if isinstance(outcome, ImportRejected):
        ctx["error"] = outcome
        return render(request, "import_result.html", ctx, status_code=422)
    ctx["result"] = outcome
    return render(request, "import_result.html", ctx, status_code=201)
