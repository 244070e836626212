-- What validating a submit needs, read without locks: the project's questions and taxonomy
-- and the item's response ids in position order. Outcome 'ok', 'not_found' (not the caller's
-- assignment, or no longer a member), 'closed' or 'unauthenticated'; `caller` is the user.
CREATE OR REPLACE FUNCTION safepref_submit_context(p_assignment int, p_user int)
RETURNS TABLE (
    outcome text, caller int, batch int, taxonomy json, ask_safety bool, ask_dual bool,
    ask_single bool, ask_rationale bool, response_ids int[]
) LANGUAGE plpgsql AS $$
DECLARE
    v_open bool;
BEGIN
    caller := p_user;
    IF p_user IS NULL THEN
        outcome := 'unauthenticated';
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT a.batch_id, b.is_open, p.taxonomy, p.ask_safety, p.ask_dual, p.ask_single,
           p.ask_rationale,
           (SELECT array_agg(r.id ORDER BY r.position) FROM responses r
             WHERE r.item_id = a.item_id)
      INTO batch, v_open, taxonomy, ask_safety, ask_dual, ask_single, ask_rationale,
           response_ids
      FROM assignments a
      JOIN batches b ON b.id = a.batch_id
      JOIN projects p ON p.id = b.project_id
      JOIN batch_members m ON m.batch_id = a.batch_id AND m.user_id = p_user
     WHERE a.id = p_assignment AND a.annotator_id = p_user;
    IF NOT FOUND THEN
        outcome := 'not_found';
    ELSIF NOT v_open THEN
        outcome := 'closed';
    ELSE
        outcome := 'ok';
    END IF;
    RETURN NEXT;
END $$
