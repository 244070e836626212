"""The one settings class. Everything configurable comes from SAFEPREF_* variables."""

from __future__ import annotations

import ipaddress
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.files import open_private

PLACEHOLDER_SECRETS = frozenset({"", "changethis", "change-me", "secret", "dev"})


class ConfigurationError(RuntimeError):
    """Settings that cannot run the product; the message says what to set."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SAFEPREF_", extra="ignore")

    # A SQLite file in the working directory is the embedded default.
    database_url: str = "sqlite:///./safepref.db"
    environment: Literal["development", "production"] = "development"
    secret_key: str | None = None
    cookie_secure: bool = False
    session_max_age_seconds: int = 14 * 24 * 3600

    # Hostile-input limits: a field or a line larger than this is refused, naming the line.
    max_field_bytes: int = 1024 * 1024
    max_line_bytes: int = 8 * 1024 * 1024
    max_upload_bytes: int = Field(default=2 * 1024 * 1024 * 1024, ge=1)
    import_chunk_size: int = 1000
    # Any other request body (JSON, forms): refused with 413 past this many bytes, before it
    # is read (app/web/bodies.py). Uploads (imports) have `max_upload_bytes` instead.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    # A body (other than an upload) must have arrived whole within this many seconds, and an
    # upload must never pause longer than this between two chunks; else 408.
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    # /healthz answers 503 when requests have waited at the request gate (app/web/gate.py)
    # this long without any being let in: the process answers but serves nothing.
    gate_stall_seconds: float = Field(default=30.0, gt=0)

    # Also the number of worker threads per process (app/main.py): a request never waits for
    # a connection that a thread could not use, and none is opened and closed per request.
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = 10
    # PostgreSQL only: connections of the queue's hot path (next and submit), which runs in
    # the event loop on a pool of its own (app/queue/postgres.py, HotPool).
    db_hot_pool_size: int = Field(default=10, ge=1)
    db_connect_timeout_seconds: int = 3
    # Statement timeout on PostgreSQL so that a stuck query fails instead of hanging a worker.
    db_statement_timeout_ms: int = 30_000
    # The same for computations in background threads (dashboard snapshots, the disagreement
    # list): no request waits on them, and on a batch of a million annotations they read every
    # annotation, which takes longer than a request may.
    db_background_statement_timeout_ms: int = Field(default=600_000, ge=1)

    # "minimal" (development only) makes argon2 cheap so that test suites stay fast.
    password_hash_cost: Literal["standard", "minimal"] = "standard"
    # Login throttle (app/auth/throttle.py), within the window: this many failures lock an
    # (address, username) pair, and put a username "under attack"; the address as a whole
    # is locked only at the much higher limit, since behind a proxy or an office NAT a
    # whole team shares one address.
    login_max_failures: int = Field(default=10, ge=1)
    login_address_max_failures: int = Field(default=100, ge=1)
    login_window_seconds: int = Field(default=15 * 60, ge=1)

    # Crowd entry links (app/crowd/service.py): at most this many new participant accounts
    # per client address within the window; returning participants are never limited.
    entry_max_accounts_per_address: int = Field(default=50, ge=1)
    entry_window_seconds: int = Field(default=3600, ge=1)

    # Where pg_dump and pg_restore are (`safepref backup` / `restore`); default: the PATH,
    # then /usr/lib/postgresql/N/bin.
    pg_bin_dir: str | None = None

    # One JSON line per request on standard error (errors are logged either way).
    request_log: bool = True

    # Comma-separated addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For
    # (and X-Forwarded-Proto) is believed; from any other peer those headers are ignored.
    trusted_proxies: str = ""

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        for entry in _entries(value):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"SAFEPREF_TRUSTED_PROXIES: {entry!r} is neither an address nor a network"
                ) from None
        return value

    @property
    def trusted_proxy_list(self) -> list[str]:
        """Normalised (10.1.2.3/8 -> 10.0.0.0/8): uvicorn's middleware would take an entry it
        cannot parse for a literal host name and silently trust nothing."""
        return [
            str(ipaddress.ip_network(e, strict=False)) if "/" in e else str(ipaddress.ip_address(e))
            for e in _entries(self.trusted_proxies)
        ]

    @model_validator(mode="after")
    def _normalise_url(self) -> Settings:
        # Accept the bare postgresql:// scheme and pin the psycopg 3 driver.
        for prefix in ("postgresql://", "postgres://"):
            if self.database_url.startswith(prefix):
                self.database_url = "postgresql+psycopg://" + self.database_url[len(prefix) :]
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        raw = self.database_url.split("///", 1)[1] if "///" in self.database_url else ""
        if not raw or raw == ":memory:":
            return None
        return Path(raw)

    def resolved_secret_key(self) -> str:
        """The signing key; the embedded default keeps a generated one beside its database."""
        if self.secret_key and self.secret_key not in PLACEHOLDER_SECRETS:
            return self.secret_key
        if self.environment != "development":
            raise ConfigurationError(
                "SAFEPREF_SECRET_KEY must be set to a long random value outside development "
                '(for example: python -c "import secrets; print(secrets.token_urlsafe(48))")'
            )
        db_path = self.sqlite_path
        key_file = (
            db_path.with_name(db_path.name + ".secret") if db_path else Path(".safepref-secret")
        )
        if key_file.exists():
            return key_file.read_text().strip()
        key = secrets.token_urlsafe(48)
        key_file.parent.mkdir(parents=True, exist_ok=True)
        with open_private(key_file) as out:
            out.write((key + "\n").encode())
        return key


def _entries(value: str) -> list[str]:
    return [entry.strip() for entry in value.split(",") if entry.strip()]


@lru_cache
def get_settings() -> Settings:
    return Settings()
