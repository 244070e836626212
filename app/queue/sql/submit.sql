-- Submits or revises the caller's annotation (app/queue/sqlite.py `submit` on SQLite) with a
-- payload already validated. Outcome 'created', 'revised', 'unchanged', or, writing nothing,
-- one of the codes of app/queue/messages.py: 'not_found', 'excluded' (the caller is excluded
-- from the batch), 'closed', 'skipped', 'gone' (the lease expired and the item has since gone
-- to others; detail: the overlap), 'annotation_excluded' (no revising an excluded annotation).
-- A gold answer stored in a batch whose gold floor excludes has detail 'gold_floor': the
-- caller then checks the annotator's gold accuracy (app/dashboard/gold_floor.py).
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
