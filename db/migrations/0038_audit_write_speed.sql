-- depends: 0037_tick_schedule_errors
-- What every incident write pays, once per transaction: an Events API v2 trigger, a refresh and
-- an ack are each one transaction, and three pieces of the write path cost more there than in a
-- loop inside one transaction (2,000 committed Events API v2 triggers, track_functions = all):
--   - ops.current_actor() was a SQL function with SECURITY DEFINER and a SET clause, which
--     PostgreSQL cannot inline: it parsed and planned its one-line body in every transaction
--     that wrote an audit row (29 us of the ~520 us such a trigger spent in SQL);
--   - the audit_log writer check ran two regular expressions over the whole call stack, whose
--     text holds every statement on it (56 us);
--   - the incidents row trigger looked up max_esc_level, the SLA and snooze_min in three
--     statements, each an executor run of its own for every row written (a tick's 10k too).
-- Now ops.current_actor() has a SQL-standard body (bound when created, so no search_path to pin,
-- and inlined into its callers), the writer check finds its caller with strpos and accepts
-- exactly the callers it accepted before, and the row trigger reads the three in one statement.
-- In SQL per committed trigger: 410-450 -> 330-345 us for a new incident, 510 -> 390-420 us for
-- a refresh (synchronous_commit off to leave the disk out, min of 4 runs of 2,000).

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

-- as 0019 wrote it but for next_due_at, which is the same value from one statement
CREATE OR REPLACE FUNCTION ops._incidents_before_write() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
BEGIN
    NEW.route := coalesce(nullif(NEW.route, ''), nullif(pg_catalog.split_part(NEW.incident_key, '::', 1), ''));
    IF TG_OP = 'UPDATE' THEN
        -- reopening (status back to open) clears the old acknowledgement unless the UPDATE sets one
        IF NEW.status = 'open' AND OLD.status <> 'open'
           AND NEW.acknowledged_at IS NOT DISTINCT FROM OLD.acknowledged_at THEN
            NEW.acknowledged_at := NULL;
            NEW.acknowledged_by := NULL;
        END IF;
        NEW.updated_at := pg_catalog.now();
    END IF;
    -- an UPDATE that only sets acknowledged_at is an acknowledgement
    IF NEW.status = 'open' AND NEW.acknowledged_at IS NOT NULL THEN
        NEW.status := 'acknowledged';
    END IF;
    IF NEW.status = 'acknowledged' THEN
        NEW.acknowledged_at := coalesce(NEW.acknowledged_at, pg_catalog.now());
        NEW.acknowledged_by := coalesce(NEW.acknowledged_by, ops.current_actor());
    ELSIF NEW.status = 'open' THEN
        NEW.acknowledged_by := NULL;  -- no acknowledgement, so nobody acknowledged it
    END IF;
    IF NEW.status = 'resolved' THEN
        NEW.resolved_at := coalesce(NEW.resolved_at, pg_catalog.now());
        NEW.resolved_by := coalesce(NEW.resolved_by, ops.current_actor());
    ELSE
        NEW.resolved_at := NULL;
        NEW.resolved_by := NULL;
    END IF;
    -- ops.next_due(NEW), written out: a call would switch search_path a second time for every row
    -- (ops.recalc_next_due() counts rows where the two disagree: 30-next-due.sql and the bench expect none).
    -- One statement for the three lookups (0038): each statement with a subquery is an executor run
    -- of its own, for every row written; an acknowledged or resolved row needs none.
    IF NEW.acknowledged_at IS NOT NULL OR NEW.status <> 'open' THEN
        NEW.next_due_at := NULL;
    ELSE
        NEW.next_due_at := CASE
            WHEN NEW.escalation_level >= (SELECT s.value FROM ops.settings AS s WHERE s.key = 'max_esc_level')::int THEN NULL
            ELSE (SELECT GREATEST(
                      NEW.first_seen + pg_catalog.make_interval(mins => sla.ack_minutes * (NEW.escalation_level + 1)),
                      NEW.last_escalated_at
                          + pg_catalog.make_interval(
                              mins => (SELECT s.value FROM ops.settings AS s WHERE s.key = 'snooze_min')::int),
                      NEW.snoozed_until)
                  FROM ops.sla WHERE sla.severity = NEW.severity AND sla.ack_minutes IS NOT NULL)
        END;
    END IF;
    RETURN NEW;
END;
$$;
