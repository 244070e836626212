"""The training step after each qualification answer: the member's answer beside the key,
question by question, with the guideline lines that speak to the questions they missed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.annotations.guide import DIMENSIONS, SEVERITIES
from app.dashboard.gold import PREFERENCES

GUIDELINE_LINES = 6  # per question missed: enough to point at the rule, not to reprint it

# The words that mark a guideline line as being about a question (lower case).
_TOPICS: dict[str, tuple[str, ...]] = {
    "is_safe": ("safe", "harm"),
    "severity": ("severity", "minor", "moderate", "severe"),
    "harm_categories": ("categor",),
    "helpfulness": ("helpful",),
    "harmlessness": ("harmless",),
    "single": ("overall", "trade-off", "better"),
}


@dataclass(frozen=True)
class Row:
    """One question: what the member answered, what the key says, whether they match."""

    question: str
    given: str
    expected: str
    matches: bool
    topic: str


@dataclass(frozen=True)
class Feedback:
    rows: list[Row]
    # Per topic missed: (question, guideline lines).
    guidance: list[tuple[str, list[str]]] = field(default_factory=list)

    @property
    def all_match(self) -> bool:
        return all(row.matches for row in self.rows)


def _safety(label: Mapping[str, Any] | None) -> str:
    if label is None or label.get("is_safe") is None:
        return "—"
    return "safe" if label["is_safe"] else "unsafe"


def _categories(label: Mapping[str, Any] | None) -> str:
    if label is None or label.get("is_safe") is not False:
        return "none"
    return ", ".join(sorted(label.get("harm_categories") or ())) or "none"


def _severity(label: Mapping[str, Any] | None) -> str:
    if label is None or label.get("is_safe") is not False:
        return "none"
    return str(label.get("severity") or "—")


def _ranking(positions: Sequence[int] | None, letters: Mapping[int, str]) -> str:
    if not positions:
        return "—"
    return " > ".join(letters.get(p, "?") for p in positions)


def compare(
    answer: Mapping[str, Any], key: Mapping[str, Any], letters: Mapping[int, str]
) -> list[Row]:
    """Rows for an answer and a key, both with response positions; `letters` names each
    position as the member saw it. Only the questions the key answers are compared."""
    rows: list[Row] = []
    given = {r.get("position"): r for r in answer.get("responses") or ()}
    for want in sorted(key.get("responses") or (), key=lambda r: letters.get(r["position"], "")):
        if want.get("is_safe") is None:
            continue
        got = given.get(want["position"])
        name = f"Response {letters.get(want['position'], '?')}"
        for topic, show in (
            ("is_safe", _safety),
            ("harm_categories", _categories),
            ("severity", _severity),
        ):
            # A safe key answers only "safe"; an unsafe one may leave categories or severity out.
            if topic != "is_safe" and (want["is_safe"] or not want.get(topic)):
                continue
            expected, said = show(want), show(got)
            question = {
                "is_safe": "safe or unsafe",
                "harm_categories": "harm categories",
                "severity": "severity",
            }[topic]
            rows.append(Row(f"{name}: {question}", said, expected, said == expected, topic))
    for dimension in PREFERENCES:
        if key.get(dimension):
            expected = _ranking(key[dimension], letters)
            said = _ranking(answer.get(dimension), letters)
            rows.append(Row(DIMENSIONS[dimension][0], said, expected, said == expected, dimension))
    return rows


def guidance(rows: Sequence[Row], guidelines: str) -> list[tuple[str, list[str]]]:
    """For each kind of question missed, the guideline lines about it (and, for severity, the
    fixed definitions every annotator sees)."""
    lines = [line.strip() for line in guidelines.splitlines() if line.strip()]
    out: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for row in rows:
        if row.matches or row.topic in seen:
            continue
        seen.add(row.topic)
        words = _TOPICS[row.topic]
        found = [line for line in lines if any(w in line.lower() for w in words)]
        if row.topic == "severity":
            found += [f"{s.label}: {s.impact}" for s in SEVERITIES]
        if row.topic in DIMENSIONS:
            found.append(DIMENSIONS[row.topic][1])
        out.append((row.question.split(": ")[-1], found[:GUIDELINE_LINES]))
    return out


def feedback(
    answer: Mapping[str, Any], key: Mapping[str, Any], letters: Mapping[int, str], guidelines: str
) -> Feedback:
    rows = compare(answer, key, letters)
    return Feedback(rows, guidance(rows, guidelines))
