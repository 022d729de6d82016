-- depends: 0010_api 0008_pg_cron
-- Database roles. Roles are cluster-wide, so they are created only when missing and
-- never dropped by a rollback (another database may use them); privileges are per database.
--   opsguard_api       the API's connections: EXECUTE on ops.api_* and nothing else
--   opsguard_operator  people in psql: every ops function, read and write (no delete) on every table
--   opsguard_auditor   DBAs auditing: read escalation_events and audit_log, nothing else

DO $$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['opsguard_api', 'opsguard_operator', 'opsguard_auditor'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = v_role) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', v_role);
        END IF;
    END LOOP;
END;
$$;

-- PUBLIC gets EXECUTE on every new function; nothing in ops is for everyone. A per-schema
-- ALTER DEFAULT PRIVILEGES cannot take that away (it only adds to the global default), and
-- a global one would strip it from every extension installed later too, so each migration
-- that adds functions ends with this REVOKE (tests/sql/05-privileges.sql checks it held).
REVOKE ALL ON SCHEMA ops FROM public;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ops FROM public;
GRANT USAGE ON SCHEMA ops TO opsguard_api, opsguard_operator, opsguard_auditor;

-- the API: one SECURITY DEFINER function per endpoint, which authorizes the caller itself
GRANT EXECUTE ON FUNCTION
    ops.api_tick(text, text, text),
    ops.api_recalc(text, text, text),
    ops.api_set_incident_status(text, text, text, text, text, jsonb),
    ops.api_trigger_incident(text, text, text, jsonb),
    ops.api_list_incidents(text, text, jsonb),
    ops.api_me(text, text),
    ops.api_health(timestamptz)
TO opsguard_api;

-- operators act through the verbs and the seeds' direct SQL; the append-only triggers
-- still refuse changes to events and the audit log, and nobody gets DELETE
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA ops TO opsguard_operator;
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA ops TO opsguard_operator;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA ops TO opsguard_operator;
ALTER DEFAULT PRIVILEGES IN SCHEMA ops GRANT EXECUTE ON FUNCTIONS TO opsguard_operator;
ALTER DEFAULT PRIVILEGES IN SCHEMA ops GRANT SELECT, INSERT, UPDATE ON TABLES TO opsguard_operator;
ALTER DEFAULT PRIVILEGES IN SCHEMA ops GRANT USAGE ON SEQUENCES TO opsguard_operator;
-- pg_cron runs each listed command as the role that installed the jobs: only migrations write it
REVOKE INSERT, UPDATE ON ops.cron_jobs FROM opsguard_operator;

-- auditors read the trail and nothing else
GRANT SELECT ON ops.escalation_events, ops.audit_log TO opsguard_auditor;
