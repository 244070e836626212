-- The caller's next assignment (app/queue/sqlite.py `next_lease` on SQLite): outcome 'ok'
-- with the lease and its item (responses in display order), or one of the codes of
-- app/queue/messages.py: 'empty', 'closed', 'no_batch', 'not_member', 'not_member_admin',
-- 'excluded', 'unauthenticated'. Locks in the queue's order (app/queue/__init__.py).
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
