-- depends: 0015_chat 0014_notifications 0013_release_guard 0008_pg_cron
-- Counters and alerts: ops.metrics (what GET /metrics exports) and ops.alerts (what is
-- firing), both plain SQL an operator can SELECT. Counters never go down: retention
-- (0017) moves what it purges into ops.counter_base.

INSERT INTO ops.settings (key, value, kind, min_value, max_value, description) VALUES
('alert_high_level_min', '5', 'integer', 1, 100,
 'Open incidents at or above this escalation level count toward the HighLevelIncidents alert.'),
('alert_high_level_max', '3', 'integer', 0, 100000,
 'HighLevelIncidents fires when more than this many open incidents are at level >= alert_high_level_min.');

CREATE INDEX tick_log_tick_at ON ops.tick_log (tick_at);

-- Counters that survive retention: when old rows are purged, their sums move here, so a
-- counter is base + what the remaining rows add up to, and never goes down.
CREATE TABLE ops.counter_base (
    name text NOT NULL,
    label text NOT NULL DEFAULT '',
    value bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (name, label)
);
COMMENT ON TABLE ops.counter_base IS
'What purged rows had counted (ticks, escalations, notifications, guard verdicts): the start of each counter in ops.metrics.';

CREATE FUNCTION ops._counter(p_name text, p_label text DEFAULT '') RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT value FROM ops.counter_base WHERE name = p_name AND label = p_label), 0)
$$;
COMMENT ON FUNCTION ops._counter(text, text) IS 'Internal: a counter''s base (what purged rows counted).';

-- pg_cron's view of one of our jobs, or NULL where pg_cron is not installed here (read
-- dynamically: the cron schema exists only with the extension)
CREATE FUNCTION ops.cron_job_last_run(p_job text)
RETURNS TABLE (scheduled boolean, status text, return_message text, start_time timestamptz, end_time timestamptz)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE
        'SELECT true, d.status, d.return_message, d.start_time, d.end_time
         FROM cron.job AS j
         LEFT JOIN LATERAL (SELECT r.status, r.return_message, r.start_time, r.end_time FROM cron.job_run_details AS r
                            WHERE r.jobid = j.jobid ORDER BY r.runid DESC LIMIT 1) AS d ON true
         WHERE j.jobname = $1'
    USING p_job;
END;
$$;
COMMENT ON FUNCTION ops.cron_job_last_run(text) IS
'A pg_cron job of ours and its last run (status, message, times) from cron.job_run_details; no row when it is not '
'scheduled here.';

-- When opsguard was installed here: a fresh install is not "missing ticks" before its first
-- tick was due. (yoyo records when each migration ran; NULL elsewhere: long ago.)
CREATE FUNCTION ops.installed_at() RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_at timestamptz;
BEGIN
    IF pg_catalog.to_regclass('public._yoyo_migration') IS NOT NULL THEN
        EXECUTE 'SELECT min(applied_at_utc) AT TIME ZONE ''UTC'' FROM public._yoyo_migration' INTO v_at;
    END IF;
    RETURN v_at;
END;
$$;
COMMENT ON FUNCTION ops.installed_at() IS 'When the first migration ran here (from yoyo''s table), or NULL.';

-- The alert rules, evaluated at p_now (SPEC §9, seeds' "dash alerts"). One row per rule.
CREATE FUNCTION ops.evaluate_alerts(p_now timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE (alert text, firing boolean, severity text, summary text, value float8, threshold float8)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_tick_ms float8 := ops.setting('tick_ms')::float8;
    v_last ops.tick_log;
    v_age_ms float8;
    v_cron record;
    v_cron_note text;
    v_minutes int;
    v_level_min int := ops.setting('alert_high_level_min')::int;
    v_level_max int := ops.setting('alert_high_level_max')::int;
    v_count bigint;
BEGIN
    -- the tick's own clock (tick_at = its p_now), so a test can move time
    SELECT * INTO v_last FROM ops.tick_log WHERE tick_at <= p_now ORDER BY tick_at DESC, id DESC LIMIT 1;

    alert := 'TickSlow';
    severity := 'warning';
    value := v_last.escalation_tick_ms;
    threshold := 2 * v_tick_ms;
    firing := coalesce(v_last.escalation_tick_ms > 2 * v_tick_ms, false);
    summary := pg_catalog.format('the last tick took %s ms; ticks are expected every %s ms', value, v_tick_ms);
    RETURN NEXT;

    -- a dead ticker: pg_cron stopped, or its job failing; pg_cron's own record says which
    SELECT * INTO v_cron FROM ops.cron_job_last_run('opsguard-escalation-tick');
    v_cron_note := CASE
        WHEN v_cron.scheduled IS NULL THEN 'pg_cron job not scheduled here (' || ops.pg_cron_status() || ')'
        WHEN v_cron.status IS NULL THEN 'pg_cron has not run the job yet'
        ELSE pg_catalog.format('pg_cron''s last run: %s at %s%s', v_cron.status, v_cron.start_time,
                               coalesce(': ' || nullif(v_cron.return_message, ''), ''))
    END;
    v_age_ms := EXTRACT(epoch FROM p_now - v_last.tick_at) * 1000;
    alert := 'TickMissing';
    severity := 'critical';
    value := v_age_ms;
    threshold := 2 * v_tick_ms;
    firing := CASE WHEN v_last.id IS NULL  -- never ticked: missing once the first tick was overdue
                   THEN p_now - coalesce(ops.installed_at(), '-infinity') > pg_catalog.make_interval(secs => 2 * v_tick_ms / 1000)
                   ELSE v_age_ms > 2 * v_tick_ms END;
    summary := CASE WHEN v_age_ms IS NULL THEN 'no tick has run yet'
                    ELSE pg_catalog.format('no tick for %s s', round((v_age_ms / 1000)::numeric, 1)) END
               || '; ' || v_cron_note;
    RETURN NEXT;

    -- failures in each of the last five minutes, as the seeds' "Slack failures > 0 for 5 min"
    SELECT count(DISTINCT floor(EXTRACT(epoch FROM p_now - a.finished_at) / 60)) INTO v_minutes
    FROM ops.notification_attempts AS a
    WHERE a.outcome = 'failed' AND a.finished_at > p_now - interval '5 minutes' AND a.finished_at <= p_now;
    alert := 'SlackFailing';
    severity := 'critical';
    value := v_minutes;
    threshold := 5;
    firing := v_minutes >= 5;
    summary := pg_catalog.format('Slack deliveries failed in %s of the last 5 minutes', v_minutes);
    RETURN NEXT;

    SELECT count(*) INTO v_count FROM ops.incidents
    WHERE status = 'open' AND escalation_level >= v_level_min;
    alert := 'HighLevelIncidents';
    severity := 'critical';
    value := v_count;
    threshold := v_level_max;
    firing := v_count > v_level_max;
    summary := pg_catalog.format('%s open incidents at level %s or above (more than %s fires)', v_count, v_level_min, v_level_max);
    RETURN NEXT;

    SELECT count(*) INTO v_count FROM ops.notification_outbox WHERE status = 'dead';
    alert := 'DeadLetters';
    severity := 'warning';
    value := v_count;
    threshold := 0;
    firing := v_count > 0;
    summary := pg_catalog.format('%s notifications gave up; fix the cause, then SELECT ops.replay_dead_notifications(''you'')',
                                 v_count);
    RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION ops.evaluate_alerts(timestamptz) IS
'Every alert rule at p_now, firing or not: TickSlow, TickMissing (dead ticker), SlackFailing, HighLevelIncidents, DeadLetters.';

CREATE VIEW ops.alerts AS
SELECT
    alert,
    severity,
    summary,
    value,
    threshold
FROM ops.evaluate_alerts(pg_catalog.now())
WHERE firing;
COMMENT ON VIEW ops.alerts IS
'The alerts firing now: SELECT * FROM ops.alerts; (ops.evaluate_alerts(p_now) shows every rule). '
'docs/prometheus-rules.yml has the same rules over GET /metrics.';

-- The counters, one row per series, at p_now: what GET /metrics exports (Prometheus text
-- format through prometheus_client; a counter's exported name gains _total).
CREATE FUNCTION ops.collect_metrics(p_now timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE (metric text, kind text, help text, labels jsonb, value float8)
LANGUAGE sql STABLE AS $$
    WITH last_tick AS (
        SELECT
            escalation_tick_ms,
            queue_lag_ms,
            tick_at
        FROM ops.tick_log WHERE tick_at <= p_now ORDER BY tick_at DESC, id DESC LIMIT 1
    ),

    outbox AS (
        SELECT
            status,
            count(*) AS n
        FROM ops.notification_outbox GROUP BY status
    )

    SELECT
        'opsguard_escalations_count' AS metric,
        'counter' AS kind,
        'Escalations recorded by ticks (one escalation_events row each).' AS help,
        '{}'::jsonb AS labels,
        (ops._counter('escalations_count') + (SELECT coalesce(sum(escalations_count), 0) FROM ops.tick_log))::float8 AS value
    UNION ALL
    SELECT
        'opsguard_skipped_idempotent',
        'counter',
        'Due escalations whose event already existed (sent nothing twice).',
        '{}',
        (ops._counter('skipped_idempotent') + (SELECT coalesce(sum(skipped_idempotent), 0) FROM ops.tick_log))::float8
    UNION ALL
    SELECT
        'opsguard_ticks',
        'counter',
        'Escalation ticks, by what they did (ran, dry_run, paused, disabled, flag_off, busy).',
        jsonb_build_object('state', s.state),
        (ops._counter('ticks', s.state) + (SELECT count(*) FROM ops.tick_log AS t WHERE t.state = s.state))::float8
    FROM unnest(ARRAY['ran', 'dry_run', 'paused', 'disabled', 'flag_off', 'busy']) AS s (state)
    UNION ALL
    SELECT
        'opsguard_escalation_tick_ms',
        'gauge',
        'How long the last tick took, in ms.',
        '{}',
        (SELECT escalation_tick_ms FROM last_tick)::float8
    UNION ALL
    SELECT
        'opsguard_queue_lag_ms',
        'gauge',
        'How late the most overdue incident of the last tick was, in ms.',
        '{}',
        (SELECT queue_lag_ms FROM last_tick)::float8
    UNION ALL
    SELECT
        'opsguard_last_tick_age_seconds',
        'gauge',
        'Seconds since the last tick started.',
        '{}',
        (SELECT extract(EPOCH FROM p_now - tick_at) FROM last_tick)::float8
    UNION ALL
    SELECT
        'opsguard_tick_interval_ms',
        'gauge',
        'The expected tick interval (setting tick_ms), in ms.',
        '{}',
        ops.setting('tick_ms')::float8
    UNION ALL
    SELECT
        'opsguard_slack_send_failures',
        'counter',
        'Failed Slack delivery attempts (HTTP errors, timeouts, refused connections).',
        '{}',
        (ops._counter('slack_send_failures')
         + (SELECT count(*) FROM ops.notification_attempts WHERE outcome = 'failed'))::float8
    UNION ALL
    SELECT
        'opsguard_notifications_sent',
        'counter',
        'Notifications delivered.',
        '{}',
        (ops._counter('notifications_sent') + coalesce((SELECT n FROM outbox WHERE status = 'sent'), 0))::float8
    UNION ALL
    SELECT
        'opsguard_notifications',
        'gauge',
        'Notifications not delivered yet, by status (pending, sending, dead).',
        jsonb_build_object('status', s.status),
        coalesce((SELECT n FROM outbox WHERE outbox.status = s.status), 0)::float8
    FROM unnest(ARRAY['pending', 'sending', 'dead']) AS s (status)
    UNION ALL
    SELECT
        'opsguard_oldest_pending_notification_seconds',
        'gauge',
        'Age of the oldest notification not delivered yet (0 when none waits).',
        '{}',
        coalesce((SELECT extract(EPOCH FROM p_now - min(created_at)) FROM ops.notification_outbox
                  WHERE status IN ('pending', 'sending')), 0)::float8
    UNION ALL
    SELECT
        'opsguard_open_incidents',
        'gauge',
        'Incidents not resolved, by status, severity and escalation level.',
        jsonb_build_object('status', status, 'severity', severity, 'level', escalation_level::text),
        count(*)::float8
    FROM ops.incidents WHERE status <> 'resolved'
    GROUP BY status, severity, escalation_level
    UNION ALL
    SELECT
        'opsguard_guard_evaluations',
        'counter',
        'Release-guard evaluations, by verdict (ok: clear, blocked: failing items).',
        jsonb_build_object('verdict', v.verdict),
        (ops._counter('guard_evaluations', v.verdict)
         + (SELECT count(*) FROM ops.guard_evaluations AS e WHERE e.ok = (v.verdict = 'ok')))::float8
    FROM unnest(ARRAY['ok', 'blocked']) AS v (verdict)
    UNION ALL
    SELECT
        'opsguard_guard_failing_items',
        'gauge',
        'Failing items in the last release-guard evaluation.',
        '{}',
        (SELECT failing_count FROM ops.guard_evaluations ORDER BY id DESC LIMIT 1)::float8
    UNION ALL
    SELECT
        'opsguard_alert_firing',
        'gauge',
        'Alert rules of ops.evaluate_alerts: 1 firing, 0 not.',
        jsonb_build_object('alert', a.alert, 'severity', a.severity),
        a.firing::int::float8
    FROM ops.evaluate_alerts(p_now) AS a
$$;
COMMENT ON FUNCTION ops.collect_metrics(timestamptz) IS
'Every counter and gauge at p_now, one row per series (metric, kind, help, labels, value). Counters never go down: '
'retention adds what it purges to ops.counter_base.';

CREATE VIEW ops.metrics AS
SELECT
    metric,
    kind,
    help,
    labels,
    value
FROM ops.collect_metrics(pg_catalog.now());
COMMENT ON VIEW ops.metrics IS
'The counters and gauges now, one row per series: SELECT * FROM ops.metrics; GET /metrics exports them.';

CREATE FUNCTION ops.api_metrics() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(m) ORDER BY m.metric), '[]') FROM ops.collect_metrics() AS m
$$;
COMMENT ON FUNCTION ops.api_metrics() IS 'GET /metrics: ops.metrics as a JSON array, for the Prometheus collector.';

GRANT EXECUTE ON FUNCTION ops.api_metrics() TO opsguard_api;

-- nothing in ops is for everyone (see 0011)
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ops FROM public;
