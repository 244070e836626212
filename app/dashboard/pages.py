"""Admin pages: batch dashboard, campaign overview, disagreement browser, gold items.

Everything works with JavaScript off: sorting and thresholds are query parameters of plain
links and GET forms, charts are inline SVG, and every form POSTs and answers with a 303
redirect. With htmx, the dashboard's figures refresh in place every five seconds from the
`/dashboard/live` fragment.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from starlette.datastructures import FormData

from app.annotations.form_checks import label_problems, listed_problems
from app.annotations.guide import DIMENSIONS, SEVERITIES, SEVERITY_KEYS, SHORTCUTS
from app.annotations.models import Annotation
from app.annotations.presenter import (
    FormValues,
    LabelValues,
    completed_rankings,
    has_bidi_controls,
    project_dimensions,
)
from app.auth.access import allow
from app.auth.dependencies import AdminUser
from app.batches.models import Batch
from app.consensus import service as consensus
from app.core.templating import render
from app.dashboard import charts, disagreements, gold, service
from app.dashboard.gold_floor import below_floor
from app.db import DbSession
from app.errors import DomainError, Invalid, NotFound
from app.exports.keys import pseudonym_key
from app.exports.service import pseudonym
from app.items.models import GoldLabel, Item
from app.items.models import Response as ItemResponse
from app.projects.category_help import category_help
from app.projects.models import Project
from app.reviews.service import review_outcomes

router = APIRouter(tags=["pages"], include_in_schema=False)
LIST_PAGE = 50
MAX_FORM_FIELDS = 10_000
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


async def form_data(request: Request) -> FormData:
    return await request.form(max_fields=MAX_FORM_FIELDS)


PostedForm = Annotated[FormData, Depends(form_data)]


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def get_batch(session: DbSession, batch_id: int) -> tuple[Batch, Project]:
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFound(f"no batch {batch_id}")
    return batch, session.get_one(Project, batch.project_id)


def letter(index: int) -> str:
    return LETTERS[index] if index < len(LETTERS) else f"#{index + 1}"


# ---------------------------------------------------------------------------- dashboard


def _threshold(raw: str | None, default: float | None, name: str, upper: float) -> float | None:
    """Missing: the default; empty: the check is off; else a number in 0..upper."""
    if raw is None:
        return default
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise Invalid(f"{name}: must be a number") from None
    if not 0 <= value <= upper:
        raise Invalid(f"{name}: must be between 0 and {upper:g}{'%' if upper == 100 else ''}")
    return value


def thresholds(
    min_agreement: Annotated[str | None, Query(max_length=20)] = None,
    min_gold: Annotated[str | None, Query(max_length=20)] = None,
    max_skip: Annotated[str | None, Query(max_length=20)] = None,
    min_seconds: Annotated[str | None, Query(max_length=20)] = None,
) -> service.Thresholds:
    """The flag thresholds of the dashboard's form. Rates are percentages (0..100), as the
    table shows them; the median time is in seconds."""
    d = service.Thresholds()

    def rate(raw: str | None, default: float | None, name: str) -> float | None:
        value = _threshold(raw, None if default is None else default * 100, name, 100)
        return None if value is None else value / 100

    return service.Thresholds(
        min_agreement=rate(min_agreement, d.min_agreement, "min_agreement"),
        min_gold=rate(min_gold, d.min_gold, "min_gold"),
        max_skip_rate=rate(max_skip, d.max_skip_rate, "max_skip"),
        min_median_seconds=_threshold(min_seconds, d.min_median_seconds, "min_seconds", 86400),
    )


Thresholds_ = Annotated[service.Thresholds, Depends(thresholds)]


def _dashboard_context(
    session: DbSession,
    batch: Batch,
    project: Project,
    limits: service.Thresholds,
    sort: service.SortKey,
    order: str,
) -> dict[str, Any]:
    progress = service.progress(session, batch)
    descending = order == "desc"
    base_query = {**limits.query()}

    def sort_url(key: str) -> str:
        next_order = "asc" if key == sort and descending else "desc" if key == sort else "asc"
        return "?" + urlencode({**base_query, "sort": key, "order": next_order})

    live_query = urlencode({**base_query, "sort": sort, "order": order})
    ctx: dict[str, Any] = {
        "batch": batch,
        "project": project,
        "p": progress,
        "limits": limits,
        "sort": sort,
        "order": order,
        "sort_url": sort_url,
        "live_url": f"/batches/{batch.id}/dashboard/live?{live_query}",
        "progress_chart": charts.stacked_bar(
            [
                charts.Segment("Done", progress.done, "done"),
                charts.Segment("In progress", progress.in_progress, "doing"),
                charts.Segment("Untouched", progress.untouched, "todo"),
            ],
            title=f"Items: {progress.done} done, {progress.in_progress} in progress, "
            f"{progress.untouched} untouched",
        ),
        "gauge": charts.gauge,
        "cached": service.snapshot(session, batch, wait=False),
    }
    if ctx["cached"] is not None:
        snap = ctx["cached"].value
        ctx.update(_snapshot_context(session, snap, project, limits, sort, order, batch))
    return ctx


def _snapshot_context(
    session: DbSession,
    snap: service.Snapshot,
    project: Project,
    limits: service.Thresholds,
    sort: service.SortKey,
    order: str,
    batch: Batch,
) -> dict[str, Any]:
    unit, buckets = service.completions_over_time(snap.hourly)
    labelled = [(service.bucket_label(moment, unit), n) for moment, n in buckets]
    severity_rows = [(key.capitalize(), snap.severity.get(key, 0)) for key in service.SEVERITY_KEYS]
    category_rows = list(snap.categories.items())
    rows = service.annotator_rows(
        session,
        snap,
        limits,
        sort,
        order == "desc",
        gold_floor=batch.gold_floor,
        below_floor=below_floor(batch, snap.gold),
    )
    return {
        "snap": snap,
        "metrics": snap.metrics,
        "dimensions": service.dimension_rows(snap.metrics, project),
        "unit": unit,
        "buckets": labelled,
        "severity_rows": severity_rows,
        "category_rows": category_rows,
        "total_labels": sum(snap.severity.values()),
        "rows": rows,
        "flagged": sum(1 for r in rows if r.flags),
        "gold_dims": [d for d in gold.GOLD_DIMENSIONS if any(r.gold.counts.get(d) for r in rows)],
        "gold_labels": gold.GOLD_LABELS,
        "loo_dims": [
            d
            for d in ("helpfulness", "harmlessness", "single", "is_safe")
            if any(r.agreement_by_dimension.get(d) is not None for r in rows)
        ],
        "timeline_chart": charts.columns(labelled, title=f"Annotations submitted per {unit} (UTC)"),
        "severity_chart": charts.bar_rows(
            severity_rows, title="Severity of response labels", css="bars severity", label_width=110
        ),
        "category_chart": charts.bar_rows(
            category_rows, title="Harm categories flagged", css="bars categories"
        ),
    }


SortParam = Annotated[service.SortKey, Query()]
OrderParam = Annotated[str, Query(pattern="^(asc|desc)$")]


def dashboard_view(
    batch_id: int,
    session: DbSession,
    limits: Thresholds_,
    sort: SortParam = "annotator",
    order: OrderParam = "asc",
) -> dict[str, Any]:
    """What the dashboard page and its live fragment both show."""
    batch, project = get_batch(session, batch_id)
    return _dashboard_context(session, batch, project, limits, sort, order)


# Declared after AdminUser in each route, so that the role is checked before any data loads.
DashboardView = Annotated[dict[str, Any], Depends(dashboard_view)]


@router.get("/batches/{batch_id}/dashboard")
@allow("admin")
def dashboard_page(
    request: Request, session: DbSession, _admin: AdminUser, ctx: DashboardView
) -> Response:
    outcomes = review_outcomes(session, ctx["batch"].id)
    return render(request, "dashboard.html", {**ctx, "review_outcomes": outcomes})


@router.get("/batches/{batch_id}/dashboard/live")
@allow("admin")
def dashboard_fragment(request: Request, _admin: AdminUser, ctx: DashboardView) -> Response:
    """The dashboard's figures alone, for htmx to swap in place."""
    return render(request, "dashboard_live.html", ctx)


@router.get("/overview")
@allow("admin")
def overview_page(
    request: Request,
    session: DbSession,
    _admin: AdminUser,
    project_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    rows = service.overview(session, project_id)
    ctx = {
        "rows": rows,
        "project_id": project_id,
        "projects": list(session.scalars(select(Project).order_by(Project.name))),
        "gauge": charts.gauge,
        "bar": lambda row: charts.stacked_bar(
            [
                charts.Segment("Done", row.progress.done, "done"),
                charts.Segment("In progress", row.progress.in_progress, "doing"),
                charts.Segment("Untouched", row.progress.untouched, "todo"),
            ],
            title=f"{row.batch.name}: {row.progress.done} of {row.progress.items} items done",
            width=240,
        ),
    }
    return render(request, "overview.html", ctx)


# ------------------------------------------------------------------------ disagreements


@router.get("/batches/{batch_id}/disagreements")
@allow("admin")
def disagreements_page(
    request: Request,
    batch_id: int,
    session: DbSession,
    _admin: AdminUser,
    status: Annotated[disagreements.Status, Query()] = "todo",
    complete: bool = False,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    batch, project = get_batch(session, batch_id)
    found = disagreements.listing(session, batch, status, complete)
    start = (page - 1) * LIST_PAGE
    rows = found.rows[start : start + LIST_PAGE] if found is not None else []
    prompts = {
        item_id: prompt
        for item_id, prompt in session.execute(
            select(Item.id, Item.prompt).where(Item.id.in_([r.item_id for r in rows]))
        )
    }
    query = {"status": status, **({"complete": "1"} if complete else {})}
    ctx = {
        "batch": batch,
        "project": project,
        "listing": found,
        "rows": rows,
        "prompts": prompts,
        "status": status,
        "complete": complete,
        "page": page,
        "pages": max(1, -(-found.total // LIST_PAGE)) if found is not None else 1,
        "page_url": lambda n: "?" + urlencode({**query, "page": n}),
        "status_url": lambda s: "?" + urlencode({**query, "status": s}),
        "notice": request.query_params.get("notice"),
    }
    return render(request, "disagreements.html", ctx)


def _label_values(labels: dict[str, Any] | None, ids: list[int]) -> FormValues:
    """A payload with response ids (an annotation, the consensus, an adjudication) as the
    annotation page's form values."""
    values = FormValues(
        labels={rid: LabelValues() for rid in ids},
        ranks={d: [None] * len(ids) for d in ("helpfulness", "harmlessness", "single")},
    )
    for r in (labels or {}).get("responses") or ():
        rid = r.get("response_id")
        if rid in values.labels and r.get("is_safe") is not None:
            values.labels[rid] = LabelValues(
                "safe" if r["is_safe"] else "unsafe",
                list(r.get("harm_categories") or ()),
                r.get("severity") or "",
            )
    for dimension in values.ranks:
        ranking = (labels or {}).get(dimension)
        if ranking:
            values.ranks[dimension] = list(ranking)
    return values


def _posted_values(form: FormData, ids: list[int]) -> FormValues:
    """Exactly what the admin sent, to refill a refused form."""
    values = FormValues(labels={}, ranks={})
    for rid in ids:
        choice = str(form.get(f"r{rid}_safe") or "")
        values.labels[rid] = LabelValues(
            choice if choice in ("safe", "unsafe") else "",
            [str(c) for c in form.getlist(f"r{rid}_cat")],
            str(form.get(f"r{rid}_sev") or ""),
        )
    for dimension in ("helpfulness", "harmlessness", "single"):
        values.ranks[dimension] = [
            int(raw) if (raw := str(form.get(f"{dimension}_{rank}") or "")).isdigit() else None
            for rank in range(1, len(ids) + 1)
        ]
    return values


# The annotation page's keys that have no meaning on the adjudication form.
_NOT_ADJUDICATION_KEYS = {("n",), ("m",), ("Shift+S",)}


def _item_context(
    session: DbSession,
    batch: Batch,
    project: Project,
    item_id: int,
    names: bool,
    values: FormValues | None = None,
    errors: dict[str, str] | None = None,
    note: str = "",
    start_from: int | None = None,
    saved: int | None = None,
) -> dict[str, Any]:
    view = consensus.item_consensus_view(session, batch.id, item_id)
    item = session.get_one(Item, item_id)
    responses = list(
        session.scalars(
            select(ItemResponse)
            .where(ItemResponse.item_id == item_id)
            .order_by(ItemResponse.position)
        )
    )
    letters = {r.id: letter(k) for k, r in enumerate(responses)}
    owners = {
        annotation_id: annotator_id
        for annotation_id, annotator_id in session.execute(
            select(Annotation.id, Annotation.annotator_id).where(
                Annotation.batch_id == batch.id, Annotation.item_id == item_id
            )
        )
    }
    # Annotators go by the exports' pseudonym: the same person has the same name on every
    # item (and in every export), whether or not real names are shown too.
    secret = pseudonym_key(session)
    who = {v.annotation_id: pseudonym(secret, owners[v.annotation_id]) for v in view.annotations}
    usernames = {v.annotation_id: v.annotator for v in view.annotations}
    ids = [r.id for r in responses]
    # What the form starts from: "posted" (a refused form), an annotator's pseudonym,
    # "adjudication" or "consensus".
    starting_point = "posted"
    if values is None:
        if start_from is not None:
            chosen = next((v for v in view.annotations if v.annotation_id == start_from), None)
            if chosen is None:
                raise NotFound(f"no annotation {start_from} of item {item_id} in this batch")
            starting_point = who[start_from]
            values = _label_values(chosen.labels, ids)
        else:
            current = view.adjudication.labels if view.adjudication else None
            starting_point = "adjudication" if current else "consensus"
            values = _label_values(current or disagreements.consensus_prefill(view.consensus), ids)
        note = view.adjudication.note if view.adjudication and not note else note
    entry = disagreements.find(session, batch, item_id)
    errors = errors or {}
    return {
        "batch": batch,
        "project": project,
        "item": item,
        "responses": [(letters[r.id], r) for r in responses],
        "letters": letters,
        "view": view,
        "who": who,
        "usernames": usernames,
        "names": names,
        "values": values,
        "errors": errors,
        "error_list": listed_problems(errors, ids),
        "categories": category_help(project.taxonomy_preset, project.taxonomy),
        "severities": SEVERITIES,
        "severity_keys": SEVERITY_KEYS,
        "dimensions": [(d, *DIMENSIONS[d]) for d in project_dimensions(project)],
        "shortcuts": [s for s in SHORTCUTS if s.keys not in _NOT_ADJUDICATION_KEYS],
        "bidi": {r.id for r in responses if has_bidi_controls(r.text)},
        "prompt_bidi": has_bidi_controls(item.prompt),
        "note": note,
        "starting_point": starting_point,
        "saved": saved,
        "entry": entry,
        "is_gold": item_id in {g.item.id for g in gold.gold_items(session, batch)},
        "next_id": disagreements.next_item(session, batch, item_id),
        "rank_text": lambda ranking: " > ".join(letters.get(r, "?") for r in ranking or []),
    }


@router.get("/batches/{batch_id}/disagreements/{item_id}")
@allow("admin")
def disagreement_item_page(
    request: Request,
    batch_id: int,
    item_id: int,
    session: DbSession,
    _admin: AdminUser,
    names: bool = False,
    start_from: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    saved: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> Response:
    """The item's annotations side by side and the final-label form, which starts from the
    current adjudication, the consensus, or (`start_from`) one annotator's labels."""
    batch, project = get_batch(session, batch_id)
    ctx = _item_context(session, batch, project, item_id, names, start_from=start_from, saved=saved)
    return render(request, "disagreements_item.html", ctx)


@router.post("/batches/{batch_id}/disagreements/{item_id}")
@allow("admin")
def adjudicate_form(
    request: Request,
    batch_id: int,
    item_id: int,
    session: DbSession,
    admin: AdminUser,
    form: PostedForm,
) -> Response:
    """Records the final labels (who and when, by the adjudication service), then moves on
    to the next item to adjudicate, saying the save went through. A refused form comes back
    with every problem listed, in the annotation page's words."""
    batch, project = get_batch(session, batch_id)
    ids = disagreements.response_ids(session, item_id)
    names = form.get("names") == "1"
    form = completed_rankings(form, ids)
    problems = label_problems(form, project, ids, rationale=False)
    try:
        if problems:
            raise Invalid("the final labels are incomplete")
        body, _ = disagreements.adjudication_from_form(form, project, ids)
        consensus.record_adjudication(session, batch.id, item_id, admin, body)
    except Invalid as exc:
        ctx = _item_context(
            session,
            batch,
            project,
            item_id,
            names,
            _posted_values(form, ids),
            problems or {"form": exc.detail},
            str(form.get("note", "")),
        )
        return render(request, "disagreements_item.html", ctx, status_code=exc.status_code)
    following = disagreements.next_item(session, batch, item_id)
    if following is None:
        notice = f"Saved the final labels of item #{item_id}. No item left to adjudicate."
        return redirect(f"/batches/{batch.id}/disagreements?" + urlencode({"notice": notice}))
    query = urlencode({"saved": item_id, **({"names": "1"} if names else {})})
    return redirect(f"/batches/{batch.id}/disagreements/{following}?{query}")


def _lenient_values(form: FormData, ids: list[int]) -> dict[str, Any]:
    """What the admin entered, to refill a refused form."""
    values: dict[str, Any] = {"safe": {}, "cats": {}, "sev": {}, "rank": {}}
    for rid in ids:
        choice = form.get(f"r{rid}_safe")
        if choice in ("safe", "unsafe"):
            values["safe"][rid] = choice
        values["cats"][rid] = {str(c) for c in form.getlist(f"r{rid}_cat")}
        values["sev"][rid] = str(form.get(f"r{rid}_sev") or "")
    for dimension in ("helpfulness", "harmlessness", "single"):
        ranking = []
        for rank in range(1, len(ids) + 1):
            raw = str(form.get(f"{dimension}_{rank}", ""))
            ranking.append(int(raw) if raw.isdigit() else None)
        if any(r is not None for r in ranking):
            values["rank"][dimension] = ranking
    return values


# ---------------------------------------------------------------------------- gold items


def _gold_context(
    session: DbSession, batch: Batch, project: Project, **extra: Any
) -> dict[str, Any]:
    cached = service.snapshot(session, batch, wait=False)
    snap = cached.value if cached is not None else None
    names = {a.annotator_id: a.username for a in snap.metrics.annotators} if snap else {}
    ctx: dict[str, Any] = {
        "batch": batch,
        "project": project,
        "items": gold.gold_items(session, batch),
        "computing": snap is None,
        "scores": sorted(snap.gold.items(), key=lambda kv: names.get(kv[0], "")) if snap else [],
        "names": names,
        "gold_dims": gold.GOLD_DIMENSIONS,
        "gold_labels": gold.GOLD_LABELS,
        "error": None,
        "notice": None,
        "item_ids": "",
        "ticked": set(),
    }
    ctx.update(extra)
    text, page = str(ctx.get("q", "")), int(ctx.get("page", 1))
    rows, total = gold.item_table(session, batch, text, page, LIST_PAGE)
    query = {"q": text} if text else {}
    ctx.update(
        q=text,
        page=page,
        table=rows,
        table_total=total,
        pages=max(1, -(-total // LIST_PAGE)),
        page_url=lambda n: "?" + urlencode({**query, "page": n}) + "#batch-items",
    )
    return ctx


@router.get("/batches/{batch_id}/gold")
@allow("admin")
def gold_page(
    request: Request,
    batch_id: int,
    session: DbSession,
    _admin: AdminUser,
    q: Annotated[str, Query(max_length=200)] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    """Gold share, the gold items, and a table of the batch's items (filtered by a text in
    the prompt or external id) to tick and mark gold."""
    batch, project = get_batch(session, batch_id)
    ctx = _gold_context(
        session, batch, project, notice=request.query_params.get("notice"), q=q, page=page
    )
    return render(request, "dashboard_gold.html", ctx)


def _ids(raw: str) -> list[int]:
    parts = raw.replace(",", " ").split()
    if not parts or len(parts) > 10_000:
        raise Invalid("item_ids: give between 1 and 10,000 item ids")
    try:
        return list(dict.fromkeys(int(p) for p in parts))
    except ValueError:
        raise Invalid(
            "item_ids: item ids are whole numbers separated by spaces or commas"
        ) from None


@router.post("/batches/{batch_id}/gold")
@allow("admin")
def mark_gold_form(
    request: Request, batch_id: int, session: DbSession, admin: AdminUser, form: PostedForm
) -> Response:
    """Marks the listed items gold with their reference labels as the answer key."""
    batch, project = get_batch(session, batch_id)
    raw = str(form.get("item_ids", ""))
    # Ticked rows of the item table (`item_id`, repeated) and/or ids typed in `item_ids`.
    ticked = [str(v) for v in form.getlist("item_id")]
    text = str(form.get("q", ""))[:200]
    try:
        if not ticked and not raw.strip():
            raise Invalid("Tick at least one item in the table (or type item ids).")
        n = gold.mark_many_from_reference(session, batch, _ids(" ".join([raw, *ticked])), admin)
    except DomainError as exc:
        ctx = _gold_context(
            session,
            batch,
            project,
            error=exc.detail,
            item_ids=raw,
            ticked=set(ticked),
            q=text,
        )
        return render(request, "dashboard_gold.html", ctx, status_code=exc.status_code)
    query = {"notice": f"{n} item(s) marked gold.", **({"q": text} if text else {})}
    return redirect(f"/batches/{batch.id}/gold?" + urlencode(query))


@router.post("/batches/{batch_id}/gold/rate")
@allow("admin")
def gold_rate_form(
    request: Request, batch_id: int, session: DbSession, _admin: AdminUser, form: PostedForm
) -> Response:
    batch, project = get_batch(session, batch_id)
    try:
        percent = float(str(form.get("gold_percent", "")).strip())
    except ValueError:
        percent = -1.0
    try:
        gold.set_gold_rate(session, batch, percent / 100 if 0 <= percent <= 100 else -1.0)
    except Invalid:
        ctx = _gold_context(session, batch, project, error="gold share: a percentage 0..100")
        return render(request, "dashboard_gold.html", ctx, status_code=422)
    return redirect(f"/batches/{batch.id}/gold?" + urlencode({"notice": "Gold share saved."}))


def _gold_item_context(
    session: DbSession, batch: Batch, project: Project, item_id: int, **extra: Any
) -> dict[str, Any]:
    if session.get(Item, item_id) is None:
        raise NotFound(f"no item {item_id} in batch {batch.id}")
    gold.check_in_batch(session, batch, item_id)
    responses = list(
        session.scalars(
            select(ItemResponse)
            .where(ItemResponse.item_id == item_id)
            .order_by(ItemResponse.position)
        )
    )
    key = session.get(GoldLabel, item_id)
    by_position = {r.position: r.id for r in responses}
    values = disagreements.form_values(
        gold.to_ids(key.payload, by_position) if key is not None else None,
        [r.id for r in responses],
    )
    ctx: dict[str, Any] = {
        "batch": batch,
        "project": project,
        "item": session.get_one(Item, item_id),
        "responses": responses,
        "letters": {r.id: letter(k) for k, r in enumerate(responses)},
        "values": values,
        "has_key": key is not None,
        "error": None,
    }
    ctx.update(extra)
    return ctx


@router.get("/batches/{batch_id}/gold-key")
@allow("admin")
def gold_key_redirect(
    batch_id: int,
    session: DbSession,
    _admin: AdminUser,
    item_id: Annotated[int, Query(ge=1, le=2**31 - 1)],
) -> Response:
    """The "enter an answer key for item N" form (a GET form cannot put N in the path)."""
    batch, _ = get_batch(session, batch_id)
    gold.check_in_batch(session, batch, item_id)
    return redirect(f"/batches/{batch.id}/gold/{item_id}")


@router.get("/batches/{batch_id}/gold/{item_id}")
@allow("admin")
def gold_item_page(
    request: Request, batch_id: int, item_id: int, session: DbSession, _admin: AdminUser
) -> Response:
    batch, project = get_batch(session, batch_id)
    ctx = _gold_item_context(session, batch, project, item_id)
    return render(request, "dashboard_gold_item.html", ctx)


@router.post("/batches/{batch_id}/gold/{item_id}")
@allow("admin")
def gold_item_form(
    request: Request,
    batch_id: int,
    item_id: int,
    session: DbSession,
    admin: AdminUser,
    form: PostedForm,
) -> Response:
    """Marks the item gold with the answer key entered on the page."""
    batch, project = get_batch(session, batch_id)
    gold.check_in_batch(session, batch, item_id)
    rows = session.execute(
        select(ItemResponse.id, ItemResponse.position)
        .where(ItemResponse.item_id == item_id)
        .order_by(ItemResponse.position)
    ).all()
    ids = [rid for rid, _ in rows]
    try:
        labels = disagreements.labels_from_form(form, project, ids)
        gold.mark_gold(session, batch, item_id, admin, gold.to_positions(labels, dict(rows)))
    except DomainError as exc:
        ctx = _gold_item_context(
            session, batch, project, item_id, error=exc.detail, values=_lenient_values(form, ids)
        )
        return render(request, "dashboard_gold_item.html", ctx, status_code=exc.status_code)
    notice = urlencode({"notice": f"Item {item_id} is gold with the answer key entered."})
    return redirect(f"/batches/{batch.id}/gold?{notice}")


@router.post("/batches/{batch_id}/gold/{item_id}/remove")
@allow("admin")
def unmark_gold_form(
    batch_id: int, item_id: int, session: DbSession, _admin: AdminUser
) -> Response:
    batch, _ = get_batch(session, batch_id)
    gold.unmark_gold(session, batch, item_id)
    notice = urlencode({"notice": f"Item {item_id} is an ordinary item again."})
    return redirect(f"/batches/{batch.id}/gold?{notice}")
