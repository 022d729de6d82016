-- ops.evaluate_routes: a violation that holds two consecutive minutes opens an incident keyed
-- <route>::<reason>; it resolves by itself after guard_autoresolve_min healthy; one bad minute
-- opens nothing. And retention.
BEGIN;
SELECT plan(10);

CREATE FUNCTION pg_temp.bad_minute(p_route text, p_at timestamptz) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT ops.record_requests(jsonb_agg(jsonb_build_object('route', p_route, 'status', 500, 'latency_ms', 10, 'at', p_at)))
    FROM generate_series(1, 10)
$$;

-- one bad minute, then a healthy one: no incident (no flapping)
SELECT pg_temp.bad_minute('GET /flap', '2026-03-02 12:00:10Z');
SELECT ops.evaluate_routes('2026-03-02 12:00:30Z');
SELECT ops.evaluate_routes('2026-03-02 12:02:30Z');
SELECT is((SELECT count(*)::int FROM ops.incidents WHERE route = 'GET /flap'), 0, 'a single bad minute opens nothing');

-- two consecutive bad minutes: incidents keyed <route>::<reason>
SELECT pg_temp.bad_minute('GET /bad', '2026-03-02 13:00:10Z');
SELECT ops.evaluate_routes('2026-03-02 13:00:30Z');
SELECT is((SELECT count(*)::int FROM ops.incidents WHERE route = 'GET /bad'), 0, 'after the first minute: nothing yet');
SELECT pg_temp.bad_minute('GET /bad', '2026-03-02 13:01:10Z');
SELECT is((ops.evaluate_routes('2026-03-02 13:01:30Z')) ->> 'incidentsOpenedOrRefreshed', '3', 'the second minute opens them');
SELECT set_eq($$SELECT incident_key, severity, status FROM ops.incidents WHERE route = 'GET /bad'$$,
              $$VALUES ('GET /bad::error_rate_critical', 'critical', 'open'), ('GET /bad::hard_error_threshold', 'critical', 'open'),
                       ('GET /bad::slo_violation', 'critical', 'open')$$,
              'one critical incident per rule, keyed <route>::<reason>');
SELECT is((SELECT DISTINCT actor FROM ops.audit_log WHERE table_name = 'incidents' AND row_key IN
           (SELECT id::text FROM ops.incidents WHERE route = 'GET /bad')), 'opsguard:guard', 'opened as opsguard:guard');

-- a third bad minute refreshes rather than duplicating
SELECT pg_temp.bad_minute('GET /bad', '2026-03-02 13:02:10Z');
SELECT ops.evaluate_routes('2026-03-02 13:02:30Z');
SELECT is((SELECT count(*)::int FROM ops.incidents WHERE route = 'GET /bad'), 3, 'a violation that holds refreshes its incident');

-- healthy again: resolved by itself after guard_autoresolve_min (10)
SELECT ops.evaluate_routes('2026-03-02 13:40:30Z');
SELECT is((SELECT count(*)::int FROM ops.incidents WHERE route = 'GET /bad' AND status = 'resolved'), 3,
          'resolved once the route has been healthy long enough');
SELECT is((SELECT DISTINCT resolved_by FROM ops.incidents WHERE route = 'GET /bad'), 'opsguard:guard', 'by the guard');

-- retention
SELECT ops.release_guard('2026-03-02 13:40:30Z');
SELECT is(ops.purge_guard_history('2026-03-20 00:00Z'), '{"rollups": 4, "evaluations": 0}',
          'rollups older than 7 days go; evaluations younger than 30 days stay');
SELECT is(ops.purge_guard_history('2026-05-01 00:00Z') -> 'evaluations', '1', 'older evaluations go too');

SELECT * FROM finish();
ROLLBACK;
