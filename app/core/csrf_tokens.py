"""CSRF tokens: an HMAC of the browser's session cookie (or of its pre-session cookie).

Kept apart from the middleware so that templating can put the token in forms without
importing the middleware, which itself renders the refusal page.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from starlette.requests import Request

from app.config import get_settings
from app.core.cookies import PRESESSION_COOKIE, SESSION_COOKIE

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def token_for_binding(binding: str) -> str:
    key = get_settings().resolved_secret_key().encode()
    return hmac.new(key, b"csrf:" + binding.encode(), hashlib.sha256).hexdigest()


def binding_of(cookies: Mapping[str, str]) -> str | None:
    """What the token is bound to: the session cookie, else the pre-session cookie; None
    without either (then there is no valid token at all)."""
    session = cookies.get(SESSION_COOKIE)
    if session:
        return "s:" + session
    presession = cookies.get(PRESESSION_COOKIE)
    if presession:
        return "p:" + presession
    return None


def token_for_cookies(cookies: Mapping[str, str]) -> str:
    """The token for these cookies; empty when there is nothing to bind it to (a page shown to
    a browser without cookies carries no token that could be reused elsewhere)."""
    binding = binding_of(cookies)
    return "" if binding is None else token_for_binding(binding)


def csrf_token_for(request: Request) -> str:
    """The CSRF token of this browser session: an HMAC of its session cookie.

    Stateless, the same in every server process, and useless without the cookie it is bound
    to. Before login it is bound to the pre-session cookie; a page that
    sets new cookies puts them in `request.state.csrf_cookies` so its forms match them.
    """
    cookies = getattr(request.state, "csrf_cookies", None) or request.cookies
    return token_for_cookies(cookies)
