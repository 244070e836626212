"""Guideline versions: each edit of a project's guidelines or asked questions adds one.

The project row keeps the current values (every page reads them there); the versions keep
the history, and annotations point at the version they were made under. An annotator whose
last annotation in the project was made under an older version is shown what changed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.annotations.models import Annotation
from app.batches.models import Batch
from app.errors import Invalid
from app.projects.models import QUESTION_FIELDS, GuidelineVersion, Project

QUESTION_LABELS = {
    "ask_safety": "safety labels",
    "ask_dual": "dual ranking (helpfulness and harmlessness)",
    "ask_single": "single ranking",
    "ask_rationale": "rationale",
    "show_suggestions": "model suggestions shown",
}


def questions_of(project: Project) -> dict[str, bool]:
    return {name: bool(getattr(project, name)) for name in QUESTION_FIELDS}


def record_version(session: Session, project: Project, by: int | None = None) -> GuidelineVersion:
    """Adds the project's current guidelines and questions as its next version."""
    last = session.scalar(
        select(func.max(GuidelineVersion.version)).where(GuidelineVersion.project_id == project.id)
    )
    version = GuidelineVersion(
        project_id=project.id,
        version=(last or 0) + 1,
        guidelines=project.guidelines,
        questions=questions_of(project),
        created_by=by,
    )
    session.add(version)
    session.flush()
    return version


def edit_guidelines(
    session: Session, project: Project, guidelines: str, questions: dict[str, bool], by: int
) -> GuidelineVersion | None:
    """Sets new guidelines and questions; a new version if anything changed, else None."""
    if not any(questions.get(q) for q in ("ask_safety", "ask_dual", "ask_single")):
        raise Invalid("questions: ask at least one of safety labels, dual or single ranking")
    wanted = {name: bool(questions.get(name)) for name in QUESTION_FIELDS}
    if guidelines == project.guidelines and wanted == questions_of(project):
        return None
    project.guidelines = guidelines
    for name, value in wanted.items():
        setattr(project, name, value)
    return record_version(session, project, by)


def list_versions(session: Session, project_id: int) -> list[GuidelineVersion]:
    return list(
        session.scalars(
            select(GuidelineVersion)
            .where(GuidelineVersion.project_id == project_id)
            .order_by(GuidelineVersion.version.desc())
        )
    )


@dataclass(frozen=True)
class ChangeNotice:
    since: GuidelineVersion
    current: GuidelineVersion
    diff: list[str]  # unified diff lines of the guidelines text
    questions: list[str]  # "now asked: ..." / "no longer asked: ..."


def change_notice(session: Session, project_id: int, annotator_id: int) -> ChangeNotice | None:
    """What changed since the version of the annotator's last annotation in the project."""
    current = session.scalar(
        select(GuidelineVersion)
        .where(GuidelineVersion.project_id == project_id)
        .order_by(GuidelineVersion.version.desc())
        .limit(1)
    )
    if current is None:
        return None
    last_id = session.scalar(
        select(Annotation.guideline_version_id)
        .join(Batch, Batch.id == Annotation.batch_id)
        .where(Batch.project_id == project_id, Annotation.annotator_id == annotator_id)
        .order_by(Annotation.updated_at.desc(), Annotation.id.desc())
        .limit(1)
    )
    if last_id is None or last_id == current.id:
        return None
    since = session.get(GuidelineVersion, last_id)
    if since is None or since.version >= current.version:
        return None
    diff = list(
        difflib.unified_diff(
            since.guidelines.splitlines(),
            current.guidelines.splitlines(),
            f"version {since.version}",
            f"version {current.version}",
            lineterm="",
        )
    )
    return ChangeNotice(since, current, diff, _question_changes(since.questions, current.questions))


def _question_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    changes = []
    for name, label in QUESTION_LABELS.items():
        if bool(before.get(name)) != bool(after.get(name)):
            changes.append(("now asked: " if after.get(name) else "no longer asked: ") + label)
    return changes
