-- config_problems as 0014 defined it
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
'The API and the dispatcher refuse to start while it has rows; a dispatcher passes its HTTP timeout.';

-- api_health as 0010 defined it
CREATE OR REPLACE FUNCTION ops.api_health(p_now timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object(
        'database', 'ok',
        'migrations', (SELECT pg_catalog.jsonb_agg(migration_id ORDER BY migration_id) FROM public._yoyo_migration),
        'lastTickAt', t.tick_at,
        'lastTickAgeSeconds', round(EXTRACT(epoch FROM p_now - t.started_at)::numeric, 1),
        'tickMs', ops.setting('tick_ms'),
        'pgCron', ops.pg_cron_status())
    FROM (SELECT NULL) AS one
    LEFT JOIN LATERAL (SELECT tick_at, started_at FROM ops.tick_log ORDER BY id DESC LIMIT 1) AS t ON true
$$;
COMMENT ON FUNCTION ops.api_health(timestamptz) IS 'GET /healthz: database, applied migrations, age of the last tick, pg_cron status.';

UPDATE ops.cron_jobs
SET name = 'opsguard-guard-retention', command = 'SELECT ops.purge_guard_history()',
    description = 'daily purge of old rollups and evaluations'
WHERE name = 'opsguard-retention';
DO $$ BEGIN PERFORM ops.install_cron_jobs(); END $$;
DROP FUNCTION ops.purge_history(timestamptz);
DO $$ BEGIN EXECUTE pg_catalog.format('ALTER DATABASE %I RESET timezone', pg_catalog.current_database()); END $$;
DROP FUNCTION ops.use_utc();
DELETE FROM ops.settings WHERE key IN ('tick_log_retention_days', 'notify_retention_days', 'cron_history_retention_days');
