-- Where an annotator starts on a batch's shuffled ring at one level: the first 31 bits of
-- sha256("batch:user:level"), the number app/queue/order.py computes on SQLite.
-- PL/pgSQL, not SQL: a SQL function that is not inlined is parsed and planned on every call.
CREATE OR REPLACE FUNCTION safepref_rotation(p_batch int, p_user int, p_level int)
RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN (('x' || substr(encode(sha256(convert_to(
        p_batch || ':' || p_user || ':' || p_level, 'UTF8')), 'hex'), 1, 8))::bit(32)::int)
        & 2147483647;
END $$
