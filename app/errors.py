"""Domain errors carry their HTTP status; one set of handlers turns them into responses."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status_code = 400

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(DomainError):
    status_code = 404


class Forbidden(DomainError):
    status_code = 403


class Unauthorized(DomainError):
    status_code = 401


class Conflict(DomainError):
    status_code = 409


class Invalid(DomainError):
    """The request is well-formed but its content breaks a rule (names the field)."""

    status_code = 422


class PayloadTooLarge(DomainError):
    status_code = 413


class RequestTimeout(DomainError):
    """The request (its body) did not arrive in time."""

    status_code = 408


class ImportRejected(Invalid):
    """A file that cannot be imported; names the line and field so it can be fixed."""

    def __init__(self, message: str, *, line: int | None = None, field: str | None = None):
        where = f"line {line}: " if line is not None else ""
        what = f"field {field!r}: " if field else ""
        super().__init__(f"{where}{what}{message}", line=line, field=field)
        self.line = line
        self.field = field
