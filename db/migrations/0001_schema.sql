-- The ops schema, and a database search_path that reaches it, so the seeds'
-- plain SQL (UPDATE incidents ..., SELECT ... FROM escalation_events) works verbatim.

CREATE SCHEMA ops;
COMMENT ON SCHEMA ops IS 'opsguard: incident escalation and release guard. Functions are the API; tables are not.';

-- CREATE DATABASE ... TEMPLATE does not copy per-database settings, so this is a
-- function that clones (and operators restoring a dump) can call again.
CREATE FUNCTION ops.use_ops_search_path() RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE pg_catalog.format(
        'ALTER DATABASE %I SET search_path = "$user", public, ops', pg_catalog.current_database()
    );
    RETURN '"$user", public, ops';
END;
$$;
COMMENT ON FUNCTION ops.use_ops_search_path() IS
'Sets this database''s default search_path to include ops (new sessions see it). Called by the first migration.';

DO $$ BEGIN PERFORM ops.use_ops_search_path(); END $$;
