"""Accounts in bulk from a CSV file (`safepref create-users`, the users page's upload).

The file has a header row naming its columns: `username` and `role`, and optionally
`password`; a row without a password gets a generated one, returned once to be handed over
and stored only hashed. Everything is checked before anything is written, and an error names
the line: a file is created whole or not at all.
"""

from __future__ import annotations

import csv
import io
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import ROLES, User
from app.auth.security import hash_password
from app.auth.service import USERNAME_RE, add_users, validate_password
from app.errors import DomainError, ImportRejected

COLUMNS = ("username", "role", "password")
REQUIRED = ("username", "role")
MAX_ACCOUNTS = 5000
CHECK_CHUNK = 500


@dataclass(frozen=True)
class AccountRow:
    line: int
    username: str
    role: str
    password: str
    generated: bool


def generated_password() -> str:
    # 16 URL-safe characters: about 96 bits, easy to copy from a page or a terminal.
    return secrets.token_urlsafe(12)


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportRejected("not UTF-8 text", line=line) from None


def _header(row: list[str], line: int) -> list[str]:
    names = [name.strip().lower() for name in row]
    for name in names:
        if name not in COLUMNS:
            raise ImportRejected(
                f"unknown column {name!r} in the header; the columns are "
                "username, role and optionally password",
                line=line,
            )
    for name in REQUIRED:
        if name not in names:
            raise ImportRejected(
                f"the header row must name the column {name!r} "
                "(columns: username, role, optionally password)",
                line=line,
            )
    if len(set(names)) != len(names):
        raise ImportRejected("a column is named twice in the header", line=line)
    return names


def parse_accounts(data: bytes) -> list[AccountRow]:
    """The file's accounts, checked among themselves (not yet against the database)."""
    reader = csv.reader(io.StringIO(_text(data), newline=""), strict=True)
    header: list[str] | None = None
    rows: list[AccountRow] = []
    seen: dict[str, int] = {}
    try:
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields):
                continue  # blank lines are allowed anywhere
            if header is None:
                header = _header(fields, line)
                continue
            if len(fields) != len(header):
                raise ImportRejected(
                    f"expected {len(header)} fields ({', '.join(header)}), found {len(fields)}",
                    line=line,
                )
            if len(rows) >= MAX_ACCOUNTS:
                raise ImportRejected(f"at most {MAX_ACCOUNTS} accounts per file", line=line)
            rows.append(_row(dict(zip(header, fields, strict=True)), line, seen))
    except csv.Error as exc:
        raise ImportRejected(f"malformed CSV: {exc}", line=reader.line_num) from None
    if header is None:
        raise ImportRejected("the file is empty: it needs a header row and one row per account")
    if not rows:
        raise ImportRejected("no accounts: the file has a header row only")
    return rows


def _row(values: dict[str, str], line: int, seen: dict[str, int]) -> AccountRow:
    username = values["username"].strip()
    if not USERNAME_RE.match(username):
        raise ImportRejected(
            f"{username!r} is not a valid username: 1-64 characters from letters, digits "
            "and _ . @ -",
            line=line,
            field="username",
        )
    if username in seen:
        raise ImportRejected(
            f"{username!r} is already on line {seen[username]}", line=line, field="username"
        )
    seen[username] = line
    role = values["role"].strip().lower()
    if role not in ROLES:
        raise ImportRejected(
            f"unknown role {values['role'].strip()!r}; one of {', '.join(ROLES)}",
            line=line,
            field="role",
        )
    password = values.get("password", "")
    if password:
        try:
            validate_password(password)
        except DomainError as exc:
            detail = exc.detail.removeprefix("password: ")
            raise ImportRejected(detail, line=line, field="password") from None
        return AccountRow(line, username, role, password, generated=False)
    return AccountRow(line, username, role, generated_password(), generated=True)


def create_accounts(session: Session, data: bytes) -> list[AccountRow]:
    """Creates every account of the file, or none (the first problem is raised, by line)."""
    rows = parse_accounts(data)
    taken: set[str] = set()
    names = [row.username for row in rows]
    for start in range(0, len(names), CHECK_CHUNK):
        part = names[start : start + CHECK_CHUNK]
        taken.update(session.scalars(select(User.username).where(User.username.in_(part))))
    for row in rows:
        if row.username in taken:
            raise ImportRejected(
                f"user {row.username!r} already exists", line=row.line, field="username"
            )
    users = [
        User(username=row.username, role=row.role, password_hash=hash_password(row.password))
        for row in rows
    ]
    add_users(session, users)
    return rows
