"""qualification: gold items a new member answers first, and their standing

A batch may name some of its gold items as its qualification, with an accuracy threshold.
Members who join such a batch start "pending": the queue's `next` (on PostgreSQL the function
below, re-installed with one more refusal) sends them to the qualification flow until they
pass. Their answers are assignments flagged `is_qualification`, kept out of every count.

Revision ID: 8e2b6c4d1a57
Revises: 8a4d2e6f1c37
Create Date: 2026-11-30 05:00:00
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "8e2b6c4d1a57"
down_revision: str | None = "8a4d2e6f1c37"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies (app/queue/sql/next.sql is the canonical source of the current text).
NEXT = """
CREATE OR REPLACE FUNCTION safepref_next(
    p_batch int, p_user int, p_now timestamptz, p_gold_draw float8, p_sweep bool
) RETURNS TABLE (
    outcome text, lease_id int, lease_resumed bool, lease_until timestamptz, lease_item int,
    item_prompt text, item_source text, response_ids int[], response_texts text[],
    response_sources text[]
) LANGUAGE plpgsql AS $$
DECLARE
    v_open bool;
    v_overlap int;
    v_seconds int;
    v_gold_rate float8;
    v_until timestamptz;
    v_id int;
    v_item int;
    v_gold_item int;
    v_gold bool := false;
    v_qualification text;
BEGIN
    IF p_user IS NULL THEN
        outcome := 'unauthenticated';
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT b.is_open, b.overlap, b.lease_seconds, b.gold_rate
      INTO v_open, v_overlap, v_seconds, v_gold_rate
      FROM batches b WHERE b.id = p_batch;
    IF NOT FOUND THEN
        outcome := 'no_batch';
        RETURN NEXT;
        RETURN;
    END IF;
    -- The caller's membership row is their lock: one queue operation per person at a time.
    SELECT m.qualification INTO v_qualification FROM batch_members m
      WHERE m.batch_id = p_batch AND m.user_id = p_user FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        outcome := CASE WHEN EXISTS (SELECT 1 FROM users u WHERE u.id = p_user AND u.role = 'admin')
                        THEN 'not_member_admin' ELSE 'not_member' END;
        RETURN NEXT;
        RETURN;
    END IF;
    IF NOT v_open THEN
        outcome := 'closed';
        RETURN NEXT;
        RETURN;
    END IF;
    -- A member still to qualify, or who failed, is served by the qualification flow instead.
    IF v_qualification IN ('pending', 'failed') THEN
        outcome := 'qualification';
        RETURN NEXT;
        RETURN;
    END IF;
    v_until := p_now + make_interval(secs => v_seconds);
    lease_resumed := false;
    SELECT a.id INTO v_id FROM assignments a
     WHERE a.batch_id = p_batch AND a.annotator_id = p_user AND a.status = 'leased'
     ORDER BY a.id LIMIT 1;
    IF v_id IS NOT NULL THEN
        -- Still 'leased' means no sweep took it back: its slot is still counted.
        UPDATE assignments SET leased_until = v_until WHERE id = v_id AND status = 'leased';
        IF FOUND THEN
            lease_resumed := true;
        ELSE
            v_id := NULL;
        END IF;
    END IF;
    IF v_id IS NULL THEN
        IF p_sweep THEN
            PERFORM safepref_sweep(p_batch, p_now, 32);
        END IF;
        v_item := safepref_claim(p_batch, p_user, v_overlap, false);
        IF v_item IS NULL AND NOT p_sweep AND safepref_sweep(p_batch, p_now, 32) > 0 THEN
            v_item := safepref_claim(p_batch, p_user, v_overlap, false);
        END IF;
        IF v_item IS NULL THEN
            outcome := 'empty';
            RETURN NEXT;
            RETURN;
        END IF;
        IF v_gold_rate > 0 AND p_gold_draw < v_gold_rate THEN
            v_gold_item := safepref_claim(p_batch, p_user, v_overlap, true);
            IF v_gold_item IS NOT NULL THEN
                v_item := v_gold_item;
                v_gold := true;
            END IF;
        END IF;
        UPDATE batch_items SET taken = taken + 1 WHERE batch_id = p_batch AND item_id = v_item;
        -- My own expired lease of this item comes back as it was (same display order).
        SELECT a.id INTO v_id FROM assignments a
         WHERE a.batch_id = p_batch AND a.item_id = v_item AND a.annotator_id = p_user;
        IF v_id IS NOT NULL THEN
            UPDATE assignments SET status = 'leased', leased_until = v_until
             WHERE id = v_id AND status = 'expired';
        ELSE
            INSERT INTO assignments (batch_id, item_id, annotator_id, status, leased_until,
                                     display_order, is_gold, created_at)
            SELECT p_batch, v_item, p_user, 'leased', v_until,
                   coalesce(json_agg(r.id ORDER BY random()), '[]'::json), v_gold, p_now
              FROM responses r WHERE r.item_id = v_item
            RETURNING id INTO v_id;
        END IF;
    END IF;
    outcome := 'ok';
    lease_id := v_id;
    -- Responses in display order; one added after the assignment was made (not expected)
    -- goes last.
    SELECT a.leased_until, a.item_id, i.prompt, i.prompt_source,
           array_agg(r.id ORDER BY o.ord NULLS LAST, r.position),
           array_agg(r.text ORDER BY o.ord NULLS LAST, r.position),
           array_agg(r.source ORDER BY o.ord NULLS LAST, r.position)
      INTO lease_until, lease_item, item_prompt, item_source,
           response_ids, response_texts, response_sources
      FROM assignments a
      JOIN items i ON i.id = a.item_id
      JOIN responses r ON r.item_id = a.item_id
      LEFT JOIN LATERAL (
          SELECT e.ord FROM json_array_elements_text(a.display_order) WITH ORDINALITY e(rid, ord)
           WHERE e.rid::int = r.id
      ) o ON true
     WHERE a.id = v_id
     GROUP BY a.id, i.id;
    RETURN NEXT;
END $$
"""


def _previous_next() -> str:
    """`safepref_next` as the previous revision (adaptive overlap) installed it."""
    path = next(Path(__file__).parent.glob("*8a4d2e6f1c37_*.py"))
    spec = importlib.util.spec_from_file_location("revision_8a4d2e6f1c37", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text: str = module.NEXT
    return text


def upgrade() -> None:
    # A plain ADD COLUMN: SQLite's batch mode would rebuild `batches`, which the guideline
    # version triggers on `annotations` read, and SQLite refuses to rename under a trigger.
    op.add_column("batches", sa.Column("qualification_threshold", sa.Double(), nullable=True))
    with op.batch_alter_table("batch_members") as batch:
        batch.add_column(sa.Column("qualification", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("qualification_scores", sa.JSON(), nullable=True))
        batch.create_check_constraint(
            "qualification_valid", "qualification IN ('pending', 'passed', 'failed')"
        )
    with op.batch_alter_table("assignments") as batch:
        batch.add_column(
            sa.Column("is_qualification", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "qualification_items",
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id", "item_id"],
            ["batch_items.batch_id", "batch_items.item_id"],
            name=op.f("fk_qualification_items_batch_id_batch_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("batch_id", "item_id", name=op.f("pk_qualification_items")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(NEXT)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_previous_next())
    op.drop_table("qualification_items")
    with op.batch_alter_table("assignments") as batch:
        batch.drop_column("is_qualification")
    with op.batch_alter_table("batch_members") as batch:
        batch.drop_constraint("qualification_valid", type_="check")
        batch.drop_column("qualification_scores")
        batch.drop_column("qualification")
    op.drop_column("batches", "qualification_threshold")
