-- The alert rules (ops.evaluate_alerts, ops.alerts), each quiet just below its boundary
-- and firing just above it, then clearing again.
BEGIN;
SELECT plan(24);

CREATE TEMP VIEW fired AS
SELECT alert FROM ops.evaluate_alerts(current_setting('test.now')::timestamptz) WHERE firing;
CREATE FUNCTION pg_temp.at(p_now text) RETURNS void LANGUAGE sql AS $$ SELECT set_config('test.now', p_now, true) $$;
CREATE FUNCTION pg_temp.firing(p_alert text) RETURNS boolean LANGUAGE sql AS $$
    SELECT EXISTS (SELECT 1 FROM fired WHERE alert = p_alert)
$$;

-- TickMissing: a fresh install gets one tick interval's grace, twice over
SELECT pg_temp.at((ops.installed_at() + interval '119 seconds')::text);
SELECT ok(NOT pg_temp.firing('TickMissing'), 'just installed, no tick yet: not missing within 2 x tick_ms');
SELECT pg_temp.at((ops.installed_at() + interval '121 seconds')::text);
SELECT ok(pg_temp.firing('TickMissing'), 'no tick 2 x tick_ms after install: missing');
SELECT matches((SELECT summary FROM ops.evaluate_alerts(current_setting('test.now')::timestamptz) WHERE alert = 'TickMissing'),
               '^no tick has run yet; pg_cron job not scheduled here \(pg_cron runs in database',
               'TickMissing with no tick yet says why (pg_cron job not scheduled here)');

SELECT ops.escalation_tick('2026-03-02 12:00Z');
SELECT pg_temp.at('2026-03-02 12:02Z');
SELECT ok(NOT pg_temp.firing('TickMissing'), 'the last tick exactly 2 x tick_ms ago: not yet');
SELECT pg_temp.at('2026-03-02 12:02:00.001Z');
SELECT ok(pg_temp.firing('TickMissing'), 'a millisecond later: the ticker is dead');
SELECT ops.set_setting('tick_ms', '300000', 'alice');
SELECT ok(NOT pg_temp.firing('TickMissing'), 'a longer tick_ms moves the boundary');
SELECT ops.set_setting('tick_ms', '60000', 'alice');
SELECT ops.escalation_tick('2026-03-02 12:03Z');
SELECT pg_temp.at('2026-03-02 12:03:30Z');
SELECT ok(NOT pg_temp.firing('TickMissing'), 'ticking again clears it');

-- TickSlow: the last tick's duration against 2 x tick_ms
INSERT INTO ops.tick_log (tick_at, started_at, source, state, dry_run, paused, disabled, escalation_tick_ms)
VALUES ('2026-03-02 12:04Z', '2026-03-02 12:04Z', 'sql', 'ran', FALSE, FALSE, FALSE, 120000);
SELECT pg_temp.at('2026-03-02 12:04:10Z');
SELECT ok(NOT pg_temp.firing('TickSlow'), 'a tick of exactly 2 x tick_ms: not slow');
UPDATE ops.tick_log SET escalation_tick_ms = 120000.001 WHERE tick_at = '2026-03-02 12:04Z';
SELECT ok(pg_temp.firing('TickSlow'), 'a microsecond more: slow');
SELECT ops.escalation_tick('2026-03-02 12:05Z');
SELECT pg_temp.at('2026-03-02 12:05:10Z');
SELECT ok(NOT pg_temp.firing('TickSlow'), 'the next, quick tick clears it');

-- SlackFailing: failed attempts in each of the last 5 minutes
SELECT ops.trigger_incident('GET /s::x', 'critical', p_now => '2026-03-02 11:00Z');
SELECT ops.escalation_tick('2026-03-02 12:06Z');
CREATE TEMP TABLE m AS SELECT id FROM ops.notification_outbox;
INSERT INTO ops.notification_attempts (outbox_id, attempt, worker, outcome, error, finished_at)
SELECT
    (SELECT id FROM m) AS outbox_id,
    n AS attempt,
    'w' AS worker,
    'failed' AS outcome,
    'HTTP 500' AS error,
    timestamptz '2026-03-02 12:10Z' - make_interval(secs => 30 + 60 * n) AS finished_at
FROM generate_series(0, 3) AS n;
SELECT pg_temp.at('2026-03-02 12:10Z');
SELECT ok(NOT pg_temp.firing('SlackFailing'), 'failures in 4 of the last 5 minutes: not yet');
SELECT is((SELECT value FROM ops.evaluate_alerts('2026-03-02 12:10Z') WHERE alert = 'SlackFailing'), 4::float8,
          'SlackFailing counts the minutes with failures');
INSERT INTO ops.notification_attempts (outbox_id, attempt, worker, outcome, error, finished_at)
VALUES ((SELECT id FROM m), 5, 'w', 'failed', 'HTTP 500', '2026-03-02 12:05:00Z');
SELECT ok(NOT pg_temp.firing('SlackFailing'), 'a failure exactly 5 minutes ago is outside the window');
UPDATE ops.notification_attempts SET finished_at = '2026-03-02 12:05:00.001Z' WHERE attempt = 5;
SELECT ok(pg_temp.firing('SlackFailing'), 'failures in each of the last 5 minutes: firing');
INSERT INTO ops.notification_attempts (outbox_id, attempt, worker, outcome, finished_at)
VALUES ((SELECT id FROM m), 6, 'w', 'sent', '2026-03-02 12:10:30Z');
SELECT pg_temp.at('2026-03-02 12:10:31Z');
SELECT ok(NOT pg_temp.firing('SlackFailing'), 'a quiet minute (the oldest one slid out) clears it');

-- HighLevelIncidents: more than alert_high_level_max open incidents at level >= 5
INSERT INTO ops.incidents (incident_key, severity, escalation_level, first_seen, last_seen)
SELECT
    'GET /h' || n || '::x' AS incident_key,
    'critical' AS severity,
    5 AS escalation_level,
    timestamptz '2026-03-02 10:00Z' AS first_seen,
    timestamptz '2026-03-02 10:00Z' AS last_seen
FROM generate_series(1, 3) AS n;
INSERT INTO ops.incidents (incident_key, severity, escalation_level, first_seen, last_seen) VALUES
('GET /four::x', 'critical', 4, '2026-03-02 10:00Z', '2026-03-02 10:00Z');
SELECT ok(NOT pg_temp.firing('HighLevelIncidents'), '3 at level 5 (and one at 4): not more than 3');
INSERT INTO ops.incidents (incident_key, severity, escalation_level, status, acknowledged_by, acknowledged_at, first_seen, last_seen)
VALUES ('GET /acked::x', 'critical', 6, 'acknowledged', 'alice', '2026-03-02 10:30Z', '2026-03-02 10:00Z', '2026-03-02 10:00Z');
SELECT ok(NOT pg_temp.firing('HighLevelIncidents'), 'an acknowledged one does not count');
UPDATE ops.incidents SET escalation_level = 5 WHERE incident_key = 'GET /four::x';
SELECT ok(pg_temp.firing('HighLevelIncidents'), 'a fourth open one at level 5: firing');
SELECT ops.set_setting('alert_high_level_max', '4', 'alice');
SELECT ok(NOT pg_temp.firing('HighLevelIncidents'), 'the threshold is a setting');

-- DeadLetters
SELECT ok(NOT pg_temp.firing('DeadLetters'), 'no dead letters: quiet');
UPDATE ops.notification_outbox SET status = 'dead' WHERE id = (SELECT id FROM m);
SELECT ok(pg_temp.firing('DeadLetters'), 'one dead letter: firing');
SELECT ops.replay_dead_notifications('alice');
SELECT ok(NOT pg_temp.firing('DeadLetters'), 'replayed: cleared');

-- the view lists what fires now, and only that
UPDATE ops.notification_outbox SET status = 'dead' WHERE id = (SELECT id FROM m);
SELECT ok((SELECT bool_and(alert IN ('DeadLetters', 'TickMissing', 'HighLevelIncidents')) FROM ops.alerts),
          'ops.alerts shows firing rules only');
SELECT is((SELECT severity FROM ops.alerts WHERE alert = 'DeadLetters'), 'warning', 'ops.alerts lists DeadLetters with severity warning');

SELECT * FROM finish();
ROLLBACK;
