-- Who is calling: an API token's sha256, or a session cookie's user id and session version.
-- NULL when neither names an active account. Records a token's use at most once a minute.
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
