-- The counters after known activity; retention removing exactly what it should, at each
-- window's boundary; and counters that do not go down when their rows are purged.
BEGIN;
SELECT plan(26);

CREATE FUNCTION pg_temp.metric(p_metric text, p_labels jsonb DEFAULT '{}', p_now timestamptz DEFAULT '2026-03-10 12:00Z')
RETURNS float8 LANGUAGE sql AS $$
    SELECT value FROM ops.collect_metrics(p_now) WHERE metric = p_metric AND labels = p_labels
$$;

-- known activity: two escalations, one idempotent skip, one dry run, a sent and a failed delivery
SELECT ops.set_setting('snooze_min', '0', 'alice');
SELECT ops.trigger_incident('GET /a::x', 'critical', p_now => '2026-03-01 11:00Z');
SELECT ops.trigger_incident('GET /b::x', 'warning', p_now => '2026-03-01 11:25Z');
SELECT ops.escalation_tick('2026-03-01 12:00Z');
UPDATE ops.incidents SET escalation_level = 0 WHERE incident_key = 'GET /a::x';
SELECT ops.escalation_tick('2026-03-01 12:01Z');
SELECT ops.set_setting('dry_run', 'true', 'alice');
SELECT ops.escalation_tick('2026-03-01 12:02Z');
SELECT ops.set_setting('dry_run', 'false', 'alice');
UPDATE ops.notification_outbox SET status = 'sent', sent_at = '2026-03-01 12:03Z' WHERE incident_id IN
(SELECT id FROM ops.incidents WHERE incident_key = 'GET /b::x');
INSERT INTO ops.notification_attempts (outbox_id, attempt, worker, outcome, http_status, error, finished_at)
SELECT
    id AS outbox_id,
    1 AS attempt,
    'w' AS worker,
    'failed' AS outcome,
    500 AS http_status,
    'HTTP 500' AS error,
    timestamptz '2026-03-01 12:03Z' AS finished_at
FROM ops.notification_outbox WHERE status = 'sent';

SELECT is(pg_temp.metric('opsguard_escalations_count'), 2::float8, 'escalations_count: 2');
SELECT is(pg_temp.metric('opsguard_skipped_idempotent'), 1::float8, 'skipped_idempotent: the level reached again');
SELECT is(pg_temp.metric('opsguard_ticks', '{"state": "ran"}'), 2::float8, 'ticks that ran: 2');
SELECT is(pg_temp.metric('opsguard_ticks', '{"state": "dry_run"}'), 1::float8, 'the opsguard_ticks metric counts one dry run');
SELECT is(pg_temp.metric('opsguard_slack_send_failures'), 1::float8, 'slack_send_failures: 1');
SELECT is(pg_temp.metric('opsguard_notifications_sent'), 1::float8, 'notifications sent: 1');
SELECT is(pg_temp.metric('opsguard_notifications', '{"status": "pending"}'), 1::float8,
          'pending: 1 (the skip queued nothing)');
SELECT is(pg_temp.metric('opsguard_open_incidents', '{"status": "open", "severity": "critical", "level": "1"}'), 1::float8,
          'open incidents by status, severity and level');
SELECT is(pg_temp.metric('opsguard_last_tick_age_seconds'), 9 * 86400 - 120::float8, 'seconds since the last tick, at p_now');
SELECT is(pg_temp.metric('opsguard_queue_lag_ms'), 60000::float8,
          'the last tick''s queue lag: GET /a was due at 12:01 (snooze 0), the tick ran at 12:02');
SELECT is(pg_temp.metric('opsguard_escalation_tick_ms'),
          (SELECT escalation_tick_ms::float8 FROM ops.tick_log ORDER BY id DESC LIMIT 1),
          'the last tick''s duration, as its tick-log row has it');
SELECT is(pg_temp.metric('opsguard_alert_firing', '{"alert": "TickMissing", "severity": "critical"}'), 1::float8,
          'alerts are series too');
SELECT is((SELECT count(DISTINCT kind)::int FROM ops.metrics WHERE metric = 'opsguard_ticks'), 1, 'one kind per metric');

SELECT ops.release_guard('2026-03-01 12:05Z');
CREATE TEMP VIEW guard_count AS
SELECT sum(value) AS n FROM ops.collect_metrics('2026-06-01') WHERE metric = 'opsguard_guard_evaluations';

-- retention, at each boundary
SELECT ops.set_setting('notify_retention_days', '30', 'alice');
SELECT ops.set_setting('tick_log_retention_days', '8', 'alice');
SELECT is(ops.purge_history('2026-03-09 12:00:59Z') ->> 'tickLog', '1', 'tick_log: only ticks older than 8 days go');
SELECT is((SELECT count(*)::int FROM ops.tick_log), 2, 'tick_log retention keeps the 12:01 and 12:02 ticks');
SELECT is(pg_temp.metric('opsguard_escalations_count'), 2::float8, 'escalations_count does not go down');
SELECT is(pg_temp.metric('opsguard_ticks', '{"state": "ran"}'), 2::float8, 'the ticks metric does not go down when tick_log is purged');

SELECT ops.set_setting('notify_retention_days', '7', 'alice');
SELECT is(ops.purge_history('2026-03-08 12:03Z') ->> 'notifications', '0', 'a notification sent exactly 7 days ago stays');
UPDATE ops.notification_outbox SET status = 'dead' WHERE status = 'pending';
SELECT is(ops.purge_history('2026-03-08 12:03:01Z') ->> 'notifications', '1', 'one sent over 7 days ago goes');
SELECT results_eq($$SELECT status FROM ops.notification_outbox$$, $$VALUES ('dead')$$,
                  'undelivered messages stay, however old');
SELECT is((SELECT count(*)::int FROM ops.notification_attempts), 0, 'the purged message''s attempts went with it');
SELECT results_eq(
    $$SELECT pg_temp.metric('opsguard_notifications_sent'), pg_temp.metric('opsguard_slack_send_failures')$$,
    $$VALUES (1::float8, 1::float8)$$, 'sent and failure counters keep what was purged');
SELECT is((SELECT n FROM guard_count), 1::float8, 'one guard evaluation counted');
SELECT is(ops.purge_history('2026-06-01') ->> 'evaluations', '1', 'purged after guard_evaluation_retention_days');
SELECT is((SELECT n FROM guard_count), 1::float8, 'a purged guard evaluation is still counted');
SELECT is((SELECT command FROM ops.cron_jobs WHERE name = 'opsguard-retention'), 'SELECT ops.purge_history()',
          'pg_cron runs it daily');

SELECT * FROM finish();
ROLLBACK;
