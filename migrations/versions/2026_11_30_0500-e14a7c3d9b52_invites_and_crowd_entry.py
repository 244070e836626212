"""invites and crowd entry

Invitation links of a batch (token hashes and use counts), a batch's crowd entry link, the
participants bound to a crowd platform's ids, and who entered (and consented to) which batch.

Revision ID: e14a7c3d9b52
Revises: 8e2b6c4d1a57
Create Date: 2026-11-30 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "e14a7c3d9b52"
down_revision: str | None = "8e2b6c4d1a57"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "batch_invites",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("expires_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.CheckConstraint("max_uses >= 1", name=op.f("ck_batch_invites_max_uses_positive")),
        sa.CheckConstraint(
            "uses >= 0 AND uses <= max_uses", name=op.f("ck_batch_invites_uses_within_max")
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_batch_invites_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_batch_invites_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_invites")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_batch_invites_token_hash")),
    )
    with op.batch_alter_table("batch_invites", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_batch_invites_batch_id"), ["batch_id"], unique=False)

    op.create_table(
        "batch_entries",
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("completion_code", sa.String(length=100), nullable=False),
        sa.Column("redirect_url", sa.String(length=2000), nullable=True),
        sa.Column("consent", sa.Text(), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_batch_entries_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_batch_entries")),
        sa.UniqueConstraint("slug", name=op.f("uq_batch_entries_slug")),
    )

    op.create_table(
        "crowd_participants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_crowd_participants_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crowd_participants")),
        sa.UniqueConstraint("external_id", name=op.f("uq_crowd_participants_external_id")),
        sa.UniqueConstraint("user_id", name=op.f("uq_crowd_participants_user_id")),
    )
    with op.batch_alter_table("crowd_participants", schema=None) as batch_op:
        batch_op.create_index(
            "ix_crowd_participants_client_created_at", ["client", "created_at"], unique=False
        )

    op.create_table(
        "batch_participants",
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("entered_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("consented_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_batch_participants_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_batch_participants_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("batch_id", "user_id", name=op.f("pk_batch_participants")),
    )
    with op.batch_alter_table("batch_participants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_batch_participants_user_id"), ["user_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("batch_participants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batch_participants_user_id"))
    op.drop_table("batch_participants")
    with op.batch_alter_table("crowd_participants", schema=None) as batch_op:
        batch_op.drop_index("ix_crowd_participants_client_created_at")
    op.drop_table("crowd_participants")
    op.drop_table("batch_entries")
    with op.batch_alter_table("batch_invites", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batch_invites_batch_id"))
    op.drop_table("batch_invites")
