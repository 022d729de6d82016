-- Guard behaviours no other file pins: latency_slo and hard_error_threshold are inconclusive
-- below min_samples, latency violations open warning incidents, auto-resolve waits the whole
-- guard_autoresolve_min after the last violation, and route_prefix scopes incidents as well as
-- route findings. Each section has its own day and routes; the clock moves, nothing sleeps.
BEGIN;
SELECT plan(29);

-- n requests on a route at a time, the first e of them 5xx, each taking p_ms
CREATE FUNCTION pg_temp.traffic(p_route text, p_at timestamptz, p_n int, p_e int, p_ms int DEFAULT 10) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT ops.record_requests(jsonb_agg(jsonb_build_object('route', p_route, 'status', CASE WHEN g <= p_e THEN 500 ELSE 200 END,
                                                            'latency_ms', p_ms, 'at', p_at)))
    FROM generate_series(1, p_n) AS g
$$;
CREATE FUNCTION pg_temp.findings(p_now timestamptz, p_route text) RETURNS TABLE (reason text, verdict text, evidence jsonb)
LANGUAGE sql AS $$
    SELECT f.reason, f.verdict, f.evidence FROM ops.route_findings(p_now) AS f WHERE f.route = p_route
$$;

-- hard_error_threshold below min_samples (5): every request failed, yet 4 are too few to judge.
-- The traffic is 3 minutes old at 12:00:30, outside the 1-minute window, so only the 5-minute
-- rules (and the burn-rate pairs, also short of samples) see it
SELECT pg_temp.traffic('GET /he/4', '2026-03-02 11:57:00Z', 4, 4);
SELECT pg_temp.traffic('GET /he/5', '2026-03-02 11:57:00Z', 5, 5);
SELECT set_eq($$SELECT reason, verdict FROM pg_temp.findings('2026-03-02 12:00:30Z', 'GET /he/4')$$,
              $$VALUES ('hard_error_threshold', 'inconclusive'), ('slo_violation', 'inconclusive')$$,
              'hard_error_threshold: 4 failed requests of 4 (< min_samples 5) are inconclusive, not a violation');
SELECT is((SELECT evidence FROM pg_temp.findings('2026-03-02 12:00:30Z', 'GET /he/4') WHERE reason = 'hard_error_threshold'),
          '{"err_rate_5m": 100, "samples_5m": 4, "threshold_pct": 20, "min_samples": 5}'::jsonb,
          '... its evidence names the 4 samples and the minimum');
SELECT is((SELECT verdict FROM pg_temp.findings('2026-03-02 12:00:30Z', 'GET /he/5') WHERE reason = 'hard_error_threshold'),
          'violation', 'with 5 samples it is judged: a violation');
CREATE TEMP TABLE g_he AS SELECT ops.release_guard('2026-03-02 12:00:30Z', 'GET /he/4') AS g;
SELECT is((SELECT jsonb_build_array(g -> 'ok', g -> 'failingCount') FROM g_he), '[true, 0]'::jsonb,
          'the guard does not block on it');
SELECT set_eq($$SELECT jsonb_array_elements(g -> 'warnings') ->> 'reason' FROM g_he$$,
              ARRAY['hard_error_threshold', 'slo_violation'], '... it lists it under warnings');

-- latency_slo below min_samples: 4 slow requests of 4 are inconclusive; 5 are a violation
SELECT ops.set_route_slo(r, 1, 5, 'alice', 100, 5) FROM unnest(ARRAY['GET /lat/4', 'GET /lat/5']) AS r;
SELECT pg_temp.traffic('GET /lat/4', '2026-03-03 11:57:00Z', 4, 0, 250);
SELECT pg_temp.traffic('GET /lat/5', '2026-03-03 11:57:00Z', 5, 0, 250);
SELECT is((SELECT verdict FROM pg_temp.findings('2026-03-03 12:00:30Z', 'GET /lat/4') WHERE reason = 'latency_slo'),
          'inconclusive', 'latency_slo: 4 slow requests of 4 (< min_samples 5) are inconclusive');
SELECT is((SELECT evidence FROM pg_temp.findings('2026-03-03 12:00:30Z', 'GET /lat/4') WHERE reason = 'latency_slo'),
          '{"slow_pct_5m": 100, "samples_5m": 4, "threshold_ms": 100, "target_pct": 5, "min_samples": 5}'::jsonb,
          '... its evidence names the 4 samples and the minimum');
SELECT is((SELECT verdict FROM pg_temp.findings('2026-03-03 12:00:30Z', 'GET /lat/5') WHERE reason = 'latency_slo'),
          'violation', 'with 5 samples it is judged: a violation');
CREATE TEMP TABLE g_lat AS SELECT ops.release_guard('2026-03-03 12:00:30Z', 'GET /lat/') AS g;
SELECT is((SELECT jsonb_build_array(g -> 'ok', g -> 'failingCount', g #> '{failing,0,route}', g #> '{failing,0,reason}') FROM g_lat),
          '[false, 1, "GET /lat/5", "latency_slo"]'::jsonb, 'the guard blocks on the judged route only');
SELECT set_eq($$SELECT w ->> 'reason' FROM g_lat, jsonb_array_elements(g -> 'warnings') AS w WHERE w ->> 'route' = 'GET /lat/4'$$,
              ARRAY['latency_slo', 'hard_error_threshold', 'slo_violation'], '... the inconclusive one is a warning');

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
    '... one incident, keyed <route>::latency_slo, of severity warning (errors open critical ones)');
SELECT is((ops.release_guard('2026-03-04 13:10:00Z', 'GET /slow')) -> 'incidents', '[]'::jsonb,
          'a warning incident does not block the guard');
-- 13:10: healthy (the slow minutes left the 5-minute window); the last violation stays 13:01:30
SELECT is((ops.evaluate_routes('2026-03-04 13:10:00Z')) ->> 'incidentsResolved', '0', 'healthy for 8.5 minutes: still open');
SELECT is((ops.evaluate_routes('2026-03-04 13:16:29Z')) ->> 'incidentsResolved', '0',
          'healthy for 14 min 59 s of the 15: still open');
SELECT is((SELECT status FROM ops.incidents WHERE incident_key = 'GET /slow::latency_slo'), 'open', '... status open');
SELECT is((ops.evaluate_routes('2026-03-04 13:16:30Z')) ->> 'incidentsResolved', '1', 'at 15 minutes it resolves');
SELECT results_eq(
    $$SELECT status, resolved_by, resolved_at FROM ops.incidents WHERE incident_key = 'GET /slow::latency_slo'$$,
    $$VALUES ('resolved', 'opsguard:guard', '2026-03-04 13:16:30Z'::timestamptz)$$, '... by the guard, at that minute');
SELECT is((SELECT count(*)::int FROM ops.route_violation_state WHERE route = 'GET /slow'), 0, 'and the violation is forgotten');

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
          '... so the next minute still refreshes the incident');
SELECT is((SELECT last_seen FROM ops.incidents WHERE incident_key = 'GET /slow/late::latency_slo'),
          '2026-03-04 15:02:30Z'::timestamptz, '... to that minute');
SELECT ops.evaluate_routes('2026-03-04 15:01:00Z');
SELECT is((ops.evaluate_routes('2026-03-04 15:17:29Z')) ->> 'incidentsResolved', '0',
          'after another late one, auto-resolve still waits 15 minutes from 15:02:30');
SELECT is((ops.evaluate_routes('2026-03-04 15:17:30Z')) ->> 'incidentsResolved', '1', '... and resolves then');
SELECT ops.set_setting('guard_autoresolve_min', '10', 'alice');

-- route_prefix scopes incidents by their route (not their key), as it scopes route findings;
-- a prefix is literal text, not a LIKE pattern
SELECT ops.trigger_incident('GET /billing/pay::manual', 'critical', p_now => '2026-03-05 12:00Z');
SELECT ops.trigger_incident('pager::search-db-down', 'critical', 'GET /search/db', p_now => '2026-03-05 12:00Z');
-- the verdict, with the keys of the blocking and of the listed incidents sorted (the guard
-- orders incidents by id, which is random)
CREATE FUNCTION pg_temp.blocking(p_prefix text) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('ok', g -> 'ok', 'failingCount', g -> 'failingCount',
        'failing', (SELECT coalesce(jsonb_agg(k ORDER BY k), '[]') FROM jsonb_path_query(g, '$.failing[*].incidentKey') AS k),
        'incidents', (SELECT coalesce(jsonb_agg(k ORDER BY k), '[]') FROM jsonb_path_query(g, '$.incidents[*].incidentKey') AS k))
    FROM ops.release_guard('2026-03-05 12:05Z', p_prefix) AS g
$$;
SELECT is(pg_temp.blocking(NULL),
          '{"ok": false, "failingCount": 2, "failing": ["GET /billing/pay::manual", "pager::search-db-down"],
            "incidents": ["GET /billing/pay::manual", "pager::search-db-down"]}'::jsonb,
          'unscoped: both incidents block');
SELECT is(pg_temp.blocking('GET /search'),
          '{"ok": false, "failingCount": 1, "failing": ["pager::search-db-down"], "incidents": ["pager::search-db-down"]}'::jsonb,
          'GET /search: only the incident whose route starts with it (its key does not)');
SELECT is(pg_temp.blocking('GET /billing'),
          '{"ok": false, "failingCount": 1, "failing": ["GET /billing/pay::manual"], "incidents": ["GET /billing/pay::manual"]}'::jsonb,
          'GET /billing: only the billing incident');
SELECT is(pg_temp.blocking('GET /shop'), '{"ok": true, "failingCount": 0, "failing": [], "incidents": []}'::jsonb,
          'a prefix no incident route starts with: clear');
SELECT is(pg_temp.blocking('GET /b_lling'), '{"ok": true, "failingCount": 0, "failing": [], "incidents": []}'::jsonb,
          '_ in a prefix is a character, not a wildcard');

SELECT * FROM finish();
ROLLBACK;
