"""Password hashing, API token digests and signed session cookies."""

from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.config import ConfigurationError, get_settings

TOKEN_PREFIX = "sp_"


@lru_cache
def _hasher() -> PasswordHasher:
    settings = get_settings()
    if settings.password_hash_cost == "standard":
        return PasswordHasher()  # argon2id, RFC 9106 low-memory profile
    if settings.environment != "development":
        raise ConfigurationError("SAFEPREF_PASSWORD_HASH_COST=minimal is for tests only")
    # Tests only: the same algorithm at the lowest cost, so a suite can create many accounts.
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters than the current ones."""
    try:
        return _hasher().check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


@lru_cache
def dummy_hash() -> str:
    # Verifying against this when the username is unknown keeps login time the same either way.
    return hash_password(secrets.token_urlsafe(16))


def new_api_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="safepref-session")


def sign_session(secret: str, data: dict[str, Any]) -> str:
    return _serializer(secret).dumps(data)


def read_session(secret: str, cookie: str, max_age: int) -> dict[str, Any] | None:
    try:
        data = _serializer(secret).loads(cookie, max_age=max_age)
    except BadSignature:
        return None
    return data if isinstance(data, dict) else None
