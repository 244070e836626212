"""Who may call each route: one declared rule per (method, path template).

A rule is a promise that tests/auth/test_access_matrix.py checks against the running app for every
route and every kind of caller; a route without a rule fails that test. Declare it next to the
endpoint:

    @router.get("/api/v1/batches/{batch_id}/progress")
    @allow("member")
    def progress(...): ...

Routes that cannot carry the decorator (framework routes, mounts) are declared in `DECLARED`.
Enforcement stays in the endpoint's dependencies (`AdminUser`, `CurrentUser`, the checks below);
the rule is the specification those dependencies are tested against.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar, get_args

from fastapi import FastAPI
from fastapi.routing import RouteContext, iter_route_contexts
from starlette.routing import Mount

Rule = Literal[
    "public",  # anyone, logged in or not
    "authenticated",  # any active account
    "admin",  # admins; annotators get 403
    "member",  # admins, and annotators who are members of the batch in the path (others: 404)
    "member-only",  # members of the batch in the path, admins included only if members (404)
    "owner",  # admins, and the annotator who owns the object in the path (others: 404)
    "owner-only",  # the annotator who owns the object in the path; everyone else gets 404
    "reviewer",  # admins, and reviewers who are members of the batch in the path (other
    # reviewers: 404); annotators get 403
    "review-holder",  # the reviewer holding the review in the path; everyone else gets 404
]
RULES: tuple[str, ...] = get_args(Rule)

_ATTR = "__safepref_access__"
F = TypeVar("F", bound=Callable[..., Any])

# Routes without an endpoint function of ours, keyed "METHOD /path" (a mount: "GET /prefix").
DECLARED: dict[str, Rule] = {
    "GET /openapi.json": "public",
    "GET /healthz": "public",
    "GET /static": "public",
}


def allow(rule: Rule) -> Callable[[F], F]:
    """Declares who may call the decorated endpoint (put it above or below `@router.get`)."""
    if rule not in RULES:
        raise ValueError(f"unknown access rule {rule!r}; one of {', '.join(RULES)}")

    def mark(endpoint: F) -> F:
        setattr(endpoint, _ATTR, rule)
        return endpoint

    return mark


def route_keys(route: Any) -> Iterator[tuple[str, str]]:
    """(METHOD, path template) pairs served by a route; HEAD mirrors GET and is left out."""
    if isinstance(getattr(route, "original_route", route), Mount):
        yield "GET", route.path
        return
    for method in sorted(getattr(route, "methods", None) or ()):
        if method != "HEAD":
            yield method, route.path


def rule_for(route: Any, method: str) -> Rule | None:
    declared: Rule | None = getattr(getattr(route, "endpoint", None), _ATTR, None)
    if declared is not None:
        return declared
    return DECLARED.get(f"{method} {getattr(route, 'path', '')}")


def route_table(app: FastAPI) -> list[tuple[str, str, Rule | None, RouteContext]]:
    """Every (method, full path, rule, route) of the app, undeclared ones with rule None.

    Routes of included routers are seen with their prefixes (FastAPI's route contexts).
    """
    rows = []
    for route in iter_route_contexts(app.routes):
        for method, path in route_keys(route):
            rows.append((method, path, rule_for(route, method), route))
    return rows


def undeclared(app: FastAPI) -> list[str]:
    return [f"{method} {path}" for method, path, rule, _ in route_table(app) if rule is None]


# --- The OpenAPI document says who may call each operation and how it can fail. -----------

ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "properties": {"detail": {"title": "Detail"}},
    "required": ["detail"],
}
_WHY = {
    401: "Not authenticated (no, unknown, revoked or deactivated credentials)",
    403: "Not allowed (admins only), or a cookie request without its CSRF token",
    404: "No such object, or not one the caller may see",
    408: "The request body did not arrive in time",
    409: "Conflicts with the current state",
    413: "The request body is larger than this route's limit (the message names it)",
}


def _error(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Error"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _document_operation(operation: dict[str, Any], rule: Rule, method: str, path: str) -> None:
    operation["x-access"] = rule
    responses: dict[str, Any] = operation.setdefault("responses", {})
    codes: set[int] = {409}
    if rule != "public":
        codes |= {401}
        operation["security"] = [{"bearerAuth": []}, {"cookieAuth": []}]
    if rule == "admin" or (rule != "public" and method in {"post", "put", "patch", "delete"}):
        codes.add(403)
    if rule.startswith(("member", "owner")) or "{" in path:
        codes.add(404)
    if "requestBody" in operation:  # bodies are limited in size and time (app/web/bodies.py)
        codes |= {408, 413}
    for code in sorted(codes):
        responses.setdefault(str(code), _error(_WHY[code]))
    # Domain rules answer 422 with a sentence, validation with FastAPI's list: both shapes.
    invalid = responses.get("422")
    if invalid is not None:
        content = invalid.setdefault("content", {}).setdefault("application/json", {})
        original = content.get("schema")
        alternatives = [s for s in (original, {"$ref": "#/components/schemas/Error"}) if s]
        content["schema"] = {"anyOf": alternatives}
    responses.setdefault("default", _error("Any other error"))


def document_access(app: FastAPI) -> None:
    """Adds each operation's rule (`x-access`), auth schemes and error responses."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        components["securitySchemes"] = {
            "bearerAuth": {"type": "http", "scheme": "bearer"},
            "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "safepref_session"},
        }
        for method, path, rule, route in route_table(app):
            if rule is None or not getattr(route, "include_in_schema", False):
                continue
            template = getattr(route, "path_format", path)
            operation = schema.get("paths", {}).get(template, {}).get(method.lower())
            if operation is not None:
                _document_operation(operation, rule, method.lower(), path)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
