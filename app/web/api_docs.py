"""`/docs`: Swagger UI for the API, from the pinned npm package (copied at install time).

The page runs under the site's own Content-Security-Policy, unrelaxed: Swagger UI's bundle
and stylesheet are same-origin files, its start-up code is a file too (static/swagger-init.js,
not an inline script), and the styles it sets while rendering go through the DOM's style
properties, which the policy's style-src does not govern (checked in Chromium with the console
watched for violations: tests/browser/test_browser_api_docs.py).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from app.auth.access import allow

router = APIRouter(include_in_schema=False)


PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>safepref API</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/static/vendor/swagger-ui/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="/openapi.json"></div>
  <noscript><p>Swagger UI needs JavaScript. The API description is at
    <a href="/openapi.json">/openapi.json</a>.</p></noscript>
  <script src="/static/vendor/swagger-ui/swagger-ui-bundle.js"></script>
  <script src="/static/swagger-init.js"></script>
</body>
</html>
"""


@router.get("/docs")
@allow("public")
def api_docs() -> HTMLResponse:
    return HTMLResponse(PAGE)
