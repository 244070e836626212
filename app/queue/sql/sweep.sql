-- Marks up to p_limit expired leases 'expired' (skipping rows others hold) and gives their
-- slots back, batch items in item id order (the lock order: app/queue/__init__.py).
CREATE OR REPLACE FUNCTION safepref_sweep(p_batch int, p_now timestamptz, p_limit int)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    v_items int[];
    v_item int;
BEGIN
    WITH expired AS (
        SELECT a.id FROM assignments a
         WHERE a.batch_id = p_batch AND a.status = 'leased' AND a.leased_until < p_now
         ORDER BY a.leased_until LIMIT p_limit
           FOR NO KEY UPDATE SKIP LOCKED
    ), moved AS (
        UPDATE assignments a SET status = 'expired' FROM expired e WHERE a.id = e.id
        RETURNING a.item_id
    )
    SELECT array_agg(m.item_id ORDER BY m.item_id) INTO v_items FROM moved m;
    IF v_items IS NULL THEN
        RETURN 0;
    END IF;
    FOREACH v_item IN ARRAY v_items LOOP
        UPDATE batch_items SET taken = taken - 1 WHERE batch_id = p_batch AND item_id = v_item;
    END LOOP;
    RETURN cardinality(v_items);
END $$
