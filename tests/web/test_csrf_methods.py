"""CSRF on every unsafe method of every route, and headers that must not exempt a cookie.

The methods are this file's own list, never the product's: if the product's list lost PUT,
these tests would still send PUT and see it pass without a token. The routes come from the
app's route table, so a route added anywhere is covered as soon as it is registered.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.routing import Mount

from app.auth.models import User
from app.batches.models import Batch, BatchMember
from app.core.cookies import PRESESSION_COOKIE, SESSION_COOKIE
from app.core.csrf_tokens import token_for_cookies
from tests.support.access_world import PASSWORD, World, build_world, example_value, password_hash

# Every method that changes state, by HTTP's definition; kept here on purpose (see above).
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
REFUSAL = "CSRF token missing or invalid"
# Authorization headers that carry no bearer token: a cookie request with one is still a
# cookie request and needs its CSRF token.
NOT_BEARER = (
    "Bearer",
    "Bearer ",
    "Bearer    ",
    "bearer \t ",
    "Basic dXNlcjpwYXNzd29yZA==",
    "Token abc",
    "",
)
# A mount is requested at one file inside it.
MOUNT_EXAMPLES = {"/static": "/static/app.css"}


def served_paths(app: FastAPI) -> list[tuple[str, frozenset[str]]]:
    """(path template, unsafe methods it serves) for every route of the app, mounts included.

    Included routers are walked with their prefixes (FastAPI keeps them nested in app.routes).
    """
    found: dict[str, set[str]] = {}
    for route in iter_route_contexts(app.routes):
        path = route.path
        if isinstance(route.original_route, Mount):
            found.setdefault(MOUNT_EXAMPLES.get(path, path + "/x"), set())
            continue
        methods = {m.upper() for m in getattr(route, "methods", None) or ()}
        found.setdefault(path, set()).update(methods & set(UNSAFE))
    return sorted((path, frozenset(methods)) for path, methods in found.items())


def concrete(world: World, template: str) -> str:
    """The template with each `{param}` (or `{param:path}`) replaced by a world object."""
    url = template
    while "{" in url:
        start, end = url.index("{"), url.index("}")
        name = url[start + 1 : end].split(":")[0]
        try:
            value = example_value(world, template, name)
        except LookupError:
            value = 1  # the middleware answers before routing: any value reaches it
        url = url[:start] + str(value) + url[end + 1 :]
    return url


def refused(response: Any) -> bool:
    return response.status_code == 403 and REFUSAL in response.text


@pytest.fixture
def world(db: Session) -> World:
    built = build_world(db)
    db.commit()
    return built


def cookie_client(app: FastAPI, cookie: str) -> TestClient:
    client = TestClient(app, raise_server_exceptions=False)
    client.cookies.set(SESSION_COOKIE, cookie)
    return client


def test_the_route_table_has_routes_with_each_unsafe_method(app: FastAPI) -> None:
    # Guards the sweep below against an empty or partial table (a routing change, say).
    served = set().union(*(methods for _, methods in served_paths(app)))
    assert served == set(UNSAFE)
    paths = [path for path, _ in served_paths(app)]
    assert "/api/v1/me/password" in paths and "/login" in paths and "/static/app.css" in paths


def test_every_unsafe_method_of_every_route_needs_the_token_with_a_cookie(
    app: FastAPI, world: World
) -> None:
    """A cookie request without the token is refused (403) for every route and unsafe method,
    served or not: the check runs before routing. With the token, a served method gets past it."""
    browser = cookie_client(app, world.cookies["admin"])
    wrong: list[str] = []
    for template, _ in served_paths(app):
        url = concrete(world, template)
        for method in UNSAFE:
            response = browser.request(method, url, follow_redirects=False)
            if not refused(response):
                wrong.append(f"{method} {template}: {response.status_code} without the token")
    for template, methods in served_paths(app):
        url = concrete(world, template)
        for method in sorted(methods):
            token = token_for_cookies({SESSION_COOKIE: world.cookies["admin"]})
            response = browser.request(
                method, url, headers={"X-CSRF-Token": token}, follow_redirects=False
            )
            if refused(response):
                wrong.append(f"{method} {template}: refused although it carries the token")
    assert not wrong, "\n".join(wrong)


def test_login_form_post_without_the_token_is_refused_for_every_method(app: FastAPI) -> None:
    # Before login there is no session cookie: the login path is protected on its own.
    client = TestClient(app, raise_server_exceptions=False)
    client.cookies.set(PRESESSION_COOKIE, "pre")
    for method in UNSAFE:
        assert refused(client.request(method, "/login")), method


# --- the requests an attacker's page could make, and their effect -------------------------


def _password_matches(db: Session, user_id: int) -> bool:
    from app.auth.security import verify_password

    db.expire_all()
    user = db.get(User, user_id)
    assert user is not None
    return verify_password(user.password_hash, PASSWORD)


def _batch_name(db: Session, batch_id: int) -> str:
    db.expire_all()
    return db.execute(select(Batch.name).where(Batch.id == batch_id)).scalar_one()


def _is_member(db: Session, batch_id: int, user_id: int) -> bool:
    db.expire_all()
    found = db.execute(
        select(BatchMember).where(BatchMember.batch_id == batch_id, BatchMember.user_id == user_id)
    ).first()
    return found is not None


@pytest.mark.parametrize("authorization", [None, *NOT_BEARER])
def test_cookie_put_patch_delete_without_the_token_change_nothing(
    app: FastAPI, db: Session, world: World, authorization: str | None
) -> None:
    """The three writes that had no CSRF test: each is refused and leaves the data as it was,
    with no Authorization header or with one that carries no bearer token."""
    assert world.admin.password_hash == password_hash()
    browser = cookie_client(app, world.cookies["admin"])
    headers = {} if authorization is None else {"Authorization": authorization}
    batch, member = world.batch, world.member

    put = browser.put(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "taken-over-" + uuid.uuid4().hex},
        headers=headers,
    )
    patch = browser.patch(f"/api/v1/batches/{batch.id}", json={"name": "hijacked"}, headers=headers)
    delete = browser.delete(
        f"/api/v1/batches/{batch.id}/members/{member.username}", headers=headers
    )
    for name, response in (("PUT", put), ("PATCH", patch), ("DELETE", delete)):
        assert refused(response), f"{name}: {response.status_code} {response.text[:200]}"
        assert response.json() == {"detail": REFUSAL + ": reload the page and try again"}
    assert _password_matches(db, world.admin.id)
    assert _batch_name(db, batch.id) == "B"
    assert _is_member(db, batch.id, member.id)

    # The same requests with the token go through: the refusal above was the CSRF check's.
    token = {**headers, "X-CSRF-Token": token_for_cookies({SESSION_COOKIE: world.cookies["admin"]})}
    patched = browser.patch(f"/api/v1/batches/{batch.id}", json={"name": "renamed"}, headers=token)
    assert patched.status_code == 200, patched.text
    removed = browser.delete(f"/api/v1/batches/{batch.id}/members/{member.username}", headers=token)
    assert removed.status_code == 204, removed.text
    new_password = "changed-" + uuid.uuid4().hex
    changed = browser.put(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=token,
    )
    assert changed.status_code == 204, changed.text
    assert _batch_name(db, batch.id) == "renamed"
    assert not _is_member(db, batch.id, member.id)
    assert not _password_matches(db, world.admin.id)


def test_a_bogus_bearer_token_never_falls_back_to_the_cookie(
    app: FastAPI, db: Session, world: World
) -> None:
    """A non-empty bearer token skips the CSRF check, so it alone must decide who is calling:
    with an unknown token the request is unauthenticated even though a valid cookie is sent."""
    browser = cookie_client(app, world.cookies["admin"])
    headers = {"Authorization": "Bearer sp_" + uuid.uuid4().hex}
    response = browser.patch(
        f"/api/v1/batches/{world.batch.id}", json={"name": "hijacked"}, headers=headers
    )
    assert response.status_code == 401, response.text
    assert _batch_name(db, world.batch.id) == "B"
    # The admin's real token is accepted without a CSRF token (no browser adds it cross-site).
    headers = {"Authorization": f"Bearer {world.tokens['admin']}"}
    ok = browser.patch(f"/api/v1/batches/{world.batch.id}", json={"name": "ok"}, headers=headers)
    assert ok.status_code == 200, ok.text


def test_page_forms_refuse_every_unsafe_method_without_the_token(
    app: FastAPI, world: World
) -> None:
    # Pages answer with the HTML error page (and an htmx fragment for htmx calls).
    browser = cookie_client(app, world.cookies["admin"])
    for method in UNSAFE:
        page = browser.request(method, f"/batches/{world.batch.id}", follow_redirects=False)
        assert refused(page) and page.headers["content-type"].startswith("text/html"), method
        fragment = browser.request(
            method, f"/batches/{world.batch.id}", headers={"HX-Request": "true"}
        )
        assert refused(fragment) and "<html" not in fragment.text.lower(), method
