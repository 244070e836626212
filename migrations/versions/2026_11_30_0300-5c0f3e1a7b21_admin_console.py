"""admin console: first-run setup tokens, guideline versions, archived projects and batches

Every project gets version 1 of its guidelines, and every existing annotation is recorded as
made under it (the guidelines could not change before this revision). From here on a trigger
sets annotations.guideline_version_id to the project's newest version when an annotation is
inserted or revised, whichever code path writes it (the Python queue, or the PostgreSQL queue
functions).

Revision ID: 5c0f3e1a7b21
Revises: 5b7e1c2d9f30
Create Date: 2026-11-30 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "5c0f3e1a7b21"
down_revision: str | None = "5b7e1c2d9f30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "setup_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_setup_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_setup_tokens_token_hash")),
    )

    op.create_table(
        "guideline_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("guidelines", sa.Text(), nullable=False),
        sa.Column("questions", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_guideline_versions_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_guideline_versions_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guideline_versions")),
        sa.UniqueConstraint(
            "project_id", "version", name=op.f("uq_guideline_versions_project_id_version")
        ),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.add_column("annotations", sa.Column("guideline_version_id", sa.Integer()))
    for table in ("projects", "batches"):
        op.add_column(table, sa.Column("archived_at", app.db.UTCDateTime(timezone=True)))

    bind = op.get_bind()
    projects = sa.table(
        "projects",
        sa.column("id", sa.Integer()),
        sa.column("guidelines", sa.Text()),
        *(sa.column(name, sa.Boolean()) for name in QUESTIONS),
    )
    versions = sa.table(
        "guideline_versions",
        sa.column("project_id", sa.Integer()),
        sa.column("version", sa.Integer()),
        sa.column("guidelines", sa.Text()),
        sa.column("questions", sa.JSON()),
        sa.column("created_at", app.db.UTCDateTime(timezone=True)),
    )
    rows = [
        {
            "project_id": row.id,
            "version": 1,
            "guidelines": row.guidelines,
            "questions": {name: bool(getattr(row, name)) for name in QUESTIONS},
            "created_at": app.db.utcnow(),
        }
        for row in bind.execute(sa.select(projects))
    ]
    if rows:
        op.bulk_insert(versions, rows)
    op.execute(
        "UPDATE annotations SET guideline_version_id = (SELECT gv.id FROM guideline_versions gv "
        "JOIN batches b ON b.project_id = gv.project_id WHERE b.id = annotations.batch_id)"
    )
    if sqlite:
        for event in ("INSERT", "UPDATE OF revision"):
            name = "insert" if event == "INSERT" else "revise"
            op.execute(
                f"CREATE TRIGGER annotations_guideline_version_{name} AFTER {event} ON annotations "
                f"BEGIN UPDATE annotations SET guideline_version_id = ({NEWEST_SQLITE}) "
                "WHERE id = NEW.id; END"
            )
    else:
        op.execute(PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER annotations_guideline_version BEFORE INSERT OR UPDATE OF revision "
            "ON annotations FOR EACH ROW EXECUTE FUNCTION record_guideline_version()"
        )


QUESTIONS = ("ask_safety", "ask_dual", "ask_single", "ask_rationale", "show_suggestions")
NEWEST_SQLITE = (
    "SELECT max(gv.id) FROM guideline_versions gv JOIN batches b "
    "ON b.project_id = gv.project_id WHERE b.id = NEW.batch_id"
)
# Not named safepref_*: that prefix belongs to the queue, whose functions each have a canonical
# file in app/queue/sql/ (a test compares them with what the migrations installed).
PG_FUNCTION = """
CREATE OR REPLACE FUNCTION record_guideline_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT max(gv.id) INTO NEW.guideline_version_id
    FROM guideline_versions gv JOIN batches b ON b.project_id = gv.project_id
    WHERE b.id = NEW.batch_id;
    RETURN NEW;
END $$
"""


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS annotations_guideline_version_insert")
        op.execute("DROP TRIGGER IF EXISTS annotations_guideline_version_revise")
    else:
        op.execute("DROP TRIGGER IF EXISTS annotations_guideline_version ON annotations")
        op.execute("DROP FUNCTION IF EXISTS record_guideline_version()")
    op.drop_column("annotations", "guideline_version_id")
    for table in ("projects", "batches"):
        op.drop_column(table, "archived_at")
    op.drop_table("guideline_versions")
    op.drop_table("setup_tokens")
