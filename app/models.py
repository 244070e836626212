"""Imports every domain's models so that Base.metadata knows all tables (Alembic, tests)."""

from app.annotations.models import Adjudication, Annotation, AnnotationRevision, Draft
from app.auth.models import ApiToken, LoginFailure, SetupToken, User
from app.batches.models import Assignment, Batch, BatchItem, BatchMember
from app.crowd.models import BatchEntry, BatchParticipant, Participant
from app.db import Base
from app.exports.keys import InstanceKey
from app.invites.models import Invite
from app.items.models import GoldLabel, Item, ReferenceLabel, Response
from app.projects.models import GuidelineVersion, Project
from app.reviews.models import Review
from app.suggestions.models import SuggestionView

__all__ = [
    "Adjudication",
    "Annotation",
    "AnnotationRevision",
    "ApiToken",
    "Assignment",
    "Base",
    "Batch",
    "BatchEntry",
    "BatchItem",
    "BatchMember",
    "BatchParticipant",
    "Draft",
    "GoldLabel",
    "GuidelineVersion",
    "InstanceKey",
    "Invite",
    "Item",
    "LoginFailure",
    "Participant",
    "Project",
    "ReferenceLabel",
    "Response",
    "Review",
    "SetupToken",
    "SuggestionView",
    "User",
]
