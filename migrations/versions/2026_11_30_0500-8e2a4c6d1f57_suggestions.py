"""suggestions

Model suggestions after import: a confidence and an analysis on reference labels, which origins
each assignment was sent, and a batch's pre-screening threshold.

Revision ID: 8e2a4c6d1f57
Revises: 5d1f0c2b7e91
Create Date: 2026-11-30 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "8e2a4c6d1f57"
down_revision: str | None = "5d1f0c2b7e91"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reference_labels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confidence", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("analysis", sa.Text(), nullable=True))
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("suggestion_threshold", sa.Float(), nullable=True))
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
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("suggestion_threshold")
    with op.batch_alter_table("reference_labels", schema=None) as batch_op:
        batch_op.drop_column("analysis")
        batch_op.drop_column("confidence")
