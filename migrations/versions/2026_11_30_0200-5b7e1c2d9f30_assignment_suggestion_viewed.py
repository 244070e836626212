"""assignment suggestion viewed

Whether the annotator opened the model suggestion is recorded by the server when it sends the
suggestion (the page no longer carries it), so it is kept on the assignment until the
annotation exists.

Revision ID: 5b7e1c2d9f30
Revises: 1ada494eb64e
Create Date: 2026-11-30 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b7e1c2d9f30"
down_revision: str | None = "1ada494eb64e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("assignments") as batch:
        batch.add_column(
            sa.Column("suggestion_viewed", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("assignments") as batch:
        batch.drop_column("suggestion_viewed")
