-- depends: 0006_escalation_tick
-- pg_cron jobs, installed when pg_cron is usable here and harmless when it is not
-- (the Python ticker, python -m opsguard.ticker, calls the same tick).

CREATE FUNCTION ops.pg_cron_status() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN 'installed'
        WHEN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'pg_cron')
            THEN 'pg_cron is not installed on this server'
        WHEN pg_catalog.current_setting('cron.database_name', true) IS NULL
            THEN 'pg_cron is not in shared_preload_libraries'
        WHEN pg_catalog.current_setting('cron.database_name', true) <> pg_catalog.current_database()
            THEN pg_catalog.format('pg_cron runs in database %s (cron.database_name), not here',
                                   pg_catalog.current_setting('cron.database_name', true))
        ELSE 'available'
    END
$$;
COMMENT ON FUNCTION ops.pg_cron_status() IS
'installed, available, or why pg_cron cannot run jobs in this database.';

CREATE TABLE ops.cron_jobs (
    name text PRIMARY KEY CHECK (name ~ '^opsguard-'),
    schedule text NOT NULL,
    command text NOT NULL,
    description text NOT NULL
);
COMMENT ON TABLE ops.cron_jobs IS
'The pg_cron jobs opsguard runs; ops.install_cron_jobs() schedules exactly these. Only migrations write it: pg_cron runs '
'each command as the role that installed it.';
INSERT INTO ops.cron_jobs (name, schedule, command, description) VALUES
('opsguard-escalation-tick', '* * * * *', 'SELECT ops.escalation_tick(p_source => ''pg_cron'')', 'the escalation tick');

CREATE FUNCTION ops.install_cron_jobs() RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_status text := ops.pg_cron_status();
BEGIN
    IF v_status = 'available' THEN
        BEGIN
            CREATE EXTENSION pg_cron;
        EXCEPTION WHEN insufficient_privilege THEN
            RETURN 'skipped: creating pg_cron needs a superuser; run SELECT ops.install_cron_jobs() as one';
        END;
    ELSIF v_status <> 'installed' THEN
        RAISE NOTICE 'pg_cron jobs not installed: %', v_status
            USING HINT = 'Run the Python ticker instead: python -m opsguard.ticker';
        RETURN 'skipped: ' || v_status;
    END IF;
    -- cron.schedule with an existing name updates that job in place; jobs of ours that are
    -- no longer listed (a rolled-back migration's) are removed
    PERFORM cron.schedule(j.name, j.schedule, j.command) FROM ops.cron_jobs AS j;
    PERFORM cron.unschedule(c.jobid) FROM cron.job AS c
    WHERE c.jobname LIKE 'opsguard-%' AND c.jobname NOT IN (SELECT name FROM ops.cron_jobs);
    RETURN 'installed: ' || (SELECT pg_catalog.string_agg(name, ', ' ORDER BY name) FROM ops.cron_jobs);
END;
$$;
COMMENT ON FUNCTION ops.install_cron_jobs() IS
'(Re)installs the pg_cron jobs listed in ops.cron_jobs; safe to run again. Creates pg_cron when it is preloaded for this '
'database. Returns what it did; where pg_cron cannot run, says why and changes nothing.';

DO $$ BEGIN PERFORM ops.install_cron_jobs(); END $$;
