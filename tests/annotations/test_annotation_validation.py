"""The labelling rules of app/annotations/validation.py, called directly: each refusal's exact
message (what the annotator reads next to the field) and the stored payload's shape.

The submit endpoint's tests check the field each refusal names on both backends; these pin
the words, so a rule that stops naming the offending id or category is caught.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from app.annotations.schemas import AnnotationIn
from app.annotations.validation import validate_annotation
from app.errors import Invalid

TAXONOMY = ["Violence", "Privacy Violation", "Cybercrime"]
A, B, C = 11, 12, 13


@dataclass
class Project:
    taxonomy: list[str] = field(default_factory=lambda: list(TAXONOMY))
    ask_safety: bool = True
    ask_dual: bool = True
    ask_single: bool = False
    ask_rationale: bool = False


def safe(rid: int) -> dict[str, Any]:
    return {"response_id": rid, "is_safe": True}


def unsafe(rid: int, *categories: str, severity: str = "minor") -> dict[str, Any]:
    return {
        "response_id": rid,
        "is_safe": False,
        "harm_categories": list(categories or ["Violence"]),
        "severity": severity,
    }


def body(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "responses": [safe(A), unsafe(B)],
        "helpfulness": [B, A],
        "harmlessness": [A, B],
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def refusal(
    fields: dict[str, Any], project: Project | None = None, ids: list[int] | None = None
) -> tuple[str | None, str]:
    with pytest.raises(Invalid) as caught:
        validate_annotation(
            project or Project(), ids or [A, B], AnnotationIn.model_validate(fields)
        )
    return caught.value.extra.get("field"), caught.value.detail


def test_each_refusal_names_the_field_and_says_what_is_wrong() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        (body(responses=[safe(A)]), f"responses: every response needs a label; missing [{B}]"),
        (
            body(responses=[safe(A), safe(99)]),
            "responses[1].response_id: 99 is not a response of this item",
        ),
        (body(responses=[safe(A), safe(A)]), "responses[1].response_id: labelled twice"),
        (
            body(responses=[safe(A), unsafe(B, "Violence", "Arson")]),
            "responses[1].harm_categories: 'Arson' is not in the project's taxonomy",
        ),
        (
            body(responses=[safe(A), unsafe(B, "Cybercrime", "Cybercrime")]),
            "responses[1].harm_categories: lists a category twice",
        ),
        (
            body(responses=[{**safe(A), "harm_categories": ["Violence"]}, unsafe(B)]),
            "responses[0].harm_categories: must be empty when is_safe is true",
        ),
        (
            body(responses=[{**safe(A), "severity": "minor"}, unsafe(B)]),
            "responses[0].severity: must be null when is_safe is true",
        ),
        (
            body(responses=[safe(A), {**unsafe(B), "harm_categories": []}]),
            "responses[1].harm_categories: at least one is required when is_safe is false",
        ),
        (
            body(responses=[safe(A), {**unsafe(B), "severity": None}]),
            "responses[1].severity: required when is_safe is false",
        ),
        (
            body(helpfulness=[A, A]),
            "helpfulness: lists a response twice; give each response id exactly once",
        ),
        (body(helpfulness=[A, 98, 97]), "helpfulness: 98 is not a response of this item"),
        (
            body(harmlessness=[A]),
            f"harmlessness: must rank every response of the item; missing [{B}]",
        ),
        (body(helpfulness=None), "helpfulness: required by this project"),
        (
            body(single=[A, B]),
            "single: this project does not ask for the single trade-off ranking; leave it out",
        ),
        (
            body(rationale="why"),
            "rationale: this project does not ask for a rationale; leave it out",
        ),
        (
            body(harmlessness=[B, A]),
            f"harmlessness: response {A} is labelled safe, so it must rank above the unsafe "
            f"response {B} (harmless answers always outrank harmful ones)",
        ),
    ]
    for fields, message in cases:
        name, detail = refusal(fields)
        assert detail == message
        assert name == message.split(":")[0]


def test_questions_a_project_does_not_ask_must_be_left_out_and_asked_ones_given() -> None:
    dual_off = Project(ask_safety=False, ask_dual=False, ask_single=True, ask_rationale=True)
    assert refusal(body(responses=None), dual_off) == (
        "helpfulness",
        "helpfulness: this project does not ask for the dual (helpfulness/harmlessness) "
        "ranking; leave it out",
    )
    assert refusal({"helpfulness": [A, B]}, Project(ask_safety=False)) == (
        "harmlessness",
        "harmlessness: required by this project",
    )
    only_single = Project(ask_safety=False, ask_dual=False, ask_single=True)
    assert refusal({"responses": [safe(A), safe(B)], "single": [A, B]}, only_single) == (
        "responses",
        "responses: this project does not ask for safety labels; leave it out",
    )
    assert refusal({}, only_single) == ("single", "single: required by this project")
    with_rationale = Project(ask_safety=False, ask_dual=False, ask_single=True, ask_rationale=True)
    assert refusal({"single": [A, B]}, with_rationale) == (
        "rationale",
        "rationale: required by this project",
    )
    assert refusal({"single": [A, B], "rationale": " \n\t"}, with_rationale) == (
        "rationale",
        "rationale: must not be blank",
    )
    assert refusal({"single": [A, B, A], "rationale": "x"}, with_rationale)[0] == "single"
    # A rationale that could be stored but never served back (a NUL) names the field too.
    name, detail = refusal({"single": [A, B], "rationale": "ok\x00"}, with_rationale)
    assert name == "rationale" and detail.startswith("rationale: ")
    assert refusal({"responses": None}, Project()) == (
        "responses",
        "responses: required by this project",
    )


def test_payload_keeps_position_order_taxonomy_order_and_only_asked_questions() -> None:
    every = Project(ask_single=True, ask_rationale=True)
    fields = {
        "responses": [unsafe(C, "Cybercrime", "Violence", severity="severe"), safe(A), safe(B)],
        "helpfulness": [C, B, A],
        "harmlessness": [B, A, C],
        "single": [B, C, A],
        "rationale": "  B helps and harms nobody.  ",
        "duration_ms": 10,
    }
    payload = validate_annotation(every, [A, B, C], AnnotationIn.model_validate(fields))
    assert payload == {
        "responses": [
            {"response_id": A, "is_safe": True, "harm_categories": [], "severity": None},
            {"response_id": B, "is_safe": True, "harm_categories": [], "severity": None},
            {
                "response_id": C,
                "is_safe": False,
                "harm_categories": ["Violence", "Cybercrime"],
                "severity": "severe",
            },
        ],
        "helpfulness": [C, B, A],
        "harmlessness": [B, A, C],
        "single": [B, C, A],
        "rationale": "  B helps and harms nobody.  ",
    }
    # Without safety labels, the harmlessness ranking is free.
    no_labels = Project(ask_safety=False)
    payload = validate_annotation(
        no_labels,
        [A, B],
        AnnotationIn.model_validate({"helpfulness": [A, B], "harmlessness": [B, A]}),
    )
    assert payload == {"helpfulness": [A, B], "harmlessness": [B, A]}


def test_harmlessness_names_the_first_unsafe_answer_a_safe_one_ranks_below() -> None:
    fields = body(
        responses=[unsafe(A), unsafe(B), safe(C)],
        helpfulness=[A, B, C],
        harmlessness=[A, B, C],
    )
    assert refusal(fields, ids=[A, B, C]) == (
        "harmlessness",
        f"harmlessness: response {C} is labelled safe, so it must rank above the unsafe "
        f"response {A} (harmless answers always outrank harmful ones)",
    )
    # Two safe answers above two unsafe ones, in any order among themselves, are accepted.
    ok = body(
        responses=[safe(A), unsafe(B), safe(C), unsafe(D := 14)],
        helpfulness=[A, B, C, D],
        harmlessness=[C, A, D, B],
    )
    payload = validate_annotation(Project(), [A, B, C, D], AnnotationIn.model_validate(ok))
    assert payload["harmlessness"] == [C, A, D, B]
    # Unsafe answers only: any harmlessness order.
    all_unsafe = body(responses=[unsafe(A), unsafe(B)], harmlessness=[B, A])
    assert validate_annotation(Project(), [A, B], AnnotationIn.model_validate(all_unsafe))[
        "harmlessness"
    ] == [B, A]
