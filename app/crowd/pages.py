"""Crowd entry pages: the entry link, the consent step and the start page.

`GET /enter/{slug}?{param}=ID` creates or resumes the participant's account (a visit writes,
in a write transaction of its own on SQLite: see `app.db.writing`), logs them in and sends
them to the consent page, then to the guidelines and the batch's queue. The completion code is
shown on the batch's "nothing left" page (app/batches/pages.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from app.auth.access import allow
from app.auth.dependencies import AdminUser, CurrentUser
from app.auth.sessions import set_session_cookie
from app.batches.models import Batch
from app.batches.pages import done_url
from app.batches.service import get_batch
from app.config import get_settings
from app.core.proxies import client_address
from app.core.templating import render
from app.crowd import service
from app.crowd.models import BatchEntry
from app.db import DbSession, writing
from app.errors import DomainError
from app.projects.markdown import render_markdown
from app.projects.models import Project

router = APIRouter(tags=["pages"], include_in_schema=False)
GONE = "This study link is not valid (any more). Open the study again from your crowd platform."


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _refused(request: Request, detail: str, status_code: int) -> Response:
    response = render(request, "enter_refused.html", {"detail": detail}, status_code=status_code)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.get("/enter/{slug}")
@allow("public")
def enter(request: Request, slug: str, session: DbSession) -> Response:
    entry = service.entry_by_slug(session, slug)
    if entry is None:
        return _refused(request, GONE, 404)
    raw_id = request.query_params.get(entry.param)
    base, batch_id = service.entry_url(entry), entry.batch_id
    try:
        with writing(session) as writer:
            writable = writer.get(BatchEntry, batch_id)
            if writable is None:
                return _refused(request, GONE, 404)
            entered = service.enter(
                writer, writable, raw_id, client_address(request), get_settings()
            )
            user = entered.user
    except DomainError as exc:
        return _refused(request, exc.detail, exc.status_code)
    response = _redirect(base + ("/start" if entered.consented else "/consent"))
    set_session_cookie(response, user)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _participant_entry(
    session: DbSession, slug: str, user_id: int
) -> tuple[BatchEntry, Batch] | None:
    entry = service.entry_by_slug(session, slug)
    if entry is None or service.participation(session, entry.batch_id, user_id) is None:
        return None
    batch = session.get(Batch, entry.batch_id)
    return None if batch is None else (entry, batch)


@router.get("/enter/{slug}/consent")
@allow("authenticated")
def consent_page(request: Request, slug: str, session: DbSession, user: CurrentUser) -> Response:
    found = _participant_entry(session, slug, user.id)
    if found is None:
        return _redirect("/")  # not a participant of this link: their own home page
    entry, batch = found
    row = service.participation(session, batch.id, user.id)
    if row is not None and row.consented_at is not None:
        return _redirect(service.entry_url(entry) + "/start")
    ctx = {"entry": entry, "batch": batch, "consent_html": render_markdown(entry.consent or "")}
    return render(request, "enter_consent.html", ctx)


@router.post("/enter/{slug}/consent")
@allow("authenticated")
def give_consent(
    request: Request,
    slug: str,
    session: DbSession,
    user: CurrentUser,
    agree: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    found = _participant_entry(session, slug, user.id)
    if found is None:
        return _redirect("/")
    entry, batch = found
    if agree != "yes":
        ctx = {
            "entry": entry,
            "batch": batch,
            "consent_html": render_markdown(entry.consent or ""),
            "error": "Tick the box to say that you agree, or close this page if you do not.",
        }
        return render(request, "enter_consent.html", ctx, status_code=422)
    row = service.participation(session, batch.id, user.id)
    assert row is not None
    service.consent(session, batch, user, row)
    return _redirect(service.entry_url(entry) + "/start")


@router.get("/enter/{slug}/start")
@allow("authenticated")
def start_page(request: Request, slug: str, session: DbSession, user: CurrentUser) -> Response:
    found = _participant_entry(session, slug, user.id)
    if found is None:
        return _redirect("/")
    entry, batch = found
    row = service.participation(session, batch.id, user.id)
    if row is None or row.consented_at is None:
        return _redirect(service.entry_url(entry) + "/consent")
    if not batch.is_open:
        return _redirect(done_url(batch.id))  # nothing left: the completion code
    project = session.get_one(Project, batch.project_id)
    ctx = {"batch": batch, "guidelines": render_markdown(project.guidelines)}
    return render(request, "enter_start.html", ctx)


# ---------------------------------------------------------------- admin: the entry settings


def _settings_page(
    request: Request,
    session: DbSession,
    batch: Batch,
    *,
    form: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    entry = service.get_entry(session, batch.id)
    if form is None:
        form = {
            "param": entry.param if entry else "PROLIFIC_PID",
            "completion_code": entry.completion_code if entry else "",
            "redirect_url": (entry.redirect_url or "") if entry else "",
            "consent": (entry.consent or "") if entry else "",
        }
    url = None
    if entry is not None:
        url = f"{str(request.base_url).rstrip('/')}{service.entry_url(entry)}?{entry.param}="
    ctx = {"batch": batch, "entry": entry, "entry_link": url, "form": form, "error": error}
    return render(request, "entry_settings.html", ctx, status_code=status_code)


@router.get("/batches/{batch_id}/entry")
@allow("admin")
def entry_settings_page(
    request: Request, batch_id: int, session: DbSession, _admin: AdminUser
) -> Response:
    return _settings_page(request, session, get_batch(session, batch_id))


Text = Annotated[str, Form(max_length=2000)]


@router.post("/batches/{batch_id}/entry")
@allow("admin")
def save_entry_settings(
    request: Request,
    batch_id: int,
    session: DbSession,
    _admin: AdminUser,
    param: Annotated[str, Form(max_length=64)] = "",
    completion_code: Annotated[str, Form(max_length=100)] = "",
    redirect_url: Text = "",
    consent: Annotated[str, Form(max_length=service.MAX_CONSENT)] = "",
) -> Response:
    batch = get_batch(session, batch_id)
    form = {
        "param": param,
        "completion_code": completion_code,
        "redirect_url": redirect_url,
        "consent": consent,
    }
    try:
        settings = service.EntrySettings(param, completion_code, redirect_url, consent)
        service.set_entry(session, batch, settings)
    except DomainError as exc:
        session.rollback()
        return _settings_page(
            request, session, batch, form=form, error=exc.detail, status_code=exc.status_code
        )
    return _redirect(f"/batches/{batch_id}/entry")


@router.post("/batches/{batch_id}/entry/disable")
@allow("admin")
def disable_entry(batch_id: int, session: DbSession, _admin: AdminUser) -> Response:
    service.set_entry(session, get_batch(session, batch_id), None)
    return _redirect(f"/batches/{batch_id}/entry")
