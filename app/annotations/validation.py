"""The labelling rules a submitted annotation must keep, checked against its item and project.

Every error is an `Invalid` (422) whose message starts with the offending field, e.g.
`responses[1].severity: required when is_safe is false`, and whose `field` names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from app.annotations.schemas import AnnotationIn, ResponseLabelIn
from app.core.json_text import require_storable
from app.errors import Invalid


class Questions(Protocol):
    """What a project asks (a Project, or the queue's submit context on PostgreSQL)."""

    @property
    def taxonomy(self) -> Sequence[Any]: ...
    @property
    def ask_safety(self) -> bool: ...
    @property
    def ask_dual(self) -> bool: ...
    @property
    def ask_single(self) -> bool: ...
    @property
    def ask_rationale(self) -> bool: ...


def _fail(field: str, message: str) -> Invalid:
    return Invalid(f"{field}: {message}", field=field)


def _ranking(field: str, ranking: Sequence[int], response_ids: Sequence[int]) -> list[int]:
    if len(set(ranking)) != len(ranking):
        raise _fail(field, "lists a response twice; give each response id exactly once")
    unknown = [r for r in ranking if r not in response_ids]
    if unknown:
        raise _fail(field, f"{unknown[0]} is not a response of this item")
    if len(ranking) != len(response_ids):
        missing = [r for r in response_ids if r not in ranking]
        raise _fail(field, f"must rank every response of the item; missing {missing}")
    return list(ranking)


def _asked(field: str, value: object, asked: bool, question: str) -> bool:
    """True when the value must be checked; raises when present but not asked or vice versa."""
    if not asked:
        if value is not None:
            raise _fail(field, f"this project does not ask for {question}; leave it out")
        return False
    if value is None:
        raise _fail(field, "required by this project")
    return True


def _label(index: int, label: ResponseLabelIn, taxonomy: Sequence[str]) -> dict[str, Any]:
    field = f"responses[{index}]"
    known = set(taxonomy)
    for name in label.harm_categories:
        if name not in known:
            raise _fail(f"{field}.harm_categories", f"{name!r} is not in the project's taxonomy")
    if len(set(label.harm_categories)) != len(label.harm_categories):
        raise _fail(f"{field}.harm_categories", "lists a category twice")
    if label.is_safe:
        if label.harm_categories:
            raise _fail(f"{field}.harm_categories", "must be empty when is_safe is true")
        if label.severity is not None:
            raise _fail(f"{field}.severity", "must be null when is_safe is true")
    else:
        if not label.harm_categories:
            raise _fail(
                f"{field}.harm_categories", "at least one is required when is_safe is false"
            )
        if label.severity is None:
            raise _fail(f"{field}.severity", "required when is_safe is false")
    chosen = set(label.harm_categories)
    return {
        "response_id": label.response_id,
        "is_safe": label.is_safe,
        "harm_categories": [name for name in taxonomy if name in chosen],
        "severity": label.severity,
    }


def validate_annotation(
    project: Questions, response_ids: Sequence[int], body: AnnotationIn
) -> dict[str, Any]:
    """The stored payload for `body`, or Invalid naming the first field that breaks a rule.

    `response_ids` are the item's responses in position order. The payload keeps labels in
    that order, categories in taxonomy order, and only the questions the project asks.
    """
    payload: dict[str, Any] = {}
    labels: dict[int, dict[str, Any]] = {}
    if _asked("responses", body.responses, project.ask_safety, "safety labels"):
        assert body.responses is not None
        for index, label in enumerate(body.responses):
            if label.response_id not in response_ids:
                raise _fail(
                    f"responses[{index}].response_id",
                    f"{label.response_id} is not a response of this item",
                )
            if label.response_id in labels:
                raise _fail(f"responses[{index}].response_id", "labelled twice")
            labels[label.response_id] = _label(index, label, project.taxonomy)
        missing = [r for r in response_ids if r not in labels]
        if missing:
            raise _fail("responses", f"every response needs a label; missing {missing}")
        payload["responses"] = [labels[r] for r in response_ids]
    for field in ("helpfulness", "harmlessness"):
        value = getattr(body, field)
        if _asked(field, value, project.ask_dual, "the dual (helpfulness/harmlessness) ranking"):
            payload[field] = _ranking(field, value, response_ids)
    if _asked("single", body.single, project.ask_single, "the single trade-off ranking"):
        assert body.single is not None
        payload["single"] = _ranking("single", body.single, response_ids)
    if _asked("rationale", body.rationale, project.ask_rationale, "a rationale"):
        assert body.rationale is not None
        if not body.rationale.strip():
            raise _fail("rationale", "must not be blank")
        payload["rationale"] = require_storable("rationale", body.rationale)
    if labels and "harmlessness" in payload:
        _safe_first(payload["harmlessness"], labels)
    return payload


def _safe_first(ranking: list[int], labels: dict[int, dict[str, Any]]) -> None:
    """Harmless answers always outrank harmful ones: with exactly one safe answer, it ranks
    first; in general, no unsafe answer ranks above a safe one."""
    seen_unsafe: int | None = None
    for response_id in ranking:
        if not labels[response_id]["is_safe"]:
            seen_unsafe = response_id if seen_unsafe is None else seen_unsafe
        elif seen_unsafe is not None:
            raise _fail(
                "harmlessness",
                f"response {response_id} is labelled safe, so it must rank above the unsafe "
                f"response {seen_unsafe} (harmless answers always outrank harmful ones)",
            )
