-- ops.release_guard and ops.route_findings: every rule at its boundary, minimum samples,
-- burn-rate pairs, lookback edges, acks that do not clear route violations, exemptions, and
-- route_prefix scoping incidents by their route. The clock: 2026-03-02 12:00:30 UTC; the
-- sections at the end each have their own day and routes.
BEGIN;
SELECT plan(51);

-- n requests on a route at a time, the first e of them 5xx, each taking p_ms
CREATE FUNCTION pg_temp.traffic(p_route text, p_at timestamptz, p_n int, p_e int, p_ms int DEFAULT 10) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT ops.record_requests(jsonb_agg(jsonb_build_object('route', p_route, 'status', CASE WHEN g <= p_e THEN 500 ELSE 200 END,
                                                            'latency_ms', p_ms, 'at', p_at)))
    FROM generate_series(1, p_n) AS g
$$;
CREATE FUNCTION pg_temp.verdict(p_route text, p_reason text) RETURNS text
LANGUAGE sql AS $$
    SELECT coalesce((SELECT verdict FROM ops.route_findings('2026-03-02 12:00:30Z') WHERE route = p_route AND reason = p_reason),
                    'healthy')
$$;

-- error_rate_critical: 1-minute error rate >= 50 %, at least min_samples (5)
SELECT pg_temp.traffic('GET /c49', '2026-03-02 12:00:10Z', 100, 49);
SELECT pg_temp.traffic('GET /c50', '2026-03-02 12:00:10Z', 100, 50);
SELECT pg_temp.traffic('GET /few', '2026-03-02 12:00:10Z', 4, 4);
SELECT pg_temp.traffic('GET /c5', '2026-03-02 12:00:10Z', 5, 5);
SELECT is(pg_temp.verdict('GET /c49', 'error_rate_critical'), 'healthy', 'error_rate_critical: 49 % does not fire');
SELECT is(pg_temp.verdict('GET /c50', 'error_rate_critical'), 'violation', 'error_rate_critical: 50 % fires');
SELECT is(pg_temp.verdict('GET /few', 'error_rate_critical'), 'inconclusive', '4 samples (< min 5) are inconclusive');
SELECT is(pg_temp.verdict('GET /c5', 'error_rate_critical'), 'violation', '5 samples are judged');
SELECT is((SELECT evidence - 'threshold_pct' - 'min_samples' FROM ops.route_findings('2026-03-02 12:00:30Z')
           WHERE route = 'GET /c5' AND reason = 'error_rate_critical'),
          '{"err_rate_1m": 100, "samples_1m": 5}'::jsonb, 'evidence as the seeds show it');
SELECT is(pg_temp.verdict('GET /c50', 'error_rate_critical'), 'violation', '(same route, checked twice: stable)');

-- hard_error_threshold: 5-minute error rate above 20 %
SELECT pg_temp.traffic('GET /h20', '2026-03-02 11:57:00Z', 100, 20);
SELECT pg_temp.traffic('GET /h21', '2026-03-02 11:57:00Z', 100, 21);
SELECT is(pg_temp.verdict('GET /h20', 'hard_error_threshold'), 'healthy', 'hard_error_threshold: 20 % does not fire');
SELECT is(pg_temp.verdict('GET /h21', 'hard_error_threshold'), 'violation', 'hard_error_threshold: 21 % fires');
SELECT is(pg_temp.verdict('GET /h21', 'error_rate_critical'), 'healthy', 'traffic 3.5 minutes ago is outside the 1-minute window');

-- slo_violation, fast pair: 5m and 1h both above 14.4x a 1 % budget (lots of good traffic 5 h ago
-- keeps the slow pair quiet)
SELECT pg_temp.traffic(r, '2026-03-02 07:00Z', 20000, 0) FROM unnest(ARRAY['GET /f144', 'GET /f145']) AS r;
SELECT pg_temp.traffic('GET /f144', '2026-03-02 11:58:00Z', 1000, 144);
SELECT pg_temp.traffic('GET /f145', '2026-03-02 11:58:00Z', 1000, 145);
SELECT is(pg_temp.verdict('GET /f144', 'slo_violation'), 'healthy', 'fast burn: exactly 14.4x does not fire');
SELECT is(pg_temp.verdict('GET /f145', 'slo_violation'), 'violation', 'fast burn: 14.5x in 5m and 1h fires');
SELECT is((SELECT evidence #> '{windows,5m,burn_rate}' FROM ops.route_findings('2026-03-02 12:00:30Z')
           WHERE route = 'GET /f145' AND reason = 'slo_violation'), '14.5', 'evidence carries each window''s burn rate');
SELECT is((SELECT evidence -> 'pairs' FROM ops.route_findings('2026-03-02 12:00:30Z')
           WHERE route = 'GET /f145' AND reason = 'slo_violation'),
          '[{"fired": true, "factor": 14.4, "judged": true, "windows": "5m/1h"},
            {"fired": false, "factor": 6, "judged": true, "windows": "30m/6h"}]', 'and which pair fired');

-- slow pair: 30m and 6h above 6x, nothing in the last 5 minutes
SELECT pg_temp.traffic('GET /s60', '2026-03-02 11:40:00Z', 1000, 60);
SELECT pg_temp.traffic('GET /s61', '2026-03-02 11:40:00Z', 1000, 61);
SELECT is(pg_temp.verdict('GET /s60', 'slo_violation'), 'healthy', 'slow burn: exactly 6x does not fire');
SELECT is(pg_temp.verdict('GET /s61', 'slo_violation'), 'violation', 'slow burn: 6.1x in 30m and 6h fires');

-- a lower budget fires sooner: 0.5 % target, 8 % errors = 16x
SELECT ops.set_route_slo('GET /tight', 0.5, 5, 'alice');
SELECT pg_temp.traffic('GET /tight', '2026-03-02 11:58:00Z', 1000, 80);
SELECT is(pg_temp.verdict('GET /tight', 'slo_violation'), 'violation', 'the route''s own target sets the budget');
SELECT throws_ok($$SELECT ops.set_route_slo('GET /lax', 7, 5, 'alice')$$, '22023', NULL,
                 'a target whose 14.4x burn exceeds 100 % (a rule that can never fire) is refused');
SELECT throws_ok($$INSERT INTO ops.route_slos (route, error_pct_target) VALUES ('GET /lax', 7)$$, '23514', NULL,
                 'a target whose 14.4x burn exceeds 100 % is refused even by direct SQL');

-- latency_slo: at most 5 % slower than 100 ms
SELECT ops.set_route_slo('GET /lat', 1, 5, 'alice', 100, 5);
SELECT ops.record_requests((SELECT jsonb_agg(jsonb_build_object('route', 'GET /lat', 'status', 200,
    'latency_ms', CASE WHEN g <= 6 THEN 250 ELSE 20 END, 'at', '2026-03-02T11:59:00Z')) FROM generate_series(1, 100) AS g));
SELECT is(pg_temp.verdict('GET /lat', 'latency_slo'), 'violation', 'latency_slo: 6 % slow fires');
SELECT is(pg_temp.verdict('GET /c49', 'latency_slo'), 'healthy', 'routes without a latency objective are not judged on it');

-- the guard: scoped to one clean route it passes; with the bad ones it blocks
SELECT pg_temp.traffic('GET /ok', '2026-03-02 12:00:00Z', 50, 0);
SELECT is((ops.release_guard('2026-03-02 12:00:30Z', 'GET /ok')) - 'evaluationId' - 'thresholds' - 'evaluatedAt',
          '{"ok": true, "failing": [], "warnings": [], "incidents": [], "violations": [], "routePrefix": "GET /ok",
            "failingCount": 0, "warningCount": 0, "truncated": false}', 'scoped to a healthy route: ok');
SELECT is((ops.release_guard('2026-03-02 12:00:30Z', 'GET /few')) -> 'warnings' -> 0 ->> 'reason', 'error_rate_critical',
          'too few samples: listed under warnings');
SELECT is((ops.release_guard('2026-03-02 12:00:30Z', 'GET /few')) ->> 'ok', 'true', 'too few samples do not block the guard by default');
SELECT ops.set_setting('guard_block_inconclusive', 'true', 'alice');
SELECT is((ops.release_guard('2026-03-02 12:00:30Z', 'GET /few')) ->> 'ok', 'false',
          'too few samples block the guard with guard_block_inconclusive');
SELECT ops.set_setting('guard_block_inconclusive', 'false', 'alice');

-- incidents: open, unacknowledged, critical, seen within guard_lookback_min (10)
CREATE TEMP TABLE i AS
SELECT
    (ops.trigger_incident('GET /inc::x', 'critical', p_now => '2026-03-02 11:50:30Z')).id AS edge,
    (ops.trigger_incident('GET /inc2::x', 'critical', p_now => '2026-03-02 11:50:29Z')).id AS stale,
    (ops.trigger_incident('GET /inc3::x', 'warning', p_now => '2026-03-02 12:00:00Z')).id AS warn;
SELECT is((ops.release_guard('2026-03-02 12:00:30Z', 'GET /inc')) -> 'failing',
          jsonb_build_array(jsonb_build_object('id', (SELECT edge FROM i), 'key', 'incident:' || (SELECT edge FROM i),
              'kind', 'incident', 'route', 'GET /inc', 'lastSeen', '2026-03-02T11:50:30+00:00', 'severity', 'critical',
              'incidentKey', 'GET /inc::x', 'escalationLevel', 0)),
          'seen exactly 10 minutes ago blocks; 10 min 1 s ago or a warning does not');
SELECT ops.ack_incident((SELECT edge FROM i), 'alice');
SELECT is((ops.release_guard('2026-03-02 12:00:30Z', 'GET /inc')) ->> 'ok', 'true', 'an acknowledged incident does not block');

-- ack does not clear route violations
SELECT ops.trigger_incident('GET /c50::error_rate_critical', 'critical', p_now => '2026-03-02 12:00:00Z');
SELECT ops.ack_incident(id, 'alice') FROM ops.incidents WHERE incident_key = 'GET /c50::error_rate_critical';
SELECT is((ops.release_guard('2026-03-02 12:00:30Z', 'GET /c50')) -> 'failing' -> 0 ->> 'reason', 'error_rate_critical',
          'acking the route''s incident does not clear the route''s violation');

-- exemptions: still listed, marked, not counted; they expire; only guard.override may grant them
SELECT ops.add_principal('rita', 'human', '{ops_responder}', 'alice');
SELECT throws_ok($$SELECT ops.override_guard_item('GET /c50::error_rate_critical', 'known', 60, 'rita', '2026-03-02 12:00:30Z')$$,
                 '42501', NULL, 'a responder may not override');
SELECT throws_ok($$SELECT ops.override_guard_item('GET /c50::error_rate_critical', 'known', 1441, 'ops-bot', '2026-03-02 12:00:30Z')$$,
                 '22003', NULL, 'at most 24 h');
SELECT throws_ok($$SELECT ops.override_guard_item('GET /nope::slo_violation', 'known', 60, 'ops-bot', '2026-03-02 12:00:30Z')$$,
                 'P0002', NULL, 'only a failing item can be exempted');
SELECT ops.override_guard_item(k, 'INC-42: upstream outage, fix deploying', 20, 'ops-bot', '2026-03-02 12:00:30Z')
FROM unnest(ARRAY['GET /c50::error_rate_critical', 'GET /c50::hard_error_threshold', 'GET /c50::slo_violation']) AS k;
SELECT is((ops.release_guard('2026-03-02 12:00:30Z', 'GET /c50')) - 'evaluationId' - 'thresholds' - 'evaluatedAt' - 'violations'
          - 'routePrefix' - 'incidents', '{"ok": true, "failing": [], "warnings": [], "failingCount": 0, "warningCount": 0,
          "truncated": false}',
          'exempted items do not count');
SELECT is((ops.release_guard('2026-03-02 12:00:30Z', 'GET /c50')) #>> '{violations,0,exempted,reason}',
          'INC-42: upstream outage, fix deploying', 'they stay listed, marked with the reason');
SELECT is((ops.release_guard('2026-03-02 12:15:30Z', 'GET /c50')) ->> 'ok', 'true',
          '15 minutes on, the slow burn still fires and is still exempt');
SELECT is((ops.release_guard('2026-03-02 12:25:30Z', 'GET /c50')) ->> 'ok', 'false', 'after 20 minutes the exemption expired');
SELECT is((SELECT count(*)::int FROM ops.audit_log WHERE table_name = 'guard_overrides' AND actor = 'ops-bot'), 3,
          'every override is audited');

-- every evaluation is stored with who asked and their CI context
SELECT ops.release_guard('2026-03-02 12:00:30Z', NULL, 'github-actions', '{"commit": "abc123"}');
SELECT results_eq($$SELECT ok, caller, context ->> 'commit' FROM ops.guard_evaluations ORDER BY id DESC LIMIT 1$$,
                  $$VALUES (false, 'github-actions', 'abc123')$$, 'evaluations are stored');

-- the findings on one route at a time
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
          'the evidence of an inconclusive hard_error_threshold names the 4 samples and the minimum');
SELECT is((SELECT verdict FROM pg_temp.findings('2026-03-02 12:00:30Z', 'GET /he/5') WHERE reason = 'hard_error_threshold'),
          'violation', 'hard_error_threshold with 5 samples is judged: a violation');
CREATE TEMP TABLE g_he AS SELECT ops.release_guard('2026-03-02 12:00:30Z', 'GET /he/4') AS g;
SELECT is((SELECT jsonb_build_array(g -> 'ok', g -> 'failingCount') FROM g_he), '[true, 0]'::jsonb,
          'the guard does not block on an inconclusive hard_error_threshold');
SELECT set_eq($$SELECT jsonb_array_elements(g -> 'warnings') ->> 'reason' FROM g_he$$,
              ARRAY['hard_error_threshold', 'slo_violation'], 'the guard lists an inconclusive hard_error_threshold under warnings');

-- latency_slo below min_samples: 4 slow requests of 4 are inconclusive; 5 are a violation
SELECT ops.set_route_slo(r, 1, 5, 'alice', 100, 5) FROM unnest(ARRAY['GET /lat/4', 'GET /lat/5']) AS r;
SELECT pg_temp.traffic('GET /lat/4', '2026-03-03 11:57:00Z', 4, 0, 250);
SELECT pg_temp.traffic('GET /lat/5', '2026-03-03 11:57:00Z', 5, 0, 250);
SELECT is((SELECT verdict FROM pg_temp.findings('2026-03-03 12:00:30Z', 'GET /lat/4') WHERE reason = 'latency_slo'),
          'inconclusive', 'latency_slo: 4 slow requests of 4 (< min_samples 5) are inconclusive');
SELECT is((SELECT evidence FROM pg_temp.findings('2026-03-03 12:00:30Z', 'GET /lat/4') WHERE reason = 'latency_slo'),
          '{"slow_pct_5m": 100, "samples_5m": 4, "threshold_ms": 100, "target_pct": 5, "min_samples": 5}'::jsonb,
          'the evidence of an inconclusive latency_slo names the 4 samples and the minimum');
SELECT is((SELECT verdict FROM pg_temp.findings('2026-03-03 12:00:30Z', 'GET /lat/5') WHERE reason = 'latency_slo'),
          'violation', 'latency_slo with 5 samples is judged: a violation');
CREATE TEMP TABLE g_lat AS SELECT ops.release_guard('2026-03-03 12:00:30Z', 'GET /lat/') AS g;
SELECT is((SELECT jsonb_build_array(g -> 'ok', g -> 'failingCount', g #> '{failing,0,route}', g #> '{failing,0,reason}') FROM g_lat),
          '[false, 1, "GET /lat/5", "latency_slo"]'::jsonb, 'the guard blocks on the judged route only');
SELECT set_eq($$SELECT w ->> 'reason' FROM g_lat, jsonb_array_elements(g -> 'warnings') AS w WHERE w ->> 'route' = 'GET /lat/4'$$,
              ARRAY['latency_slo', 'hard_error_threshold', 'slo_violation'],
              'the guard lists the route with an inconclusive latency_slo under warnings');

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
