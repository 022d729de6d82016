-- 0041 undone: ops._audit_changes as 0018 wrote it and 0019 made it (a definer with a pinned
-- search_path), without the redaction functions
CREATE OR REPLACE FUNCTION ops._audit_changes() RETURNS trigger
LANGUAGE plpgsql
SET enable_nestloop = off
SET jit = off
AS $$
DECLARE
    v_key text := TG_ARGV[0];
    v_noise text[] := TG_ARGV[1:];
    v_note text := nullif(pg_catalog.current_setting('opsguard.note', true), '');
    v_actor text := ops.current_actor();
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ops.audit_log (actor, action, table_name, row_key, changes, note)
        SELECT v_actor, 'INSERT', TG_TABLE_NAME, n.j ->> v_key, n.j, v_note
        FROM (SELECT to_jsonb(r) AS j FROM new_rows AS r) AS n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO ops.audit_log (actor, action, table_name, row_key, changes, note)
        SELECT v_actor, 'DELETE', TG_TABLE_NAME, o.j ->> v_key, o.j, v_note
        FROM (SELECT to_jsonb(r) AS j FROM old_rows AS r) AS o;
    ELSE
        -- each row becomes jsonb once (0002 built it twice, once for the key and once whole),
        -- materialized, so the diff below does not rebuild it for every column it compares;
        -- static SQL keeps its cached plan, which one-row updates (an ack) depend on
        WITH n AS MATERIALIZED (
            SELECT to_jsonb(r) AS j FROM new_rows AS r
        ),
        o AS MATERIALIZED (
            SELECT to_jsonb(r) AS j FROM old_rows AS r
        ),
        pairs AS MATERIALIZED (
            SELECT n.j ->> v_key AS row_key, n.j AS nj, o.j AS oj
            FROM n INNER JOIN o ON n.j ->> v_key = o.j ->> v_key
        ),
        d AS MATERIALIZED (
            SELECT p.row_key,
                   (SELECT pg_catalog.jsonb_object_agg(c.key, pg_catalog.jsonb_build_array(p.oj -> c.key, c.value))
                    FROM pg_catalog.jsonb_each(p.nj) AS c
                    WHERE c.value IS DISTINCT FROM p.oj -> c.key AND c.key <> 'updated_at') AS diff
            FROM pairs AS p
        )
        INSERT INTO ops.audit_log (actor, action, table_name, row_key, changes, note)
        SELECT v_actor, 'UPDATE', TG_TABLE_NAME, d.row_key, d.diff, v_note
        FROM d
        WHERE d.diff - v_noise <> '{}';
    END IF;
    RETURN NULL;
END;
$$;
ALTER FUNCTION ops._audit_changes() SECURITY DEFINER SET search_path = ops, pg_temp;
DROP FUNCTION ops._audit_redacted(text, jsonb);
DROP FUNCTION ops._audit_secret(text);
