-- ack_timeout_min: an acknowledged incident not resolved in time goes back to open
-- and escalation resumes (PagerDuty's ack timeout).
BEGIN;
SELECT plan(8);

CREATE TEMP TABLE t AS
SELECT (ops.trigger_incident('GET /a::slo_violation', 'critical', p_now => '2026-03-02 12:00Z')).id AS a;
SELECT ops.ack_incident((SELECT a FROM t), 'alice', p_now => '2026-03-02 12:01Z');

SELECT is((ops.escalation_tick('2026-03-03 12:00Z')) ->> 'reopened', '0', 'off by default: an ack holds for a day');
SELECT ops.set_setting('ack_timeout_min', '15', 'alice');
SELECT is((ops.escalation_tick('2026-03-02 12:15Z')) ->> 'reopened', '0', '14 minutes after the ack: still acknowledged');
SELECT is((SELECT status FROM ops.incidents WHERE id = (SELECT a FROM t)), 'acknowledged', '... status unchanged');
SELECT ops.set_setting('dry_run', 'true', 'alice');
SELECT ops.escalation_tick('2026-03-02 12:16Z');
SELECT is((SELECT status FROM ops.incidents WHERE id = (SELECT a FROM t)), 'acknowledged', 'a dry run reopens nothing');
SELECT ops.set_setting('dry_run', 'false', 'alice');

SELECT is(ops.escalation_tick('2026-03-02 12:16Z') - 'escalationTickMs' - 'tickId' - 'queueLagMs',
          '{"ok": true, "due": 1, "state": "ran", "dryRun": false, "paused": false, "disabled": false,
            "reopened": 1, "dryRunCount": 0, "wouldEscalate": [], "escalationsCount": 1, "skippedIdempotent": 0}'::jsonb,
          '15 minutes after the ack it reopens and escalates in the same tick');
SELECT results_eq(
    $$SELECT status, acknowledged_by, acknowledged_at, escalation_level FROM ops.incidents WHERE id = (SELECT a FROM t)$$,
    $$VALUES ('open', NULL::text, NULL::timestamptz, 1)$$, 'the acknowledgement is cleared; level 1');
SELECT is((SELECT actor FROM ops.audit_log WHERE row_key = (SELECT a FROM t)::text
           AND changes -> 'status' = '["acknowledged", "open"]'), 'opsguard:tick',
          'the reopening is audited as the tick''s doing');
SELECT is((SELECT reopened_count FROM ops.tick_log ORDER BY id DESC LIMIT 1), 1, 'the tick log counts it');

SELECT * FROM finish();
ROLLBACK;
