-- An item's target (app/queue/targets.py, where the rule is explained; the two must agree,
-- tests/queue/test_adaptive.py checks it): with n submitted annotations, overlap_min while
-- n < overlap_min; n once complete (n >= overlap, or every gating dimension resolved by a
-- strict majority with agreement >= early_stop_agreement); else n + 1.
-- Gating: the batch's choice (NULL: all) among the dimensions the project asks. A unit is the
-- safe/unsafe label of one response, a ranking of two answers, or one pair of a longer ranking
-- (app/queue/targets.py `settled`); a ranking counts only when given (not empty). Excluded
-- annotations (app/queue/exclusion.py) do not count.
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
