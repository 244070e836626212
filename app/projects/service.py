"""Creating and finding projects."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.json_text import require_storable
from app.errors import Conflict, Invalid, NotFound
from app.limits import MAX_CATEGORIES
from app.projects.guidelines import record_version
from app.projects.models import Project
from app.projects.taxonomy import PRESETS


def resolve_taxonomy(taxonomy: str | Sequence[str]) -> tuple[str, list[str]]:
    if isinstance(taxonomy, str):
        if taxonomy not in PRESETS:
            raise Invalid(
                f"taxonomy: unknown preset {taxonomy!r}; use {', '.join(PRESETS)} or a list"
            )
        return taxonomy, list(PRESETS[taxonomy])
    names = [require_storable("taxonomy", n.strip()) for n in taxonomy]
    if not names or any(not n or len(n) > 100 for n in names):
        raise Invalid("taxonomy: categories must be non-empty names of at most 100 characters")
    if len(set(names)) != len(names):
        raise Invalid("taxonomy: category names must be unique")
    if len(names) > MAX_CATEGORIES:
        raise Invalid(f"taxonomy: at most {MAX_CATEGORIES} categories")
    return "custom", names


def create_project(
    session: Session,
    name: str,
    taxonomy: str | Sequence[str] = "pku-saferlhf-19",
    guidelines: str = "",
    **questions: bool,
) -> Project:
    name = require_storable("name", name.strip())
    require_storable("guidelines", guidelines)
    if not name:
        raise Invalid("name: must not be empty")
    if session.scalar(select(Project.id).where(Project.name == name)) is not None:
        raise Conflict(f"project {name!r} already exists")
    preset, names = resolve_taxonomy(taxonomy)
    project = Project(
        name=name, taxonomy_preset=preset, taxonomy=names, guidelines=guidelines, **questions
    )
    session.add(project)
    session.flush()
    record_version(session, project)
    return project


def get_project(session: Session, project_id: int) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"no project {project_id}")
    return project


def get_project_by_name(session: Session, name: str) -> Project | None:
    return session.scalar(select(Project).where(Project.name == name))


def list_projects(session: Session, *, include_archived: bool = False) -> list[Project]:
    query = select(Project).order_by(Project.id)
    if not include_archived:
        query = query.where(Project.archived_at.is_(None))
    return list(session.scalars(query))
