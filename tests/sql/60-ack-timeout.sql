-- ack_timeout_min: an acknowledged incident not resolved in time goes back to open
-- and escalation resumes (PagerDuty's ack timeout), only for routes within the canary share.
BEGIN;
SELECT plan(13);

CREATE TEMP TABLE t AS
SELECT (ops.trigger_incident('GET /a::slo_violation', 'critical', p_now => '2026-03-02 12:00Z')).id AS a;
SELECT ops.ack_incident((SELECT a FROM t), 'alice', p_now => '2026-03-02 12:01Z');

SELECT is((ops.escalation_tick('2026-03-03 12:00Z')) ->> 'reopened', '0', 'off by default: an ack holds for a day');
SELECT ops.set_setting('ack_timeout_min', '15', 'alice');
SELECT is((ops.escalation_tick('2026-03-02 12:15Z')) ->> 'reopened', '0', '14 minutes after the ack: still acknowledged');
SELECT is((SELECT status FROM ops.incidents WHERE id = (SELECT a FROM t)), 'acknowledged',
          '14 minutes after the ack the incident''s status stays acknowledged');
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

-- the section below starts with no active incident
UPDATE incidents SET status = 'resolved' WHERE status <> 'resolved';

-- ack-timeout reopening keeps to the canary share: GET /r/8 is in bucket 9, GET /r/120 in 10
-- (40-escalation-tick.sql pins both), so canary_pct 10 reopens only the first
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
    'canary 10 %: the ack timeout reopens and escalates the incident inside the share; the one outside keeps its acknowledgement');
SELECT is((ops.escalation_tick('2026-03-02 18:00Z')) ->> 'reopened', '0',
          'hours later the ack timeout still leaves the incident outside the canary share acknowledged');
SELECT ops.set_setting('canary_pct', '100', 'alice');
SELECT is((ops.escalation_tick('2026-03-02 18:01Z')) ->> 'reopened', '1', 'with canary_pct 100 the ack timeout reopens it');

SELECT * FROM finish();
ROLLBACK;
