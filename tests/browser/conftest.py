"""Browser tests: the real app served by uvicorn, driven by headless Chromium (Playwright).

`live_server` runs `safepref demo` against a fresh migrated database of the current backend
and serves it from a uvicorn subprocess; `open_page` gives pages whose JavaScript dialogs,
page errors, console errors and Content-Security-Policy violations fail the test.
Screenshots go to artifacts/screenshots/ (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import make_engine
from tests.conftest import missing
from tests.support.axe import AxeWatch, axe_source
from tests.support.browserkit import ROOT, WIDE
from tests.support.live_server import app_server

CHROMIUM = os.environ.get("SAFEPREF_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@dataclass
class LiveServer:
    url: str
    backend: str
    database_url: str
    engine: Engine
    log_path: Path
    admin_token: str = ""
    demo_batch_id: int = 0
    demo_project_id: int = 0
    _client: httpx.Client | None = field(default=None, repr=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session on the server's database, committed on success."""
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            yield s

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A call to the JSON API as the demo admin (bearer token)."""
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.url,
                headers={"Authorization": f"Bearer {self.admin_token}"},
                timeout=30,
            )
        return self._client.request(method, path, **kwargs)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@pytest.fixture(scope="session")
def live_server(databases: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    from app.auth.models import User
    from app.auth.service import create_token
    from app.batches.models import Batch

    url = databases.new_url()
    env = {
        **os.environ,
        "SAFEPREF_DATABASE_URL": url,
        "SAFEPREF_SECRET_KEY": os.environ["SAFEPREF_SECRET_KEY"],
        "SAFEPREF_ENVIRONMENT": "development",
    }
    seeded = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert seeded.returncode == 0, seeded.stderr + seeded.stdout

    engine = make_engine(Settings(database_url=url))
    with Session(engine) as s, s.begin():
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        _, token = create_token(s, admin, "browser tests")
        batch = s.scalars(select(Batch).order_by(Batch.id)).first()
        assert batch is not None
        batch_id, project_id = batch.id, batch.project_id

    log_path = tmp_path_factory.mktemp("live") / "server.log"
    secret = os.environ["SAFEPREF_SECRET_KEY"]
    try:
        with app_server(url, workers=1, secret=secret, log_path=log_path) as base:
            server = LiveServer(
                url=base,
                backend=databases.backend,
                database_url=url,
                engine=engine,
                log_path=log_path,
                admin_token=token,
                demo_batch_id=batch_id,
                demo_project_id=project_id,
            )
            try:
                yield server
            finally:
                if server._client is not None:
                    server._client.close()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install -e '.[test]')")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        missing(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class PageGuard:
    """Collects what must never happen on our pages."""

    def __init__(self, allow_status: tuple[int, ...] = ()) -> None:
        self.problems: list[str] = []
        # HTTP errors the test provokes on purpose (Chromium logs each one as an error).
        self.allowed = tuple(
            f"the server responded with a status of {code} " for code in allow_status
        )

    def console(self, msg: Any) -> None:
        text = msg.text
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.problems.append(f"CSP violation: {text}")
        elif msg.type == "error" and not any(a in text for a in self.allowed):
            self.problems.append(f"console error: {text}")

    def dialog(self, dialog: Any) -> None:
        self.problems.append(f"JavaScript dialog ({dialog.type}): {dialog.message}")
        dialog.dismiss()

    def page_error(self, error: Any) -> None:
        self.problems.append(f"page error: {error}")

    def check(self) -> None:
        assert not self.problems, "\n".join(self.problems)


@dataclass
class OpenedPage:
    page: Any
    guard: PageGuard


@pytest.fixture(scope="session")
def axe_script() -> str:
    return axe_source()


@pytest.fixture
def open_page(
    browser: Any, live_server: LiveServer, axe_script: str
) -> Iterator[Callable[..., Any]]:
    """open_page(js=True, viewport=WIDE, allow_status=()) -> a page on the live server.

    axe-core runs on every page state (each load, each htmx swap, the last state): any
    accessibility violation fails the test, as a console error does."""
    opened: list[tuple[Any, PageGuard]] = []
    watches: list[tuple[Any, AxeWatch]] = []

    def factory(
        *,
        js: bool = True,
        viewport: dict[str, int] | None = None,
        allow_status: tuple[int, ...] = (),
    ) -> Any:
        context = browser.new_context(
            base_url=live_server.url,
            java_script_enabled=js,
            viewport=viewport or WIDE,
        )
        # A guard against a hang, not a speed target: a loaded machine can take seconds to
        # render a page, and a slow pass is still a pass.
        context.set_default_timeout(30_000)
        page = context.new_page()
        guard = PageGuard(allow_status)
        page.on("console", guard.console)
        page.on("dialog", guard.dialog)
        page.on("pageerror", guard.page_error)
        watch = AxeWatch(axe_script)
        watch.attach(page, js=js)
        opened.append((context, guard))
        watches.append((page, watch))
        return page

    yield factory
    try:
        for page, watch in watches:
            watch.final(page)  # the state the test left the page in
        for _, guard in opened:
            guard.check()
        problems = [p for _, watch in watches for p in watch.problems]
        assert not problems, "accessibility (axe-core):\n" + "\n".join(dict.fromkeys(problems))
    finally:
        for context, _ in opened:
            context.close()
