"""Imports every domain's models so that Base.metadata knows all tables (Alembic, tests)."""

from app.annotations.models import Adjudication, Annotation, AnnotationRevision, Draft
from app.auth.models import ApiToken, LoginFailure, SetupToken, User
from app.batches.models import Assignment, Batch, BatchItem, BatchMember
from app.db import Base
from app.exports.keys import InstanceKey
from app.items.models import GoldLabel, Item, ReferenceLabel, Response
from app.projects.models import GuidelineVersion, Project
from app.suggestions.models import SuggestionView

__all__ = [
    "Adjudication",
    "Annotation",
    "AnnotationRevision",
    "ApiToken",
    "Assignment",
    "Base",
    "Batch",
    "BatchItem",
    "BatchMember",
    "Draft",
    "GoldLabel",
    "GuidelineVersion",
    "InstanceKey",
    "Item",
    "LoginFailure",
    "Project",
    "ReferenceLabel",
    "Response",
    "SetupToken",
    "SuggestionView",
    "User",
]
