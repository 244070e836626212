"""The access-rule declarations of app/auth/access.py on a small app of our own: the decorator,
the route table the authorization matrix walks, and what the OpenAPI document says about each
operation (who may call it, how it authenticates, which errors it can answer).

The matrix test checks the product's routes against their rules; these check the rules'
machinery itself, so that a table that silently lost a route or a method cannot pass it.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from app.auth.access import (
    DECLARED,
    ERROR_SCHEMA,
    RULES,
    _document_operation,
    allow,
    document_access,
    route_keys,
    route_table,
    rule_for,
    undeclared,
)

ERROR_REF = {"$ref": "#/components/schemas/Error"}


class Body(BaseModel):
    name: str


def build() -> FastAPI:
    app = FastAPI()
    router = APIRouter(prefix="/api/v1")

    @router.get("/open")
    @allow("public")
    def open_() -> dict[str, str]:
        return {}

    @router.post("/things")
    @allow("admin")
    def make(body: Body) -> dict[str, str]:
        return {}

    @router.api_route("/things/{thing_id}", methods=["GET", "DELETE"])
    @allow("owner")
    def thing(thing_id: int) -> dict[str, str]:
        return {}

    @router.put("/me")
    @allow("authenticated")
    def me(body: Body) -> dict[str, str]:
        return {}

    @router.get("/batches/{batch_id}/mine")
    @allow("member-only")
    def mine(batch_id: int) -> dict[str, str]:
        return {}

    @router.get("/secret", include_in_schema=False)
    @allow("authenticated")
    def secret() -> dict[str, str]:
        return {}

    @router.get("/forgotten")
    def forgotten() -> dict[str, str]:
        return {}

    app.include_router(router)
    app.mount("/static", StaticFiles(directory="static"), name="static")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {}

    document_access(app)
    return app


def test_allow_marks_the_endpoint_and_refuses_an_unknown_rule() -> None:
    def endpoint() -> None: ...

    assert allow("owner-only")(endpoint) is endpoint
    assert endpoint.__safepref_access__ == "owner-only"
    with pytest.raises(ValueError) as caught:
        allow("everyone")  # type: ignore[arg-type]
    assert str(caught.value) == (
        "unknown access rule 'everyone'; one of public, authenticated, admin, member, "
        "member-only, owner, owner-only, reviewer, review-holder"
    )
    assert RULES == (
        "public",
        "authenticated",
        "admin",
        "member",
        "member-only",
        "owner",
        "owner-only",
        "reviewer",
        "review-holder",
    )


def test_the_route_table_lists_each_method_with_its_rule_and_leaves_head_out() -> None:
    app = build()
    rows = {(method, path): rule for method, path, rule, _ in route_table(app)}
    assert {k: v for k, v in rows.items() if not k[1].startswith(("/docs", "/redoc"))} == {
        ("GET", "/openapi.json"): "public",
        ("GET", "/api/v1/open"): "public",
        ("POST", "/api/v1/things"): "admin",
        ("GET", "/api/v1/things/{thing_id}"): "owner",
        ("DELETE", "/api/v1/things/{thing_id}"): "owner",
        ("PUT", "/api/v1/me"): "authenticated",
        ("GET", "/api/v1/batches/{batch_id}/mine"): "member-only",
        ("GET", "/api/v1/secret"): "authenticated",
        ("GET", "/api/v1/forgotten"): None,
        ("GET", "/static"): "public",
        ("GET", "/healthz"): "public",
    }
    assert all(method != "HEAD" for method, _ in rows)
    # Methods of one route come in a stable (sorted) order.
    thing = [m for m, p, _, _ in route_table(app) if p == "/api/v1/things/{thing_id}"]
    assert thing == ["DELETE", "GET"]
    assert "GET /api/v1/forgotten" in undeclared(app)
    assert [k for k in undeclared(app) if not k.startswith(("GET /docs", "GET /redoc"))] == [
        "GET /api/v1/forgotten"
    ]


def test_a_declared_rule_comes_from_the_endpoint_before_the_table() -> None:
    class Route:
        path = "/healthz"

        @staticmethod
        @allow("admin")
        def endpoint() -> None: ...

    class Bare:
        path = "/healthz"

    assert rule_for(Route(), "GET") == "admin"
    assert rule_for(Bare(), "GET") == DECLARED["GET /healthz"] == "public"
    assert rule_for(Bare(), "POST") is None
    assert rule_for(object(), "GET") is None


def operation(schema: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    found: dict[str, Any] = schema["paths"][path][method]
    return found


def codes(op: dict[str, Any]) -> list[str]:
    return sorted(op["responses"])


# One endpoint serving GET and DELETE has one function name for two operations.
@pytest.mark.filterwarnings("ignore:Duplicate Operation ID")
def test_openapi_says_who_may_call_each_operation_and_how_it_can_fail() -> None:
    app = build()
    schema = app.openapi()
    assert schema["components"]["schemas"]["Error"] == ERROR_SCHEMA
    assert schema["components"]["securitySchemes"] == {
        "bearerAuth": {"type": "http", "scheme": "bearer"},
        "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "safepref_session"},
    }
    both = [{"bearerAuth": []}, {"cookieAuth": []}]

    public = operation(schema, "/api/v1/open", "get")
    assert public["x-access"] == "public" and "security" not in public
    assert codes(public) == ["200", "409", "default"]

    admin = operation(schema, "/api/v1/things", "post")
    assert admin["x-access"] == "admin" and admin["security"] == both
    assert codes(admin) == ["200", "401", "403", "408", "409", "413", "422", "default"]
    assert admin["responses"]["401"] == {
        "description": "Not authenticated (no, unknown, revoked or deactivated credentials)",
        "content": {"application/json": {"schema": ERROR_REF}},
    }
    assert admin["responses"]["403"]["description"] == (
        "Not allowed (admins only), or a cookie request without its CSRF token"
    )
    assert admin["responses"]["408"]["description"] == "The request body did not arrive in time"
    assert admin["responses"]["409"]["description"] == "Conflicts with the current state"
    assert admin["responses"]["413"]["description"] == (
        "The request body is larger than this route's limit (the message names it)"
    )
    assert admin["responses"]["default"] == {
        "description": "Any other error",
        "content": {"application/json": {"schema": ERROR_REF}},
    }
    # 422 is either FastAPI's list of problems or one of our sentences.
    invalid = admin["responses"]["422"]["content"]["application/json"]["schema"]
    assert invalid == {"anyOf": [{"$ref": "#/components/schemas/HTTPValidationError"}, ERROR_REF]}

    owner_get = operation(schema, "/api/v1/things/{thing_id}", "get")
    assert owner_get["x-access"] == "owner" and owner_get["security"] == both
    assert codes(owner_get) == ["200", "401", "404", "409", "422", "default"]
    assert owner_get["responses"]["404"]["description"] == (
        "No such object, or not one the caller may see"
    )
    owner_delete = operation(schema, "/api/v1/things/{thing_id}", "delete")
    assert codes(owner_delete) == ["200", "401", "403", "404", "409", "422", "default"]

    # Any signed-in caller: no 403 for reading, 403 (CSRF) for writing; no 404 without an id.
    me = operation(schema, "/api/v1/me", "put")
    assert codes(me) == ["200", "401", "403", "408", "409", "413", "422", "default"]
    mine = operation(schema, "/api/v1/batches/{batch_id}/mine", "get")
    assert mine["x-access"] == "member-only"
    assert codes(mine) == ["200", "401", "404", "409", "422", "default"]

    # Undeclared and hidden operations are left as they were.
    forgotten = operation(schema, "/api/v1/forgotten", "get")
    assert "x-access" not in forgotten and codes(forgotten) == ["200"]
    assert "/api/v1/secret" not in schema["paths"]
    # The document is built once.
    assert app.openapi() is schema


def test_a_member_rule_on_a_path_without_an_id_still_documents_404() -> None:
    app = FastAPI()

    @app.get("/api/v1/queue")
    @allow("member")
    def queue() -> dict[str, str]:
        return {}

    @app.get("/api/v1/list")
    @allow("authenticated")
    def listing() -> dict[str, str]:
        return {}

    document_access(app)
    schema = app.openapi()
    assert codes(operation(schema, "/api/v1/queue", "get")) == [
        "200",
        "401",
        "404",
        "409",
        "default",
    ]
    assert codes(operation(schema, "/api/v1/list", "get")) == ["200", "401", "409", "default"]


def test_which_errors_each_kind_of_rule_and_method_documents() -> None:
    app = FastAPI()

    def add(method: str, path: str, rule: Any) -> None:
        def endpoint() -> dict[str, str]:
            return {}

        endpoint.__name__ = f"{method}_{len(app.routes)}"
        app.add_api_route(path, allow(rule)(endpoint), methods=[method])

    add("GET", "/api/v1/report", "admin")
    add("POST", "/api/v1/ping", "public")
    add("POST", "/api/v1/notes", "authenticated")
    add("PATCH", "/api/v1/notes", "authenticated")
    add("DELETE", "/api/v1/notes", "authenticated")
    add("GET", "/api/v1/own", "owner")
    add("GET", "/api/v1/own-only", "owner-only")
    add("GET", "/api/v1/users/{username}", "authenticated")
    document_access(app)
    schema = app.openapi()
    expected = {
        ("/api/v1/report", "get"): ["200", "401", "403", "409", "default"],
        ("/api/v1/ping", "post"): ["200", "409", "default"],
        ("/api/v1/notes", "post"): ["200", "401", "403", "409", "default"],
        ("/api/v1/notes", "patch"): ["200", "401", "403", "409", "default"],
        ("/api/v1/notes", "delete"): ["200", "401", "403", "409", "default"],
        ("/api/v1/own", "get"): ["200", "401", "404", "409", "default"],
        ("/api/v1/own-only", "get"): ["200", "401", "404", "409", "default"],
        ("/api/v1/users/{username}", "get"): ["200", "401", "404", "409", "default"],
    }
    for (path, method), listed in expected.items():
        assert codes(operation(schema, path, method)) == listed, (path, method)


def test_an_operation_without_responses_or_error_content_is_documented_whole() -> None:
    bare: dict[str, Any] = {}
    _document_operation(bare, "public", "get", "/x")
    assert bare["x-access"] == "public"
    assert sorted(bare["responses"]) == ["409", "default"]
    plain_422: dict[str, Any] = {"responses": {"422": {"description": "Validation Error"}}}
    _document_operation(plain_422, "authenticated", "get", "/x")
    assert plain_422["responses"]["422"] == {
        "description": "Validation Error",
        "content": {"application/json": {"schema": {"anyOf": [ERROR_REF]}}},
    }
    no_schema: dict[str, Any] = {"responses": {"422": {"content": {}}}}
    _document_operation(no_schema, "authenticated", "get", "/x")
    assert no_schema["responses"]["422"]["content"] == {
        "application/json": {"schema": {"anyOf": [ERROR_REF]}}
    }


def test_a_route_without_methods_or_path_serves_nothing_and_has_no_rule() -> None:
    assert list(route_keys(object())) == []
    assert rule_for(object(), "GET") is None


def test_a_path_with_a_converter_is_documented_under_its_openapi_template() -> None:
    app = FastAPI()

    @app.get("/api/v1/files/{name:path}")
    @allow("admin")
    def file(name: str) -> dict[str, str]:
        return {}

    document_access(app)
    assert operation(app.openapi(), "/api/v1/files/{name}", "get")["x-access"] == "admin"
