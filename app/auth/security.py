"""Password hashing, API token digests and signed session cookies."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer

_hasher = PasswordHasher()
TOKEN_PREFIX = "sp_"
SESSION_COOKIE = "safepref_session"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Verifying against this when the username is unknown keeps login time the same either way.
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


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
