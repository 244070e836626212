"""The plain HTML annotation form (works without JavaScript) turned into the API's body.

Field names: `r<id>_safe` ("safe"/"unsafe"), `r<id>_cat` (repeated category names),
`r<id>_sev` (severity or empty), `<dimension>_<rank>` (a response id per rank, from 1),
`rationale`, `duration_ms`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from app.annotations.schemas import AnnotationIn
from app.errors import Invalid

if TYPE_CHECKING:
    from app.queue.views import AssignmentView

DIMENSIONS = ("helpfulness", "harmlessness", "single")


def _int(raw: Any) -> int | None:
    try:
        return int(str(raw))
    except ValueError:
        return None


def annotation_from_form(
    form: FormData, view: AssignmentView, *, lenient: bool = False
) -> AnnotationIn:
    """The form as an AnnotationIn. Unanswered questions become Invalid naming the response
    letter, unless `lenient` (used to refill the form after an error)."""
    project = view.project
    body: dict[str, Any] = {}
    if project.ask_safety:
        labels = []
        for index, response in enumerate(view.responses):
            key = f"r{response.id}"
            choice = form.get(f"{key}_safe")
            if choice not in ("safe", "unsafe"):
                if lenient:
                    continue
                raise Invalid(
                    f"responses[{index}].is_safe: mark response {chr(65 + index)} safe or unsafe",
                    field=f"responses[{index}].is_safe",
                )
            safe = choice == "safe"
            severity = str(form.get(f"{key}_sev") or "") or None
            labels.append(
                {
                    "response_id": response.id,
                    "is_safe": safe,
                    # A safe answer has no harm: ignore leftovers ticked before choosing "safe".
                    "harm_categories": [] if safe else [str(c) for c in form.getlist(f"{key}_cat")],
                    "severity": None if safe else severity,
                }
            )
        body["responses"] = labels
    asked = {
        "helpfulness": project.ask_dual,
        "harmlessness": project.ask_dual,
        "single": project.ask_single,
    }
    for dimension in DIMENSIONS:
        if not asked[dimension]:
            continue
        ranking = []
        for rank in range(1, len(view.responses) + 1):
            value = _int(form.get(f"{dimension}_{rank}", ""))
            if value is not None:
                ranking.append(value)
        body[dimension] = ranking
    if project.ask_rationale:
        body["rationale"] = str(form.get("rationale", ""))
    duration = _int(form.get("duration_ms", ""))
    if duration is not None and duration >= 0:
        body["duration_ms"] = duration
    try:
        return AnnotationIn.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise Invalid(f"{field}: {first['msg']}", field=field) from None
