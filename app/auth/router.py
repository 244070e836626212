"""Accounts and API tokens (admins), and the caller's own account."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.auth import service, throttle
from app.auth.access import allow
from app.auth.dependencies import AdminUser, CurrentUser
from app.auth.schemas import (
    PasswordChange,
    PasswordReset,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserCreate,
    UserOut,
)
from app.auth.sessions import set_session_cookie
from app.config import get_settings
from app.core.json_body import JSONRulesRoute
from app.db import DbSession

router = APIRouter(prefix="/api/v1", tags=["users"], route_class=JSONRulesRoute)
ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


@router.post("/users", status_code=201, response_model=UserOut)
@allow("admin")
def create_user(body: UserCreate, session: DbSession, _admin: AdminUser) -> UserOut:
    user = service.create_user(session, body.username, body.password, body.role)
    return UserOut.model_validate(user)


@router.get("/users", response_model=list[UserOut])
@allow("admin")
def list_users(session: DbSession, _admin: AdminUser) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in service.list_users(session)]


@router.get("/users/{username}", response_model=UserOut)
@allow("admin")
def get_user(username: str, session: DbSession, _admin: AdminUser) -> UserOut:
    return UserOut.model_validate(service.get_user(session, username))


@router.post("/users/{username}/deactivate", response_model=UserOut)
@allow("admin")
def deactivate_user(username: str, session: DbSession, admin: AdminUser) -> UserOut:
    user = service.get_user(session, username)
    service.deactivate_user(session, user, by=admin)
    return UserOut.model_validate(user)


@router.post("/users/{username}/reactivate", response_model=UserOut)
@allow("admin")
def reactivate_user(username: str, session: DbSession, _admin: AdminUser) -> UserOut:
    user = service.get_user(session, username)
    service.reactivate_user(session, user)
    return UserOut.model_validate(user)


@router.put("/users/{username}/password", status_code=204)
@allow("admin")
def reset_password(
    username: str, body: PasswordReset, session: DbSession, _admin: AdminUser
) -> Response:
    service.set_password(session, service.get_user(session, username), body.password)
    return Response(status_code=204)


@router.post("/users/{username}/tokens", status_code=201, response_model=TokenCreated)
@allow("admin")
def create_token(
    username: str, session: DbSession, _admin: AdminUser, body: TokenCreate | None = None
) -> TokenCreated:
    user = service.get_user(session, username)
    token, plain = service.create_token(session, user, body.name if body else "")
    out = TokenOut.model_validate(token)
    return TokenCreated(**out.model_dump(), token=plain)


@router.get("/users/{username}/tokens", response_model=list[TokenOut])
@allow("admin")
def list_tokens(username: str, session: DbSession, _admin: AdminUser) -> list[TokenOut]:
    user = service.get_user(session, username)
    return [TokenOut.model_validate(t) for t in service.list_tokens(session, user)]


@router.delete("/users/{username}/tokens/{token_id}", status_code=204)
@allow("admin")
def revoke_token(username: str, token_id: int, session: DbSession, _admin: AdminUser) -> Response:
    user = service.get_user(session, username)
    service.revoke_token(session, service.get_token(session, user, token_id))
    return Response(status_code=204)


@router.get("/me", response_model=UserOut)
@allow("authenticated")
def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)


@router.put(
    "/me/password",
    status_code=204,
    responses={429: {"description": "Too many failed attempts (see Retry-After)", **ERROR}},
)
@allow("authenticated")
def change_password(
    request: Request, body: PasswordChange, session: DbSession, user: CurrentUser
) -> Response:
    settings = get_settings()
    client = throttle.client_address(request)
    wait = throttle.retry_after(session, settings, user.username, client)
    if wait is not None:
        detail = "too many failed attempts"
        return JSONResponse({"detail": detail}, status_code=429, headers={"Retry-After": str(wait)})
    try:
        service.change_own_password(session, user, body.current_password, body.new_password)
    except service.WrongPassword as exc:
        # Answered here rather than raised, so that the recorded failure is committed.
        throttle.record_failure(session, settings, user.username, client)
        return JSONResponse({"detail": exc.detail}, status_code=422)
    response = Response(status_code=204)
    if getattr(request.state, "auth_via", None) == "cookie":
        # The old cookie died with the version bump; this browser keeps its session.
        set_session_cookie(response, user)
    return response
