"""The annotation page's server side: form -> the API's payload, errors next to their fields,
htmx fragments, "My work" and revisions, read-only closed batches, suggestions, guidelines.

Pages accept a bearer token too (and need no CSRF token then), which keeps these tests short;
the browser tests drive the same pages with a session cookie.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.annotations.models import Annotation, AnnotationRevision
from app.annotations.presenter import guidelines_html
from app.batches.models import Assignment, Batch
from app.batches.service import add_member, create_batch
from app.items.models import Item, ReferenceLabel, Response
from app.projects.category_help import category_help
from app.projects.service import create_project
from app.projects.taxonomy import BEAVERTAILS_14, PKU_SAFERLHF_19

GUIDELINES = "# Rules\n\n[bad](javascript:alert(1)) [ok](https://example.org) <b onclick=x>raw</b>"


@dataclass
class World:
    batch: Batch
    headers: dict[str, str]
    other_headers: dict[str, str]


def seed(db: Session, make_user: Any, *, responses: int = 2, items: int = 3, **asks: Any) -> World:
    project = create_project(db, f"p-{uuid.uuid4().hex[:8]}", "pku-saferlhf-19", GUIDELINES, **asks)
    for i in range(items):
        prompt = f"prompt {i} <i>{uuid.uuid4().hex}</i>\nsecond line"
        item = Item(
            project_id=project.id,
            prompt=prompt,
            content_hash=hashlib.sha256(prompt.encode()).hexdigest(),
        )
        db.add(item)
        db.flush()
        for pos in range(responses):
            db.add(
                Response(item_id=item.id, position=pos, text=f"answer {pos}", sha256=f"{i}-{pos}")
            )
        reference = {
            "responses": [
                {
                    "position": 0,
                    "is_safe": False,
                    "harm_categories": ["Violence"],
                    "severity": "severe",
                },
                *[
                    {"position": p, "is_safe": True, "harm_categories": [], "severity": None}
                    for p in range(1, responses)
                ],
            ],
            "helpfulness": list(range(responses)),
            "harmlessness": [*range(1, responses), 0],
        }
        db.add(ReferenceLabel(item_id=item.id, origin="test", payload=reference))
    db.flush()
    batch = create_batch(db, project, "b", overlap=2)
    user, token = make_user()
    other, other_token = make_user()
    add_member(db, batch, user)
    add_member(db, batch, other)
    return World(
        batch,
        {"Authorization": f"Bearer {token}"},
        {"Authorization": f"Bearer {other_token}"},
    )


def lease(client: TestClient, world: World, headers: dict[str, str] | None = None) -> int:
    r = client.post(
        f"/batches/{world.batch.id}/next", headers=headers or world.headers, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    match = re.fullmatch(r"/assignments/(\d+)", r.headers["location"])
    assert match, r.headers["location"]
    return int(match.group(1))


def shown_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'class="answer[^"]*"[^>]*data-response="(\d+)"', html)]


def good_form(ids: list[int], **extra: str) -> dict[str, Any]:
    """A: unsafe (Violence, severe); the rest safe; A most helpful, A least harmless."""
    form: dict[str, Any] = {f"r{ids[0]}_safe": "unsafe", f"r{ids[0]}_cat": ["Violence"]}
    form[f"r{ids[0]}_sev"] = "severe"
    for rid in ids[1:]:
        form[f"r{rid}_safe"] = "safe"
    harmless = [*ids[1:], ids[0]]
    for rank in range(1, len(ids)):  # the last rank is implied
        form[f"helpfulness_{rank}"] = str(ids[rank - 1])
        form[f"harmlessness_{rank}"] = str(harmless[rank - 1])
    form.update(extra)
    return form


def stored(db: Session, assignment_id: int) -> Annotation:
    db.expire_all()
    return db.scalars(select(Annotation).where(Annotation.assignment_id == assignment_id)).one()


def test_page_shows_the_item_in_display_order_with_help(
    client: TestClient, db: Session, make_user: Any
) -> None:
    world = seed(db, make_user, show_suggestions=True)
    aid = lease(client, world)
    r = client.get(f"/assignments/{aid}", headers=world.headers)
    assert r.status_code == 200
    html = r.text
    assert shown_ids(html) == db.get(Assignment, aid).display_order
    assert "&lt;i&gt;" in html and "<i>" not in html.split('id="prompt-text"')[1][:200]
    assert "Espionage, sabotage or attacks on a state" in html  # category help
    assert "national or international resources" in html  # severity definitions
    assert "Helpfulness ignores harm" in html and "always outranks" in html
    assert 'id="shortcut-dialog"' in html and "Shift+S" in html
    # Guidelines: Markdown rendered, raw HTML and javascript: links left as text.
    assert "<h1>Rules</h1>" in html and 'href="https://example.org"' in html
    assert "javascript:" not in re.sub(r"\[bad\]\(javascript:alert\(1\)\)", "", html)
    assert "&lt;b onclick=x&gt;" in html
    # The model suggestion is offered, but its content is not on the page until asked for.
    assert f'formaction="/assignments/{aid}/suggestion"' in html
    assert 'id="suggestion-body"' not in html


def test_refused_form_keeps_the_input_and_shows_errors_by_their_fields(
    client: TestClient, db: Session, make_user: Any
) -> None:
    world = seed(db, make_user)
    aid = lease(client, world)
    ids = shown_ids(client.get(f"/assignments/{aid}", headers=world.headers).text)
    form = good_form(ids)
    del form[f"r{ids[0]}_cat"]
    r = client.post(f"/assignments/{aid}", data=form, headers=world.headers)
    assert r.status_code == 422
    error = re.search(rf'data-error-for="r{ids[0]}_cat">([^<]+)<', r.text)
    # The words of the page's script, not the API's.
    assert error and error.group(1) == "An unsafe response needs at least one harm category."
    assert re.search(rf'name="r{ids[0]}_safe" value="unsafe"[^>]*checked', r.text)
    assert re.search(rf'name="r{ids[0]}_sev" value="severe"[^>]*checked', r.text)
    assert db.scalar(select(func.count()).where(Annotation.assignment_id == aid)) == 0

    # The harmlessness rule, with response ids turned into the letters the page shows.
    form = good_form(ids, harmlessness_1=str(ids[0]))
    r = client.post(f"/assignments/{aid}", data=form, headers=world.headers)
    assert r.status_code == 422
    error = re.search(r'data-error-for="harmlessness">([^<]+)<', r.text)
    assert error, r.text
    assert "Response B is labelled safe" in error.group(1)
    assert "unsafe response A" in error.group(1)


def test_a_refused_form_lists_every_problem_at_the_top_with_links_to_the_fields(
    client: TestClient, db: Session, make_user: Any
) -> None:
    world = seed(db, make_user, ask_rationale=True)
    aid = lease(client, world)
    ids = shown_ids(client.get(f"/assignments/{aid}", headers=world.headers).text)
    form = good_form(ids)
    for field in (f"r{ids[0]}_cat", f"r{ids[0]}_sev", f"r{ids[1]}_safe", "helpfulness_1"):
        form.pop(field, None)
    form.pop("rationale", None)
    r = client.post(f"/assignments/{aid}", data=form, headers=world.headers)
    assert r.status_code == 422
    summary = re.search(r'<div class="error-summary".*?</div>', r.text, re.S)
    assert summary, r.text
    links = re.findall(r'<a href="#(err-[^"]+)">([^<]+)</a>', summary.group(0))
    assert links == [
        (f"err-r{ids[0]}_cat", "Response A: An unsafe response needs at least one harm category."),
        (f"err-r{ids[0]}_sev", "Response A: An unsafe response needs a severity."),
        (f"err-r{ids[1]}_safe", "Response B: Mark response B safe or unsafe."),
        ("err-helpfulness", "More helpful: Choose A or B."),
        ("err-rationale", "Rationale: Write a short rationale."),
    ]
    for target, _ in links:
        assert f'id="{target}"' in r.text
    assert db.scalar(select(func.count()).where(Annotation.assignment_id == aid)) == 0


def test_form_stores_what_the_api_stores(client: TestClient, db: Session, make_user: Any) -> None:
    world = seed(db, make_user)
    aid = lease(client, world)
    ids = shown_ids(client.get(f"/assignments/{aid}", headers=world.headers).text)
    # A leftover category on a safe response is cleared, as the page's script would.
    # The page cannot claim the suggestion was seen: only the server records that.
    form = good_form(ids, suggestion_viewed="1", **{f"r{ids[1]}_cat": "Drugs"})
    r = client.post(f"/assignments/{aid}", data=form, headers=world.headers, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] != f"/assignments/{aid}"
    row = stored(db, aid)
    order = sorted(ids)  # labels are stored in response position order
    labels = {lab["response_id"]: lab for lab in row.payload["responses"]}
    assert [lab["response_id"] for lab in row.payload["responses"]] == order
    assert labels[ids[0]] == {
        "response_id": ids[0],
        "is_safe": False,
        "harm_categories": ["Violence"],
        "severity": "severe",
    }
    assert labels[ids[1]]["harm_categories"] == [] and labels[ids[1]]["is_safe"] is True
    assert row.payload["helpfulness"] == ids
    assert row.payload["harmlessness"] == [*ids[1:], ids[0]]
    assert row.suggestion_viewed is False
    # No script: the time since the lease began, within the lease.
    assert row.duration_ms is not None
    assert 0 <= row.duration_ms <= world.batch.lease_seconds * 1000


def test_three_responses_rank_with_the_last_one_implied(
    client: TestClient, db: Session, make_user: Any
) -> None:
    world = seed(db, make_user, responses=3, ask_single=True, ask_rationale=True)
    aid = lease(client, world)
    html = client.get(f"/assignments/{aid}", headers=world.headers).text
    ids = shown_ids(html)
    assert len(ids) == 3 and 'select name="single_2"' in html
    form = good_form(
        ids, single_1=str(ids[2]), single_2=str(ids[0]), rationale="B is clear", duration_ms="4321"
    )
    r = client.post(f"/assignments/{aid}", data=form, headers=world.headers, follow_redirects=False)
    assert r.status_code == 303, r.text
    row = stored(db, aid)
    assert row.payload["single"] == [ids[2], ids[0], ids[1]]
    assert row.payload["rationale"] == "B is clear"
    assert row.duration_ms == 4321


def test_htmx_submit_swaps_in_the_next_item(
    client: TestClient, db: Session, make_user: Any
) -> None:
    world = seed(db, make_user, items=2)
    hx = {**world.headers, "HX-Request": "true"}
    for round_ in range(2):
        aid = lease(client, world)
        ids = shown_ids(client.get(f"/assignments/{aid}", headers=world.headers).text)
        r = client.post(f"/assignments/{aid}", data=good_form(ids), headers=hx)
        assert r.status_code == 200
        if round_ == 0:
            assert r.text.lstrip().startswith('<div id="annotate"')
            assert "<html" not in r.text
            pushed = r.headers["hx-push-url"]
            assert pushed.startswith("/assignments/") and pushed != f"/assignments/{aid}"
            assert re.search(r'id="progress-mine">1<', r.text)
        else:
            assert r.headers["hx-redirect"] == f"/batches/{world.batch.id}/done"
    # A refused htmx submit answers 422 with the fragment, so htmx swaps the errors in.
    aid = lease(client, world, world.other_headers)
    r = client.post(
        f"/assignments/{aid}", data={}, headers={**world.other_headers, "HX-Request": "true"}
    )
    assert r.status_code == 422 and r.text.lstrip().startswith('<div id="annotate"')


def test_only_the_owner_sees_the_page(client: TestClient, db: Session, make_user: Any) -> None:
    world = seed(db, make_user)
    aid = lease(client, world)
    assert client.get(f"/assignments/{aid}", headers=world.other_headers).status_code == 404
    _, admin_token = make_user(role="admin")
    admin = {"Authorization": f"Bearer {admin_token}"}
    assert client.get(f"/assignments/{aid}", headers=admin).status_code == 404
    r = client.post(f"/assignments/{aid}", data={}, headers=world.other_headers)
    assert r.status_code == 404
    assert client.get(f"/batches/{world.batch.id}/mine", headers=admin).status_code == 404


def test_my_work_reopens_and_revisions_are_kept(
    client: TestClient, db: Session, make_user: Any
) -> None:
    world = seed(db, make_user)
    aid = lease(client, world)
    ids = shown_ids(client.get(f"/assignments/{aid}", headers=world.headers).text)
    client.post(f"/assignments/{aid}", data=good_form(ids), headers=world.headers)
    mine = client.get(f"/batches/{world.batch.id}/mine", headers=world.headers)
    assert mine.status_code == 200 and f'href="/assignments/{aid}"' in mine.text
    assert (
        client.get(f"/batches/{world.batch.id}/mine", headers=world.other_headers).text.count(
            f'href="/assignments/{aid}"'
        )
        == 0
    )

    page = client.get(f"/assignments/{aid}", headers=world.headers).text
    assert "Save revision" in page and "revision 1" in page
    assert re.search(rf'name="r{ids[0]}_sev" value="severe"[^>]*checked', page)
    revised = good_form(ids, **{f"helpfulness_{r}": str(i) for r, i in enumerate(ids[::-1], 1)})
    r = client.post(
        f"/assignments/{aid}", data=revised, headers=world.headers, follow_redirects=False
    )
    assert r.status_code == 303
    assert r.headers["location"].startswith(f"/batches/{world.batch.id}/mine?saved={aid}")
    row = stored(db, aid)
    assert row.revision == 2 and row.payload["helpfulness"] == ids[::-1]
    revisions = db.scalar(select(func.count()).where(AnnotationRevision.annotation_id == row.id))
    assert revisions == 2
    mine = client.get(r.headers["location"], headers=world.headers).text
    assert "Saved." in mine

    # Saving the same answers again changes nothing, and says so.
    r = client.post(
        f"/assignments/{aid}", data=revised, headers=world.headers, follow_redirects=False
    )
    assert r.headers["location"].startswith(f"/batches/{world.batch.id}/mine?unchanged={aid}")
    mine = client.get(r.headers["location"], headers=world.headers).text
    assert "No changes" in mine and "Saved." not in mine
    assert stored(db, aid).revision == 2


def test_closed_batch_is_read_only(client: TestClient, db: Session, make_user: Any) -> None:
    world = seed(db, make_user)
    aid = lease(client, world)
    ids = shown_ids(client.get(f"/assignments/{aid}", headers=world.headers).text)
    client.post(f"/assignments/{aid}", data=good_form(ids), headers=world.headers)
    world.batch.is_open = False
    db.flush()
    page = client.get(f"/assignments/{aid}", headers=world.headers).text
    assert "This batch is closed" in page
    assert 'id="submit-button"' not in page and '<fieldset class="plain" disabled>' in page
    r = client.post(f"/assignments/{aid}", data=good_form(ids), headers=world.headers)
    assert r.status_code == 409
    # The answers stay on the page, with a notice naming the batch.
    assert "was closed while you worked" in r.text and world.batch.name in r.text
    assert re.search(rf'name="r{ids[0]}_sev" value="severe"[^>]*checked', r.text)


@pytest.mark.parametrize(
    "source",
    [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](&#106;avascript:alert(1))",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "![x](javascript:alert(1))",
        "<a href='javascript:alert(1)'>x</a>",
        "<script>alert(1)</script>",
    ],
)
def test_guidelines_never_render_script_links_or_raw_html(source: str) -> None:
    html = str(guidelines_html(source))
    assert "<a " not in html and "<img" not in html and "<script" not in html


def test_every_preset_category_has_a_one_line_description() -> None:
    for preset, names in (("pku-saferlhf-19", PKU_SAFERLHF_19), ("beavertails-14", BEAVERTAILS_14)):
        helped = category_help(preset, names)
        assert [n for n, _ in helped] == list(names)
        assert all(h and "\n" not in h and len(h) <= 60 for _, h in helped)
    assert category_help("custom", ["Mine"]) == [("Mine", "")]
