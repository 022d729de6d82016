-- next_due_at: derived by the database on insert, on every update (an operator's direct
-- UPDATE too), and on SLA or setting changes; and the tick, which checks max_esc_level itself
-- rather than trust a stale next_due_at.
BEGIN;
SELECT plan(20);

CREATE TEMP TABLE t AS
SELECT
    (ops.trigger_incident('GET /a::slo_violation', 'critical', p_now => '2026-03-02 12:00Z')).id AS crit,
    (ops.trigger_incident('GET /b::slo_violation', 'warning', p_now => '2026-03-02 12:00Z')).id AS warn;

SELECT is((SELECT next_due_at FROM ops.incidents WHERE id = (SELECT crit FROM t)), '2026-03-02 12:05Z',
          'critical level 0 is due at first_seen + 5 min');
SELECT is((SELECT next_due_at FROM ops.incidents WHERE id = (SELECT warn FROM t)), '2026-03-02 12:30Z',
          'warning level 0 is due at first_seen + 30 min');

SELECT ops.set_sla('critical', 10, 'alice');
SELECT is((SELECT next_due_at FROM ops.incidents WHERE id = (SELECT crit FROM t)), '2026-03-02 12:10Z',
          'SLA change mid-flight: next_due_at migrates at once');
UPDATE ops.sla SET ack_minutes = 5 WHERE severity = 'critical';
SELECT is((SELECT next_due_at FROM ops.incidents WHERE id = (SELECT crit FROM t)), '2026-03-02 12:05Z',
          'a direct UPDATE of the SLA table migrates it too');

UPDATE incidents SET escalation_level = 2 WHERE id = (SELECT crit FROM t);
SELECT is((SELECT next_due_at FROM ops.incidents WHERE id = (SELECT crit FROM t)), '2026-03-02 12:15Z',
          'an operator''s UPDATE of the level recomputes: first_seen + 5 * (2 + 1)');

UPDATE incidents SET last_escalated_at = '2026-03-02 12:20Z' WHERE id = (SELECT crit FROM t);
SELECT is((SELECT next_due_at FROM ops.incidents WHERE id = (SELECT crit FROM t)), '2026-03-02 12:50Z',
          'snooze: not due before the last escalation + snooze_min (30)');
SELECT ops.set_setting('snooze_min', '10', 'alice');
SELECT is((SELECT next_due_at FROM ops.incidents WHERE id = (SELECT crit FROM t)), '2026-03-02 12:30Z',
          'changing snooze_min recomputes at once');

SELECT ops.snooze_incident((SELECT crit FROM t), 60, 'alice', '2026-03-02 12:20Z');
SELECT is((SELECT next_due_at FROM ops.incidents WHERE id = (SELECT crit FROM t)), '2026-03-02 13:20Z',
          'an explicit snooze holds escalation until it ends');
SELECT ops.snooze_incident((SELECT crit FROM t), 0, 'alice', '2026-03-02 12:20Z');
SELECT is((SELECT next_due_at FROM ops.incidents WHERE id = (SELECT crit FROM t)), '2026-03-02 12:30Z',
          'snooze 0 clears it');

UPDATE incidents SET escalation_level = 7 WHERE id = (SELECT crit FROM t);
SELECT is((SELECT next_due_at FROM ops.incidents WHERE id = (SELECT crit FROM t)), NULL,
          'at max_esc_level nothing is due');
SELECT ops.set_setting('max_esc_level', '8', 'alice');
SELECT is((SELECT next_due_at FROM ops.incidents WHERE id = (SELECT crit FROM t)), '2026-03-02 12:40Z',
          'raising max_esc_level makes it due again: first_seen + 5 * (7 + 1)');

UPDATE incidents SET acknowledged_at = '2026-03-02 12:21Z' WHERE id = (SELECT warn FROM t);
SELECT results_eq(
    $$SELECT status, next_due_at, acknowledged_by FROM ops.incidents WHERE id = (SELECT warn FROM t)$$,
    $$VALUES ('acknowledged', NULL::timestamptz, ops.current_actor())$$,
    'setting acknowledged_at by hand acknowledges: status follows, nothing due, actor recorded');
UPDATE incidents SET status = 'open' WHERE id = (SELECT warn FROM t);
SELECT results_eq(
    $$SELECT status, acknowledged_at, next_due_at FROM ops.incidents WHERE id = (SELECT warn FROM t)$$,
    $$VALUES ('open', NULL::timestamptz, '2026-03-02 12:30Z'::timestamptz)$$,
    'reopening by hand clears the acknowledgement and schedules again');

-- drift (triggers bypassed, as a restore or replica might) is what recalc repairs
SET LOCAL session_replication_role = replica;
UPDATE ops.incidents SET next_due_at = '2030-01-01Z' WHERE id IN (SELECT crit FROM t) OR id IN (SELECT warn FROM t);
SET LOCAL session_replication_role = origin;
SELECT is(ops.recalc_next_due(), 2, 'recalc_next_due repairs drifted rows and counts them');
SELECT is(ops.recalc_next_due(), 0, 'a second recalc finds nothing to change');
SELECT is((SELECT next_due_at FROM ops.incidents WHERE id = (SELECT warn FROM t)), '2026-03-02 12:30Z',
          'after recalc next_due_at follows the formula again');

-- back to max_esc_level 7, with the incidents above out of the way
SELECT ops.set_setting('max_esc_level', '7', 'alice');
UPDATE incidents SET status = 'resolved' WHERE status <> 'resolved';

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
    $$VALUES (7), (9)$$, 'incidents at and above max_esc_level with a stale next_due_at keep their level after a tick');
SELECT is((SELECT count(*)::int FROM ops.escalation_events) + (SELECT count(*)::int FROM ops.notification_outbox), 0,
          'a stale next_due_at at or above max_esc_level records no escalation event and queues no notification');

SELECT * FROM finish();
ROLLBACK;
