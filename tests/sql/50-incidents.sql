-- The incident verbs: trigger (open or dedup), ack, resolve, recurrence, and bad input; a
-- trigger on an acknowledged incident, and a late alert that never moves last_seen backwards.
BEGIN;
SELECT plan(36);

CREATE TEMP TABLE t AS
SELECT (ops.trigger_incident('GET /projects::slo_violation', 'warning', p_summary => 'errors on /projects',
                             p_now => '2026-03-02 12:00Z')).id AS first;

SELECT results_eq(
    $$SELECT status, severity, escalation_level, route, first_seen, last_seen FROM ops.incidents$$,
    $$VALUES ('open', 'warning', 0, 'GET /projects', '2026-03-02 12:00Z'::timestamptz, '2026-03-02 12:00Z'::timestamptz)$$,
    'trigger opens an incident at level 0 with its route taken from the key');
SELECT is((ops.trigger_incident('GET /projects::slo_violation', 'warning', p_now => '2026-03-02 12:03Z')).id,
          (SELECT first FROM t), 'the same key again is the same incident (dedup)');
SELECT results_eq($$SELECT count(*)::int, max(last_seen), min(first_seen), max(summary) FROM ops.incidents$$,
                  $$VALUES (1, '2026-03-02 12:03Z'::timestamptz, '2026-03-02 12:00Z'::timestamptz, 'errors on /projects')$$,
                  'dedup refreshes last_seen and keeps first_seen and the summary');
SELECT is((ops.trigger_incident('GET /projects::slo_violation', 'critical', p_now => '2026-03-02 12:04Z')).severity,
          'critical', 'firing again as critical raises the severity');
SELECT is((ops.trigger_incident('GET /projects::slo_violation', 'warning', p_now => '2026-03-02 12:05Z')).severity,
          'critical', 'severity never drops on its own');
SELECT is((ops.trigger_incident('x::y', 'warning', p_route => 'GET /explicit')).route, 'GET /explicit',
          'an explicit route wins over the key');

-- ack
SELECT results_eq(
    $$SELECT status, acknowledged_by, acknowledged_at, next_due_at
      FROM ops.ack_incident((SELECT first FROM t), 'alice', 'looking', '2026-03-02 12:06Z')$$,
    $$VALUES ('acknowledged', 'alice', '2026-03-02 12:06Z'::timestamptz, NULL::timestamptz)$$,
    'ack sets acknowledged_by and acknowledged_at and stops escalation');
SELECT results_eq(
    $$SELECT status, acknowledged_by, acknowledged_at FROM ops.ack_incident((SELECT first FROM t), 'bob')$$,
    $$VALUES ('acknowledged', 'alice', '2026-03-02 12:06Z'::timestamptz)$$,
    'ack is idempotent: the first acknowledgement stands');
SELECT is((SELECT count(*)::int FROM ops.audit_log WHERE actor = 'bob'), 0, 'a repeated ack writes no audit row');
SELECT throws_ok($$SELECT ops.ack_incident('00000000-0000-0000-0000-000000000000', 'alice')$$, 'P0002', NULL,
                 'ack of an unknown id: P0002');
SELECT throws_ok($$SELECT ops.ack_incident(NULL, 'alice')$$, '22004', NULL, 'ack of a NULL id: 22004');
SELECT throws_ok($$SELECT ops.ack_incident((SELECT first FROM t), '')$$, '22004', NULL, 'ack with a blank actor: 22004');

-- resolve, and recurrence as a new occurrence
SELECT results_eq(
    $$SELECT status, resolved_by, resolved_at FROM ops.resolve_incident((SELECT first FROM t), 'alice', 'fixed', '2026-03-02 12:30Z')$$,
    $$VALUES ('resolved', 'alice', '2026-03-02 12:30Z'::timestamptz)$$, 'resolve');
SELECT results_eq(
    $$SELECT status, resolved_by FROM ops.resolve_incident((SELECT first FROM t), 'bob')$$,
    $$VALUES ('resolved', 'alice')$$, 'resolve is idempotent');
SELECT throws_ok($$SELECT ops.ack_incident((SELECT first FROM t), 'alice')$$, '55000', NULL,
                 'ack of a resolved incident: 55000');
SELECT throws_ok($$SELECT ops.resolve_incident('00000000-0000-0000-0000-000000000000', 'alice')$$, 'P0002', NULL,
                 'resolve of an unknown id: P0002');

CREATE TEMP TABLE again AS
SELECT * FROM ops.trigger_incident('GET /projects::slo_violation', 'warning', p_now => '2026-03-02 13:00Z');
SELECT isnt((SELECT id FROM again), (SELECT first FROM t), 'a resolved key that fires again opens a new incident');
SELECT results_eq($$SELECT status, escalation_level, first_seen, next_due_at FROM again$$,
                  $$VALUES ('open', 0, '2026-03-02 13:00Z'::timestamptz, '2026-03-02 13:30Z'::timestamptz)$$,
                  'the new occurrence starts at level 0 with its own clock');
SELECT is((SELECT status FROM ops.incidents WHERE id = (SELECT first FROM t)), 'resolved', 'the old one stays resolved');
SELECT isnt(ops.escalation_hash((SELECT id FROM again), 1), ops.escalation_hash((SELECT first FROM t), 1),
            'its escalations have their own idempotency keys');

-- bad input: a clear SQLSTATE, and nothing changed
CREATE TEMP TABLE before AS SELECT count(*) AS n FROM ops.incidents;
SELECT throws_ok($$SELECT ops.trigger_incident('GET /x::y', 'minor')$$, '22023', NULL, 'unknown severity: 22023');
SELECT throws_ok($$SELECT ops.trigger_incident(NULL, 'critical')$$, '22004', NULL, 'NULL key: 22004');
SELECT throws_ok($$SELECT ops.trigger_incident('  ', 'critical')$$, '22023', NULL, 'blank key: 22023');
SELECT throws_ok($$SELECT ops.trigger_incident(repeat('k', 501), 'critical')$$, '22023', NULL, 'a key over 500: 22023');
SELECT throws_ok($$SELECT ops.trigger_incident('GET /x::y', NULL)$$, '22004', NULL, 'NULL severity: 22004');
SELECT throws_ok($$SELECT ops.trigger_incident('GET /x::y', 'critical', p_actor => NULL)$$, '22004', NULL,
                 'NULL actor: 22004');
SELECT is((SELECT count(*) FROM ops.incidents), (SELECT n FROM before), 'rejected triggers opened nothing');
SELECT throws_ok(
    $$INSERT INTO ops.incidents (incident_key, severity) VALUES ('GET /projects::slo_violation', 'critical')$$,
    '23505', NULL, 'a second active incident for one key is refused even by direct SQL');

-- the sections below start with no active incident
UPDATE incidents SET status = 'resolved' WHERE status <> 'resolved';

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
    'a trigger on an acknowledged incident: last_seen refreshed, severity raised, still acknowledged by alice, nothing due');
SELECT is((ops.escalation_tick('2026-03-02 14:00Z')) ->> 'escalationsCount', '0', 'the refreshed, acked incident does not escalate');

-- a late, older alert never moves last_seen backwards
CREATE TEMP TABLE l AS
SELECT (ops.trigger_incident('GET /late::slo_violation', 'critical', p_now => '2026-03-04 12:00Z')).id AS l;
SELECT ops.trigger_incident('GET /late::slo_violation', 'critical', p_now => '2026-03-04 12:10Z');
SELECT is((ops.trigger_incident('GET /late::slo_violation', 'critical', p_now => '2026-03-04 12:05Z')).last_seen,
          '2026-03-04 12:10Z'::timestamptz, 'an alert stamped 12:05 arriving after one at 12:10 returns last_seen 12:10');
SELECT results_eq(
    $$SELECT id, first_seen, last_seen FROM ops.incidents WHERE incident_key = 'GET /late::slo_violation'$$,
    $$SELECT l, '2026-03-04 12:00Z'::timestamptz, '2026-03-04 12:10Z'::timestamptz FROM l$$,
    'a late, older alert leaves one incident with last_seen 12:10');
SELECT ops.trigger_incident('GET /late::slo_violation', 'critical', p_now => '2026-03-04 11:00Z');
SELECT is((SELECT last_seen FROM ops.incidents WHERE incident_key = 'GET /late::slo_violation'),
          '2026-03-04 12:10Z'::timestamptz, 'an alert older than first_seen leaves last_seen as it was');
SELECT ops.trigger_incident('GET /late::slo_violation', 'critical', p_now => '2026-03-04 12:11Z');
SELECT is((SELECT last_seen FROM ops.incidents WHERE incident_key = 'GET /late::slo_violation'),
          '2026-03-04 12:11Z'::timestamptz, 'a newer alert still moves last_seen forward');
SELECT is((SELECT count(*)::int FROM ops.incidents WHERE incident_key = 'GET /late::slo_violation'), 1,
          'late and older alerts never open a second incident');

SELECT * FROM finish();
ROLLBACK;
