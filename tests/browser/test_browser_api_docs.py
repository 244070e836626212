"""/docs in a real browser: Swagger UI from the pinned package renders the operations under
the site's strict Content-Security-Policy (no violation reported in the console), and
"Authorize" with a bearer token makes a call succeed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.web.headers import CSP
from tests.support.browserkit import screenshot

pytestmark = pytest.mark.browser


def test_docs_page_keeps_the_strict_policy(live_server: Any) -> None:
    docs = httpx.get(f"{live_server.url}/docs")
    assert docs.status_code == 200
    assert docs.headers["content-security-policy"] == CSP
    assert "unsafe-inline" not in CSP and "unsafe-eval" not in CSP
    assert "<script>" not in docs.text  # no inline script: the start-up code is a file
    for asset in ("/static/vendor/swagger-ui/swagger-ui-bundle.js", "/static/swagger-init.js"):
        assert httpx.get(f"{live_server.url}{asset}").status_code == 200


def test_swagger_ui_lists_operations_and_authorize_makes_a_call(
    open_page: Any, live_server: Any
) -> None:
    page = open_page()
    violations: list[str] = []
    page.on(
        "console", lambda m: violations.append(m.text) if "Content Security" in m.text else None
    )
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.goto("/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    assert page.locator(".opblock").count() > 20
    assert page.locator(".opblock-summary-path", has_text="/api/v1/projects").count() >= 1

    page.click("button.authorize")
    page.fill(".auth-container input[type=text]", live_server.admin_token)
    page.click(".auth-container button.authorize")
    page.click("button.btn-done")

    operation = page.locator("#operations-projects-list_projects_api_v1_projects_get")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for(timeout=20_000)
    assert status.inner_text().strip().startswith("200")
    body = operation.locator(".live-responses-table .microlight").first.inner_text()
    assert '"name"' in body
    assert violations == []
    assert missing == []
    screenshot(page, "api-docs", live_server.backend)
