-- depends: 0045_slack_escape_audit_writer
-- GET /healthz is open to anyone (load balancers and uptime checks cannot sign), and it answered
-- with the configuration problems by name: who can be paged through which schedule, route
-- webhooks, setting names, pg_cron's error text, whether body-only signatures are accepted. An
-- anonymous caller now gets only whether the API is healthy and why in general terms (the
-- database answers, migrations are current, the tick's age, how many problems of each kind); the
-- reasons and warnings by name go to a signed caller holding escalation.recalc (ops_admin).

-- The detail, as before (operators read it in psql: the runbook's first query), now with the
-- problems counted by kind, and ops.config_problems read once instead of twice.
CREATE OR REPLACE FUNCTION ops.api_health(p_now timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_tick ops.tick_log;
    v_tick_ms float8 := ops.setting('tick_ms')::float8;
    v_age float8;
    v_cron record;
    v_status text := ops.pg_cron_status();
    v_tick_reason text;
    v_cron_reason text;
    v_blocking text[];
    v_warnings text[];
BEGIN
    SELECT * INTO v_tick FROM ops.tick_log WHERE tick_at <= p_now ORDER BY tick_at DESC, id DESC LIMIT 1;
    v_age := round(EXTRACT(epoch FROM p_now - v_tick.tick_at)::numeric, 1);
    IF v_age IS NULL THEN
        IF p_now - coalesce(ops.installed_at(), '-infinity') > pg_catalog.make_interval(secs => 2 * v_tick_ms / 1000) THEN
            v_tick_reason := 'no escalation tick has run since opsguard was installed';
        END IF;
    ELSIF v_age * 1000 > 2 * v_tick_ms THEN
        v_tick_reason := pg_catalog.format('the last tick was %s s ago (more than 2 x tick_ms)', v_age);
    END IF;
    SELECT * INTO v_cron FROM ops.cron_job_last_run('opsguard-escalation-tick');
    IF v_status = 'installed' AND v_cron.scheduled IS NULL THEN
        v_cron_reason := 'pg_cron is installed but the tick job is not scheduled: SELECT ops.install_cron_jobs()';
    ELSIF v_cron.status = 'failed' THEN
        v_cron_reason := pg_catalog.format('the last pg_cron tick failed: %s', v_cron.return_message);
    END IF;
    SELECT coalesce(pg_catalog.array_agg(c.setting || ': ' || c.problem ORDER BY c.n) FILTER (WHERE c.blocking), '{}'),
           coalesce(pg_catalog.array_agg(c.setting || ': ' || c.problem ORDER BY c.n) FILTER (WHERE NOT c.blocking), '{}')
    INTO v_blocking, v_warnings
    FROM ops.config_problems() WITH ORDINALITY AS c (setting, problem, blocking, n);
    RETURN pg_catalog.jsonb_build_object(
        'database', 'ok',
        'reasons', pg_catalog.to_jsonb(pg_catalog.array_remove(ARRAY[v_tick_reason, v_cron_reason], NULL) || v_blocking),
        'warnings', pg_catalog.to_jsonb(v_warnings),
        'problemCounts', pg_catalog.jsonb_build_object(
            'tick', (v_tick_reason IS NOT NULL)::int, 'pgCron', (v_cron_reason IS NOT NULL)::int,
            'configuration', pg_catalog.cardinality(v_blocking)),
        'migrations', (SELECT pg_catalog.jsonb_agg(migration_id ORDER BY migration_id) FROM public._yoyo_migration),
        'lastTickAt', v_tick.tick_at,
        'lastTickAgeSeconds', v_age,
        'tickMs', ops.setting('tick_ms'),
        'pgCron', v_status,
        'pgCronJob', CASE WHEN v_cron.scheduled THEN pg_catalog.jsonb_build_object(
            'lastStatus', v_cron.status, 'lastStart', v_cron.start_time, 'lastMessage', v_cron.return_message) END);
END;
$$;
COMMENT ON FUNCTION ops.api_health(timestamptz) IS
'The health detail (what a signed GET /healthz shows an admin): database, applied migrations, last tick and its age, '
'pg_cron job and its last run, and the reasons it is not healthy (a late or missing tick, a failing or missing pg_cron '
'job, a blocking configuration problem), counted by kind in problemCounts; warnings: the configuration problems that '
'do not block (paging gaps).';

-- What GET /healthz answers this caller: p_principal NULL (an unsigned request) gets the summary only.
CREATE FUNCTION ops.api_health(
    p_principal text, p_actor text, p_migrations jsonb, p_body_only boolean, p_now timestamptz DEFAULT pg_catalog.now()
) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_health jsonb;
    v_pending text[];
    v_summary jsonb;
BEGIN
    IF p_principal IS NOT NULL THEN
        PERFORM ops.authorize(p_principal, 'escalation.recalc', nullif(p_actor, ''));
    END IF;
    v_health := ops.api_health(p_now);
    v_pending := ARRAY(
        SELECT m.id FROM pg_catalog.jsonb_array_elements_text(coalesce(p_migrations, '[]')) AS m (id)
        EXCEPT
        SELECT a.id FROM pg_catalog.jsonb_array_elements_text(coalesce(v_health -> 'migrations', '[]')) AS a (id)
        ORDER BY 1);
    v_summary := pg_catalog.jsonb_build_object(
        'ok', pg_catalog.jsonb_array_length(v_health -> 'reasons') = 0 AND pg_catalog.cardinality(v_pending) = 0,
        'database', 'ok',
        'migrationsCurrent', pg_catalog.cardinality(v_pending) = 0,
        'lastTickAgeSeconds', v_health -> 'lastTickAgeSeconds',
        'problemCounts', v_health -> 'problemCounts'
                         || pg_catalog.jsonb_build_object('migrations', pg_catalog.cardinality(v_pending)));
    IF p_principal IS NULL THEN
        RETURN v_summary || pg_catalog.jsonb_build_object('hint',
            'the reasons and warnings by name go to a signed GET /healthz from a key that holds escalation.recalc '
            '(ops_admin); see docs/observability.md');
    END IF;
    RETURN v_health || v_summary || pg_catalog.jsonb_build_object(
        'reasons', CASE WHEN pg_catalog.cardinality(v_pending) > 0
                        THEN pg_catalog.jsonb_build_array('migrations not applied: '
                                                          || pg_catalog.array_to_string(v_pending, ', '))
                        ELSE '[]' END || (v_health -> 'reasons'),
        'warnings', CASE WHEN p_body_only
                         THEN pg_catalog.jsonb_build_array('body-only signatures (no timestamp, no path) are accepted '
                              'on POST /ops/escalation/tick and /ops/incidents/<id>/ack; once every client signs v1, '
                              'set OPS_HMAC_BODY_ONLY=off')
                         ELSE '[]' END || (v_health -> 'warnings'),
        'pendingMigrations', pg_catalog.to_jsonb(v_pending));
END;
$$;
COMMENT ON FUNCTION ops.api_health(text, text, jsonb, boolean, timestamptz) IS
'GET /healthz for this caller. p_migrations: the migration ids the API found on disk (a JSON array); p_body_only: '
'whether it accepts body-only signatures. Everyone (p_principal NULL): ok, database, migrationsCurrent, '
'lastTickAgeSeconds and problemCounts by kind, no name or value from the configuration. A signer holding '
'escalation.recalc (42501 otherwise): also the reasons and warnings by name, and the rest of ops.api_health(p_now).';
REVOKE ALL ON FUNCTION ops.api_health(text, text, jsonb, boolean, timestamptz) FROM public;
-- the API answers /healthz with it; operators may ask it in psql as they ask the one-argument form
GRANT EXECUTE ON FUNCTION ops.api_health(text, text, jsonb, boolean, timestamptz) TO opsguard_api;
GRANT EXECUTE ON FUNCTION ops.api_health(text, text, jsonb, boolean, timestamptz) TO opsguard_operator;
