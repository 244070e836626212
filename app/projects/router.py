"""Project endpoints."""

from __future__ import annotations

from fastapi import APIRouter

from app.auth.access import allow
from app.auth.dependencies import AdminUser
from app.core.json_body import JSONRulesRoute
from app.db import DbSession
from app.projects import service
from app.projects.schemas import ProjectCreate, ProjectOut

router = APIRouter(prefix="/api/v1/projects", tags=["projects"], route_class=JSONRulesRoute)


@router.post("", status_code=201, response_model=ProjectOut)
@allow("admin")
def create_project(body: ProjectCreate, session: DbSession, _admin: AdminUser) -> ProjectOut:
    project = service.create_project(
        session,
        body.name,
        body.taxonomy,
        body.guidelines,
        ask_safety=body.ask_safety,
        ask_dual=body.ask_dual,
        ask_single=body.ask_single,
        ask_rationale=body.ask_rationale,
        show_suggestions=body.show_suggestions,
    )
    return ProjectOut.model_validate(project)


@router.get("", response_model=list[ProjectOut])
@allow("admin")
def list_projects(
    session: DbSession, _admin: AdminUser, include_archived: bool = False
) -> list[ProjectOut]:
    """Live projects; `include_archived` adds the archived ones."""
    found = service.list_projects(session, include_archived=include_archived)
    return [ProjectOut.model_validate(p) for p in found]


@router.get("/{project_id}", response_model=ProjectOut)
@allow("admin")
def get_project(project_id: int, session: DbSession, _admin: AdminUser) -> ProjectOut:
    return ProjectOut.model_validate(service.get_project(session, project_id))
