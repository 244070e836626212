"""suggestions

Model suggestions after import: a confidence and an analysis on reference labels, which origins
each assignment was sent, and a batch's pre-screening threshold.

Revision ID: 8e2a4c6d1f57
Revises: e14a7c3d9b52
Create Date: 2026-11-30 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "8e2a4c6d1f57"
down_revision: str | None = "e14a7c3d9b52"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns: a plain ADD COLUMN on SQLite too (rebuilding `batches` would trip the
    # triggers that read it).
    op.add_column("reference_labels", sa.Column("confidence", sa.Double(), nullable=True))
    op.add_column("reference_labels", sa.Column("analysis", sa.Text(), nullable=True))
    op.add_column("batches", sa.Column("suggestion_threshold", sa.Double(), nullable=True))
    op.create_table(
        "suggestion_views",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=64), nullable=False),
        sa.Column("viewed_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["assignments.id"],
            name=op.f("fk_suggestion_views_assignment_id_assignments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suggestion_views")),
        sa.UniqueConstraint(
            "assignment_id", "origin", name=op.f("uq_suggestion_views_assignment_id_origin")
        ),
    )


def downgrade() -> None:
    op.drop_table("suggestion_views")
    op.drop_column("batches", "suggestion_threshold")
    op.drop_column("reference_labels", "analysis")
    op.drop_column("reference_labels", "confidence")
