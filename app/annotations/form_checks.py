"""The annotation form's own checks, every problem at once, in the words the page's script
uses (static/annotate.js, `validate`): without JavaScript a refused submit reads the same.

These are the form-filling rules (every answer labelled, every ranking complete, safe above
unsafe); the data rules behind them stay in app/annotations/validation.py, which still runs
on every submit and speaks for anything these do not catch.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import FormData

from app.annotations.guide import DIMENSIONS
from app.annotations.presenter import letter, project_dimensions
from app.projects.models import Project
from app.queue.views import AssignmentView


def form_problems(form: FormData, view: AssignmentView) -> dict[str, str]:
    """Problems keyed by the field they belong to (`r<id>_safe|cat|sev`, a dimension,
    `rationale`), in page order; empty when the form is complete."""
    return label_problems(
        form, view.project, [r.id for r in view.responses], rationale=view.project.ask_rationale
    )


def label_problems(
    form: FormData, project: Project, ids: Sequence[int], *, rationale: bool
) -> dict[str, str]:
    """The checks of `form_problems` for any label form of these responses (the adjudication
    form asks the same questions, without a rationale)."""
    errors: dict[str, str] = {}
    letters = {rid: letter(i) for i, rid in enumerate(ids)}
    safe: dict[int, bool] = {}
    if project.ask_safety:
        for rid in ids:
            key = f"r{rid}"
            choice = form.get(f"{key}_safe")
            if choice not in ("safe", "unsafe"):
                errors[f"{key}_safe"] = f"Mark response {letters[rid]} safe or unsafe."
                continue
            safe[rid] = choice == "safe"
            if choice == "unsafe":
                if not form.getlist(f"{key}_cat"):
                    errors[f"{key}_cat"] = "An unsafe response needs at least one harm category."
                if not form.get(f"{key}_sev"):
                    errors[f"{key}_sev"] = "An unsafe response needs a severity."
    for dim in project_dimensions(project):
        order = [
            int(str(v))
            for rank in range(1, len(ids) + 1)
            if str(v := form.get(f"{dim}_{rank}") or "").isdigit()
        ]
        if len(set(order)) != len(order):
            errors[dim] = "Each response can hold only one rank."
        elif len(order) != len(ids) or set(order) != set(ids):
            errors[dim] = "Choose A or B." if len(ids) == 2 else "Rank every response."
        elif dim == "harmlessness" and len(safe) == len(ids):
            first_unsafe = None
            for rid in order:
                if not safe[rid]:
                    first_unsafe = first_unsafe or rid
                elif first_unsafe is not None:
                    errors[dim] = (
                        f"Response {letters[rid]} is labelled safe, so it must rank above the "
                        f"unsafe response {letters[first_unsafe]} (harmless answers always "
                        "outrank harmful ones)."
                    )
                    break
    if rationale and not str(form.get("rationale") or "").strip():
        errors["rationale"] = "Write a short rationale."
    return errors


def listed_problems(errors: dict[str, str], ids: Sequence[int]) -> list[tuple[str, str, str]]:
    """(field key, what it is, message) for the summary at the top of a label form."""
    letters = {f"r{rid}": letter(i) for i, rid in enumerate(ids)}
    listed = []
    for key, message in errors.items():
        if key in DIMENSIONS:
            label = DIMENSIONS[key][0]
        elif key == "rationale":
            label = "Rationale"
        elif key.split("_", 1)[0] in letters:
            label = f"Response {letters[key.split('_', 1)[0]]}"
        else:
            label = ""
        listed.append((key, label, message))
    return listed
