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
