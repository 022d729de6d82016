-- 0038 undone: ops.current_actor() as 0002 wrote it and 0019 made it (a definer with a pinned
-- search_path), and the audit_log writer check as 0019 wrote it
CREATE OR REPLACE FUNCTION ops.current_actor() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(pg_catalog.current_setting('opsguard.actor', true), ''), session_user::text COLLATE "default")
$$;
ALTER FUNCTION ops.current_actor() SECURITY DEFINER SET search_path = ops, pg_temp;

CREATE OR REPLACE FUNCTION ops._audit_log_writer_check() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_stack text;
    v_caller text;
BEGIN
    GET DIAGNOSTICS v_stack = PG_CONTEXT;
    -- the stack reads: this function; SQL statement "<the INSERT, maybe several lines>"; the
    -- function that ran it. The first quote-newline-function after our own line ends the INSERT.
    v_caller := pg_catalog.substring(
        pg_catalog.substr(v_stack, pg_catalog.strpos(v_stack, E'\n') + 1),
        E'"\n((?:PL/pgSQL|SQL) function [^\n]*)');
    IF pg_catalog.pg_trigger_depth() < 2
       OR v_caller IS NULL
       OR v_caller !~ '^PL/pgSQL function (ops\.)?_audit_(changes|replay)\(\) line [0-9]+ at SQL statement$' THEN
        RAISE EXCEPTION 'audit_log rows are written only by the audit triggers'
            USING ERRCODE = '42501',
                  HINT = 'Change the audited table (or call the ops.* function that does); its trigger records the change.';
    END IF;
    RETURN NULL;
END;
$$;
