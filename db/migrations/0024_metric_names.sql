-- depends: 0023_settings_tick
-- Prometheus names at GET /metrics (SPEC section 9): base units and _total for counters, so
-- promtool check metrics passes; SQL keeps the seeds' names (ops.metrics, ops.collect_metrics).
-- The mapping is data a DBA can read: ops.metric_exports, one row per metric of ops.metrics.

CREATE TABLE ops.metric_exports (
    metric text PRIMARY KEY,
    exported_as text NOT NULL UNIQUE,
    kind text NOT NULL CHECK (kind IN ('counter', 'gauge')),
    divide_by float8 NOT NULL DEFAULT 1 CHECK (divide_by > 0),
    unit text CHECK (unit IN ('seconds')),
    help text NOT NULL CHECK (help <> ''),
    -- Prometheus conventions, the ones promtool check metrics lints, kept by the table itself
    CONSTRAINT metric_exports_name CHECK (exported_as ~ '^opsguard_[a-z][a-z0-9_]*[a-z0-9]$'),
    CONSTRAINT metric_exports_total_iff_counter CHECK ((kind = 'counter') = (exported_as ~ '_total$')),
    CONSTRAINT metric_exports_no_histogram_suffix CHECK (exported_as !~ '_(count|sum|bucket)(_total)?$'),
    CONSTRAINT metric_exports_no_abbreviated_unit CHECK (
        exported_as !~ '_(ms|us|ns|s|sec|secs|min|mins|hr|hrs|milliseconds|microseconds|nanoseconds|minutes|hours)(_|$)'
    ),
    CONSTRAINT metric_exports_unit_suffix CHECK (unit IS NULL OR exported_as ~ ('_' || unit || '(_total)?$'))
);
COMMENT ON TABLE ops.metric_exports IS
'How GET /metrics names each metric of ops.metrics: the Prometheus name (base units, _total for counters), '
'the divisor to base units and the HELP text. SQL keeps the seeds'' names.';
COMMENT ON COLUMN ops.metric_exports.metric IS 'The name in ops.metrics and ops.collect_metrics (the seeds'' name).';
COMMENT ON COLUMN ops.metric_exports.exported_as IS 'The name at GET /metrics; a counter''s ends in _total.';
COMMENT ON COLUMN ops.metric_exports.kind IS 'The Prometheus type: counter or gauge (the kind column of ops.metrics).';
COMMENT ON COLUMN ops.metric_exports.divide_by IS 'Exported value = SQL value / divide_by: 1000 turns ms into seconds.';
COMMENT ON COLUMN ops.metric_exports.unit IS 'The base unit the exported name ends with (# UNIT in OpenMetrics), if any.';
COMMENT ON COLUMN ops.metric_exports.help IS 'The # HELP line at GET /metrics, in the exported unit.';

-- what an operator reads, like every ops table; nobody but the migration writes it
GRANT SELECT ON ops.metric_exports TO opsguard_operator;

INSERT INTO ops.metric_exports (metric, exported_as, kind, divide_by, unit, help) VALUES
(
    'opsguard_escalations_count', 'opsguard_escalations_total', 'counter', 1, NULL,
    'Escalations recorded by ticks, one escalation_events row each (SQL: escalations_count).'
),
(
    'opsguard_skipped_idempotent', 'opsguard_escalations_skipped_idempotent_total', 'counter', 1, NULL,
    'Due escalations whose event already existed, so nothing was sent twice (SQL: skipped_idempotent).'
),
(
    'opsguard_ticks', 'opsguard_ticks_total', 'counter', 1, NULL,
    'Escalation ticks, by what they did (ran, dry_run, paused, disabled, flag_off, busy).'
),
(
    'opsguard_escalation_tick_ms', 'opsguard_escalation_tick_seconds', 'gauge', 1000, 'seconds',
    'How long the last tick took, in seconds (SQL: escalation_tick_ms).'
),
(
    'opsguard_queue_lag_ms', 'opsguard_queue_lag_seconds', 'gauge', 1000, 'seconds',
    'How late the most overdue incident of the last tick was, in seconds (SQL: queue_lag_ms).'
),
(
    'opsguard_last_tick_age_seconds', 'opsguard_last_tick_age_seconds', 'gauge', 1, 'seconds',
    'Seconds since the last tick started.'
),
(
    'opsguard_tick_interval_ms', 'opsguard_tick_interval_seconds', 'gauge', 1000, 'seconds',
    'The expected tick interval, in seconds (setting tick_ms / 1000).'
),
(
    'opsguard_slack_send_failures', 'opsguard_slack_send_failures_total', 'counter', 1, NULL,
    'Failed Slack delivery attempts: HTTP errors, timeouts, refused connections (SQL: slack_send_failures).'
),
(
    'opsguard_notifications_sent', 'opsguard_notifications_sent_total', 'counter', 1, NULL,
    'Notifications delivered.'
),
(
    'opsguard_notifications', 'opsguard_notifications', 'gauge', 1, NULL,
    'Notifications not delivered yet, by status (pending, sending, dead).'
),
(
    'opsguard_oldest_pending_notification_seconds', 'opsguard_oldest_pending_notification_seconds', 'gauge', 1,
    'seconds', 'Age of the oldest notification not delivered yet, in seconds (0 when none waits).'
),
(
    'opsguard_open_incidents', 'opsguard_open_incidents', 'gauge', 1, NULL,
    'Incidents not resolved, by status, severity and escalation level.'
),
(
    'opsguard_guard_evaluations', 'opsguard_guard_evaluations_total', 'counter', 1, NULL,
    'Release-guard evaluations, by verdict (ok: clear, blocked: failing items).'
),
(
    'opsguard_guard_failing_items', 'opsguard_guard_failing_items', 'gauge', 1, NULL,
    'Failing items in the last release-guard evaluation.'
),
(
    'opsguard_alert_firing', 'opsguard_alert_firing', 'gauge', 1, NULL,
    'Alert rules of ops.evaluate_alerts: 1 firing, 0 not.'
);

CREATE FUNCTION ops.exported_metrics(p_now timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE (metric text, kind text, unit text, help text, labels jsonb, value float8)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
    -- a metric with no row in metric_exports still goes out, under its SQL name (a counter
    -- gains _total); tests/sql/89-metric-names.sql fails while any metric lacks a row
    SELECT
        coalesce(e.exported_as, m.metric || CASE WHEN m.kind = 'counter' THEN '_total' ELSE '' END),
        coalesce(e.kind, m.kind),
        e.unit,
        coalesce(e.help, m.help),
        m.labels,
        m.value / coalesce(e.divide_by, 1)
    FROM ops.collect_metrics(p_now) AS m
    LEFT JOIN ops.metric_exports AS e ON e.metric = m.metric
$$;
COMMENT ON FUNCTION ops.exported_metrics(timestamptz) IS
'What GET /metrics exports at p_now: ops.collect_metrics renamed and scaled by ops.metric_exports (Prometheus names, base units).';

REVOKE ALL ON FUNCTION ops.exported_metrics(timestamptz) FROM public;
-- a read, like ops.collect_metrics: operators compare psql with a scrape
GRANT EXECUTE ON FUNCTION ops.exported_metrics(timestamptz) TO opsguard_operator;

CREATE OR REPLACE FUNCTION ops.api_metrics() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(m) ORDER BY m.metric), '[]')
    FROM ops.exported_metrics(pg_catalog.now()) AS m
$$;
COMMENT ON FUNCTION ops.api_metrics() IS
'GET /metrics: ops.exported_metrics (Prometheus names and base units) as a JSON array, for the collector.';
