"""Admin pages for projects and their items."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select

from app.auth.access import allow
from app.auth.dependencies import AdminUser
from app.auth.models import User
from app.batches.service import list_batches
from app.core.templating import render
from app.db import DbSession
from app.errors import DomainError, Invalid
from app.exports.formats import EXPORT_FORM
from app.imports.formats import FORMATS as IMPORT_FORMATS
from app.items.models import Item
from app.items.service import list_items
from app.projects.archive import (
    archive_project,
    delete_project,
    project_annotations,
    unarchive_project,
)
from app.projects.guidelines import (
    QUESTION_LABELS,
    edit_guidelines,
    list_versions,
    questions_of,
)
from app.projects.markdown import render_markdown
from app.projects.models import Project
from app.projects.service import create_project, get_project
from app.projects.taxonomy import PRESETS

router = APIRouter(tags=["pages"], include_in_schema=False)
PAGE_SIZE = 50


@router.get("/projects")
@allow("admin")
def projects_page(
    request: Request, session: DbSession, _admin: AdminUser, archived: bool = False
) -> Response:
    """Live projects; `?archived=1` lists the archived ones instead."""
    query = (
        select(Project, func.count(Item.id))
        .outerjoin(Item, Item.project_id == Project.id)
        .group_by(Project.id)
        .order_by(Project.id)
    )
    query = query.where(
        Project.archived_at.is_not(None) if archived else Project.archived_at.is_(None)
    )
    rows = session.execute(query).all()
    ctx = {"rows": [tuple(r) for r in rows], "archived": archived}
    return render(request, "projects.html", ctx)


PRESET_CHOICES = ("pku-saferlhf-19", "beavertails-14", "custom")


def _project_form(
    request: Request, form: dict[str, Any], error: str | None, status: int
) -> Response:
    ctx = {"form": form, "error": error, "presets": PRESET_CHOICES, "taxonomies": PRESETS}
    return render(request, "project_new.html", ctx, status_code=status)


@router.get("/projects/new")
@allow("admin")
def new_project_page(request: Request, _admin: AdminUser) -> Response:
    defaults = {"taxonomy_preset": "pku-saferlhf-19", "ask_safety": True, "ask_dual": True}
    return _project_form(request, defaults, None, 200)


@router.post("/projects")
@allow("admin")
def create_project_form(
    request: Request,
    session: DbSession,
    _admin: AdminUser,
    name: Annotated[str, Form(max_length=200)] = "",
    taxonomy_preset: Annotated[str, Form(max_length=32)] = "pku-saferlhf-19",
    custom_taxonomy: Annotated[str, Form(max_length=20_000)] = "",
    guidelines: Annotated[str, Form(max_length=200_000)] = "",
    ask_safety: Annotated[bool, Form()] = False,
    ask_dual: Annotated[bool, Form()] = False,
    ask_single: Annotated[bool, Form()] = False,
    ask_rationale: Annotated[bool, Form()] = False,
    show_suggestions: Annotated[bool, Form()] = False,
) -> Response:
    """The create-project form: a preset taxonomy or a custom list (one name per line)."""
    questions = {
        "ask_safety": ask_safety,
        "ask_dual": ask_dual,
        "ask_single": ask_single,
        "ask_rationale": ask_rationale,
        "show_suggestions": show_suggestions,
    }
    taxonomy: str | list[str] = taxonomy_preset
    if taxonomy_preset == "custom":
        taxonomy = [line.strip() for line in custom_taxonomy.splitlines() if line.strip()]
    try:
        if not any(questions[q] for q in ("ask_safety", "ask_dual", "ask_single")):
            raise Invalid("questions: ask at least one of safety labels, dual or single ranking")
        project = create_project(session, name, taxonomy, guidelines, **questions)
    except DomainError as exc:
        form = {
            "name": name,
            "taxonomy_preset": taxonomy_preset,
            "custom_taxonomy": custom_taxonomy,
            "guidelines": guidelines,
            **questions,
        }
        return _project_form(request, form, exc.detail, exc.status_code)
    return RedirectResponse(f"/projects/{project.id}", status_code=303)


@router.get("/projects/{project_id}")
@allow("admin")
def project_page(
    request: Request,
    project_id: int,
    session: DbSession,
    _admin: AdminUser,
    after_id: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    project = get_project(session, project_id)
    items, total = list_items(session, project_id, after_id=after_id, limit=PAGE_SIZE)
    next_after = items[-1].id if len(items) == PAGE_SIZE else None
    ctx = {"project": project, "items": items, "total": total, "next_after": next_after}
    ctx["batches"] = list_batches(session, _admin, project_id=project.id, include_archived=True)
    ctx["n_annotations"] = project_annotations(session, project.id)
    ctx["guidelines_html"] = render_markdown(project.guidelines)
    ctx.update(EXPORT_FORM)
    ctx["import_formats"] = ("auto", *IMPORT_FORMATS)
    return render(request, "project.html", ctx)


GUIDELINE_NOTICES = {
    "saved": "Saved as a new version.",
    "unchanged": "Nothing changed: no new version.",
}


def _guidelines_page(
    request: Request,
    session: DbSession,
    project: Project,
    *,
    form: dict[str, Any] | None = None,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    versions = list_versions(session, project.id)
    ids = {v.created_by for v in versions if v.created_by is not None}
    authors = dict(session.execute(select(User.id, User.username).where(User.id.in_(ids))).all())
    ctx = {
        "project": project,
        "form": form or {"guidelines": project.guidelines, **questions_of(project)},
        "versions": versions,
        "authors": authors,
        "labels": QUESTION_LABELS,
        "notice": notice,
        "error": error,
    }
    return render(request, "project_guidelines.html", ctx, status_code=status_code)


@router.get("/projects/{project_id}/guidelines")
@allow("admin")
def guidelines_page(
    request: Request, project_id: int, session: DbSession, _admin: AdminUser, done: str = ""
) -> Response:
    project = get_project(session, project_id)
    return _guidelines_page(request, session, project, notice=GUIDELINE_NOTICES.get(done))


@router.post("/projects/{project_id}/guidelines")
@allow("admin")
def edit_guidelines_form(
    request: Request,
    project_id: int,
    session: DbSession,
    admin: AdminUser,
    guidelines: Annotated[str, Form(max_length=200_000)] = "",
    ask_safety: Annotated[bool, Form()] = False,
    ask_dual: Annotated[bool, Form()] = False,
    ask_single: Annotated[bool, Form()] = False,
    ask_rationale: Annotated[bool, Form()] = False,
    show_suggestions: Annotated[bool, Form()] = False,
) -> Response:
    project = get_project(session, project_id)
    questions = {
        "ask_safety": ask_safety,
        "ask_dual": ask_dual,
        "ask_single": ask_single,
        "ask_rationale": ask_rationale,
        "show_suggestions": show_suggestions,
    }
    # A textarea sends CRLF line ends; store what the admin typed, with LF.
    text = guidelines.replace("\r\n", "\n")
    try:
        version = edit_guidelines(session, project, text, questions, admin.id)
    except DomainError as exc:
        form = {"guidelines": text, **questions}
        return _guidelines_page(
            request, session, project, form=form, error=exc.detail, status_code=exc.status_code
        )
    done = "saved" if version is not None else "unchanged"
    return RedirectResponse(f"/projects/{project.id}/guidelines?done={done}", status_code=303)


@router.post("/projects/{project_id}/archive")
@allow("admin")
def archive_project_form(project_id: int, session: DbSession, _admin: AdminUser) -> Response:
    archive_project(session, get_project(session, project_id))
    return RedirectResponse(f"/projects/{project_id}", status_code=303)


@router.post("/projects/{project_id}/unarchive")
@allow("admin")
def unarchive_project_form(project_id: int, session: DbSession, _admin: AdminUser) -> Response:
    unarchive_project(session, get_project(session, project_id))
    return RedirectResponse(f"/projects/{project_id}", status_code=303)


@router.get("/projects/{project_id}/delete")
@allow("admin")
def delete_project_page(
    request: Request, project_id: int, session: DbSession, _admin: AdminUser
) -> Response:
    project = get_project(session, project_id)
    n_items = session.scalar(select(func.count(Item.id)).where(Item.project_id == project.id))
    n_batches = len(list_batches(session, _admin, project_id=project.id, include_archived=True))
    ctx = {
        "kind": "project",
        "name": project.name,
        "action": f"/projects/{project.id}/delete",
        "back": f"/projects/{project.id}",
        "annotations": project_annotations(session, project.id),
        "consequence": f"its {n_items} items and {n_batches} batches are deleted with it",
    }
    return render(request, "confirm_delete.html", ctx)


@router.post("/projects/{project_id}/delete")
@allow("admin")
def delete_project_form(
    project_id: int,
    session: DbSession,
    _admin: AdminUser,
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    project = get_project(session, project_id)
    if confirm != "yes":  # only the confirmation page's button deletes
        return RedirectResponse(f"/projects/{project_id}/delete", status_code=303)
    delete_project(session, project)
    return RedirectResponse("/projects", status_code=303)
