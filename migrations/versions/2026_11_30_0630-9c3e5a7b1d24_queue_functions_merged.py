"""queue functions after exclusion, adaptive overlap and qualification met

Three branches changed the queue's PostgreSQL functions side by side: member exclusion (an
excluded member is refused; the submit reports a gold answer due for the gold floor),
adaptive overlap and quotas (per-item targets, the quota check), and qualification (a member
still to qualify is sent to the qualification flow). Each of their migrations installed its
own version; this one installs the functions as they are together: `next` refuses excluded
members, then closed batches, then members to qualify, and leaves qualification answers out of
the quota; `safepref_target` counts only annotations that are not excluded; `submit` does both
the gold-floor report and the target update.

Frozen copies (app/queue/sql/ holds the current texts). The downgrade puts back the
functions exactly as the previous revision left them (as PostgreSQL printed them).

Revision ID: 9c3e5a7b1d24
Revises: 8e2a4c6d1f57
Create Date: 2026-11-30 06:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "9c3e5a7b1d24"
down_revision: str | None = "8e2a4c6d1f57"
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
    v_quota int;
    v_until timestamptz;
    v_id int;
    v_item int;
    v_gold_item int;
    v_gold bool := false;
    v_excluded bool;
    v_qualification text;
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
    SELECT m.excluded_at IS NOT NULL, m.qualification INTO v_excluded, v_qualification
      FROM batch_members m
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
    -- At their quota (live-or-submitted assignments, counted under the membership lock):
    -- nothing more for them.
    IF v_id IS NULL AND v_quota IS NOT NULL AND v_quota <= (
        SELECT count(*) FROM assignments a
         WHERE a.batch_id = p_batch AND a.annotator_id = p_user
           AND a.status IN ('leased', 'submitted') AND NOT a.is_qualification) THEN
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

TARGET = """
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
     WHERE a.batch_id = p_batch AND a.item_id = p_item AND a.excluded_at IS NULL;
    IF v_n < v_min THEN
        RETURN v_min;
    END IF;
    IF v_n >= v_overlap THEN
        RETURN v_n;
    END IF;
    WITH votes AS (
        SELECT a.payload::jsonb AS p FROM annotations a
         WHERE a.batch_id = p_batch AND a.item_id = p_item AND a.excluded_at IS NULL
    ), labels AS (
        SELECT d AS dim, d AS unit, v.p -> d AS label
          FROM votes v, unnest(v_dims) d
         WHERE d <> 'is_safe' AND jsonb_typeof(v.p -> d) = 'array'
           AND jsonb_array_length(v.p -> d) BETWEEN 1 AND 2
        UNION ALL
        -- A ranking of three or more: one unit per pair, labelled by whether the smaller id
        -- comes first (the pairwise consensus of the exports).
        SELECT d, least(x.e::int, y.e::int) || '-' || greatest(x.e::int, y.e::int),
               to_jsonb(x.e::int < y.e::int)
          FROM votes v, unnest(v_dims) d,
               jsonb_array_elements_text(CASE WHEN jsonb_typeof(v.p -> d) = 'array'
                                              THEN v.p -> d ELSE '[]'::jsonb END)
                   WITH ORDINALITY x(e, i),
               jsonb_array_elements_text(CASE WHEN jsonb_typeof(v.p -> d) = 'array'
                                              THEN v.p -> d ELSE '[]'::jsonb END)
                   WITH ORDINALITY y(e, i)
         WHERE d <> 'is_safe' AND jsonb_array_length(v.p -> d) > 2 AND x.i < y.i
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
    v_adaptive bool;
    v_submitted_at timestamptz;
    v_taken int;  -- free slots below the item's target, for a retake
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
           b.gold_floor IS NOT NULL AND b.gold_floor_excludes,
           coalesce(b.overlap_min, b.overlap) < b.overlap
      INTO v_status, v_item, v_gold, v_submitted_at, v_open, v_overlap, v_floor, v_adaptive
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
CREATE OR REPLACE FUNCTION public.safepref_next(p_batch integer, p_user integer,
    p_now timestamp with time zone, p_gold_draw double precision, p_sweep boolean)
 RETURNS TABLE(outcome text, lease_id integer, lease_resumed boolean,
    lease_until timestamp with time zone, lease_item integer, item_prompt text,
    item_source text, response_ids integer[], response_texts text[], response_sources text[])
 LANGUAGE plpgsql
AS $function$
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
END $function$
"""

PREVIOUS_TARGET = """
CREATE OR REPLACE FUNCTION public.safepref_target(p_batch integer, p_item integer)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
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
END $function$
"""

PREVIOUS_SUBMIT = """
CREATE OR REPLACE FUNCTION public.safepref_submit(p_assignment integer, p_user integer,
    p_payload json, p_duration integer, p_viewed boolean, p_now timestamp with time zone)
 RETURNS TABLE(outcome text, ann_id integer, ann_revision integer, ann_batch integer,
    ann_item integer, ann_submitted_at timestamp with time zone,
    ann_updated_at timestamp with time zone, ann_duration integer, ann_viewed boolean, detail text)
 LANGUAGE plpgsql
AS $function$
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
END $function$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for text in (NEXT, TARGET, SUBMIT):
            op.execute(text)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for text in (PREVIOUS_NEXT, PREVIOUS_TARGET, PREVIOUS_SUBMIT):
            op.execute(text)
