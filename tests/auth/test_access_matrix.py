"""The authorization matrix: every route of the app x every kind of caller, against its rule.

Built from the app's own route table, so a route added anywhere is covered the moment it is
registered; a route without a declared rule (app/auth/access.py) fails here. Each request runs
inside a savepoint that is rolled back, so one caller's writes never change another's answer.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import pytest
from fastapi import params
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import TypeAdapter
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.routing import Mount

from app.auth.access import RULES, Rule, route_table, undeclared
from app.core.cookies import PRESESSION_COOKIE, SESSION_COOKIE
from app.core.csrf import UNSAFE_METHODS
from app.core.csrf_tokens import token_for_cookies
from app.db import get_session
from app.main import create_app
from app.web.errors import MACHINE_PATHS
from tests.support.access_world import PATH_EXAMPLES, World, build_world, example_value

APP = create_app()
TABLE = route_table(APP)
PRINCIPALS = (
    "anonymous",
    "garbage",
    "revoked",
    "deactivated",
    "nonmember",
    "member",
    "reviewer",
    "admin",
)
UNAUTHENTICATED = frozenset({"anonymous", "garbage", "revoked", "deactivated"})
# A mount is requested at one file inside it.
MOUNT_EXAMPLES = {"/static": "/static/app.css"}
# Request bodies the schema-derived minimum cannot express, keyed "METHOD /path/template".
BODY_EXAMPLES: dict[str, dict[str, Any]] = {}


def machine(path: str) -> bool:
    """Called by programs with bearer tokens (the API, the metrics scraper), not browsers:
    JSON errors, 401 instead of a redirect to the login page."""
    return path.startswith("/api/") or path in MACHINE_PATHS


def expected(rule: Rule, principal: str) -> str:
    """allowed | login (401, or a redirect to /login for pages) | forbidden (403) | hidden (404)."""
    if rule == "public":
        return "any"
    if principal in UNAUTHENTICATED:
        return "login"
    if rule == "authenticated":
        return "allowed"
    if rule == "admin":
        return "allowed" if principal == "admin" else "forbidden"
    # `reviewer` is a member of batch B with the reviewer role: an annotator there (B's
    # routes let them in), owner of nothing, holder of the world's review.
    if rule == "reviewer":
        return "allowed" if principal in ("admin", "reviewer") else "forbidden"
    if rule == "review-holder":
        return "allowed" if principal == "reviewer" else "hidden"
    if rule == "member":
        return "hidden" if principal == "nonmember" else "allowed"
    if rule == "owner":
        return "allowed" if principal in ("admin", "member") else "hidden"
    if rule == "member-only":
        return "allowed" if principal in ("member", "reviewer") else "hidden"
    # owner-only: the object is member's; everyone else, admins too, gets 404.
    return "allowed" if principal == "member" else "hidden"


def outcome(status: int, location: str, page: bool) -> str:
    if status >= 500:
        return "server error"
    if page and status in (302, 303, 307) and location.startswith("/login"):
        return "login"
    if status == 401:
        return "login" if not page else "401 on a page (expected a redirect to /login)"
    if status == 403:
        return "forbidden"
    if status == 404:
        return "hidden"
    return "allowed"


def test_every_route_declares_an_access_rule() -> None:
    missing = undeclared(APP)
    assert not missing, (
        "routes without a declared access rule; add @allow(...) from app.auth.access "
        "(see README.md, 'Who may call each route'):\n  " + "\n  ".join(missing)
    )


def test_the_table_sees_every_kind_of_route() -> None:
    keys = {f"{m} {p}" for m, p, _, _ in TABLE}
    for key in ("POST /api/v1/users", "GET /login", "GET /openapi.json", "GET /static"):
        assert key in keys
    assert {r for _, _, r, _ in TABLE if r} <= set(RULES)


# --- request bodies from the schema ------------------------------------------------------


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = root.get("$defs", {})[name]
    return schema


def minimal(schema: dict[str, Any], root: dict[str, Any], world: World | None = None) -> Any:
    """The smallest value the schema accepts (required fields only).

    A field named like a path parameter (`username`, `project_id`...) gets the world's object,
    so that the request reaches the route's rule instead of failing on a missing object.
    """
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [_resolve(s, root) for s in schema[key]]
            usable = [s for s in options if s.get("type") != "null"] or options
            return minimal(usable[0], root, world)
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {
            name: _named(world, name)
            if _has_example(world, name)
            else minimal(props.get(name, {}), root, world)
            for name in schema.get("required", [])
        }
    if kind == "array":
        item = schema.get("items", {})
        return [minimal(item, root, world) for _ in range(schema.get("minItems", 0))]
    if kind == "string":
        return "x" * max(1, schema.get("minLength", 1))
    if kind in ("integer", "number"):
        return max(1, schema.get("minimum", 1))
    if kind == "boolean":
        return False
    return None


def _has_example(world: World | None, name: str) -> bool:
    return world is not None and name in PATH_EXAMPLES


def _named(world: World | None, name: str) -> Any:
    assert world is not None
    return PATH_EXAMPLES[name](world)


def _param_value(field: Any, world: World) -> Any:
    if _has_example(world, field.alias):
        return _named(world, field.alias)
    info = field.field_info
    if isinstance(info, params.File):
        return b'{"prompt": "p", "responses": ["a", "b"]}\n'
    annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    schema = TypeAdapter(annotation).json_schema()
    return minimal(schema, schema, world)


def body_kwargs(method: str, path: str, route: Any, world: World) -> dict[str, Any]:
    """A body that passes the route's own validation, so that its rule decides the answer."""
    key = f"{method} {path}"
    if key in BODY_EXAMPLES:
        return {"json": BODY_EXAMPLES[key]}
    if not isinstance(route.original_route, APIRoute):
        return {}
    fields = [f for f in route.dependant.body_params if f.field_info.is_required()]
    if not fields:
        return {}
    is_form = any(isinstance(f.field_info, params.Form) for f in fields)
    if not is_form:
        if len(route.dependant.body_params) == 1 and not fields[0].field_info.embed:
            return {"json": _param_value(fields[0], world)}
        return {"json": {f.alias: _param_value(f, world) for f in fields}}
    values = {f.alias: _param_value(f, world) for f in fields}
    files = {
        k: ("data.jsonl", v, "application/jsonl") for k, v in values.items() if isinstance(v, bytes)
    }
    data = {
        k: ("true" if v is True else "false" if v is False else str(v))
        for k, v in values.items()
        if not isinstance(v, bytes)
    }
    return {"data": data, "files": files} if files else {"data": data}


# --- the matrix --------------------------------------------------------------------------


@dataclass
class Matrix:
    client: TestClient
    world: World
    engine_conn: Any
    holder: dict[str, Session]

    def call(self, method: str, path: str, route: Any, principal: str) -> Any:
        url = MOUNT_EXAMPLES.get(path, path) if isinstance(route.original_route, Mount) else path
        query: dict[str, str] = {}
        if isinstance(route.original_route, APIRoute):
            for param in route.dependant.path_params:
                value = example_value(self.world, path, param.name)
                url = url.replace("{" + param.name + "}", str(value))
                url = url.replace("{" + param.name + ":path}", str(value))
            for param in route.dependant.query_params:
                if param.field_info.is_required():
                    with contextlib.suppress(LookupError):
                        query[param.alias] = str(example_value(self.world, path, param.name))
        api = machine(path)
        headers: dict[str, str] = {}
        cookies: dict[str, str] = {}
        if principal != "anonymous":
            if api:
                headers["Authorization"] = f"Bearer {self.world.tokens[principal]}"
            else:
                cookies[SESSION_COOKIE] = self.world.cookies[principal]
        if not api and method in UNSAFE_METHODS:
            # A real browser has the token of its cookie (the login page sets a pre-session one).
            cookies = cookies or {PRESESSION_COOKIE: "matrix"}
            headers["X-CSRF-Token"] = token_for_cookies(cookies)
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        kwargs = body_kwargs(method, path, route, self.world) if method in UNSAFE_METHODS else {}
        self.client.cookies.clear()
        # Each call in a savepoint of its own, rolled back: callers never see each other's work.
        savepoint = self.engine_conn.begin_nested()
        session = Session(
            bind=self.engine_conn, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        self.holder["session"] = session
        try:
            return self.client.request(
                method, url, params=query, headers=headers, follow_redirects=False, **kwargs
            )
        finally:
            session.close()
            savepoint.rollback()


@pytest.fixture(scope="module")
def matrix(engine: Engine) -> Iterator[Matrix]:
    """One world per backend: every request runs in a savepoint that is rolled back."""
    conn = engine.connect()
    outer = conn.begin()
    setup = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    world = build_world(setup)
    setup.commit()
    holder: dict[str, Session] = {}

    def session_override() -> Iterator[Session]:
        session = holder["session"]
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise

    APP.dependency_overrides[get_session] = session_override
    try:
        with TestClient(APP, raise_server_exceptions=False) as client:
            yield Matrix(client, world, conn, holder)
    finally:
        APP.dependency_overrides.clear()
        setup.close()
        outer.rollback()
        conn.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [(m, p) for m, p, _, _ in TABLE],
    ids=[f"{m} {p}" for m, p, _, _ in TABLE],
)
def test_route_access(method: str, path: str, matrix: Matrix) -> None:
    route = next(r for m, p, _, r in TABLE if (m, p) == (method, path))
    rule = next(rule for m, p, rule, _ in TABLE if (m, p) == (method, path))
    assert rule is not None, f"{method} {path} declares no access rule (app/auth/access.py)"
    page = not machine(path)
    wrong = []
    for principal in PRINCIPALS:
        response = matrix.call(method, path, route, principal)
        got = outcome(response.status_code, response.headers.get("location", ""), page)
        want = expected(rule, principal)
        if got == "server error" or (want != "any" and got != want):
            detail = response.text[:200].replace("\n", " ")
            wrong.append(
                f"  {principal:<12} expected {want:<9} got {response.status_code} ({got}) {detail}"
            )
    assert not wrong, (
        f"{method} {path} (rule {rule!r}):\n"
        + "\n".join(wrong)
        + "\n"
        + json.dumps({"hint": "see README.md, 'The authorization matrix'"})
    )
