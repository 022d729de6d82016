-- depends: 0001_schema
-- The append-only audit log and the actor every change is recorded with.

CREATE TABLE ops.audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    actor text NOT NULL,
    db_user name NOT NULL DEFAULT session_user,
    action text NOT NULL,
    table_name text NOT NULL,
    row_key text,
    changes jsonb NOT NULL,
    note text,
    txid bigint NOT NULL DEFAULT pg_catalog.txid_current()
);
CREATE INDEX audit_log_at ON ops.audit_log (at);
CREATE INDEX audit_log_row ON ops.audit_log (table_name, row_key);
COMMENT ON TABLE ops.audit_log IS
'Append-only record of every change to incidents, settings and the SLA table, whoever made it (functions, the API, direct SQL).';
COMMENT ON COLUMN ops.audit_log.actor IS
'Who acted: the p_actor of an ops.* function, else the opsguard.actor session setting, else the database user.';
COMMENT ON COLUMN ops.audit_log.changes IS
'UPDATE: {"column": [old, new]} for each changed column; INSERT/DELETE: the whole row.';

CREATE FUNCTION ops.current_actor() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(pg_catalog.current_setting('opsguard.actor', true), ''), session_user::text COLLATE "default")
$$;
COMMENT ON FUNCTION ops.current_actor() IS
'The actor recorded for changes in this transaction: opsguard.actor if set (SET LOCAL opsguard.actor = ''alice''), else the database user.';

-- Sets the actor (and an optional note) for the rest of the transaction; returns
-- the previous actor so a function can restore it.
CREATE FUNCTION ops._act_as(p_actor text, p_note text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_prev text := coalesce(pg_catalog.current_setting('opsguard.actor', true), '');
BEGIN
    PERFORM pg_catalog.set_config('opsguard.actor', coalesce(p_actor, ''), true);
    PERFORM pg_catalog.set_config('opsguard.note', coalesce(p_note, ''), true);
    RETURN v_prev;
END;
$$;
COMMENT ON FUNCTION ops._act_as(text, text) IS 'Internal: sets the transaction''s actor and note; returns the previous actor.';

CREATE FUNCTION ops._forbid_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME
        USING ERRCODE = '42501',
              HINT = 'Rows are never updated or deleted; retention jobs are the only sanctioned purge.';
END;
$$;
COMMENT ON FUNCTION ops._forbid_change() IS 'Internal trigger: refuses UPDATE, DELETE and TRUNCATE on append-only tables.';

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON ops.audit_log
FOR EACH ROW EXECUTE FUNCTION ops._forbid_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON ops.audit_log
FOR EACH STATEMENT EXECUTE FUNCTION ops._forbid_change();

-- One statement-level trigger function for every audited table: it reads the
-- transition tables, so a tick that escalates 10k incidents writes its audit rows
-- in one INSERT ... SELECT. TG_ARGV[0] names the key column; columns listed after
-- it are noise that alone does not make an audit row (next_due_at is derived).
-- Transition tables carry no statistics, so the planner guesses one row each and joins
-- old to new rows with a nested loop: quadratic (9M comparisons for a 3k-row tick).
-- With nested loops off for this function alone it hashes: 10k rows in milliseconds.
CREATE FUNCTION ops._audit_changes() RETURNS trigger
LANGUAGE plpgsql
SET enable_nestloop = off
AS $$
DECLARE
    v_key text := TG_ARGV[0];
    v_noise text[] := TG_ARGV[1:];
    v_note text := nullif(pg_catalog.current_setting('opsguard.note', true), '');
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ops.audit_log (actor, action, table_name, row_key, changes, note)
        SELECT ops.current_actor(), 'INSERT', TG_TABLE_NAME, n.j ->> v_key, n.j, v_note
        FROM (SELECT to_jsonb(r) AS j FROM new_rows r) n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO ops.audit_log (actor, action, table_name, row_key, changes, note)
        SELECT ops.current_actor(), 'DELETE', TG_TABLE_NAME, o.j ->> v_key, o.j, v_note
        FROM (SELECT to_jsonb(r) AS j FROM old_rows r) o;
    ELSE
        WITH pairs AS MATERIALIZED (
            SELECT n.row_key, n.j AS new_row, o.j AS old_row
            FROM (SELECT to_jsonb(r) ->> v_key AS row_key, to_jsonb(r) AS j FROM new_rows r) AS n
            JOIN (SELECT to_jsonb(r) ->> v_key AS row_key, to_jsonb(r) AS j FROM old_rows r) AS o USING (row_key)
        ),
        d AS MATERIALIZED (
            SELECT p.row_key,
                   (SELECT jsonb_object_agg(c.key, jsonb_build_array(p.old_row -> c.key, c.value))
                    FROM jsonb_each(p.new_row) AS c
                    WHERE c.value IS DISTINCT FROM p.old_row -> c.key AND c.key <> 'updated_at') AS diff
            FROM pairs AS p
        )
        INSERT INTO ops.audit_log (actor, action, table_name, row_key, changes, note)
        SELECT ops.current_actor(), 'UPDATE', TG_TABLE_NAME, d.row_key, d.diff, v_note
        FROM d
        WHERE d.diff - v_noise <> '{}';
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ops._audit_changes() IS
'Internal statement trigger: writes one audit_log row per changed row, with the actor. Args: key column, then noise columns.';
