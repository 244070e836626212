"""The small world the authorization matrix runs in, and how path parameters get their values.

One project with two items in batch B, where annotator `member` holds a submitted assignment
with its annotation; annotator `nonmember` works in another batch B2 of the same project (so
"non-member" is a real annotator with work of their own, not a stranger); `deactivated` was a
member of B; `reviewer` (role reviewer) is a member of B holding a review of member's annotation;
`admin` also has a revoked token and a stale session cookie.

A route whose path has a parameter gets its value from PATH_EXAMPLES by parameter name, or, for
a name it does not know (such as `{id}`), from the resource named by the path segment before it
(SEGMENT_EXAMPLES: `/batches/{id}` is a batch). A parameter found in neither fails the matrix
with a message naming it: add an entry below (and an object to `build_world` if needed).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache

from sqlalchemy.orm import Session

from app.annotations.models import Annotation, AnnotationRevision
from app.auth.models import User
from app.auth.security import hash_password, sign_session
from app.auth.service import create_token, revoke_token
from app.batches.models import Assignment, Batch, BatchItem, BatchMember
from app.config import get_settings
from app.crowd.service import EntrySettings, set_entry
from app.db import utcnow
from app.invites.service import create_invite
from app.items.models import Item, ReferenceLabel, Response
from app.projects.models import Project
from app.projects.service import create_project
from app.reviews.models import Review

PASSWORD = "password-123"


@lru_cache
def password_hash() -> str:
    # argon2 is slow on purpose; tests that do not log in with a password share one hash.
    return hash_password(PASSWORD)


def session_cookie(user_id: int, version: int) -> str:
    return sign_session(get_settings().resolved_secret_key(), {"uid": user_id, "v": version})


@dataclass
class World:
    admin: User
    member: User
    reviewer: User
    nonmember: User
    deactivated: User
    project: Project
    item: Item
    other_item: Item
    batch: Batch
    other_batch: Batch
    assignment: Assignment
    other_assignment: Assignment
    annotation: Annotation
    review: Review
    member_token_id: int
    tokens: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    # Batch B's invitation link and crowd entry link (issue 14).
    invite_id: int = 0
    entry_slug: str = ""


def _user(session: Session, role: str, prefix: str, *, active: bool = True) -> User:
    user = User(
        username=f"{prefix}-{uuid.uuid4().hex[:6]}",
        role=role,
        password_hash=password_hash(),
        is_active=active,
    )
    session.add(user)
    session.flush()
    return user


def _item(session: Session, project: Project, n: int) -> tuple[Item, list[Response]]:
    item = Item(project_id=project.id, prompt=f"prompt {n}", content_hash=uuid.uuid4().hex)
    session.add(item)
    session.flush()
    responses = [
        Response(item_id=item.id, position=p, text=f"answer {p}", sha256=uuid.uuid4().hex)
        for p in range(2)
    ]
    session.add_all(responses)
    session.flush()
    return item, responses


def _submitted(
    session: Session, batch: Batch, item: Item, responses: list[Response], annotator: User
) -> tuple[Assignment, Annotation]:
    now = utcnow()
    batch_item = session.get(BatchItem, (batch.id, item.id))
    assert batch_item is not None
    batch_item.taken += 1
    batch_item.submitted += 1
    ids = [r.id for r in responses]
    assignment = Assignment(
        batch_id=batch.id,
        item_id=item.id,
        annotator_id=annotator.id,
        status="submitted",
        leased_until=now + timedelta(minutes=30),
        display_order=ids,
        submitted_at=now,
    )
    session.add(assignment)
    session.flush()
    payload = {
        "responses": [
            {"response_id": i, "is_safe": True, "harm_categories": [], "severity": None}
            for i in ids
        ],
        "helpfulness": ids,
        "harmlessness": ids,
    }
    annotation = Annotation(
        assignment_id=assignment.id,
        batch_id=batch.id,
        item_id=item.id,
        annotator_id=annotator.id,
        payload=payload,
    )
    session.add(annotation)
    session.flush()
    session.add(AnnotationRevision(annotation_id=annotation.id, revision=1, payload=payload))
    session.flush()
    return assignment, annotation


def build_world(session: Session) -> World:
    admin = _user(session, "admin", "admin")
    admin.session_version = 2  # version 1 cookies are "revoked sessions"
    member = _user(session, "annotator", "member")
    reviewer = _user(session, "reviewer", "reviewer")
    nonmember = _user(session, "annotator", "nonmember")
    deactivated = _user(session, "annotator", "gone")

    project = create_project(
        session, f"matrix-{uuid.uuid4().hex[:6]}", "pku-saferlhf-19", show_suggestions=True
    )
    item, responses = _item(session, project, 1)
    # A model suggestion for the member's item, so that asking for it can be allowed.
    session.add(ReferenceLabel(item_id=item.id, origin="matrix", payload={"helpfulness": [0, 1]}))
    other_item, other_responses = _item(session, project, 2)
    extra_item, _ = _item(session, project, 3)

    batch = Batch(project_id=project.id, name="B", overlap=3)
    other_batch = Batch(project_id=project.id, name="B2", overlap=3)
    session.add_all([batch, other_batch])
    session.flush()
    session.add_all(
        [
            BatchItem(batch_id=batch.id, item_id=item.id),
            BatchItem(batch_id=batch.id, item_id=extra_item.id),
            BatchItem(batch_id=other_batch.id, item_id=other_item.id),
            BatchMember(batch_id=batch.id, user_id=member.id),
            BatchMember(batch_id=batch.id, user_id=reviewer.id),
            BatchMember(batch_id=batch.id, user_id=deactivated.id),
            BatchMember(batch_id=other_batch.id, user_id=nonmember.id),
        ]
    )
    session.flush()
    assignment, annotation = _submitted(session, batch, item, responses, member)
    other_assignment, _ = _submitted(session, other_batch, other_item, other_responses, nonmember)
    review = Review(
        batch_id=batch.id,
        annotation_id=annotation.id,
        annotator_id=member.id,
        revision=1,
        reviewer_id=reviewer.id,
        reason="spot_check",
        leased_until=utcnow() + timedelta(hours=1),
    )
    session.add(review)
    session.flush()

    tokens = {}
    for name, user in (
        ("admin", admin),
        ("member", member),
        ("reviewer", reviewer),
        ("nonmember", nonmember),
    ):
        tokens[name] = create_token(session, user, "matrix")[1]
    member_token_id = create_token(session, member, "listed")[0].id
    tokens["deactivated"] = create_token(session, deactivated, "kept")[1]
    revoked, tokens["revoked"] = create_token(session, admin, "revoked")
    revoke_token(session, revoked)
    tokens["garbage"] = "sp_" + uuid.uuid4().hex
    deactivated.is_active = False  # only the flag: the matrix tests the gate itself
    session.flush()

    cookies = {
        name: session_cookie(user.id, user.session_version)
        for name, user in (
            ("admin", admin),
            ("member", member),
            ("reviewer", reviewer),
            ("nonmember", nonmember),
            ("deactivated", deactivated),
        )
    }
    cookies["revoked"] = session_cookie(admin.id, 1)
    cookies["garbage"] = "garbage." + uuid.uuid4().hex
    invite, _ = create_invite(session, batch, by=admin)
    entry = set_entry(session, batch, EntrySettings("PID", "DONE-1", None, "I agree."))
    assert entry is not None
    world = World(
        admin=admin,
        member=member,
        reviewer=reviewer,
        nonmember=nonmember,
        deactivated=deactivated,
        project=project,
        item=item,
        other_item=other_item,
        batch=batch,
        other_batch=other_batch,
        assignment=assignment,
        other_assignment=other_assignment,
        annotation=annotation,
        review=review,
        member_token_id=member_token_id,
        tokens=tokens,
        cookies=cookies,
        invite_id=invite.id,
        entry_slug=entry.slug,
    )
    return world


# Parameter name -> value in the world. The objects belong to `member` / batch B, so a
# "member"/"owner" route must let `member` in and answer 404 to `nonmember`.
PATH_EXAMPLES: dict[str, Callable[[World], object]] = {
    "project_id": lambda w: w.project.id,
    "batch_id": lambda w: w.batch.id,
    "item_id": lambda w: w.item.id,
    "assignment_id": lambda w: w.assignment.id,
    "annotation_id": lambda w: w.annotation.id,
    "username": lambda w: w.member.username,
    "token_id": lambda w: w.member_token_id,
    "review_id": lambda w: w.review.id,
    "format": lambda w: "pku-saferlhf",
    # A first-run setup link (or an invitation's): unknown here, so its page answers 404
    # (410) to everyone.
    "token": lambda w: "no-such-setup-token",
    "invite_id": lambda w: w.invite_id,
    "slug": lambda w: w.entry_slug,
}
# Path segment before an unknown parameter -> the parameter name it stands for.
SEGMENT_EXAMPLES = {
    "projects": "project_id",
    "batches": "batch_id",
    "items": "item_id",
    "assignments": "assignment_id",
    "annotations": "annotation_id",
    "users": "username",
    "tokens": "token_id",
    "reviews": "review_id",
    "exports": "format",
}


def example_value(world: World, path: str, name: str) -> object:
    if name in PATH_EXAMPLES:
        return PATH_EXAMPLES[name](world)
    segments = path.strip("/").split("/")
    marker = "{" + name + "}"
    for before, segment in itertools.pairwise(segments):
        if segment.startswith(marker[:-1]) and before in SEGMENT_EXAMPLES:
            return PATH_EXAMPLES[SEGMENT_EXAMPLES[before]](world)
    raise LookupError(
        f"no example value for path parameter {name!r} of {path}: "
        "add it to PATH_EXAMPLES in tests/support/access_world.py"
    )
