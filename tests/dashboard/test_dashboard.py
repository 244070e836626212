"""The batch dashboard and the campaign overview: every figure against hand-computed values.

The campaign is tests/support/dashboard_factory.py; the arithmetic behind each expected value
is in the comments next to it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.batches.models import BatchItem
from app.dashboard import charts, service
from tests.support.consensus_factory import annotate, build, payload, user
from tests.support.dashboard_factory import build_campaign
from tests.support.htmlkit import Node, parse, rows_of

NA = "\u2013"  # how a missing figure prints (an en dash)


def page(client: TestClient, headers: dict[str, str], url: str) -> Node:
    r = client.get(url, headers=headers)
    assert r.status_code == 200, r.text
    return parse(r.text)


def _figure(root: Node, name: str) -> str:
    found = [n for n in root.walk() if n.attrs.get("data-figure") == name]
    assert len(found) == 1, name
    return found[0].text


def test_progress_timeline_agreement_and_distributions(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    c = build_campaign(db)
    root = page(client, admin_headers, f"/batches/{c.batch_id}/dashboard")

    # Ordinary items I0..I4: done I0 I1 (3 votes); untouched I4 (taken 0); I2 I3 in progress.
    assert _figure(root, "done") == "2"
    assert _figure(root, "in_progress") == "2"
    assert _figure(root, "untouched") == "1"
    assert _figure(root, "items") == "5"
    assert _figure(root, "skips") == "1"
    assert _figure(root, "leases") == "1"
    # 3 + 3 + 2 annotations on ordinary items, of 5 x 3 wanted: 53.3 %.
    assert _figure(root, "submitted") == "8 / 15"
    assert _figure(root, "percent") == "53.3%"
    assert _figure(root, "gold") == "1 · 3"
    bar = root.one("section", id="progress").one("svg")
    tips = [t.text for t in bar.find_all("title")]
    assert "Done: 2 (40.0%)" in tips and "Untouched: 1 (20.0%)" in tips

    # Completions per hour (all 11 annotations): 03:00 -> 3, 04:00 -> 3, 05:00 -> 0, 06:00 -> 5.
    timeline = root.one("section", id="timeline")
    assert rows_of(timeline, "compact") == [
        ["01-02 03:00", "3"],
        ["01-02 04:00", "3"],
        ["01-02 05:00", "0"],
        ["01-02 06:00", "5"],
    ]
    assert len(timeline.one("svg").find_all("rect", class_="bar")) == 4

    # Agreement on I0..I2 (gold I5 left out); see the module docstring of the factory.
    rows = {r.attrs["data-dimension"]: r.cells() for r in root.find_all("tr", data_dimension=None)}
    # Helpfulness units [01,01,01] [01,10,01] [10,01]: PA (1 + 1/3 + 0) / 3; kappa needs equal
    # counts; alpha = 1 - 7 * (8 - 4) / (64 - 36 - 4) = -1/6.
    assert rows["helpfulness"][1:5] == ["44.4%", NA, "-0.167", "3"]
    assert "No better than chance" in rows["helpfulness"][5]
    # Harmlessness [01,01,01] [01,01,01] [10,01]: PA 2/3; alpha = 1 - 7 * 2 / (64 - 49 - 1) = 0.
    assert rows["harmlessness"][1:5] == ["66.7%", NA, "0.000", "3"]
    # Safety per response: 5 unanimous units and [U,U,S]: PA (5 + 1/3) / 6; n = 16 (14 S, 2 U),
    # diagonal 14: alpha = 1 - 15 * 2 / (256 - 196 - 4) = 0.464.
    assert rows["is_safe"][1:5] == ["88.9%", NA, "0.464", "6"]
    assert "Low: annotators often disagree" in rows["is_safe"][5]
    # Severity (ordinal) 0 x 14, 1, 2; only [1,2,0] disagrees: D_o = 0.5 (56.25 + 72.25 + 1),
    # D_e = (14 * 56.25 + 14 * 72.25 + 1) / 15 = 120: alpha = 1 - 64.75 / 120 = 0.460.
    assert rows["severity"][1:5] == ["83.3%", NA, "0.460", "6"]
    assert "single" not in rows  # the project does not ask for it
    assert root.one("tr", data_dimension="is_safe").one("svg").attrs["class"] == "chart gauge"

    # Response labels on ordinary items: 16, of which I1/p1 minor (a) and moderate (b).
    sev = {n.attrs["data-severity"]: n.text for n in root.find_all("td", data_severity=None)}
    assert sev == {"safe": "14", "minor": "1", "moderate": "1", "severe": "0"}
    cats = {n.attrs["data-category"]: n.text for n in root.find_all("td", data_category=None)}
    assert cats["Insulting Behavior"] == "2" and cats["Violence"] == "1"  # gold's Violence left out
    assert sum(int(v) for v in cats.values()) == 3 and len(cats) == 19
    assert len(root.one("section", id="severity").one("svg").find_all("rect", class_="bar")) == 4


def annotator_table(root: Node) -> dict[str, list[str]]:
    return {r[0].split("-")[0]: r for r in rows_of(root, "annotators")}


def test_annotator_table_with_flags_and_gold_accuracy(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    c = build_campaign(db)
    root = page(client, admin_headers, f"/batches/{c.batch_id}/dashboard")
    table = annotator_table(root)
    # Columns: annotator, submitted, skipped, skip rate, median time, agreement, gold, flags.
    # Leave-one-out (pooled helpfulness, harmlessness, per-response safety on I0..I2):
    # a 8/10, b 8/11, c 6/7; d answered only the gold item.
    assert table["a"][1:7] == ["4", "0", "0.0%", "25.0 s", "80.0%", "100.0% (1)"]
    assert table["a"][7] == ""
    assert table["b"][1:7] == ["4", "0", "0.0%", "2.5 s", "72.7%", "75.0% (1)"]
    assert table["b"][7] == "gold accuracy below 80% median time under 10 s"
    assert table["c"][1:7] == ["2", "0", "0.0%", "70.0 s", "85.7%", NA]
    assert table["c"][7] == ""
    assert table["d"][1:7] == ["1", "1", "50.0%", "5.0 s", NA, "75.0% (1)"]
    assert table["d"][7] == "gold accuracy below 80% skips over 25% median time under 10 s"
    assert "2 flagged" in root.one("section", id="annotators").one("h2").text

    by_dim = {r[0].split("-")[0]: r[1:] for r in rows_of(root, "by-dimension")}
    # helpfulness, harmlessness, is_safe per annotator (I1 helpfulness counts only for b).
    assert by_dim["a"] == ["50.0%", "66.7%", "100.0%"]
    assert by_dim["b"] == ["33.3%", "66.7%", "100.0%"]
    assert by_dim["c"] == ["100.0%", "100.0%", "75.0%"]
    assert by_dim["d"] == [NA, NA, NA]
    gold = {r[0].split("-")[0]: r[1:] for r in rows_of(root, "gold-by-dimension")}
    # Key: 01, 01, p0 safe, p1 unsafe severe [Violence].
    # Columns: helpfulness, harmlessness, safe/unsafe, severity, categories.
    assert gold["a"] == ["100.0% (1/1)", "100.0% (1/1)", *["100.0% (2/2)"] * 3]
    assert gold["b"] == [
        "0.0% (0/1)",
        "100.0% (1/1)",
        "100.0% (2/2)",
        "50.0% (1/2)",
        "100.0% (2/2)",
    ]
    assert gold["d"] == ["100.0% (1/1)", "100.0% (1/1)", *["50.0% (1/2)"] * 3]
    assert gold["c"] == [NA] * 5

    # The metrics API pools the same answers for its gold accuracy.
    api = client.get(f"/api/v1/batches/{c.batch_id}/metrics", headers=admin_headers).json()
    assert {a["username"][0]: a["gold_accuracy"] for a in api["annotators"]} == {
        "a": 1.0,
        "b": 0.75,
        "c": None,
        "d": 0.75,
    }


def test_sorting_and_thresholds_are_query_parameters(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    c = build_campaign(db)
    url = f"/batches/{c.batch_id}/dashboard"
    order = list(annotator_table(page(client, admin_headers, url + "?sort=agreement&order=desc")))
    assert order == ["c", "a", "b", "d"]  # 85.7, 80.0, 72.7, none last
    order = list(annotator_table(page(client, admin_headers, url + "?sort=gold&order=asc")))
    assert order == ["b", "d", "a", "c"]  # 75 (tie by name), 100, none last
    order = list(annotator_table(page(client, admin_headers, url + "?sort=median&order=asc")))
    assert order == ["b", "d", "a", "c"]
    root = page(client, admin_headers, url + "?sort=submitted&order=desc")
    assert list(annotator_table(root)) == ["a", "b", "c", "d"]
    header = root.one("th", aria_sort="descending")
    assert header.text == "Submitted ▼"
    assert header.one("a").attrs["href"].endswith("sort=submitted&order=asc")

    # Custom thresholds: agreement below 75 % only (the other checks off).
    query = "?min_agreement=75&min_gold=&max_skip=&min_seconds="
    table = annotator_table(page(client, admin_headers, url + query))
    assert {k: v[7] for k, v in table.items()} == {
        "a": "",
        "b": "agreement below 75%",
        "c": "",
        "d": "",
    }
    assert client.get(url + "?min_gold=101", headers=admin_headers).status_code == 422
    assert client.get(url + "?sort=nope", headers=admin_headers).status_code == 422


def test_thresholds_are_in_the_unit_the_table_shows(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    """Rates are percent in the table, so the threshold fields are percent too."""
    c = build_campaign(db)
    url = f"/batches/{c.batch_id}/dashboard"
    form = page(client, admin_headers, url).one("form", class_="thresholds")
    fields = {i.attrs["name"]: i for i in form.find_all("input", inputmode="decimal")}
    assert {k: v.attrs["value"] for k, v in fields.items()} == {
        "min_agreement": "70",
        "min_gold": "80",
        "max_skip": "25",
        "min_seconds": "10",
    }
    labels = [label.text for label in form.find_all("label")]
    assert [label.split(" (")[1][:2] for label in labels] == ["%)", "%)", "%)", "s)"]
    # 72.7% agreement is under a 75 threshold, as the table reads it.
    table = annotator_table(
        page(client, admin_headers, url + "?min_agreement=75&min_gold=&max_skip=&min_seconds=")
    )
    assert table["b"][5] == "72.7%" and table["b"][7] == "agreement below 75%"
    refused = client.get(url + "?min_agreement=101", headers=admin_headers)
    assert refused.status_code == 422 and "between 0 and 100%" in refused.text


def test_live_fragment_refreshes_the_same_figures(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    c = build_campaign(db)
    full = page(client, admin_headers, f"/batches/{c.batch_id}/dashboard?sort=gold")
    live = full.one("div", id="dashboard-live")
    assert live.attrs["hx-trigger"] == "every 5s" and live.attrs["hx-swap"] == "outerHTML"
    assert live.attrs["hx-get"].startswith(f"/batches/{c.batch_id}/dashboard/live?")
    assert "sort=gold" in live.attrs["hx-get"]

    r = client.get(live.attrs["hx-get"], headers={**admin_headers, "HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.text
    fragment = parse(r.text)
    assert fragment.one("div", id="dashboard-live").attrs["hx-get"] == live.attrs["hx-get"]
    assert _figure(fragment, "done") == "2"
    assert list(annotator_table(fragment)) == ["b", "d", "a", "c"]

    # A new annotation on I2 completes it: the next refresh shows it.
    item = c.built.items[2]
    late = user(db, name=f"e-{c.people['a'].username.split('-')[1]}")
    annotate(db, c.built, item, late, payload(c.built.ids(item)))
    row = db.get(BatchItem, (c.batch_id, item.id))
    assert row is not None
    row.taken, row.submitted = 3, 3
    db.flush()
    fragment = parse(client.get(live.attrs["hx-get"], headers=admin_headers).text)
    assert _figure(fragment, "done") == "3"
    assert "e" in annotator_table(fragment)


def test_overview_lists_every_batch_side_by_side(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    c = build_campaign(db)
    empty = build(db, 2, overlap=2, project=c.built.project)
    root = page(client, admin_headers, f"/overview?project_id={c.built.project.id}")
    rows = {r.attrs["data-batch"]: r for r in root.find_all("tr", data_batch=None)}
    assert set(rows) == {str(c.batch_id), str(empty.batch.id)}
    mine = rows[str(c.batch_id)]
    assert _figure(mine, "done") == "2 / 5"
    assert _figure(mine, "submitted").startswith("8 / 15")
    alphas = {n.attrs["data-alpha"]: n.text for n in mine.find_all("td", data_alpha=None)}
    assert alphas == {
        "helpfulness": "-0.167",
        "harmlessness": "0.000",
        "is_safe": "0.464",
        "severity": "0.460",
    }
    assert _figure(mine, "flagged") == "2 of 4"
    assert mine.one("svg").attrs["role"] == "img"
    other = rows[str(empty.batch.id)]
    assert _figure(other, "done") == "0 / 2" and _figure(other, "flagged") == "0 of 0"
    assert (
        "no items" in other.find_all("td", data_alpha="helpfulness")[0].one("span").attrs["title"]
    )


@pytest.mark.parametrize(
    ("hours", "unit", "n"),
    [(5, "hour", 6), (24 * 10, "day", 11), (24 * 200, "week", 29)],
)
def test_completions_regroup_into_readable_units(hours: int, unit: str, n: int) -> None:
    start = datetime(2025, 3, 5, 7, tzinfo=UTC)  # a Wednesday
    hourly = [(start, 2), (start + timedelta(hours=hours), 3)]
    found_unit, buckets = service.completions_over_time(hourly)
    assert found_unit == unit and len(buckets) == n
    assert sum(count for _, count in buckets) == 5
    if unit == "week":
        assert buckets[0][0] == datetime(2025, 3, 3, tzinfo=UTC)  # Monday of that week


def test_charts_are_plain_svg_without_inline_style() -> None:
    svg = str(charts.columns([("a", 3), ("b", 0)], title="t <x>"))
    assert svg.startswith("<svg") and "style=" not in svg and "t &lt;x&gt;" in svg
    assert charts.nice_ceiling(7) == 10 and charts.nice_ceiling(0.3) == 0.5
    assert charts.nice_ceiling(2100) == 2500 and charts.nice_ceiling(1) == 1
