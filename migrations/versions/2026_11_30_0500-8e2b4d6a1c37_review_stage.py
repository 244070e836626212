"""review stage

The reviewer role, each batch's review rate and minimum time, and the reviews table.

Revision ID: 8e2b4d6a1c37
Revises: 8e2a4c6d1f03
Create Date: 2026-11-30 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "8e2b4d6a1c37"
down_revision: str | None = "8e2a4c6d1f03"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = "'leased', 'expired', 'accepted', 'rejected', 'excluded'"


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint("role_valid", type_="check")
        batch_op.create_check_constraint("role_valid", "role IN ('admin', 'reviewer', 'annotator')")
    if op.get_bind().dialect.name == "sqlite":
        # No table rebuild: a trigger on annotations names batches (admin console migration).
        # SQLite adds a column with its own (named) CHECK, which DROP COLUMN also takes away.
        op.execute(
            "ALTER TABLE batches ADD COLUMN review_rate DOUBLE DEFAULT '0' NOT NULL "
            "CONSTRAINT ck_batches_review_rate_share CHECK (review_rate >= 0 AND review_rate <= 1)"
        )
        op.execute(
            "ALTER TABLE batches ADD COLUMN min_seconds DOUBLE CONSTRAINT "
            "ck_batches_min_seconds_valid CHECK (min_seconds IS NULL OR min_seconds >= 0)"
        )
    else:
        op.add_column(
            "batches", sa.Column("review_rate", sa.Double(), server_default="0", nullable=False)
        )
        op.add_column("batches", sa.Column("min_seconds", sa.Double(), nullable=True))
        op.create_check_constraint(
            "review_rate_share", "batches", "review_rate >= 0 AND review_rate <= 1"
        )
        op.create_check_constraint(
            "min_seconds_valid", "batches", "min_seconds IS NULL OR min_seconds >= 0"
        )
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("annotation_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("leased_until", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(f"status IN ({STATUSES})", name=op.f("ck_reviews_status_valid")),
        sa.ForeignKeyConstraint(
            ["annotation_id"],
            ["annotations.id"],
            name=op.f("fk_reviews_annotation_id_annotations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["annotator_id"],
            ["users.id"],
            name=op.f("fk_reviews_annotator_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_reviews_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"],
            ["users.id"],
            name=op.f("fk_reviews_reviewer_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
        sa.UniqueConstraint(
            "annotation_id", "revision", name=op.f("uq_reviews_annotation_id_revision")
        ),
    )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.create_index("ix_reviews_batch_status", ["batch_id", "status"], unique=False)
        batch_op.create_index("ix_reviews_annotator", ["batch_id", "annotator_id"], unique=False)
        batch_op.create_index(
            "ux_reviews_one_lease",
            ["reviewer_id"],
            unique=True,
            sqlite_where=sa.text("status = 'leased'"),
            postgresql_where=sa.text("status = 'leased'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_index("ux_reviews_one_lease")
        batch_op.drop_index("ix_reviews_annotator")
        batch_op.drop_index("ix_reviews_batch_status")
    op.drop_table("reviews")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE batches DROP COLUMN min_seconds")
        op.execute("ALTER TABLE batches DROP COLUMN review_rate")
    else:
        op.drop_constraint("min_seconds_valid", "batches", type_="check")
        op.drop_constraint("review_rate_share", "batches", type_="check")
        op.drop_column("batches", "min_seconds")
        op.drop_column("batches", "review_rate")
    # Reviewers become annotators: their accounts and work stay.
    op.execute("UPDATE users SET role = 'annotator' WHERE role = 'reviewer'")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint("role_valid", type_="check")
        batch_op.create_check_constraint("role_valid", "role IN ('admin', 'annotator')")
