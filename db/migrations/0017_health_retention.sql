-- depends: 0016_metrics_alerts
-- Health and upkeep: UTC enforced, the boot check and GET /healthz with their reasons, and
-- daily retention that keeps the counters whole.

INSERT INTO ops.settings (key, value, kind, min_value, max_value, description) VALUES
('tick_log_retention_days', '14', 'integer', 1, 3650, 'tick_log rows older than this are purged daily.'),
('notify_retention_days', '7', 'integer', 1, 3650,
 'Sent notifications (and their attempts) older than this are purged daily; pending and dead ones stay.'),
('cron_history_retention_days', '7', 'integer', 1, 3650,
 'pg_cron''s cron.job_run_details rows of the opsguard jobs older than this are purged daily.');

-- Times are UTC only: stored so by timestamptz, and shown so (to_jsonb and psql render in
-- the session's zone). Each database that holds ops gets it as its default.
CREATE FUNCTION ops.use_utc() RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE pg_catalog.format('ALTER DATABASE %I SET timezone TO %L', pg_catalog.current_database(), 'UTC');
    RETURN 'UTC';
END;
$$;
COMMENT ON FUNCTION ops.use_utc() IS
'Makes UTC the default time zone of this database (migrations call it; so does a clone of a template).';
DO $$ BEGIN PERFORM ops.use_utc(); END $$;

-- the boot check gains the time zone
CREATE OR REPLACE FUNCTION ops.config_problems(p_dispatch_timeout_s float8 DEFAULT NULL) RETURNS TABLE (setting text, problem text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_row record;
    v_lease int := ops.setting('notify_lease_s')::int;
BEGIN
    -- a dispatcher starts a message only while its lease outlasts the HTTP timeout
    IF p_dispatch_timeout_s IS NOT NULL AND v_lease < p_dispatch_timeout_s + 2 THEN
        setting := 'notify_lease_s';
        problem := pg_catalog.format('%s s is too short for a dispatcher HTTP timeout of %s s: make it at least %s',
                                     v_lease, p_dispatch_timeout_s, ceil(p_dispatch_timeout_s + 2));
        RETURN NEXT;
    END IF;
    -- timestamps render in the session's zone (to_jsonb, psql): opsguard shows UTC only
    IF pg_catalog.current_setting('TimeZone') NOT IN ('UTC', 'Etc/UTC', 'Etc/UCT', 'UCT', 'Universal', 'Zulu') THEN
        setting := 'TimeZone';
        problem := pg_catalog.format('the time zone is %s, not UTC: SELECT ops.use_utc(); then reconnect',
                                     pg_catalog.current_setting('TimeZone'));
        RETURN NEXT;
    END IF;
    FOR v_row IN
        SELECT s.key AS name, s.value #>> '{}' AS url, s.kind
        FROM ops.settings AS s WHERE s.kind IN ('url', 'webhook') AND s.value #>> '{}' <> ''
        UNION ALL
        SELECT pg_catalog.format('route_webhooks[%s]', w.route), w.webhook_url, 'webhook'
        FROM ops.route_webhooks AS w
        ORDER BY 1
    LOOP
        BEGIN
            PERFORM ops.validate_url(v_row.url, v_row.kind);
        EXCEPTION WHEN invalid_parameter_value THEN
            setting := v_row.name;
            problem := CASE v_row.kind WHEN 'webhook' THEN ops._redact_url(SQLERRM, v_row.url) ELSE SQLERRM END;
            RETURN NEXT;
        END;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION ops.config_problems(float8) IS
'What is wrong with the configuration, one row per setting (empty: all is well): SELECT * FROM ops.config_problems(); '
'Checks URLs and webhooks, the time zone (UTC), and for a dispatcher its lease. '
'The API and the dispatcher refuse to start while it has rows; a dispatcher passes its HTTP timeout.';

-- The health answer, with its reasons (the API adds migrations it finds on disk but not here).
CREATE OR REPLACE FUNCTION ops.api_health(p_now timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_tick ops.tick_log;
    v_tick_ms float8 := ops.setting('tick_ms')::float8;
    v_age float8;
    v_cron record;
    v_status text := ops.pg_cron_status();
    v_reasons text[] := '{}';
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
    v_reasons := v_reasons || ARRAY(SELECT c.setting || ': ' || c.problem FROM ops.config_problems() AS c);
    RETURN pg_catalog.jsonb_build_object(
        'database', 'ok',
        'reasons', pg_catalog.to_jsonb(v_reasons),
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
'not healthy (a late or missing tick, a failing or missing pg_cron job, a configuration problem).';

-- Daily retention. Old rows go; what they counted moves to ops.counter_base in the same
-- statement (data-modifying CTEs share one snapshot: the attempts of purged messages are
-- still visible to count).
CREATE FUNCTION ops.purge_history(p_now timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_ticks bigint;
    v_sent bigint;
    v_evals bigint;
    v_cron bigint := 0;
    v_guard jsonb;
BEGIN
    WITH gone AS (
        DELETE FROM ops.tick_log
        WHERE tick_at < p_now - pg_catalog.make_interval(days => ops.setting('tick_log_retention_days')::int)
        RETURNING state, escalations_count, skipped_idempotent
    ),
    sums AS (
        SELECT 'escalations_count' AS name, '' AS label, sum(escalations_count)::bigint AS n FROM gone
        UNION ALL
        SELECT 'skipped_idempotent', '', sum(skipped_idempotent)::bigint FROM gone
        UNION ALL
        SELECT 'ticks', state, count(*) FROM gone GROUP BY state
    ),
    added AS (
        INSERT INTO ops.counter_base AS c (name, label, value)
        SELECT name, label, n FROM sums WHERE n > 0
        ON CONFLICT (name, label) DO UPDATE SET value = c.value + EXCLUDED.value
    )
    SELECT count(*) INTO v_ticks FROM gone;

    WITH gone AS (
        DELETE FROM ops.notification_outbox
        WHERE status = 'sent'
          AND sent_at < p_now - pg_catalog.make_interval(days => ops.setting('notify_retention_days')::int)
        RETURNING id
    ),
    sums AS (
        SELECT 'notifications_sent' AS name, count(*) AS n FROM gone
        UNION ALL
        SELECT 'slack_send_failures', count(*) FROM ops.notification_attempts  -- deleted with them (cascade)
        WHERE outcome = 'failed' AND outbox_id IN (SELECT id FROM gone)
    ),
    added AS (
        INSERT INTO ops.counter_base AS c (name, label, value)
        SELECT name, '', n FROM sums WHERE n > 0
        ON CONFLICT (name, label) DO UPDATE SET value = c.value + EXCLUDED.value
    )
    SELECT count(*) INTO v_sent FROM gone;

    WITH gone AS (
        DELETE FROM ops.guard_evaluations
        WHERE evaluated_at < p_now - pg_catalog.make_interval(days => ops.setting('guard_evaluation_retention_days')::int)
        RETURNING ok
    ),
    added AS (
        INSERT INTO ops.counter_base AS c (name, label, value)
        SELECT 'guard_evaluations', CASE WHEN ok THEN 'ok' ELSE 'blocked' END, count(*) FROM gone GROUP BY ok
        ON CONFLICT (name, label) DO UPDATE SET value = c.value + EXCLUDED.value
    )
    SELECT count(*) INTO v_evals FROM gone;
    v_guard := ops.purge_guard_history(p_now);  -- the rollups, and the replay keys

    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        EXECUTE 'DELETE FROM cron.job_run_details
                 WHERE end_time < $1 AND jobid IN (SELECT jobid FROM cron.job WHERE jobname LIKE ''opsguard-%'')'
        USING p_now - pg_catalog.make_interval(days => ops.setting('cron_history_retention_days')::int);
        GET DIAGNOSTICS v_cron = ROW_COUNT;
    END IF;
    RETURN pg_catalog.jsonb_build_object('tickLog', v_ticks, 'notifications', v_sent, 'evaluations', v_evals,
                                         'rollups', v_guard -> 'rollups', 'cronRunDetails', v_cron);
END;
$$;
COMMENT ON FUNCTION ops.purge_history(timestamptz) IS
'Daily retention (pg_cron job opsguard-retention): tick_log, sent notifications and their attempts, guard evaluations and '
'rollups, pg_cron run details of our jobs, each by its *_retention_days setting. Counters keep what was purged.';

UPDATE ops.cron_jobs
SET name = 'opsguard-retention', command = 'SELECT ops.purge_history()',
    description = 'daily retention: tick log, sent notifications, guard history, pg_cron run details'
WHERE name = 'opsguard-guard-retention';
DO $$ BEGIN PERFORM ops.install_cron_jobs(); END $$;


-- nothing in ops is for everyone (see 0011)
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ops FROM public;
