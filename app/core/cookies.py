"""Names of the browser cookies, shared by the auth domain and the CSRF middleware."""

from __future__ import annotations

SESSION_COOKIE = "safepref_session"
# Random value set by the login page so that the login form has a CSRF token of its own.
PRESESSION_COOKIE = "safepref_presession"
# Random value naming answers a browser posted after its session ended (annotations/drafts.py).
DRAFT_COOKIE = "safepref_draft"
