"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from anyio import to_thread
from fastapi import APIRouter, FastAPI
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.routing import BaseRoute

from app import __version__
from app.annotations import pages as annotation_pages
from app.annotations import router as annotations_router
from app.auth import pages as auth_pages
from app.auth import router as auth_router
from app.auth import setup_pages
from app.auth.access import document_access
from app.batches import pages as batch_pages
from app.batches import router as batches_router
from app.config import get_settings
from app.consensus import router as consensus_router
from app.core.csrf import CSRFMiddleware
from app.core.proxies import install_trusted_proxies
from app.crowd import pages as crowd_pages
from app.dashboard import pages as dashboard_pages
from app.dashboard import router as dashboard_router
from app.db import get_engine
from app.exports import pages as export_pages
from app.exports import router as exports_router
from app.imports import pages as import_pages
from app.imports import router as imports_router
from app.invites import pages as invite_pages
from app.invites import router as invites_router
from app.items import router as items_router
from app.migrate import resource_path
from app.ops import health as ops_health
from app.ops import metrics as ops_metrics
from app.ops.observe import RequestObserver, configure_request_log
from app.projects import pages as project_pages
from app.projects import router as projects_router
from app.qualification import pages as qualification_pages
from app.qualification import router as qualification_router
from app.queue.postgres import HotPool
from app.reviews import pages as review_pages
from app.reviews import router as reviews_router
from app.suggestions import router as suggestions_router
from app.web import api_docs, home
from app.web.bodies import BodyLimits
from app.web.errors import install_error_handlers
from app.web.gate import Gate, RequestGate
from app.web.gate import report as gate_report
from app.web.headers import SecurityHeaders


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # One worker thread per pooled connection, and as many requests inside the app at once
    # (app/web/gate.py). With more threads than connections, requests beyond the pool would
    # take overflow connections, and PostgreSQL forks a backend for each (about 13 ms of its
    # CPU each time: the largest cost of the queue under load before this).
    settings = get_settings()
    to_thread.current_default_thread_limiter().total_tokens = settings.db_pool_size
    app.state.request_gate = Gate(settings.db_pool_size, settings.gate_stall_seconds)
    hot = None if settings.is_sqlite else HotPool(settings)
    app.state.hot_pool = hot
    configure_request_log(settings.request_log)
    app.state.observe_pools = partial(ops_metrics.observe_pools, get_engine().pool, hot)
    try:
        yield
    finally:
        if hot is not None:
            await hot.close()


# The queue's API routes (method, path template), tried first in their routers.
HOT_ROUTES = frozenset(
    {
        ("POST", "/api/v1/batches/{batch_id}/next"),
        ("PUT", "/api/v1/assignments/{assignment_id}/annotation"),
    }
)


def _hot_first(router: APIRouter) -> APIRouter:
    """The router with its hot routes moved first (a stable sort: the others keep their
    order; no two routes share a method and path, so none shadows another)."""

    def cold(route: BaseRoute) -> bool:
        path = getattr(route, "path", "")
        return not any((m, path) in HOT_ROUTES for m in getattr(route, "methods", None) or ())

    router.routes.sort(key=cold)
    return router


def create_app() -> FastAPI:
    app = FastAPI(
        lifespan=lifespan,
        title="safepref",
        version=__version__,
        description="Human preference data for LLM safety alignment (PKU-SafeRLHF schema).",
        # FastAPI's own Swagger UI and ReDoc pages load scripts from a CDN and run inline
        # script; /docs is served by app/web/api_docs.py from the pinned npm package instead.
        docs_url=None,
        redoc_url=None,
    )
    # The queue's routers first, the submit's (3 routes) before next's (a dozen), and in each
    # the hot route first: a request is matched against the routes in order, twice (once to
    # pick the included router, once inside it), and next and submit are most of the traffic.
    app.include_router(_hot_first(annotations_router.router))
    app.include_router(_hot_first(batches_router.router))
    for module in (projects_router, imports_router, items_router):
        app.include_router(module.router)
    app.include_router(consensus_router.router)
    app.include_router(suggestions_router.router)
    app.include_router(exports_router.router)
    app.include_router(reviews_router.router)
    app.include_router(review_pages.router)
    app.include_router(auth_router.router)
    app.include_router(invites_router.router)
    # The full annotation page; included first, so it serves /assignments/{id} (issue 5).
    app.include_router(annotation_pages.router)
    app.include_router(batch_pages.router)
    # Admin dashboard, overview, disagreements and gold items (issue 7).
    app.include_router(dashboard_router.router)
    app.include_router(dashboard_pages.router)
    app.include_router(qualification_router.router)
    app.include_router(qualification_pages.router)
    for module in (auth_pages, setup_pages, project_pages, import_pages, export_pages, home):
        app.include_router(module.router)
    # Invitation links and crowd entry (issue 14).
    app.include_router(invite_pages.router)
    app.include_router(crowd_pages.router)
    app.include_router(api_docs.router)
    app.include_router(ops_health.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        # In the event loop: it answers even when every worker thread is busy. "ok" means the
        # process serves requests; 503 when requests wait at the gate and none has gone in or
        # out for a while (app/web/gate.py). The database is not asked.
        gate = gate_report(app)
        if gate is not None and gate.stalled:
            detail = (
                f"stalled: {gate.waiting} requests waiting, all {gate.size} slots taken, "
                f"none freed for {gate.idle_seconds:.0f} s"
            )
            return Response(detail, status_code=503, media_type="text/plain")
        return Response("ok", media_type="text/plain")

    app.mount("/static", StaticFiles(directory=str(resource_path("static"))), name="static")
    install_error_handlers(app)
    document_access(app)
    app.add_middleware(RequestGate)
    app.add_middleware(CSRFMiddleware)
    # Outside the gate and CSRF: a body is limited, and read (in time) before either sees it.
    app.add_middleware(BodyLimits)
    # Outside those, so that their refusals and waits are logged and measured.
    app.add_middleware(RequestObserver)
    # Added late, so outside the others: its headers reach every response, CSRF refusals
    # included.
    app.add_middleware(SecurityHeaders)
    install_trusted_proxies(app, get_settings())
    return app


app = create_app()
