-- depends: 0037_tick_schedule_errors
-- What every audited write pays, once per transaction: an Events API v2 trigger, an ack and a
-- refresh are each one transaction, and two pieces of the audit path cost more there than in a
-- loop inside one transaction (per 2,000 committed Events API v2 triggers, track_functions):
--   - ops.current_actor() was a SQL function with SECURITY DEFINER and a SET clause, which
--     PostgreSQL cannot inline: it parsed and planned its one-line body in every transaction
--     that wrote an audit row (29 us of the ~520 us such a trigger spends in SQL).
--   - the audit_log writer check ran two regular expressions over the whole call stack, whose
--     text holds every statement on it (56 us).
-- ops.current_actor() now has a SQL-standard body (bound when created, so no search_path to
-- pin, and inlined into its callers); the writer check finds the calling function with strpos
-- and accepts exactly the callers it accepted before. Together: 450 -> 380 us per committed
-- trigger in SQL, 510 -> 450 us per refresh (synchronous_commit off, min of 4 runs).

-- the same value: opsguard.actor when set, else the database user. Not SECURITY DEFINER: it
-- reads nothing an invoker cannot (a setting and session_user), and a definer cannot be inlined
CREATE OR REPLACE FUNCTION ops.current_actor() RETURNS text
LANGUAGE sql STABLE
RETURN coalesce(nullif(pg_catalog.current_setting('opsguard.actor', true), ''), session_user::text COLLATE "default");
ALTER FUNCTION ops.current_actor() SECURITY INVOKER RESET search_path;

-- Only the audit triggers write audit_log (0019 says why). The INSERT must be issued by
-- ops._audit_changes() or ops._audit_replay(), as before, found without regular expressions.
CREATE OR REPLACE FUNCTION ops._audit_log_writer_check() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_stack text;
    v_caller text;
    v_line text;
BEGIN
    GET DIAGNOSTICS v_stack = PG_CONTEXT;
    -- the stack reads: this function; SQL statement "<the INSERT, maybe several lines>"; the
    -- function that ran it. The first quote-newline-function after our own line ends the INSERT.
    v_stack := pg_catalog.substr(v_stack, pg_catalog.strpos(v_stack, E'\n') + 1);
    -- LEAST skips a NULL: the earlier of the two kinds of function line, NULL when neither is there
    v_caller := pg_catalog.split_part(pg_catalog.substr(v_stack, 2 + LEAST(
        nullif(pg_catalog.strpos(v_stack, E'"\nPL/pgSQL function '), 0),
        nullif(pg_catalog.strpos(v_stack, E'"\nSQL function '), 0))), E'\n', 1);
    -- the caller line must read: PL/pgSQL function [ops.]_audit_(changes|replay)() line <digits> at SQL statement
    v_line := pg_catalog.split_part(pg_catalog.split_part(v_caller, ' line ', 2), ' at SQL statement', 1);
    IF pg_catalog.pg_trigger_depth() < 2
       OR v_caller IS NULL
       OR v_line = '' OR pg_catalog.btrim(v_line, '0123456789') <> ''
       OR v_caller NOT IN (
           'PL/pgSQL function _audit_changes() line ' || v_line || ' at SQL statement',
           'PL/pgSQL function ops._audit_changes() line ' || v_line || ' at SQL statement',
           'PL/pgSQL function _audit_replay() line ' || v_line || ' at SQL statement',
           'PL/pgSQL function ops._audit_replay() line ' || v_line || ' at SQL statement') THEN
        RAISE EXCEPTION 'audit_log rows are written only by the audit triggers'
            USING ERRCODE = '42501',
                  HINT = 'Change the audited table (or call the ops.* function that does); its trigger records the change.';
    END IF;
    RETURN NULL;
END;
$$;
