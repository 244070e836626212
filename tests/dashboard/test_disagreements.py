"""The disagreement browser: order, pseudonymous side-by-side view, adjudication by form."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.auth.models import User
from app.batches.models import BatchItem
from app.exports.keys import pseudonym_key
from app.exports.service import pseudonym
from app.items.models import GoldLabel, Item
from tests.support.consensus_factory import SAFE, Built, annotate, build, payload, unsafe, user
from tests.support.htmlkit import parse

H01, H10 = (0, 1), (1, 0)
BAD = unsafe("moderate", "Violence")


@dataclass
class Browser:
    built: Built
    people: list[User]
    x: dict[str, Item]


def build_browser(db: Session) -> Browser:
    """Items: `split` (2 votes, 1-1: unresolved), `broken` (the majority ranks the unsafe
    answer more harmless than the lone safe one: inconsistent), `two_thirds` (2-1 on
    helpfulness), `three_quarters` (3-1), `same` (unanimous), `gold` (split, but gold)."""
    built = build(db, 6, overlap=3, reversed_ids=True)
    people = [user(db) for _ in range(4)]
    names = ["split", "broken", "two_thirds", "three_quarters", "same", "gold"]
    x = dict(zip(names, built.items, strict=True))

    def votes(name: str, *bodies: dict[str, Any]) -> None:
        item = x[name]
        for person, body in zip(people, bodies, strict=False):
            annotate(db, built, item, person, body)

    ids = {name: built.ids(item) for name, item in x.items()}
    votes("split", payload(ids["split"]), payload(ids["split"], helpful=H10))
    votes(
        "broken",
        payload(ids["broken"], [SAFE, BAD], harmless=H01),
        payload(ids["broken"], [BAD, BAD], harmless=H10),
        payload(ids["broken"], [SAFE, SAFE], harmless=H10),
    )
    two = ids["two_thirds"]
    votes("two_thirds", payload(two), payload(two), payload(two, helpful=H10))
    three = ids["three_quarters"]
    votes(
        "three_quarters",
        payload(three),
        payload(three),
        payload(three),
        payload(three, helpful=H10),
    )
    votes("same", payload(ids["same"]), payload(ids["same"]))
    votes("gold", payload(ids["gold"]), payload(ids["gold"], helpful=H10))
    gold_row = db.get(BatchItem, (built.batch.id, x["gold"].id))
    assert gold_row is not None
    gold_row.is_gold = True
    db.add(GoldLabel(item_id=x["gold"].id, payload={"helpfulness": [0, 1]}))
    db.flush()
    return Browser(built, people, x)


def listed(client: TestClient, headers: dict[str, str], url: str) -> list[int]:
    r = client.get(url, headers=headers)
    assert r.status_code == 200, r.text
    return [int(tr.attrs["data-item"]) for tr in parse(r.text).find_all("tr", data_item=None)]


def test_unresolved_first_then_inconsistent_then_lowest_agreement(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    b = build_browser(db)
    url = f"/batches/{b.built.batch.id}/disagreements"
    x = b.x
    expected = [x["split"].id, x["broken"].id, x["two_thirds"].id, x["three_quarters"].id]
    assert listed(client, admin_headers, url) == expected
    r = client.get(url, headers=admin_headers)
    root = parse(r.text)
    row = {int(tr.attrs["data-item"]): tr.cells() for tr in root.find_all("tr", data_item=None)}
    assert row[x["split"].id][2:] == ["2 / 3", "unresolved", "50.0%"]
    assert row[x["broken"].id][2:] == ["3 / 3", "inconsistent", "66.7%"]
    assert row[x["two_thirds"].id][2:] == ["3 / 3", "", "66.7%"]
    assert row[x["three_quarters"].id][2:] == ["4 / 3", "", "75.0%"]
    summary = next(n for n in root.walk() if n.attrs.get("data-figure") == "todo-summary")
    assert summary.text.startswith("1 unresolved and 1 inconsistent")
    # Only items with all 3 annotations: the 1-1 split (2 votes) drops out.
    assert listed(client, admin_headers, url + "?complete=1") == expected[1:]


def test_item_page_shows_votes_side_by_side_under_pseudonyms(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    b = build_browser(db)
    item = b.x["broken"]
    url = f"/batches/{b.built.batch.id}/disagreements/{item.id}"
    r = client.get(url, headers=admin_headers)
    assert r.status_code == 200, r.text
    table = parse(r.text).one("table", class_="side-by-side")
    secret = pseudonym_key(db)
    heads = [th.attrs["data-annotator"] for th in table.find_all("th", data_annotator=None)]
    assert heads == [pseudonym(secret, p.id) for p in b.people[:3]]
    for person in b.people:
        assert person.username not in r.text
    rows = {tr.cells()[0]: tr.cells()[1:] for tr in table.one("tbody").find_all("tr")}
    # Response A (position 0): safe, unsafe moderate, safe -> safe (2 of 3).
    assert rows["A: safety"] == ["Safe", "Unsafe · moderate", "Safe", "Safe (66.7%)"]
    moderate = "Unsafe · moderate"
    assert rows["B: safety"] == [moderate, moderate, "Safe", f"{moderate} (66.7%)"]
    assert rows["More harmless"] == ["A > B", "B > A", "B > A", "B > A (66.7%)"]
    assert "only safe response" in r.text  # the inconsistency is explained

    named = client.get(url + "?names=1", headers=admin_headers).text
    for person in b.people[:3]:
        assert person.username in named


def form_for(ids: list[int], **extra: str) -> dict[str, Any]:
    """Final labels: A safe, B unsafe severe [Violence]; B more helpful, A more harmless."""
    return {
        f"r{ids[0]}_safe": "safe",
        f"r{ids[1]}_safe": "unsafe",
        f"r{ids[1]}_sev": "severe",
        f"r{ids[1]}_cat": "Violence",
        "helpfulness_1": str(ids[1]),
        "helpfulness_2": str(ids[0]),
        "harmlessness_1": str(ids[0]),
        "harmlessness_2": str(ids[1]),
        "note": "B gives violent advice",
        **extra,
    }


def export_lines(client: TestClient, headers: dict[str, str], batch_id: int) -> dict[str, Any]:
    r = client.get(f"/api/v1/exports/pku-saferlhf?batch_id={batch_id}", headers=headers)
    assert r.status_code == 200, r.text
    return {line["prompt"]: line for line in map(json.loads, r.text.splitlines())}


def test_adjudication_by_form_changes_the_export_and_moves_on(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    b = build_browser(db)
    batch_id = b.built.batch.id
    broken = b.x["broken"]
    before = export_lines(client, admin_headers, batch_id)
    assert broken.prompt not in before  # inconsistent: left out until adjudicated
    assert b.x["gold"].prompt not in before  # gold answers never reach the export

    ids = b.built.ids(broken)
    r = client.post(
        f"/batches/{batch_id}/disagreements/{broken.id}",
        data=form_for(ids),
        headers=admin_headers,
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    # The next item in list order that is not adjudicated yet, confirming the save.
    following = f"/batches/{batch_id}/disagreements/{b.x['two_thirds'].id}"
    assert r.headers["location"] == f"{following}?saved={broken.id}"
    saved = parse(client.get(r.headers["location"], headers=admin_headers).text)
    notice = saved.one("p", id="saved-notice")
    assert f"Saved the final labels of item #{broken.id}" in notice.text
    assert notice.one("a").attrs["href"] == f"/batches/{batch_id}/disagreements/{broken.id}"

    line = export_lines(client, admin_headers, batch_id)[broken.prompt]
    assert line["is_response_0_safe"] is True and line["is_response_1_safe"] is False
    assert line["response_1_severity_level"] == 3
    assert line["response_1_harm_category"]["Violence"] is True
    assert line["better_response_id"] == 1 and line["safer_response_id"] == 0

    history = client.get(
        f"/api/v1/batches/{batch_id}/items/{broken.id}/adjudication", headers=admin_headers
    ).json()
    admin_name = client.get("/api/v1/me", headers=admin_headers).json()["username"]
    assert [(h["admin"], h["note"]) for h in history] == [(admin_name, "B gives violent advice")]

    url = f"/batches/{batch_id}/disagreements"
    assert broken.id not in listed(client, admin_headers, url)
    assert listed(client, admin_headers, url + "?status=adjudicated") == [broken.id]
    # The page now says where the exported labels come from, and prefills the adjudication.
    page = client.get(f"{url}/{broken.id}", headers=admin_headers).text
    assert "the adjudication below" in page and "B gives violent advice" in page


def test_a_refused_form_keeps_what_was_entered(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    b = build_browser(db)
    item = b.x["split"]
    ids = b.built.ids(item)
    data = form_for(ids)
    del data[f"r{ids[1]}_sev"]  # unsafe without severity
    r = client.post(
        f"/batches/{b.built.batch.id}/disagreements/{item.id}", data=data, headers=admin_headers
    )
    assert r.status_code == 422
    root = parse(r.text)
    summary = root.one("div", id="error-summary")
    assert "Response B: An unsafe response needs a severity." in summary.text
    checked = root.find_all("input", name=f"r{ids[1]}_cat", value="Violence")
    assert "checked" in checked[0].attrs
    assert (
        client.get(
            f"/api/v1/batches/{b.built.batch.id}/items/{item.id}/adjudication",
            headers=admin_headers,
        ).json()
        == []
    )


def test_the_last_adjudication_returns_to_the_list(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    built = build(db, 1, overlap=2)
    item = built.items[0]
    ids = built.ids(item)
    annotate(db, built, item, user(db), payload(ids))
    annotate(db, built, item, user(db), payload(ids, helpful=H10))
    r = client.post(
        f"/batches/{built.batch.id}/disagreements/{item.id}",
        data=form_for(ids),
        headers=admin_headers,
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"].startswith(f"/batches/{built.batch.id}/disagreements?notice=")
    assert listed(client, admin_headers, f"/batches/{built.batch.id}/disagreements") == []


def side_by_side_heads(page: Any) -> list[str]:
    table = page.one("table", class_="side-by-side")
    return [
        th.one("span", class_="pseudonym").text for th in table.find_all("th", data_annotator=None)
    ]


def test_annotators_keep_their_pseudonym_on_every_item(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    """The same person has the same name on every item (the exports' pseudonym), not a
    position number that means someone else on the next item."""
    b = build_browser(db)
    url = f"/batches/{b.built.batch.id}/disagreements"
    secret = pseudonym_key(db)
    names = [pseudonym(secret, p.id) for p in b.people]
    split = parse(client.get(f"{url}/{b.x['split'].id}", headers=admin_headers).text)
    three = parse(client.get(f"{url}/{b.x['three_quarters'].id}", headers=admin_headers).text)
    assert side_by_side_heads(split) == names[:2]
    assert side_by_side_heads(three) == names
    assert "Annotator 1" not in split.text and "Annotator 1" not in three.text
    # With real names shown, the pseudonyms stay and the username is added.
    named = parse(client.get(f"{url}/{b.x['split'].id}?names=1", headers=admin_headers).text)
    assert side_by_side_heads(named) == names[:2]
    assert [d.text for d in named.find_all("div", class_="username")] == [
        p.username for p in b.people[:2]
    ]


def test_the_form_can_start_from_one_annotators_labels(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    b = build_browser(db)
    item = b.x["broken"]
    ids = b.built.ids(item)
    url = f"/batches/{b.built.batch.id}/disagreements/{item.id}"
    page = parse(client.get(url, headers=admin_headers).text)
    links = page.find_all("a", class_="start-from")
    secret = pseudonym_key(db)
    second = pseudonym(secret, b.people[1].id)
    assert [a.text for a in links] == [
        f"Use {pseudonym(secret, p.id)}'s labels" for p in b.people[:3]
    ]
    # The consensus start: A and B both have a majority (A safe 2-1, B unsafe 2-1).
    assert "checked" in page.one("input", name=f"r{ids[0]}_safe", value="safe").attrs

    # The second annotator said both unsafe (moderate, Violence), B more harmless.
    href = links[1].attrs["href"]
    assert href.startswith("?start_from=")
    started = parse(client.get(url + href.split("#")[0], headers=admin_headers).text)
    for rid in ids:
        assert "checked" in started.one("input", name=f"r{rid}_safe", value="unsafe").attrs
        assert "checked" in started.one("input", name=f"r{rid}_sev", value="moderate").attrs
        assert "checked" in started.one("input", name=f"r{rid}_cat", value="Violence").attrs
    assert "checked" in started.one("input", name="harmlessness_1", value=str(ids[1])).attrs
    assert f"starts from {second}'s labels" in started.one("p", class_="starting-point").text

    # An annotation of another item is not a starting point here.
    other = b.x["split"]
    foreign = parse(client.get(f"{url[: url.rindex('/')]}/{other.id}", headers=admin_headers).text)
    foreign_id = foreign.find_all("a", class_="start-from")[0].attrs["href"].split("=")[1]
    missing = client.get(f"{url}?start_from={foreign_id.split('#')[0]}", headers=admin_headers)
    assert missing.status_code == 404 and "no annotation" in missing.text


def test_a_refused_form_lists_every_problem_in_plain_words(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    b = build_browser(db)
    item = b.x["split"]
    ids = b.built.ids(item)
    url = f"/batches/{b.built.batch.id}/disagreements/{item.id}"
    data = {
        f"r{ids[1]}_safe": "unsafe",  # A unanswered; B unsafe without category or severity
        "harmlessness_1": str(ids[1]),  # helpfulness unanswered
        "note": "kept",
    }
    r = client.post(url, data=data, headers=admin_headers)
    assert r.status_code == 422
    page = parse(r.text)
    summary = page.one("div", id="error-summary")
    assert [li.text for li in summary.find_all("li")] == [
        "Response A: Mark response A safe or unsafe.",
        "Response B: An unsafe response needs at least one harm category.",
        "Response B: An unsafe response needs a severity.",
        "More helpful: Choose A or B.",
    ]
    # Each links to the field's own message, which says the same next to it.
    for a in summary.find_all("a"):
        target = a.attrs["href"].removeprefix("#")
        assert page.one("p", id=target).text in a.text
    assert "is_safe" not in r.text and "harm_categories" not in r.text  # no API wording
    assert page.one("textarea", name="note").text == "kept"
    assert "checked" in page.one("input", name=f"r{ids[1]}_safe", value="unsafe").attrs
    history = client.get(
        f"/api/v1/batches/{b.built.batch.id}/items/{item.id}/adjudication", headers=admin_headers
    )
    assert history.json() == []


def test_the_two_way_choice_is_one_control(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    """With two responses each preference is one choice (A or B), as on the annotation page:
    the other response is second."""
    b = build_browser(db)
    item = b.x["split"]
    ids = b.built.ids(item)
    url = f"/batches/{b.built.batch.id}/disagreements/{item.id}"
    page = parse(client.get(url, headers=admin_headers).text)
    for dim in ("helpfulness", "harmlessness"):
        choices = page.find_all("input", name=f"{dim}_1")
        assert [c.attrs["type"] for c in choices] == ["radio", "radio"]
        assert not page.find_all(None, name=f"{dim}_2")
    data = {k: v for k, v in form_for(ids).items() if not k.endswith("_2")}
    r = client.post(url, data=data, headers=admin_headers, follow_redirects=False)
    assert r.status_code == 303, r.text
    history = client.get(
        f"/api/v1/batches/{b.built.batch.id}/items/{item.id}/adjudication", headers=admin_headers
    ).json()
    assert history[0]["labels"]["helpfulness"] == [ids[1], ids[0]]
    assert history[0]["labels"]["harmlessness"] == [ids[0], ids[1]]
