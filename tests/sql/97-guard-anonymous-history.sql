-- What anonymous (unsigned) callers can make the database keep is bounded in bytes: their
-- evaluations are a capped history (guard_anonymous_history_mb), the oldest going as new ones
-- come, while signed callers' (and operators') evaluations are kept in full. The answer is the
-- same either way. The clock: 2026-03-02 12:00 UTC.
BEGIN;
SELECT plan(12);

SELECT ops.set_setting('guard_anonymous_history_mb', '1', 'alice');
SELECT ops.trigger_incident('GET /held::x', 'critical', 'GET /held', p_now => '2026-03-02 11:59:30Z');

-- signed callers first: ten answers of their own (a fresh prefix each), all kept
CREATE TEMP TABLE signed AS
SELECT (ops.release_guard('2026-03-02 12:00Z'::timestamptz + make_interval(secs => g), 'GET /signed/' || g,
                          'ci-signed', '{"commit": "s1"}', FALSE) ->> 'evaluationId')::bigint AS id
FROM generate_series(1, 10) AS g;

-- then 1,000 anonymous ones, each with a fresh prefix (no repeats), a 200-character caller and
-- the largest context that is kept whole (512 bytes): about 1.7 MB, over a 1 MB cap
CREATE TEMP TABLE anon AS
SELECT
    g,
    ops.release_guard('2026-03-02 12:01Z'::timestamptz + make_interval(secs => g), 'GET /anon/' || g,
                      repeat('u', 200), jsonb_build_object('commit', repeat('c', 490)), TRUE) AS v
FROM generate_series(1, 1000) AS g;

SELECT cmp_ok((SELECT sum(pg_column_size(e.*)) FROM ops.guard_evaluations AS e WHERE e.anonymous_bytes IS NOT NULL),
              '<=', 1048576::bigint, 'the anonymous rows kept hold at most the cap of 1 MB');
SELECT cmp_ok((SELECT count(*) FROM ops.guard_evaluations WHERE anonymous_bytes IS NOT NULL), '>', 200::bigint,
              'the anonymous rows kept fill most of the cap (not a handful of rows)');
SELECT is((SELECT bytes FROM ops.guard_anonymous_usage),
          (SELECT sum(anonymous_bytes) FROM ops.guard_evaluations), 'the running total is the sum of the rows kept');
SELECT ok(NOT EXISTS (SELECT FROM ops.guard_evaluations WHERE route_prefix = 'GET /anon/1'),
          'the oldest anonymous evaluations went');
SELECT ok(EXISTS (SELECT FROM ops.guard_evaluations WHERE route_prefix = 'GET /anon/1000'),
          'the newest anonymous evaluation stayed');
SELECT is((SELECT count(*)::int FROM ops.guard_evaluations WHERE id IN (SELECT id FROM signed)), 10,
          'every signed evaluation stayed');
SELECT is((SELECT v - 'evaluationId' - 'evaluatedAt' - 'routePrefix' FROM anon WHERE g = 1000),
          (ops.release_guard('2026-03-02 13:00Z', 'GET /anon/1000', 'ci', '{}', FALSE)
           - 'evaluationId' - 'evaluatedAt' - 'routePrefix'),
          'an anonymous caller gets the same answer as a signed one');
SELECT is((SELECT (v ->> 'failingCount')::int FROM anon WHERE g = 1), 0,
          'an anonymous caller gets a clear answer for a prefix without incidents');

-- the metric of every evaluation still counts the trimmed ones
SELECT is((SELECT sum(value)::int FROM ops.collect_metrics('2026-03-02 13:05Z') WHERE metric = 'opsguard_guard_evaluations'),
          1011, 'opsguard_guard_evaluations counts every evaluation, trimmed or kept');

-- an anonymous context is kept tighter: over 512 bytes only its CI keys, 64 characters each
CREATE TEMP TABLE ctx AS
SELECT (ops.release_guard('2026-03-02 13:10Z', 'GET /ctx', 'x',
                          jsonb_build_object('commit', repeat('c', 100), 'pad', repeat('p', 600)), TRUE)
        ->> 'evaluationId')::bigint AS id;
SELECT is((SELECT context FROM ops.guard_evaluations WHERE id = (SELECT id FROM ctx)),
          jsonb_build_object('commit', repeat('c', 64), 'truncated', TRUE, 'bytes', 725),
          'an anonymous context over 512 bytes keeps its CI keys, cut to 64 characters');

-- the cap is a validated setting, and a purge by age keeps the running total right
SELECT throws_ok($$SELECT ops.set_setting('guard_anonymous_history_mb', '0', 'alice')$$, '22003', NULL,
                 'a cap of 0 MB is refused');
DELETE FROM ops.guard_evaluations WHERE route_prefix LIKE 'GET /anon/9%';
SELECT is((SELECT bytes FROM ops.guard_anonymous_usage),
          (SELECT coalesce(sum(anonymous_bytes), 0) FROM ops.guard_evaluations),
          'the running total of anonymous bytes stays right whoever deletes rows');

SELECT * FROM finish();
ROLLBACK;
