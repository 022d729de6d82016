-- ops.evaluate_routes: a violation that holds two consecutive minutes opens an incident keyed
-- <route>::<reason>; it resolves by itself after guard_autoresolve_min healthy; one bad minute
-- opens nothing. And retention. Latency violations open warning incidents, and a late
-- evaluation (an older p_now) changes nothing the newer one decided.
BEGIN;
SELECT plan(24);

CREATE FUNCTION pg_temp.bad_minute(p_route text, p_at timestamptz) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT ops.record_requests(jsonb_agg(jsonb_build_object('route', p_route, 'status', 500, 'latency_ms', 10, 'at', p_at)))
    FROM generate_series(1, 10)
$$;
-- n requests on a route at a time, the first e of them 5xx, each taking p_ms
CREATE FUNCTION pg_temp.traffic(p_route text, p_at timestamptz, p_n int, p_e int, p_ms int DEFAULT 10) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT ops.record_requests(jsonb_agg(jsonb_build_object('route', p_route, 'status', CASE WHEN g <= p_e THEN 500 ELSE 200 END,
                                                            'latency_ms', p_ms, 'at', p_at)))
    FROM generate_series(1, p_n) AS g
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

-- latency violations open warning incidents, and they resolve after the whole
-- guard_autoresolve_min (15 here, not the default 10) counted from the last violation
SELECT ops.set_setting('guard_autoresolve_min', '15', 'alice');
SELECT ops.set_route_slo('GET /slow', 1, 5, 'alice', 100, 5);
SELECT pg_temp.traffic('GET /slow', '2026-03-04 13:00:10Z', 10, 0, 250);
SELECT ops.evaluate_routes('2026-03-04 13:00:30Z');
SELECT pg_temp.traffic('GET /slow', '2026-03-04 13:01:10Z', 10, 0, 250);
SELECT is((ops.evaluate_routes('2026-03-04 13:01:30Z')) ->> 'incidentsOpenedOrRefreshed', '1',
          'a latency violation held two minutes opens an incident');
SELECT results_eq(
    $$SELECT incident_key, severity, status, first_seen FROM ops.incidents WHERE route = 'GET /slow'$$,
    $$VALUES ('GET /slow::latency_slo', 'warning', 'open', '2026-03-04 13:01:30Z'::timestamptz)$$,
    'a latency violation opens one incident, keyed <route>::latency_slo, of severity warning (errors open critical ones)');
SELECT is((ops.release_guard('2026-03-04 13:10:00Z', 'GET /slow')) -> 'incidents', '[]'::jsonb,
          'a warning incident does not block the guard');
-- 13:10: healthy (the slow minutes left the 5-minute window); the last violation stays 13:01:30
SELECT is((ops.evaluate_routes('2026-03-04 13:10:00Z')) ->> 'incidentsResolved', '0', 'healthy for 8.5 minutes: still open');
SELECT is((ops.evaluate_routes('2026-03-04 13:16:29Z')) ->> 'incidentsResolved', '0',
          'healthy for 14 min 59 s of the 15: still open');
SELECT is((SELECT status FROM ops.incidents WHERE incident_key = 'GET /slow::latency_slo'), 'open',
          'a latency incident healthy for 14 min 59 s of the 15 keeps status open');
SELECT is((ops.evaluate_routes('2026-03-04 13:16:30Z')) ->> 'incidentsResolved', '1',
          'a latency incident resolves after 15 healthy minutes');
SELECT results_eq(
    $$SELECT status, resolved_by, resolved_at FROM ops.incidents WHERE incident_key = 'GET /slow::latency_slo'$$,
    $$VALUES ('resolved', 'opsguard:guard', '2026-03-04 13:16:30Z'::timestamptz)$$,
                  'a latency incident auto-resolves by the guard (opsguard:guard) at that minute');
SELECT is((SELECT count(*)::int FROM ops.route_violation_state WHERE route = 'GET /slow'), 0,
          'a resolved route''s violation state is forgotten');

-- a late evaluation (an older p_now: overlapping pg_cron runs, a replayed minute) is older news:
-- it neither moves the violation back nor resets its count, so the route still violating is
-- refreshed on time and auto-resolve still counts from the newest violation
SELECT ops.set_route_slo('GET /slow/late', 1, 5, 'alice', 100, 5);
SELECT pg_temp.traffic('GET /slow/late', m, 10, 0, 250)
FROM unnest(ARRAY['2026-03-04 15:00:10Z', '2026-03-04 15:01:10Z', '2026-03-04 15:02:10Z']::timestamptz[]) AS m;
SELECT ops.evaluate_routes('2026-03-04 15:00:30Z');
SELECT ops.evaluate_routes('2026-03-04 15:01:30Z');
SELECT ops.evaluate_routes('2026-03-04 15:00:50Z');
SELECT results_eq(
    $$SELECT first_violation_at, last_violation_at, consecutive_minutes FROM ops.route_violation_state WHERE route = 'GET /slow/late'$$,
    $$VALUES ('2026-03-04 15:00:30Z'::timestamptz, '2026-03-04 15:01:30Z'::timestamptz, 2)$$,
    'a late evaluation (15:00:50 after 15:01:30) leaves the violation as the newer one left it');
SELECT is((ops.evaluate_routes('2026-03-04 15:02:30Z')) ->> 'incidentsOpenedOrRefreshed', '1',
          'after a late evaluation the next minute still refreshes the latency incident');
SELECT is((SELECT last_seen FROM ops.incidents WHERE incident_key = 'GET /slow/late::latency_slo'),
          '2026-03-04 15:02:30Z'::timestamptz, 'after a late evaluation the latency incident''s last_seen moves to the newest minute');
SELECT ops.evaluate_routes('2026-03-04 15:01:00Z');
SELECT is((ops.evaluate_routes('2026-03-04 15:17:29Z')) ->> 'incidentsResolved', '0',
          'after another late one, auto-resolve still waits 15 minutes from 15:02:30');
SELECT is((ops.evaluate_routes('2026-03-04 15:17:30Z')) ->> 'incidentsResolved', '1',
          'after another late evaluation, auto-resolve comes at 15 minutes from the newest violation');

SELECT * FROM finish();
ROLLBACK;
