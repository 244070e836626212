"""The CSRF middleware (app/core/csrf.py) driven as the ASGI app it is, one rule at a time.

The route-level tests send real requests through the whole app; these feed the middleware
hand-built requests (split bodies, odd headers) in front of a small app that records what
reached it, so each rule's edge is pinned: which headers exempt a request, where the token is
read from, how much of a body is scanned, and that the body reaches the route unchanged.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.core.cookies import PRESESSION_COOKIE, SESSION_COOKIE
from app.core.csrf import BAD_TOKEN, NO_COOKIE, SCAN_LIMIT, CSRFMiddleware, cross_site
from app.core.csrf_tokens import binding_of, token_for_binding, token_for_cookies

Message = dict[str, Any]
SESSION = "the-session-cookie"
TOKEN = token_for_binding("s:" + SESSION)
BOUNDARY = "b0undary"


class Recorder:
    """The app behind the middleware: answers 200 and keeps the body it was given."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"passed"})


def call(
    method: str = "POST",
    path: str = "/api/v1/things",
    headers: dict[str, str] | None = None,
    chunks: list[bytes] | None = None,
    session: str | None = SESSION,
    scope_type: str = "http",
    messages: list[Message] | None = None,
) -> tuple[int, bytes, Recorder, int]:
    """(status, response body, the recorder, how many body messages the middleware read)."""
    sent_headers = dict(headers or {})
    if session is not None:
        sent_headers["cookie"] = f"{SESSION_COOKIE}={session}"
    scope = {
        "type": scope_type,
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("testserver", 80),
        "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in sent_headers.items()],
    }
    parts = list(chunks or [b""])
    messages = messages or [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    read = 0
    recorder = Recorder()
    out: list[Message] = []

    async def receive() -> Message:
        nonlocal read
        read += 1
        if read <= len(messages):
            return messages[read - 1]
        # A server answers a read past the body by waiting for the client to go away; a
        # second such read is a loop that never ends.
        if read > len(messages) + 1:
            raise AssertionError("the body was read past its end twice")
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        out.append(message)

    run: Callable[[], Awaitable[None]] = lambda: CSRFMiddleware(recorder)(scope, receive, send)  # noqa: E731
    asyncio.run(run())
    status = next(m["status"] for m in out if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in out if m["type"] == "http.response.body")
    return status, body, recorder, min(read, len(messages))


def detail(body: bytes) -> str:
    return str(json.loads(body)["detail"])


def multipart(*fields: tuple[str, str]) -> bytes:
    out = b""
    for name, value in fields:
        out += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    return out + f"--{BOUNDARY}--\r\n".encode()


MULTIPART = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


def test_safe_methods_and_requests_without_a_session_pass_untouched() -> None:
    for method in ("GET", "HEAD", "OPTIONS", "TRACE"):
        assert call(method)[0] == 200
    # An unsafe API call without any cookie is not a browser session: the route decides.
    assert call("DELETE", session=None)[0] == 200
    assert call("POST", session="")[0] == 200
    # Other ASGI traffic (lifespan, websockets) is handed on as is.
    other = call(scope_type="websocket")[2]
    assert other.bodies == [b""] and [s["type"] for s in other.scopes] == ["websocket"]


def test_each_unsafe_method_with_a_session_needs_the_token() -> None:
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        status, body, recorder, _ = call(method)
        assert (status, detail(body)) == (403, BAD_TOKEN), method
        assert recorder.bodies == []
        assert call(method, headers={"X-CSRF-Token": TOKEN})[0] == 200
        assert call(method, headers={"X-CSRF-Token": TOKEN[:-1] + "0"})[0] == 403


def test_only_a_bearer_token_with_a_value_exempts_a_cookie_request() -> None:
    assert call(headers={"Authorization": "Bearer abc"})[0] == 200
    assert call(headers={"Authorization": "bEaReR abc"})[0] == 200
    # Any bearer value exempts (the token check then decides), whatever spaces it holds.
    assert call(headers={"Authorization": "Bearer  abc"})[0] == 200
    assert call(headers={"Authorization": "Bearer a b"})[0] == 200
    for value in ("Bearer", "Bearer   ", "Basic abc", "Bearerabc x", "Token abc"):
        assert call(headers={"Authorization": value})[0] == 403, value


def test_the_login_and_setup_forms_are_checked_without_a_session() -> None:
    for path in ("/login", "/setup/admin"):
        status, body, _, _ = call(path=path, session=None)
        assert status == 403 and b"allow cookies for this site" in body, path
    # Only those paths: a similar prefix is not the setup form.
    assert call(path="/setupx", session=None)[0] == 200
    assert call(path="/login/x", session=None)[0] == 200


def test_no_cookie_at_all_is_refused_with_the_cookie_message_on_the_api_too() -> None:
    status, body, _, _ = call(path="/api/login", session=None)
    assert status == 200  # not a checked path
    # A checked API path without any cookie: the JSON refusal names the cookie problem.
    scope_headers = {"cookie": f"{PRESESSION_COOKIE}="}
    status, body, _, _ = call(path="/setup/x", session=None, headers=scope_headers)
    assert status == 403 and b"allow cookies for this site" in body
    assert NO_COOKIE.endswith("allow cookies for this site.")


def test_the_presession_cookie_binds_the_login_token() -> None:
    pre = token_for_binding("p:pre-value")
    headers = {"cookie": f"{PRESESSION_COOKIE}=pre-value", "X-CSRF-Token": pre}
    assert call(path="/login", session=None, headers=headers)[0] == 200
    wrong = {**headers, "X-CSRF-Token": TOKEN}
    assert call(path="/login", session=None, headers=wrong)[0] == 403


def test_binding_prefers_the_session_cookie_and_tokens_differ_per_binding() -> None:
    assert binding_of({SESSION_COOKIE: "a", PRESESSION_COOKIE: "b"}) == "s:a"
    assert binding_of({SESSION_COOKIE: "", PRESESSION_COOKIE: "b"}) == "p:b"
    assert binding_of({PRESESSION_COOKIE: ""}) is None
    assert binding_of({}) is None
    assert token_for_cookies({}) == ""
    assert token_for_cookies({SESSION_COOKIE: "a"}) == token_for_binding("s:a")
    assert token_for_binding("s:a") != token_for_binding("p:a")
    assert len(token_for_binding("s:a")) == 64 and int(token_for_binding("s:a"), 16) >= 0


def test_a_request_the_browser_marks_as_cross_site_is_refused_before_its_token() -> None:
    good = {"X-CSRF-Token": TOKEN, "host": "example.org"}
    for site in ("cross-site", "same-site", "Cross-Site"):
        status, body, _, _ = call(headers={**good, "Sec-Fetch-Site": site})
        assert (status, detail(body)) == (
            403,
            "cross-site request refused: use the form on this site",
        ), site
    for site in ("same-origin", "none", "Same-Origin", "NONE"):
        assert call(headers={**good, "Sec-Fetch-Site": site})[0] == 200, site
    for origin in ("http://evil.example", "null", "ftp://example.org", "https://example.org:8443"):
        assert call(headers={**good, "Origin": origin})[0] == 403, origin
    for origin in ("http://example.org", "HTTPS://EXAMPLE.ORG"):
        assert call(headers={**good, "Origin": origin})[0] == 200, origin
    # Sec-Fetch-Site decides when both are sent.
    both = {**good, "Sec-Fetch-Site": "same-origin", "Origin": "http://evil.example"}
    assert call(headers=both)[0] == 200


def test_cross_site_reads_headers_case_insensitively_and_needs_a_host() -> None:
    def scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
        return {"headers": list(headers)}

    assert cross_site(scope()) is False
    assert cross_site({}) is False  # no headers at all
    assert cross_site(scope((b"Origin", b"http://a.test"), (b"Host", b"a.test"))) is False
    assert cross_site(scope((b"origin", b"http://a.test"))) is True  # no host to compare
    assert cross_site(scope((b"origin", b"http://a.test"), (b"host", b"b.test"))) is True
    assert cross_site(scope((b"Sec-Fetch-Site", b"cross-site"))) is True
    assert cross_site(scope((b"sec-fetch-site", b"same-origin"))) is False


def test_the_token_is_read_from_a_url_encoded_form_split_across_messages() -> None:
    body = f"name=x&csrf_token={TOKEN}&note=y".encode()
    chunks = [body[:10], body[10:40], body[40:]]
    status, _, recorder, _ = call(headers=FORM, chunks=chunks)
    assert status == 200
    assert recorder.bodies == [body]  # replayed to the route, every byte once
    assert call(headers=FORM, chunks=[b"csrf_token=wrong"])[0] == 403
    assert call(headers=FORM, chunks=[b"name=x"])[0] == 403
    assert (
        call(headers={"content-type": "text/plain"}, chunks=[f"csrf_token={TOKEN}".encode()])[0]
        == 403
    )


def test_a_url_encoded_body_is_scanned_up_to_the_limit_and_refused_past_it() -> None:
    quarter = b"a=" + b"x" * (SCAN_LIMIT // 4 - 2)
    token = f"&csrf_token={TOKEN}".encode()
    # Exactly the limit read so far: one more message is read, and the token in it counts.
    status, _, recorder, read = call(headers=FORM, chunks=[quarter] * 4 + [token])
    assert (status, read) == (200, 5)
    assert recorder.bodies == [quarter * 4 + token]
    # Past the limit with more to come: refused without reading the rest.
    status, body, recorder, read = call(headers=FORM, chunks=[quarter] * 5 + [token])
    assert (status, detail(body), read) == (403, BAD_TOKEN, 5)
    assert recorder.bodies == []


def test_the_token_is_read_from_a_multipart_form_in_any_part_and_chunking() -> None:
    body = multipart(("title", "T"), ("csrf_token", TOKEN), ("file", "a,b\n1,2\n"))
    for size in (1, 7, 64, len(body)):
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        status, _, recorder, _ = call(headers=MULTIPART, chunks=chunks)
        assert status == 200, size
        assert recorder.bodies == [body], size
    # The first csrf_token part counts; a later one cannot replace it.
    twice = multipart(("csrf_token", "wrong"), ("csrf_token", TOKEN))
    assert call(headers=MULTIPART, chunks=[twice])[0] == 403
    first = multipart(("csrf_token", TOKEN), ("csrf_token", "wrong"))
    assert call(headers=MULTIPART, chunks=[first])[0] == 200
    # A field whose name only resembles it, or another header than the disposition, is not it.
    assert call(headers=MULTIPART, chunks=[multipart(("csrf_tokenx", TOKEN))])[0] == 403
    odd = (
        f'--{BOUNDARY}\r\nContent-Type: text/plain\r\nX-Name: name="csrf_token"\r\n\r\n'
        f"{TOKEN}\r\n--{BOUNDARY}--\r\n"
    ).encode()
    assert call(headers=MULTIPART, chunks=[odd])[0] == 403
    # An over-long value is cut, so it never matches.
    assert call(headers=MULTIPART, chunks=[multipart(("csrf_token", TOKEN * 5))])[0] == 403
    # Without a boundary, the body is not parsed.
    no_boundary = {"content-type": "multipart/form-data"}
    assert call(headers=no_boundary, chunks=[first])[0] == 403


def test_multipart_scanning_stops_once_the_token_is_found_and_the_rest_is_replayed() -> None:
    head = multipart(("csrf_token", TOKEN)).removesuffix(f"--{BOUNDARY}--\r\n".encode())
    rest = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="n{i}"\r\n\r\nv\r\n'.encode()
        for i in range(3)
    ] + [f"--{BOUNDARY}--\r\n".encode()]
    status, _, recorder, _ = call(headers=MULTIPART, chunks=[head, *rest])
    assert status == 200 and recorder.bodies == [head + b"".join(rest)]


def test_a_multipart_body_without_the_token_in_its_first_megabyte_is_refused() -> None:
    big = multipart(("file", "x" * (2 * SCAN_LIMIT)), ("csrf_token", TOKEN))
    step = SCAN_LIMIT // 4
    chunks = [big[i : i + step] for i in range(0, len(big), step)]
    status, _, recorder, read = call(headers=MULTIPART, chunks=chunks)
    assert status == 403 and recorder.bodies == []
    # The message that reaches the limit exactly is followed by one more, then no more.
    assert read == 5 < len(chunks)


@pytest.mark.parametrize("path", ["/api/v1/x", "/api/login"])
def test_api_paths_are_refused_in_json(path: str) -> None:
    status, body, _, _ = call(path=path)
    assert status == 403 and json.loads(body) == {"detail": BAD_TOKEN}


def test_a_token_field_that_is_not_utf8_is_refused_not_an_error() -> None:
    body = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'.encode()
        + b"\xff\xfe"
        + TOKEN.encode()
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    status, response, recorder, _ = call(headers=MULTIPART, chunks=[body])
    assert (status, detail(response)) == (403, BAD_TOKEN) and recorder.bodies == []


def test_the_login_page_gives_a_cookieless_browser_the_token_of_the_cookie_it_sets(
    app: FastAPI,
) -> None:
    browser = TestClient(app)
    page = browser.get("/login")
    seed = page.cookies.get(PRESESSION_COOKIE)
    assert page.status_code == 200 and seed
    tokens = re.findall(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    assert tokens and set(tokens) == {token_for_binding("p:" + seed)}


def test_body_messages_may_leave_out_body_and_more_body() -> None:
    # ASGI lets a message omit `body` (empty) and `more_body` (false).
    for headers, last in ((FORM, f"csrf_token={TOKEN}&n=1"), (MULTIPART, "")):
        if headers is MULTIPART:
            last = multipart(("csrf_token", TOKEN)).decode()
        messages: list[Message] = [
            {"type": "http.request", "more_body": True},
            {"type": "http.request", "body": last.encode()},
        ]
        status, _, recorder, read = call(headers=headers, messages=messages)
        assert (status, read) == (200, 2), headers
        assert recorder.bodies == [last.encode()]


def test_a_page_refusal_is_a_full_page_and_an_htmx_refusal_a_fragment() -> None:
    status, page, _, _ = call(path="/projects/1/delete")
    assert status == 403
    assert page.lstrip().lower().startswith(b"<!doctype html>")
    assert b"<title>Error 403" in page and BAD_TOKEN.encode() in page
    status, fragment, _, _ = call(path="/projects/1/delete", headers={"HX-Request": "true"})
    assert status == 403
    assert b"<!doctype" not in fragment.lower() and b"<h1>403</h1>" in fragment
    assert BAD_TOKEN.encode() in fragment


def test_a_multipart_body_without_the_token_is_read_once_to_its_end() -> None:
    body = multipart(("title", "T"))
    messages: list[Message] = [{"type": "http.request", "body": body}]
    status, _, recorder, read = call(headers=MULTIPART, messages=messages)
    assert (status, read) == (403, 1) and recorder.bodies == []
