-- Escalation behaviours no other file pins: the level cap holds against a stale next_due_at,
-- a trigger on an acknowledged incident refreshes it, ack-timeout reopening keeps to the canary
-- share, a bounded tick takes the most overdue first, and a late, older alert never moves
-- last_seen backwards. 2026-03-02 is a Monday; the clock moves, nothing sleeps.
BEGIN;
SELECT plan(22);

-- max_esc_level holds even when next_due_at says otherwise (written with triggers off, as a
-- restore or a faulty hand edit could leave it): the tick checks the level itself
CREATE TEMP TABLE m AS
SELECT
    (ops.trigger_incident('GET /max/at::slo_violation', 'critical', p_now => '2026-03-02 12:00Z')).id AS at_max,
    (ops.trigger_incident('GET /max/over::slo_violation', 'critical', p_now => '2026-03-02 12:00Z')).id AS over_max;
UPDATE incidents SET escalation_level = 7 WHERE id = (SELECT at_max FROM m);
UPDATE incidents SET escalation_level = 9 WHERE id = (SELECT over_max FROM m);
SET LOCAL session_replication_role = replica;
UPDATE ops.incidents SET next_due_at = '2026-03-02 12:05Z' WHERE id IN (SELECT at_max FROM m) OR id IN (SELECT over_max FROM m);
SET LOCAL session_replication_role = origin;
SELECT results_eq(
    $$SELECT escalation_level, next_due_at FROM ops.incidents WHERE incident_key LIKE 'GET /max/%' ORDER BY escalation_level$$,
    $$VALUES (7, '2026-03-02 12:05Z'::timestamptz), (9, '2026-03-02 12:05Z'::timestamptz)$$,
    'set-up: at and above max_esc_level (7), each with a stale next_due_at in the past');
SELECT is(ops.escalation_tick('2026-03-02 13:00Z') - 'escalationTickMs' - 'tickId',
          '{"ok": true, "due": 0, "state": "ran", "dryRun": false, "paused": false, "disabled": false,
            "reopened": 0, "queueLagMs": 0, "dryRunCount": 0, "wouldEscalate": [],
            "escalationsCount": 0, "skippedIdempotent": 0}'::jsonb,
          'a stale next_due_at at or above max_esc_level is not due: nothing escalates');
SELECT results_eq(
    $$SELECT escalation_level FROM ops.incidents WHERE incident_key LIKE 'GET /max/%' ORDER BY escalation_level$$,
    $$VALUES (7), (9)$$, '... both keep their level');
SELECT is((SELECT count(*)::int FROM ops.escalation_events) + (SELECT count(*)::int FROM ops.notification_outbox), 0,
          '... no event recorded, no notification queued');
UPDATE incidents SET status = 'resolved' WHERE incident_key LIKE 'GET /max/%';

-- a trigger on an acknowledged incident refreshes that incident (dedup covers acknowledged
-- ones too): no second incident, the acknowledgement stands, nothing becomes due
CREATE TEMP TABLE k AS
SELECT (ops.trigger_incident('GET /k::slo_violation', 'warning', p_now => '2026-03-02 12:00Z')).id AS k;
SELECT ops.ack_incident((SELECT k FROM k), 'alice', p_now => '2026-03-02 12:01Z');
CREATE TEMP TABLE k2 AS
SELECT * FROM ops.trigger_incident('GET /k::slo_violation', 'critical', p_now => '2026-03-02 12:10Z');
SELECT is((SELECT id FROM k2), (SELECT k FROM k), 'triggering an acknowledged key returns the same incident');
SELECT results_eq(
    $$SELECT id, status, severity, first_seen, last_seen, acknowledged_by, acknowledged_at, escalation_level, next_due_at
      FROM ops.incidents WHERE incident_key = 'GET /k::slo_violation'$$,
    $$SELECT k, 'acknowledged', 'critical', '2026-03-02 12:00Z'::timestamptz, '2026-03-02 12:10Z'::timestamptz, 'alice',
             '2026-03-02 12:01Z'::timestamptz, 0, NULL::timestamptz FROM k$$,
    'one row: last_seen refreshed, severity raised, still acknowledged by alice, nothing due');
SELECT is((ops.escalation_tick('2026-03-02 14:00Z')) ->> 'escalationsCount', '0', 'the refreshed, acked incident does not escalate');
UPDATE incidents SET status = 'resolved' WHERE incident_key = 'GET /k::slo_violation';

-- ack-timeout reopening keeps to the canary share: GET /r/8 is in bucket 9, GET /r/120 in 10
-- (99-behaviours-route-bucket.sql pins both), so canary_pct 10 reopens only the first
SELECT results_eq($$SELECT ops.route_bucket('GET /r/8'), ops.route_bucket('GET /r/120')$$, $$VALUES (9, 10)$$,
                  'set-up: one route just inside a 10 % canary, one just outside');
CREATE TEMP TABLE c AS
SELECT
    (ops.trigger_incident('GET /r/8::slo_violation', 'critical', p_now => '2026-03-02 12:00Z')).id AS inside,
    (ops.trigger_incident('GET /r/120::slo_violation', 'critical', p_now => '2026-03-02 12:00Z')).id AS outside;
SELECT ops.ack_incident(id, 'alice', p_now => '2026-03-02 12:01Z') FROM ops.incidents WHERE status = 'open';
SELECT ops.set_setting('ack_timeout_min', '15', 'alice');
SELECT ops.set_setting('canary_pct', '10', 'alice');
SELECT is((ops.escalation_tick('2026-03-02 12:16Z')) ->> 'reopened', '1', 'canary 10 %: the ack timeout reopens one incident');
SELECT results_eq(
    $$SELECT route, status, acknowledged_by, escalation_level FROM ops.incidents
      WHERE id IN (SELECT inside FROM c) OR id IN (SELECT outside FROM c) ORDER BY route$$,
    $$VALUES ('GET /r/120', 'acknowledged', 'alice', 0), ('GET /r/8', 'open', NULL, 1)$$,
    '... the one inside the share (reopened and escalated); the one outside keeps its acknowledgement');
SELECT is((ops.escalation_tick('2026-03-02 18:00Z')) ->> 'reopened', '0', 'hours later the outside one is still not reopened');
SELECT ops.set_setting('canary_pct', '100', 'alice');
SELECT is((ops.escalation_tick('2026-03-02 18:01Z')) ->> 'reopened', '1', 'with the whole share it is');
SELECT ops.set_setting('ack_timeout_min', '0', 'alice');
UPDATE incidents SET status = 'resolved' WHERE status <> 'resolved';

-- tick_batch_max: the most overdue go first, whatever the order of first_seen or of the rows.
-- Created in the order y, z, x; first_seen order y, x, z; due order x (12:05), z (12:15), y (12:20)
CREATE TEMP TABLE b AS
SELECT (ops.trigger_incident('GET /batch/y::slo_violation', 'warning', p_now => '2026-03-03 11:50Z')).id AS y;
INSERT INTO b SELECT (ops.trigger_incident('GET /batch/z::slo_violation', 'critical', p_now => '2026-03-03 12:10Z')).id;
INSERT INTO b SELECT (ops.trigger_incident('GET /batch/x::slo_violation', 'critical', p_now => '2026-03-03 12:00Z')).id;
SELECT results_eq(
    $$SELECT incident_key, next_due_at FROM ops.incidents WHERE status = 'open' ORDER BY next_due_at$$,
    $$VALUES ('GET /batch/x::slo_violation', '2026-03-03 12:05Z'::timestamptz),
             ('GET /batch/z::slo_violation', '2026-03-03 12:15Z'::timestamptz),
             ('GET /batch/y::slo_violation', '2026-03-03 12:20Z'::timestamptz)$$,
    'set-up: three incidents due at 12:05, 12:15 and 12:20');
SELECT ops.set_setting('tick_batch_max', '2', 'alice');
SELECT is((ops.escalation_tick('2026-03-03 13:00Z')) - 'escalationTickMs' - 'tickId',
          '{"ok": true, "due": 2, "state": "ran", "dryRun": false, "paused": false, "disabled": false,
            "reopened": 0, "queueLagMs": 3300000, "dryRunCount": 0, "wouldEscalate": [],
            "escalationsCount": 2, "skippedIdempotent": 0}'::jsonb,
          'a batch of 2 takes two; its queue lag is the most overdue one''s (55 min)');
SELECT results_eq(
    $$SELECT incident_key FROM ops.escalation_events WHERE incident_key LIKE 'GET /batch/%' ORDER BY incident_key$$,
    $$VALUES ('GET /batch/x::slo_violation'), ('GET /batch/z::slo_violation')$$,
    'the two most overdue (due 12:05 and 12:15) went first');
SELECT is((SELECT escalation_level FROM ops.incidents WHERE incident_key = 'GET /batch/y::slo_violation'), 0,
          'the least overdue waits');
SELECT ops.set_setting('tick_batch_max', '1', 'alice');
SELECT ops.escalation_tick('2026-03-03 13:01Z');
SELECT is((SELECT incident_key FROM ops.escalation_events ORDER BY id DESC LIMIT 1), 'GET /batch/y::slo_violation',
          'the next tick takes it: now the most overdue (x and z are snoozed until 13:30)');
SELECT ops.set_setting('tick_batch_max', '10000', 'alice');
UPDATE incidents SET status = 'resolved' WHERE status <> 'resolved';

-- a late, older alert never moves last_seen backwards
CREATE TEMP TABLE l AS
SELECT (ops.trigger_incident('GET /late::slo_violation', 'critical', p_now => '2026-03-04 12:00Z')).id AS l;
SELECT ops.trigger_incident('GET /late::slo_violation', 'critical', p_now => '2026-03-04 12:10Z');
SELECT is((ops.trigger_incident('GET /late::slo_violation', 'critical', p_now => '2026-03-04 12:05Z')).last_seen,
          '2026-03-04 12:10Z'::timestamptz, 'an alert stamped 12:05 arriving after one at 12:10 returns last_seen 12:10');
SELECT results_eq(
    $$SELECT id, first_seen, last_seen FROM ops.incidents WHERE incident_key = 'GET /late::slo_violation'$$,
    $$SELECT l, '2026-03-04 12:00Z'::timestamptz, '2026-03-04 12:10Z'::timestamptz FROM l$$,
    '... one incident; last_seen stays 12:10');
SELECT ops.trigger_incident('GET /late::slo_violation', 'critical', p_now => '2026-03-04 11:00Z');
SELECT is((SELECT last_seen FROM ops.incidents WHERE incident_key = 'GET /late::slo_violation'),
          '2026-03-04 12:10Z'::timestamptz, 'even one older than first_seen leaves it');
SELECT ops.trigger_incident('GET /late::slo_violation', 'critical', p_now => '2026-03-04 12:11Z');
SELECT is((SELECT last_seen FROM ops.incidents WHERE incident_key = 'GET /late::slo_violation'),
          '2026-03-04 12:11Z'::timestamptz, 'a newer one still moves it forward');
SELECT is((SELECT count(*)::int FROM ops.incidents WHERE incident_key = 'GET /late::slo_violation'), 1, 'one incident throughout');

SELECT * FROM finish();
ROLLBACK;
