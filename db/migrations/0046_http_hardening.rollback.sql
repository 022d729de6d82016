-- 0046 undone: the anonymous /healthz summary goes, and ops.api_health(p_now) is again as 0033 wrote it
DROP FUNCTION ops.api_health(text, text, jsonb, boolean, timestamptz);

-- The health answer: blocking configuration problems are reasons, paging gaps are warnings.
CREATE OR REPLACE FUNCTION ops.api_health(p_now timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_tick ops.tick_log;
    v_tick_ms float8 := ops.setting('tick_ms')::float8;
    v_age float8;
    v_cron record;
    v_status text := ops.pg_cron_status();
    v_reasons text[] := '{}';
    v_warnings text[];
BEGIN
    SELECT * INTO v_tick FROM ops.tick_log WHERE tick_at <= p_now ORDER BY tick_at DESC, id DESC LIMIT 1;
    v_age := round(EXTRACT(epoch FROM p_now - v_tick.tick_at)::numeric, 1);
    IF v_age IS NULL THEN
        IF p_now - coalesce(ops.installed_at(), '-infinity') > pg_catalog.make_interval(secs => 2 * v_tick_ms / 1000) THEN
            v_reasons := v_reasons || 'no escalation tick has run since opsguard was installed'::text;
        END IF;
    ELSIF v_age * 1000 > 2 * v_tick_ms THEN
        v_reasons := v_reasons || pg_catalog.format('the last tick was %s s ago (more than 2 x tick_ms)', v_age);
    END IF;
    SELECT * INTO v_cron FROM ops.cron_job_last_run('opsguard-escalation-tick');
    IF v_status = 'installed' AND v_cron.scheduled IS NULL THEN
        v_reasons := v_reasons || 'pg_cron is installed but the tick job is not scheduled: SELECT ops.install_cron_jobs()'::text;
    ELSIF v_cron.status = 'failed' THEN
        v_reasons := v_reasons || pg_catalog.format('the last pg_cron tick failed: %s', v_cron.return_message);
    END IF;
    v_reasons := v_reasons || ARRAY(SELECT c.setting || ': ' || c.problem FROM ops.config_problems() AS c WHERE c.blocking);
    v_warnings := ARRAY(SELECT c.setting || ': ' || c.problem FROM ops.config_problems() AS c WHERE NOT c.blocking);
    RETURN pg_catalog.jsonb_build_object(
        'database', 'ok',
        'reasons', pg_catalog.to_jsonb(v_reasons),
        'warnings', pg_catalog.to_jsonb(v_warnings),
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
'GET /healthz: database, applied migrations, last tick and its age, pg_cron job and its last run, and the reasons it is '
'not healthy (a late or missing tick, a failing or missing pg_cron job, a blocking configuration problem); warnings: '
'the configuration problems that do not block (paging gaps).';
