"""Login throttling from the login_failures table (shared by every server process).

Within the window (15 minutes), with the limit L (10) and the address limit A (100):

1. A username with L failures from all addresses together is "under attack": from then on an
   address that has already failed for that username is locked for it. This covers one
   person's typos (L failures of one address and username lock that pair, and nobody else)
   and a distributed attack (each address gets one guess per window), while the real user,
   from an address that has not failed, can still log in. Locking the username itself would
   let anyone lock anyone out.
2. An address with A failures, whatever the usernames, is locked: one machine cannot spray
   many accounts. A is far above L because behind a reverse proxy or an office NAT a whole
   team shares one address (the address is the client's, app/web/proxies.py).

Guessing the current password on the change-password form or API counts the same way, so a
borrowed session cannot be used to find the password either.

A locked attempt is refused before the password is checked (no oracle) and is not recorded, so
hammering does not extend the lock. A successful login clears its own (username, address)
failures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from app.auth.models import LoginFailure
from app.config import Settings
from app.core.proxies import client_address
from app.db import utcnow

__all__ = ["clear_failures", "client_address", "record_failure", "retry_after"]


def _nth_newest(session: Session, where: Sequence[ColumnElement[bool]], n: int) -> datetime | None:
    """created_at of the n-th most recent failure matching `where` (None if fewer)."""
    return session.scalar(
        select(LoginFailure.created_at)
        .where(*where)
        .order_by(LoginFailure.created_at.desc())
        .offset(n - 1)
        .limit(1)
    )


def retry_after(session: Session, settings: Settings, username: str, client: str) -> int | None:
    """Seconds until this (username, address) may try again, or None when not locked."""
    window = timedelta(seconds=settings.login_window_seconds)
    limit = settings.login_max_failures
    now = utcnow()
    since = now - window
    unlocks: list[datetime] = []

    by_client = [LoginFailure.client == client, LoginFailure.created_at > since]
    oldest = _nth_newest(session, by_client, settings.login_address_max_failures)
    if oldest is not None:
        unlocks.append(oldest + window)

    by_user = [LoginFailure.username == username, LoginFailure.created_at > since]
    user_oldest = _nth_newest(session, by_user, limit)
    if user_oldest is not None:
        pair_newest = session.scalar(
            select(func.max(LoginFailure.created_at)).where(LoginFailure.client == client, *by_user)
        )
        if pair_newest is not None:
            # Unlocked when either the username stops being under attack or the pair's
            # last failure leaves the window.
            unlocks.append(min(user_oldest, pair_newest) + window)

    if not unlocks:
        return None
    return max(1, math.ceil((max(unlocks) - now).total_seconds()))


def record_failure(session: Session, settings: Settings, username: str, client: str) -> None:
    cutoff = utcnow() - timedelta(seconds=settings.login_window_seconds)
    # Old rows of this address are no use to anyone; the (client, created_at) index finds them.
    session.execute(
        delete(LoginFailure).where(LoginFailure.client == client, LoginFailure.created_at < cutoff)
    )
    session.add(LoginFailure(username=username[:64], client=client[:64]))
    session.flush()


def clear_failures(session: Session, username: str, client: str) -> None:
    session.execute(
        delete(LoginFailure).where(LoginFailure.username == username, LoginFailure.client == client)
    )
