"""adaptive overlap and quotas

Batches get adaptive overlap options (overlap_min, early_stop_agreement, gating) and a
per-annotator quota (max_items_per_annotator); each batch item gets the target the queue
serves it up to (wanted; 32767, the default, leaves the batch overlap as the only bound, as
before). The queue index now holds only items below their target. On PostgreSQL the claim,
next and submit functions learn the target and the quota, and safepref_target computes it
(frozen copies below; app/queue/sql/ holds the canonical text).

Revision ID: 8a4d2e6f1c37
Revises: 8e2b4d6a1c37
Create Date: 2026-11-30 05:00:00
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "8a4d2e6f1c37"
down_revision: str | None = "8e2b4d6a1c37"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TARGET = """
-- An item's target (app/queue/targets.py, where the rule is explained; the two must agree,
-- tests/queue/test_adaptive.py checks it): with n submitted annotations, overlap_min while
-- n < overlap_min; n once complete (n >= overlap, or every gating dimension resolved by a
-- strict majority with agreement >= early_stop_agreement); else n + 1.
-- Gating: the batch's choice (NULL: all) among the dimensions the project asks. A unit is one
-- preference dimension, or the safe/unsafe label of one response; a ranking counts only
-- when given (not empty).
CREATE OR REPLACE FUNCTION safepref_target(p_batch int, p_item int)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    v_overlap int;
    v_min int;
    v_agreement float8;
    v_dims text[];
    v_n int;
    v_complete bool;
BEGIN
    SELECT b.overlap, least(coalesce(b.overlap_min, b.overlap), b.overlap),
           b.early_stop_agreement,
           ARRAY(SELECT d FROM unnest(ARRAY['helpfulness', 'harmlessness', 'single',
                                            'is_safe']) d
                  WHERE CASE d WHEN 'single' THEN p.ask_single
                               WHEN 'is_safe' THEN p.ask_safety
                               ELSE p.ask_dual END
                    -- (SQLAlchemy stores None as JSON null.)
                    AND (coalesce(b.gating::jsonb, 'null') = 'null' OR b.gating::jsonb ? d))
      INTO v_overlap, v_min, v_agreement, v_dims
      FROM batches b JOIN projects p ON p.id = b.project_id
     WHERE b.id = p_batch;
    SELECT count(*) INTO v_n FROM annotations a
     WHERE a.batch_id = p_batch AND a.item_id = p_item;
    IF v_n < v_min THEN
        RETURN v_min;
    END IF;
    IF v_n >= v_overlap THEN
        RETURN v_n;
    END IF;
    WITH votes AS (
        SELECT a.payload::jsonb AS p FROM annotations a
         WHERE a.batch_id = p_batch AND a.item_id = p_item
    ), labels AS (
        SELECT d AS dim, d AS unit, v.p -> d AS label
          FROM votes v, unnest(v_dims) d
         WHERE d <> 'is_safe' AND jsonb_typeof(v.p -> d) = 'array'
           AND jsonb_array_length(v.p -> d) > 0
        UNION ALL
        SELECT 'is_safe', r ->> 'response_id', r -> 'is_safe'
          FROM votes v,
               jsonb_array_elements(CASE WHEN jsonb_typeof(v.p -> 'responses') = 'array'
                                         THEN v.p -> 'responses' ELSE '[]'::jsonb END) r
         WHERE 'is_safe' = ANY(v_dims)
    ), tally AS (
        SELECT dim, unit, label, count(*) AS c FROM labels GROUP BY dim, unit, label
    ), units AS (
        SELECT dim, unit, max(c) AS top, sum(c) AS n FROM tally GROUP BY dim, unit
    )
    SELECT count(DISTINCT dim) = cardinality(v_dims)
           AND coalesce(bool_and(2 * top > n AND top::float8 / n::float8 >= v_agreement), true)
      INTO v_complete FROM units;
    RETURN CASE WHEN v_complete THEN v_n ELSE v_n + 1 END;
END $$
"""

CLAIM = """
-- The queue's order (app/queue/__init__.py, "The order of work"): locks the first free batch
-- item below its target (batch_items.wanted) that the caller has neither done nor skipped,
-- levels from overlap - 1 down to 0 (items closest to k first: an item that needs one more
-- vote comes before untouched ones), each from the caller's point of the ring to its end,
-- then from its start. Gold items: any level, a ring of their own.
-- The SELECTs are written out rather than merged with OR or CASE: each must stay a plain
-- range scan of ix_batch_items_queue under PL/pgSQL's cached (generic) plans.
CREATE OR REPLACE FUNCTION safepref_claim(p_batch int, p_user int, p_overlap int, p_gold bool)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    v_item int;
    v_start int;
BEGIN
    IF p_gold THEN
        v_start := safepref_rotation(p_batch, p_user, -1);
        SELECT bi.item_id INTO v_item FROM batch_items bi
         WHERE bi.batch_id = p_batch AND bi.is_gold AND bi.shuffle_key >= v_start
           AND NOT EXISTS (SELECT 1 FROM assignments a
                            WHERE a.batch_id = p_batch AND a.item_id = bi.item_id
                              AND a.annotator_id = p_user AND a.status <> 'expired')
         ORDER BY bi.shuffle_key LIMIT 1 FOR NO KEY UPDATE OF bi SKIP LOCKED;
        IF FOUND THEN
            RETURN v_item;
        END IF;
        SELECT bi.item_id INTO v_item FROM batch_items bi
         WHERE bi.batch_id = p_batch AND bi.is_gold AND bi.shuffle_key < v_start
           AND NOT EXISTS (SELECT 1 FROM assignments a
                            WHERE a.batch_id = p_batch AND a.item_id = bi.item_id
                              AND a.annotator_id = p_user AND a.status <> 'expired')
         ORDER BY bi.shuffle_key LIMIT 1 FOR NO KEY UPDATE OF bi SKIP LOCKED;
        RETURN v_item;
    END IF;
    FOR v_level IN REVERSE p_overlap - 1 .. 0 LOOP
        v_start := safepref_rotation(p_batch, p_user, v_level);
        SELECT bi.item_id INTO v_item FROM batch_items bi
         WHERE bi.batch_id = p_batch AND bi.taken = v_level AND bi.shuffle_key >= v_start
           AND bi.taken < bi.wanted AND NOT bi.is_gold
           AND NOT EXISTS (SELECT 1 FROM assignments a
                            WHERE a.batch_id = p_batch AND a.item_id = bi.item_id
                              AND a.annotator_id = p_user AND a.status <> 'expired')
         ORDER BY bi.shuffle_key LIMIT 1 FOR NO KEY UPDATE OF bi SKIP LOCKED;
        IF FOUND THEN
            RETURN v_item;
        END IF;
        SELECT bi.item_id INTO v_item FROM batch_items bi
         WHERE bi.batch_id = p_batch AND bi.taken = v_level AND bi.shuffle_key < v_start
           AND bi.taken < bi.wanted AND NOT bi.is_gold
           AND NOT EXISTS (SELECT 1 FROM assignments a
                            WHERE a.batch_id = p_batch AND a.item_id = bi.item_id
                              AND a.annotator_id = p_user AND a.status <> 'expired')
         ORDER BY bi.shuffle_key LIMIT 1 FOR NO KEY UPDATE OF bi SKIP LOCKED;
        IF FOUND THEN
            RETURN v_item;
        END IF;
    END LOOP;
    RETURN NULL;
END $$
"""

NEXT = """
-- The caller's next assignment (app/queue/sqlite.py `next_lease` on SQLite): outcome 'ok'
-- with the lease and its item (responses in display order), or one of the codes of
-- app/queue/messages.py: 'empty', 'closed', 'no_batch', 'not_member', 'not_member_admin',
-- 'unauthenticated'. Locks in the queue's order (app/queue/__init__.py).
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
    v_quota int;
    v_until timestamptz;
    v_id int;
    v_item int;
    v_gold_item int;
    v_gold bool := false;
BEGIN
    IF p_user IS NULL THEN
        outcome := 'unauthenticated';
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT b.is_open, b.overlap, b.lease_seconds, b.gold_rate, b.max_items_per_annotator
      INTO v_open, v_overlap, v_seconds, v_gold_rate, v_quota
      FROM batches b WHERE b.id = p_batch;
    IF NOT FOUND THEN
        outcome := 'no_batch';
        RETURN NEXT;
        RETURN;
    END IF;
    -- The caller's membership row is their lock: one queue operation per person at a time.
    PERFORM 1 FROM batch_members m
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
    -- At their quota (live-or-submitted assignments, counted under the membership lock):
    -- nothing more for them.
    IF v_id IS NULL AND v_quota IS NOT NULL AND v_quota <= (
        SELECT count(*) FROM assignments a
         WHERE a.batch_id = p_batch AND a.annotator_id = p_user
           AND a.status IN ('leased', 'submitted')) THEN
        outcome := 'empty';
        RETURN NEXT;
        RETURN;
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

SUBMIT = """
-- Submits or revises the caller's annotation (app/queue/sqlite.py `submit` on SQLite) with a
-- payload already validated. Outcome 'created', 'revised', 'unchanged', or, writing nothing,
-- one of the codes of app/queue/messages.py: 'not_found', 'closed', 'skipped', 'gone' (the
-- lease expired and the item has since gone to others; detail: the overlap).
-- Locks in the queue's order (app/queue/__init__.py): membership, assignment, batch item.
CREATE OR REPLACE FUNCTION safepref_submit(
    p_assignment int, p_user int, p_payload json, p_duration int, p_viewed bool,
    p_now timestamptz
) RETURNS TABLE (
    outcome text, ann_id int, ann_revision int, ann_batch int, ann_item int,
    ann_submitted_at timestamptz, ann_updated_at timestamptz, ann_duration int, ann_viewed bool,
    detail text
) LANGUAGE plpgsql AS $$
DECLARE
    v_batch int;
    v_status text;
    v_item int;
    v_gold bool;
    v_open bool;
    v_overlap int;
    v_adaptive bool;
    v_submitted_at timestamptz;
    v_taken int;  -- free slots below the item's target, for a retake
    v_live bool;
    v_ann annotations;
BEGIN
    -- My assignment's batch, and my membership of it locked (the per-annotator lock).
    SELECT m.batch_id INTO v_batch
      FROM assignments a
      JOIN batch_members m ON m.batch_id = a.batch_id AND m.user_id = p_user
     WHERE a.id = p_assignment AND a.annotator_id = p_user
       FOR NO KEY UPDATE OF m;
    IF NOT FOUND THEN
        outcome := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    ann_batch := v_batch;
    -- Read after the lock: sees what a concurrent request of the same person committed.
    SELECT a.status, a.item_id, a.is_gold, a.submitted_at, b.is_open, b.overlap,
           coalesce(b.overlap_min, b.overlap) < b.overlap
      INTO v_status, v_item, v_gold, v_submitted_at, v_open, v_overlap, v_adaptive
      FROM assignments a JOIN batches b ON b.id = a.batch_id WHERE a.id = p_assignment;
    IF NOT v_open THEN
        outcome := 'closed';
        RETURN NEXT;
        RETURN;
    END IF;
    IF v_status = 'skipped' THEN
        outcome := 'skipped';
        RETURN NEXT;
        RETURN;
    END IF;
    IF v_status = 'submitted' THEN
        SELECT * INTO v_ann FROM annotations WHERE assignment_id = p_assignment;
        IF v_ann.payload::jsonb = p_payload::jsonb THEN
            IF p_viewed AND NOT v_ann.suggestion_viewed THEN
                UPDATE annotations SET suggestion_viewed = true WHERE id = v_ann.id
                RETURNING * INTO v_ann;
            END IF;
            outcome := 'unchanged';
        ELSE
            UPDATE annotations
               SET revision = revision + 1,
                   payload = p_payload,
                   -- Time spent on the item, all revisions together.
                   duration_ms = CASE WHEN p_duration IS NULL THEN duration_ms
                                      ELSE coalesce(duration_ms, 0) + p_duration END,
                   suggestion_viewed = suggestion_viewed OR p_viewed,
                   updated_at = p_now
             WHERE id = v_ann.id
            RETURNING * INTO v_ann;
            INSERT INTO annotation_revisions (annotation_id, revision, payload, duration_ms,
                                              created_at)
            VALUES (v_ann.id, v_ann.revision, p_payload, p_duration, p_now);
            IF v_adaptive THEN
                -- Another answer may change whether the item is complete.
                PERFORM 1 FROM batch_items
                  WHERE batch_id = v_batch AND item_id = v_item FOR NO KEY UPDATE;
                UPDATE batch_items SET wanted = safepref_target(v_batch, v_item)
                 WHERE batch_id = v_batch AND item_id = v_item;
            END IF;
            outcome := 'revised';
        END IF;
    ELSE
        UPDATE assignments SET status = 'submitted', submitted_at = p_now
         WHERE id = p_assignment AND status = 'leased';
        v_live := FOUND;
        IF NOT v_live THEN
            -- Expired, possibly a moment ago: take a slot again if one is free.
            SELECT least(bi.wanted, v_overlap) - bi.taken INTO v_taken FROM batch_items bi
             WHERE bi.batch_id = v_batch AND bi.item_id = v_item FOR NO KEY UPDATE;
            IF v_taken IS NULL OR (v_taken <= 0 AND NOT v_gold) THEN
                outcome := 'gone';
                detail := v_overlap::text;
                RETURN NEXT;
                RETURN;
            END IF;
            UPDATE batch_items SET taken = taken + 1, submitted = submitted + 1
             WHERE batch_id = v_batch AND item_id = v_item;
            UPDATE assignments SET status = 'submitted', submitted_at = p_now
             WHERE id = p_assignment AND status = 'expired';
        END IF;
        v_submitted_at := p_now;
        INSERT INTO annotations (assignment_id, batch_id, item_id, annotator_id, revision,
                                 payload, duration_ms, suggestion_viewed, created_at,
                                 updated_at)
        VALUES (p_assignment, v_batch, v_item, p_user, 1, p_payload, p_duration, p_viewed,
                p_now, p_now)
        RETURNING * INTO v_ann;
        INSERT INTO annotation_revisions (annotation_id, revision, payload, duration_ms,
                                          created_at)
        VALUES (v_ann.id, 1, p_payload, p_duration, p_now);
        IF v_live THEN
            -- Last: the batch item's row lock (the hottest row) is held only until commit.
            UPDATE batch_items SET submitted = submitted + 1
             WHERE batch_id = v_batch AND item_id = v_item;
        END IF;
        IF v_adaptive THEN
            -- Under the row lock taken above, in a statement of its own: it sees every
            -- annotation of the item committed before the lock was granted.
            UPDATE batch_items SET wanted = safepref_target(v_batch, v_item)
             WHERE batch_id = v_batch AND item_id = v_item;
        END IF;
        outcome := 'created';
    END IF;
    ann_id := v_ann.id;
    ann_revision := v_ann.revision;
    ann_item := v_item;
    ann_submitted_at := v_submitted_at;
    ann_updated_at := v_ann.updated_at;
    ann_duration := v_ann.duration_ms;
    ann_viewed := v_ann.suggestion_viewed;
    RETURN NEXT;
END $$
"""


def _frozen(revision: str) -> ModuleType:
    """An earlier revision's module, for the frozen texts it installed."""
    path = next(Path(__file__).parent.glob(f"*{revision}_*.py"))
    spec = importlib.util.spec_from_file_location(f"revision_{revision}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("overlap_min", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("early_stop_agreement", sa.Double(), server_default="1.0", nullable=False)
        )
        batch_op.add_column(sa.Column("gating", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("max_items_per_annotator", sa.Integer(), nullable=True))
    with op.batch_alter_table("batch_items", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("wanted", sa.Integer(), server_default="32767", nullable=False)
        )
    op.drop_index("ix_batch_items_queue", table_name="batch_items")
    op.create_index(
        "ix_batch_items_queue",
        "batch_items",
        ["batch_id", "taken", "shuffle_key"],
        unique=False,
        postgresql_where=sa.text("taken < wanted"),
        sqlite_where=sa.text("taken < wanted"),
    )
    if op.get_bind().dialect.name == "postgresql":
        for source in (TARGET, CLAIM, NEXT, SUBMIT):
            op.get_bind().exec_driver_sql(source)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # As the previous revisions left them: the claim from the first queue revision, next
        # and submit from member exclusion (the revision before this one in the chain).
        first, exclusion = _frozen("1ada494eb64e"), _frozen("8e2a4c6d1f03")
        for source in (first.CLAIM, exclusion.NEXT, exclusion.SUBMIT):
            op.get_bind().exec_driver_sql(source)
        op.execute("DROP FUNCTION IF EXISTS safepref_target(int, int)")
    op.drop_index("ix_batch_items_queue", table_name="batch_items")
    op.create_index(
        "ix_batch_items_queue", "batch_items", ["batch_id", "taken", "shuffle_key"], unique=False
    )
    # ALTER TABLE ... DROP COLUMN, not a table copy: on SQLite a copy of `batches` would fail
    # on the guideline-version triggers that name it.
    with op.batch_alter_table("batch_items", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("wanted")
    with op.batch_alter_table("batches", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("max_items_per_annotator")
        batch_op.drop_column("gating")
        batch_op.drop_column("early_stop_agreement")
        batch_op.drop_column("overlap_min")
