"""member exclusion

Annotations can be excluded from a batch's results (when, why, and the kind of decision:
'member' when their annotator was excluded, 'review' for a reviewer's decision), members can
be excluded from a batch, and a batch can set a gold-accuracy floor. On PostgreSQL the queue's
`next` refuses an excluded member and `submit` refuses them and any revision of an excluded
annotation.

The function texts below are this revision's frozen copies (the canonical source of the
current ones is app/queue/sql/); downgrade reinstalls the previous revision's.

Revision ID: 8e2a4c6d1f03
Revises: 5d1f0c2b7e91
Create Date: 2026-11-30 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "8e2a4c6d1f03"
down_revision: str | None = "5d1f0c2b7e91"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

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
    v_excluded bool;
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
    SELECT m.excluded_at IS NOT NULL INTO v_excluded FROM batch_members m
      WHERE m.batch_id = p_batch AND m.user_id = p_user FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        outcome := CASE WHEN EXISTS (SELECT 1 FROM users u WHERE u.id = p_user AND u.role = 'admin')
                        THEN 'not_member_admin' ELSE 'not_member' END;
        RETURN NEXT;
        RETURN;
    END IF;
    IF v_excluded THEN
        outcome := 'excluded';
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
    v_submitted_at timestamptz;
    v_taken int;
    v_live bool;
    v_ann annotations;
    v_excluded bool;
    v_floor bool;
BEGIN
    -- My assignment's batch, and my membership of it locked (the per-annotator lock).
    SELECT m.batch_id, m.excluded_at IS NOT NULL INTO v_batch, v_excluded
      FROM assignments a
      JOIN batch_members m ON m.batch_id = a.batch_id AND m.user_id = p_user
     WHERE a.id = p_assignment AND a.annotator_id = p_user
       FOR NO KEY UPDATE OF m;
    IF NOT FOUND THEN
        outcome := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    IF v_excluded THEN
        outcome := 'excluded';
        RETURN NEXT;
        RETURN;
    END IF;
    ann_batch := v_batch;
    -- Read after the lock: sees what a concurrent request of the same person committed.
    SELECT a.status, a.item_id, a.is_gold, a.submitted_at, b.is_open, b.overlap,
           b.gold_floor IS NOT NULL AND b.gold_floor_excludes
      INTO v_status, v_item, v_gold, v_submitted_at, v_open, v_overlap, v_floor
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
        IF v_ann.excluded_at IS NOT NULL THEN
            outcome := 'annotation_excluded';
            RETURN NEXT;
            RETURN;
        END IF;
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
            outcome := 'revised';
        END IF;
    ELSE
        UPDATE assignments SET status = 'submitted', submitted_at = p_now
         WHERE id = p_assignment AND status = 'leased';
        v_live := FOUND;
        IF NOT v_live THEN
            -- Expired, possibly a moment ago: take a slot again if one is free.
            SELECT bi.taken INTO v_taken FROM batch_items bi
             WHERE bi.batch_id = v_batch AND bi.item_id = v_item FOR NO KEY UPDATE;
            IF v_taken IS NULL OR (v_taken >= v_overlap AND NOT v_gold) THEN
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
        outcome := 'created';
    END IF;
    IF v_gold AND v_floor AND outcome <> 'unchanged' THEN
        detail := 'gold_floor';
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

PREVIOUS_NEXT = """
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

PREVIOUS_SUBMIT = """
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
    v_submitted_at timestamptz;
    v_taken int;
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
    SELECT a.status, a.item_id, a.is_gold, a.submitted_at, b.is_open, b.overlap
      INTO v_status, v_item, v_gold, v_submitted_at, v_open, v_overlap
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
            outcome := 'revised';
        END IF;
    ELSE
        UPDATE assignments SET status = 'submitted', submitted_at = p_now
         WHERE id = p_assignment AND status = 'leased';
        v_live := FOUND;
        IF NOT v_live THEN
            -- Expired, possibly a moment ago: take a slot again if one is free.
            SELECT bi.taken INTO v_taken FROM batch_items bi
             WHERE bi.batch_id = v_batch AND bi.item_id = v_item FOR NO KEY UPDATE;
            IF v_taken IS NULL OR (v_taken >= v_overlap AND NOT v_gold) THEN
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


def upgrade() -> None:
    # Plain ADD COLUMN on both backends: rebuilding these tables on SQLite would trip the
    # guideline-version triggers, which name them.
    op.add_column(
        "annotations", sa.Column("excluded_at", app.db.UTCDateTime(timezone=True), nullable=True)
    )
    op.add_column("annotations", sa.Column("exclusion_kind", sa.String(length=16), nullable=True))
    op.add_column("annotations", sa.Column("exclusion_reason", sa.Text(), nullable=True))
    op.add_column(
        "batch_members",
        sa.Column("excluded_at", app.db.UTCDateTime(timezone=True), nullable=True),
    )
    op.add_column("batch_members", sa.Column("exclusion_reason", sa.Text(), nullable=True))
    op.add_column("batches", sa.Column("gold_floor", sa.Double(), nullable=True))
    op.add_column(
        "batches",
        sa.Column("gold_floor_min_answers", sa.Integer(), server_default="10", nullable=False),
    )
    op.add_column(
        "batches",
        sa.Column("gold_floor_excludes", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        for source in (NEXT, SUBMIT):
            op.get_bind().exec_driver_sql(source)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for source in (PREVIOUS_NEXT, PREVIOUS_SUBMIT):
            op.get_bind().exec_driver_sql(source)
    for table, column in (
        ("batches", "gold_floor_excludes"),
        ("batches", "gold_floor_min_answers"),
        ("batches", "gold_floor"),
        ("batch_members", "exclusion_reason"),
        ("batch_members", "excluded_at"),
        ("annotations", "exclusion_reason"),
        ("annotations", "exclusion_kind"),
        ("annotations", "excluded_at"),
    ):
        op.drop_column(table, column)
