"""instance keys: the annotator pseudonym key, apart from the session secret

Exports named annotators by an HMAC keyed with SAFEPREF_SECRET_KEY, so rotating that secret
renamed everybody. The key now lives here, made once at random. (Pseudonyms of exports made
before this revision differ from those made after it, once.)

Revision ID: 7c3e9a1f2b64
Revises: 5c0f3e1a7b21
Create Date: 2026-11-30 03:00:00
"""

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from app.db import UTCDateTime

revision: str = "7c3e9a1f2b64"
down_revision: str | None = "5c0f3e1a7b21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "instance_keys",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_instance_keys")),
    )
    op.bulk_insert(
        table,
        [
            {
                "name": "annotator-pseudonym",
                "value": secrets.token_hex(32),
                "created_at": datetime.now(UTC),
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("instance_keys")
