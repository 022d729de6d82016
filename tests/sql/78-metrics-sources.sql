-- Metrics from Prometheus: ops.set_metrics_source validates and audits; the collector's minutes land in the
-- same rollups as pushed samples, once each; stale sources are listed by the guard with stale_since.
BEGIN;
SELECT plan(41);

SELECT ops.set_route_slo('*', 1, 5, 'alice', 300, 5);

-- setting a source
SELECT results_eq(
    $$SELECT requests_query, errors_query, slow_query, route_label, delay_s
      FROM ops.set_metrics_source('GET /search', 'prometheus', '{"url": "http://prom.example:9090"}', 'alice',
                                  '2026-12-01 09:00Z')$$,
    $$VALUES ('sum by (route) (increase(http_requests_total{route=~"$route"}[1m]))',
              'sum by (route) (increase(http_requests_total{route=~"$route",code=~"5.."}[1m]))',
              'sum by (route) (increase(http_request_duration_seconds_bucket{route=~"$route",le="+Inf"}[1m])) - '
              'sum by (route) (increase(http_request_duration_seconds_bucket{route=~"$route",le=~"$le"}[1m]))',
              'route', 30)$$,
    'the defaults: a counter with route and code labels, a histogram of seconds for slow requests');
SELECT is((SELECT actor || ' ' || action FROM ops.audit_log WHERE table_name = 'metrics_sources' AND row_key = 'GET /search'),
          'alice INSERT', 'setting a source is audited with its actor');
SELECT results_eq(
    $$SELECT requests_query, slow_query FROM ops.set_metrics_source('GET /custom', 'prometheus',
        '{"url": "https://prom.example", "metric": "app_requests_total", "route_label": "handler", "latency_metric": ""}',
        'alice', '2026-12-01 09:00Z')$$,
    $$VALUES ('sum by (handler) (increase(app_requests_total{handler=~"$route"}[1m]))', NULL::text)$$,
    'names and labels are the team''s own; an empty latency_metric collects no slow requests');

CREATE TEMP TABLE n_sources AS SELECT count(*) AS n FROM ops.metrics_sources;
SELECT throws_ok($$SELECT ops.set_metrics_source('GET /x', 'prometheus',
                     '{"url": "http://p:9090", "requests": "sum(rate(x[1m]))"}', 'alice')$$,
                 '22023', NULL, 'PromQL without the $route placeholder is refused');
SELECT throws_ok($$SELECT ops.set_metrics_source('GET /x', 'prometheus', '{"url": "ftp://p:9090"}', 'alice')$$,
                 '22023', NULL, 'a URL that is not http(s) is refused');
SELECT throws_ok($$SELECT ops.set_metrics_source('GET /x', 'prometheus', '{"url": "http://p:99999"}', 'alice')$$,
                 '22023', NULL, 'a port outside 1-65535 is refused');
SELECT throws_ok($$SELECT ops.set_metrics_source('GET /x', 'prometheus', '{}', 'alice')$$,
                 '22023', NULL, 'a prometheus source needs a url');
SELECT throws_ok($$SELECT ops.set_metrics_source('GET /x', 'prometheus', '{"url": "http://p", "metrik": "x"}', 'alice')$$,
                 '22023', 'bad prometheus config: unknown key "metrik"', 'an unknown key is named');
SELECT throws_ok($$SELECT ops.set_metrics_source('GET /x', 'prometheus', '{"url": "http://p", "route_label": "a b"}', 'alice')$$,
                 '22023', NULL, 'a label name that PromQL cannot hold is refused');
SELECT throws_ok($$SELECT ops.set_metrics_source('GET /x', 'prometheus', '{"url": "http://p", "delay_s": 601}', 'alice')$$,
                 '22023', NULL, 'delay_s above 600 is refused');
SELECT throws_ok($$SELECT ops.set_metrics_source('GET /x', 'graphite', '{}', 'alice')$$,
                 '22023', NULL, 'a kind other than push or prometheus is refused');
SELECT throws_ok($$SELECT ops.set_metrics_source('GET /x', 'push', '{"url": "http://p"}', 'alice')$$,
                 '22023', NULL, 'a push source takes no config');
SELECT throws_ok($$SELECT ops.set_metrics_source('GET /*/x', 'push', '{}', 'alice')$$,
                 '22023', NULL, 'a * is allowed only at the end of a pattern');
SELECT throws_ok($$SELECT ops.set_metrics_source('GET /x', 'push', '{}', '')$$,
                 '22004', NULL, 'an actor is required');
SELECT is((SELECT count(*) FROM ops.metrics_sources), (SELECT n FROM n_sources), 'a refused source changes nothing');

-- the collector's work
SELECT results_eq(
    $$SELECT requests, slow, first_minute, last_minute FROM ops.metrics_work('2026-12-01 10:05:40Z', 60)
      WHERE route_pattern = 'GET /search'$$,
    $$VALUES ('sum by (route) (increase(http_requests_total{route=~"GET /search"}[1m]))',
              'sum by (route) (increase(http_request_duration_seconds_bucket{route=~"GET /search",le="+Inf"}[1m])) - '
              'sum by (route) (increase(http_request_duration_seconds_bucket{route=~"GET /search",le=~"0\\.3"}[1m]))',
              '2026-12-01 04:05Z'::timestamptz, '2026-12-01 05:04Z'::timestamptz)$$,
    'a new source back-fills 6 hours, an hour at a time; $le is the route''s latency threshold in seconds');
SELECT ops.set_metrics_source('GET /a.b?(c)*', 'prometheus', '{"url": "http://p", "delay_s": 0}', 'alice', '2026-12-01 10:00Z');
SELECT is((SELECT errors FROM ops.metrics_work('2026-12-01 10:05:40Z') WHERE route_pattern = 'GET /a.b?(c)*'),
          'sum by (route) (increase(http_requests_total{route=~"GET /a\\.b\\?\\(c\\).*",code=~"5.."}[1m]))',
          'a route''s regex metacharacters are escaped and a prefix''s * matches the rest');

-- minutes into the rollups, once
SELECT is(ops.record_metrics_minutes('GET /search', '2026-12-01 10:04Z', '[
    {"route": "GET /search", "minute": "2026-12-01T10:03:00Z", "requests": 9.6, "errors": 1.2, "slow": 0},
    {"route": "GET /search", "minute": "2026-12-01T10:04:00Z", "requests": 10, "errors": 10.4, "slow": 2}]', 3,
    '2026-12-01 10:05:40Z') - 'through', '{"ok": true, "source": "GET /search", "counted": 2, "skipped": 0}',
    'two minutes counted');
SELECT results_eq($$SELECT minute, requests, errors, slow FROM ops.route_minute_stats WHERE route = 'GET /search' ORDER BY minute$$,
    $$VALUES ('2026-12-01 10:03Z'::timestamptz, 10, 1, 0), ('2026-12-01 10:04Z', 10, 10, 2)$$,
    'counts rounded, errors never above requests (Prometheus extrapolates each series alone)');
SELECT is(ops.record_metrics_minutes('GET /search', '2026-12-01 10:04Z', '[
    {"route": "GET /search", "minute": "2026-12-01T10:04:00Z", "requests": 10, "errors": 10, "slow": 2}]', 1,
    '2026-12-01 10:05:50Z') ->> 'skipped', '1', 'a minute collected again is skipped');
SELECT results_eq(
    $$SELECT (SELECT sum(requests) FROM ops.route_minute_stats WHERE route = 'GET /search'),
             (SELECT sum(requests) FROM ops.route_5min_stats WHERE route = 'GET /search'),
             (SELECT sum(requests) FROM ops.route_hour_stats WHERE route = 'GET /search'),
             (SELECT sum(requests) FROM ops.route_day_stats WHERE route = 'GET /search')$$,
    $$VALUES (20::bigint, 20::bigint, 20::bigint, 20::numeric)$$,
    'each minute counted once in the minute, 5-minute, hourly and daily rollups');
SELECT is_empty($$SELECT 1 FROM ops.metrics_work('2026-12-01 10:05:59Z') WHERE route_pattern = 'GET /search'$$,
                'collected through the newest ready minute: no work until the next one is ready');

-- a prefix source skips routes a more specific source covers
SELECT ops.set_metrics_source('GET /api*', 'prometheus', '{"url": "http://p", "delay_s": 0}', 'alice', '2026-12-01 10:00Z');
SELECT ops.set_metrics_source('GET /api/pushed', 'push', '{}', 'alice');
SELECT is(ops.record_metrics_minutes('GET /api*', '2026-12-01 10:04Z', '[
    {"route": "GET /api/a", "minute": "2026-12-01T10:04:00Z", "requests": 4, "errors": 0, "slow": 0},
    {"route": "GET /api/pushed", "minute": "2026-12-01T10:04:00Z", "requests": 4, "errors": 0, "slow": 0}]', 1,
    '2026-12-01 10:05:00Z') - 'through' - 'source', '{"ok": true, "counted": 1, "skipped": 1}',
    'a route with its own push source is not collected by the prefix');

-- bad minutes change nothing
CREATE TEMP TABLE rollup_before AS SELECT sum(requests) AS n FROM ops.route_minute_stats;
SELECT throws_ok($$SELECT ops.record_metrics_minutes('GET /search', '2026-12-01 10:05Z',
    '[{"route": "GET /other", "minute": "2026-12-01T10:05:00Z", "requests": 1, "errors": 0, "slow": 0}]', 1, '2026-12-01 10:06:40Z')$$,
    '22023', NULL, 'a route the pattern does not match is refused');
SELECT throws_ok($$SELECT ops.record_metrics_minutes('GET /search', '2026-12-01 10:05Z',
    '[{"route": "GET /search", "minute": "2026-12-01T10:05:00Z", "requests": "NaN", "errors": 0, "slow": 0}]', 1, '2026-12-01 10:06:40Z')$$,
    '22023', NULL, 'a count that is not a number of 0 or more is refused');
SELECT throws_ok($$SELECT ops.record_metrics_minutes('GET /search', '2026-12-01 10:05Z',
    '[{"route": "GET /search", "minute": "2026-12-01T10:05:30Z", "requests": 1, "errors": 0, "slow": 0}]', 1, '2026-12-01 10:06:40Z')$$,
    '22023', NULL, 'a minute that is not whole is refused');
SELECT throws_ok($$SELECT ops.record_metrics_minutes('GET /search', '2026-12-01 10:06Z', '[]', 1, '2026-12-01 10:06:40Z')$$,
    '22023', NULL, 'a minute Prometheus cannot have complete yet (delay_s) is refused');
SELECT throws_ok($$SELECT ops.record_metrics_minutes('GET /nowhere', '2026-12-01 10:05Z', '[]', 1, '2026-12-01 10:06:40Z')$$,
    '22023', NULL, 'a pattern with no prometheus source is refused');
SELECT results_eq($$SELECT (SELECT sum(requests) FROM ops.route_minute_stats),
                           (SELECT collected_through FROM ops.metrics_source_state WHERE route_pattern = 'GET /search')$$,
                  $$SELECT n, '2026-12-01 10:04Z'::timestamptz FROM rollup_before$$,
                  'refused minutes write nothing and advance nothing');

-- the guard: the same evidence as pushed samples; stale sources per guard_stale_metrics
SELECT ops.record_requests((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('route', 'GET /pushed',
    'status', CASE WHEN i <= 11 THEN 500 ELSE 200 END, 'latency_ms', CASE WHEN i <= 2 THEN 400 ELSE 10 END,
    'at', CASE WHEN i <= 10 THEN '2026-12-01T10:04:10Z' ELSE '2026-12-01T10:03:10Z' END))
    FROM pg_catalog.generate_series(1, 20) AS i));
SELECT is_empty(
    $$SELECT reason, evidence FROM ops.route_findings('2026-12-01 10:05:40Z') WHERE route = 'GET /search'
      EXCEPT ALL
      SELECT reason, evidence FROM ops.route_findings('2026-12-01 10:05:40Z') WHERE route = 'GET /pushed'$$,
    'collected minutes give the findings and evidence the same pushed samples give');
SELECT ok((ops.release_guard('2026-12-01 10:05:40Z') -> 'failing') @> '[{"key": "GET /search::error_rate_critical"}]',
          'the guard blocks on a collected route as on a pushed one');
SELECT is((SELECT w FROM pg_catalog.jsonb_array_elements(ops.release_guard('2026-12-01 10:12:00Z') -> 'warnings') AS w
           WHERE w ->> 'key' = 'GET /search::stale_metrics'),
          '{"key": "GET /search::stale_metrics", "kind": "violation", "route": "GET /search", "reason": "stale_metrics",
            "message": "metrics from Prometheus are stale (evidence stale_since): judged on the data collected so far; not blocking",
            "evidence": {"source": "GET /search", "stale_since": "2026-12-01T10:05:00+00:00"}}'::jsonb,
          'a stale source''s routes are warnings with stale_since, not blocking by default');
SELECT ok(NOT (ops.release_guard('2026-12-01 10:08:29Z') -> 'warnings') @> '[{"key": "GET /search::stale_metrics"}]',
          'not stale while the data ends less than delay_s + 3 minutes ago');
SELECT ops.set_setting('guard_stale_metrics', 'fail', 'alice');
SELECT ok((ops.release_guard('2026-12-01 10:12:00Z') -> 'failing') @> '[{"key": "GET /search::stale_metrics"}]',
          'guard_stale_metrics fail: a stale route blocks');
SELECT throws_ok($$SELECT ops.set_setting('guard_stale_metrics', 'block', 'alice')$$, '22023', NULL,
                 'guard_stale_metrics takes inconclusive or fail only');
SELECT ok((ops.release_guard('2026-12-01 10:12:00Z', 'GET /api') -> 'failing') @> '[{"key": "GET /api/a::stale_metrics"}]'
          AND NOT (ops.release_guard('2026-12-01 10:12:00Z', 'GET /api') -> 'failing') @> '[{"key": "GET /api/pushed::stale_metrics"}]',
          'a stale prefix lists the routes it collected, not those another source covers');

CREATE FUNCTION pg_temp.stale_alert(p_now timestamptz) RETURNS TABLE (firing boolean, summary text) LANGUAGE sql AS $$
    SELECT firing, summary FROM ops.evaluate_alerts(p_now) WHERE alert = 'MetricsSourceStale'
$$;
-- failures: a problem to read, an alert after 5 stale minutes, series for /metrics
SELECT ops.metrics_source_failed('GET /search', E'HTTP 500: <html>\nboom</html>', 3, '2026-12-01 10:09:00Z');
SELECT is((SELECT problem || ' ' || blocking FROM ops.config_problems() WHERE setting = 'metrics_sources[GET /search]'),
          'the last query to http://prom.example:9090 failed at 2026-12-01 10:09:00+00: HTTP 500: <html> boom</html>; '
          'collected through 2026-12-01 10:05:00+00 false',
          'a failed query is a configuration problem (one line, not blocking)');
SELECT ok((SELECT strpos(summary, 'GET /search since') = 0 FROM pg_temp.stale_alert('2026-12-01 10:13:29Z'))
          AND (SELECT firing AND strpos(summary, 'GET /search since 2026-12-01 10:05:00+00') > 0
               FROM pg_temp.stale_alert('2026-12-01 10:13:31Z')),
          'MetricsSourceStale fires once a source has been stale for 5 minutes');
SELECT results_eq(
    $$SELECT metric, value FROM ops.exported_metrics('2026-12-01 10:09:00Z')
      WHERE metric IN ('opsguard_collector_queries_total', 'opsguard_collector_failures_total') ORDER BY metric$$,
    $$VALUES ('opsguard_collector_failures_total', 1::float8), ('opsguard_collector_queries_total', 8::float8)$$,
    'the collector''s queries and failures are counted');
SELECT ops.record_metrics_minutes('GET /search', '2026-12-01 10:08Z', '[]', 1, '2026-12-01 10:09:40Z');
SELECT is_empty($$SELECT 1 FROM ops.config_problems() WHERE setting = 'metrics_sources[GET /search]'$$,
                'a collection that succeeds clears the problem');

SELECT set_eq(
    $$SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'ops' AND has_function_privilege('opsguard_collector', p.oid, 'EXECUTE')$$,
    ARRAY['metrics_work', 'record_metrics_minutes', 'metrics_source_failed', 'config_problems'],
    'the collector role may get work, report it and check the configuration, nothing else');

SELECT * FROM finish();
ROLLBACK;
