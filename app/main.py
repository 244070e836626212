"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from app import __version__
from app.auth import pages as auth_pages
from app.imports import router as imports_router
from app.items import router as items_router
from app.migrate import resource_path
from app.projects import pages as project_pages
from app.projects import router as projects_router
from app.web import home
from app.web.errors import install_error_handlers
from app.web.headers import SecurityHeaders


def create_app() -> FastAPI:
    app = FastAPI(
        title="safepref",
        version=__version__,
        description="Human preference data for LLM safety alignment (PKU-SafeRLHF schema).",
    )
    for module in (projects_router, imports_router, items_router):
        app.include_router(module.router)
    for module in (auth_pages, project_pages, home):
        app.include_router(module.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        return Response("ok", media_type="text/plain")

    app.mount("/static", StaticFiles(directory=str(resource_path("static"))), name="static")
    install_error_handlers(app)
    app.add_middleware(SecurityHeaders)
    return app


app = create_app()
