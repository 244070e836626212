"""`POST /api/v1/projects/{id}/imports`: a multipart upload, validated then written."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, UploadFile

from app.auth.access import allow
from app.auth.dependencies import AdminUser
from app.config import get_settings
from app.db import DbSession
from app.imports.schemas import ImportOut
from app.imports.service import import_file
from app.projects.service import get_project

router = APIRouter(prefix="/api/v1/projects", tags=["imports"])

FormatParam = Literal["auto", "pku-saferlhf", "pku-saferlhf-qa", "beavertails", "generic"]


@router.post("/{project_id}/imports", status_code=201, response_model=ImportOut)
@allow("admin")
def create_import(
    project_id: int,
    file: UploadFile,
    session: DbSession,
    _admin: AdminUser,
    format: Annotated[FormatParam, Query()] = "auto",
    labels_as: Annotated[Literal["reference", "ignore"], Query()] = "ignore",
) -> ImportOut:
    project = get_project(session, project_id)
    result = import_file(
        session, project, file.file, settings=get_settings(), fmt=format, labels_as=labels_as
    )
    return ImportOut(
        format=result.format,
        items_created=result.items_created,
        items_duplicate=result.items_duplicate,
        item_ids=result.item_ids,
        prompts_with_one_answer=result.prompts_with_one_answer,
    )
