"""queue functions on postgresql

The queue's hot path (next, submit) as PL/pgSQL functions: one round trip does what took nine
or seven statements from Python. Each statement inside a function takes a fresh snapshot under
READ COMMITTED, so the lock order and the re-reads after a lock of the Python implementation
hold exactly as they did. SQLite keeps the Python implementation; nothing is created there.

The texts below are this revision's frozen copies; the canonical source of the current
functions is app/queue/sql/ (see app/queue/functions.py).

Revision ID: 1ada494eb64e
Revises: 9a4242652451
Create Date: 2026-11-27 23:45:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "1ada494eb64e"
down_revision: str | None = "9a4242652451"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Who is calling: an API token's sha256, or a session cookie's user id and session version.
# NULL when neither names an active account. Records a token's use at most once a minute.
CALLER = """
CREATE OR REPLACE FUNCTION safepref_caller(
    p_token_hash text, p_uid int, p_version int, p_now timestamptz
) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    v_user int;
    v_token int;
    v_used timestamptz;
BEGIN
    IF p_token_hash IS NOT NULL THEN
        SELECT t.id, t.last_used_at, u.id INTO v_token, v_used, v_user
          FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = p_token_hash AND t.revoked_at IS NULL AND u.is_active;
        IF v_user IS NOT NULL AND (v_used IS NULL OR v_used < p_now - interval '60 seconds') THEN
            UPDATE api_tokens SET last_used_at = p_now WHERE id = v_token;
        END IF;
        RETURN v_user;
    END IF;
    SELECT u.id INTO v_user FROM users u
     WHERE u.id = p_uid AND u.is_active AND u.session_version = p_version;
    RETURN v_user;
END $$
"""

# Where an annotator starts on a batch's shuffled ring at one level: the first 31 bits of
# sha256("batch:user:level"), the same number the Python implementation computes on SQLite.
# PL/pgSQL, not SQL: a SQL function that is not inlined is parsed and planned on every call.
ROTATION = """
CREATE OR REPLACE FUNCTION safepref_rotation(p_batch int, p_user int, p_level int)
RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN (('x' || substr(encode(sha256(convert_to(
        p_batch || ':' || p_user || ':' || p_level, 'UTF8')), 'hex'), 1, 8))::bit(32)::int)
        & 2147483647;
END $$
"""

# Marks up to p_limit expired leases 'expired' (skipping rows others hold) and gives their
# slots back, batch items in id order: two sweepers never deadlock.
SWEEP = """
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
"""

# Locks the first free batch item in queue order that the caller has neither done nor
# skipped: levels from overlap - 1 down to 0 (breadth-first), each from the caller's point of
# the ring to its end, then from its start. Gold items: any level, a ring of their own.
# The four SELECTs are written out rather than merged with OR or CASE: each must stay a plain
# range scan of ix_batch_items_queue under PL/pgSQL's cached (generic) plans.
CLAIM = """
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
           AND NOT bi.is_gold
           AND NOT EXISTS (SELECT 1 FROM assignments a
                            WHERE a.batch_id = p_batch AND a.item_id = bi.item_id
                              AND a.annotator_id = p_user AND a.status <> 'expired')
         ORDER BY bi.shuffle_key LIMIT 1 FOR NO KEY UPDATE OF bi SKIP LOCKED;
        IF FOUND THEN
            RETURN v_item;
        END IF;
        SELECT bi.item_id INTO v_item FROM batch_items bi
         WHERE bi.batch_id = p_batch AND bi.taken = v_level AND bi.shuffle_key < v_start
           AND NOT bi.is_gold
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

# The caller's next assignment (queue.next_assignment): outcome 'ok' with the lease and its
# item (responses in display order), or 'empty', 'closed', 'no_batch', 'not_member',
# 'not_member_admin', 'unauthenticated'. Lock order: membership, batch item, assignment.
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

# What validating a submit needs, read without locks: the project's questions and taxonomy
# and the item's response ids in position order. Outcome 'ok', 'not_found' (not the caller's
# assignment, or no longer a member), 'closed' or 'unauthenticated'; `caller` is the user.
SUBMIT_CONTEXT = """
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
"""

# Submits or revises the caller's annotation (annotations.service.submit) with a payload
# already validated. Outcome 'created', 'revised', 'unchanged', or, writing nothing:
# 'not_found', 'closed', 'skipped', 'gone' (the lease expired and the item has since gone to
# others; detail: the overlap). Lock order: membership, assignment, batch item.
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

FUNCTIONS = {
    "safepref_caller(text, int, int, timestamptz)": CALLER,
    "safepref_rotation(int, int, int)": ROTATION,
    "safepref_sweep(int, timestamptz, int)": SWEEP,
    "safepref_claim(int, int, int, bool)": CLAIM,
    "safepref_next(int, int, timestamptz, float8, bool)": NEXT,
    "safepref_submit_context(int, int)": SUBMIT_CONTEXT,
    "safepref_submit(int, int, json, int, bool, timestamptz)": SUBMIT,
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for source in FUNCTIONS.values():
        op.get_bind().exec_driver_sql(source)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for signature in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
