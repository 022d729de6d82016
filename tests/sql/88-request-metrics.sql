-- ops.record_requests: batches folded into per-minute rollups; a bad sample rejects the batch.
BEGIN;
SELECT plan(9);

SELECT is(ops.record_requests('[
    {"route": "GET /a", "status": 500, "latency_ms": 12, "at": "2026-03-02T12:00:10Z"},
    {"route": "GET /a", "status": 200, "latency_ms": 3.5, "at": "2026-03-02T12:00:59.9Z"},
    {"route": "GET /a", "status": 404, "latency_ms": 1, "at": "2026-03-02T12:01:00Z"},
    {"route": "GET /b", "status": 503, "latency_ms": 1, "at": "2026-03-02T13:00:00+01:00"}]'),
    '{"ok": true, "accepted": 4}', 'a batch is accepted');
SELECT results_eq($$SELECT route, minute, requests, errors FROM ops.route_minute_stats ORDER BY route, minute$$,
    $$VALUES ('GET /a', '2026-03-02 12:00Z'::timestamptz, 2, 1), ('GET /a', '2026-03-02 12:01Z', 1, 0),
             ('GET /b', '2026-03-02 12:00Z', 1, 1)$$,
    'folded per route and UTC minute; 5xx are errors, 4xx are not');
SELECT ops.record_requests('[{"route": "GET /a", "status": 502, "latency_ms": 1, "at": "2026-03-02T12:00:30Z"}]');
SELECT is((SELECT requests || '/' || errors FROM ops.route_minute_stats WHERE route = 'GET /a' AND minute = '2026-03-02 12:00Z'),
          '3/2', 'a later batch adds to the same minute');

SELECT ops.set_route_slo('GET /slow', 1, 5, 'alice', 100, 5);
SELECT ops.record_requests('[{"route": "GET /slow", "status": 200, "latency_ms": 150, "at": "2026-03-02T12:00:30Z"},
                             {"route": "GET /slow", "status": 200, "latency_ms": 100, "at": "2026-03-02T12:00:30Z"}]');
SELECT is((SELECT slow FROM ops.route_minute_stats WHERE route = 'GET /slow'), 1,
          'requests over the route''s latency threshold count as slow (at the threshold: not)');

CREATE TEMP TABLE before AS SELECT sum(requests) AS n FROM ops.route_minute_stats;
SELECT throws_ok($$SELECT ops.record_requests('[{"route": "GET /a", "status": 200, "latency_ms": 1, "at": "2026-03-02T12:00:00Z"},
                                                {"route": "GET /a", "status": "oops", "latency_ms": 1, "at": "2026-03-02T12:00:00Z"}]')$$,
                 '22023', 'sample 1: status must be an HTTP status code (100-599)', 'a bad sample is named');
SELECT throws_ok($$SELECT ops.record_requests('[{"route": "GET /a", "status": 200, "latency_ms": 1, "at": "yesterday"}]')$$,
                 '22023', 'sample 0: at must be an ISO 8601 time with a zone', 'times need a zone');
SELECT throws_ok($$SELECT ops.record_requests('{"route": "GET /a"}')$$, '22023', NULL, 'a batch is an array');
SELECT throws_ok($$SELECT ops.record_requests('[{"route": "", "status": 200, "latency_ms": 1, "at": "2026-03-02T12:00:00Z"}]')$$,
                 '22023', NULL, 'an empty route is refused');
SELECT is((SELECT sum(requests) FROM ops.route_minute_stats), (SELECT n FROM before), 'rejected batches wrote nothing');

SELECT * FROM finish();
ROLLBACK;
