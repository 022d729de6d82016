-- The shared rate limit windows (ops.api_rate_limit_*): a moving window per key that every API
-- instance counts in, refusing the request that would exceed the limit, sliding with p_now.
BEGIN;
SELECT plan(10);

SELECT ok(ops.api_rate_limit_acquire('k', 2, 60, 1, '2026-01-01 00:00:00Z'), 'the first request of a window is let through');
SELECT ok(ops.api_rate_limit_acquire('k', 2, 60, 1, '2026-01-01 00:00:10Z'), 'the second of a limit of two is let through');
SELECT ok(NOT ops.api_rate_limit_acquire('k', 2, 60, 1, '2026-01-01 00:00:20Z'), 'the third within 60 s is refused');
SELECT is((SELECT count(*)::int FROM ops.rate_limit_hits WHERE key = 'k'), 2, 'a refused request is not counted');
SELECT is((SELECT r_count FROM ops.api_rate_limit_window('k', 60, '2026-01-01 00:00:30Z')), 2,
          'the window counts the requests of the last 60 s');
SELECT ok(ops.api_rate_limit_acquire('k', 2, 60, 1, '2026-01-01 00:01:00.5Z'), 'the window moves: the oldest request left it');
SELECT ok(ops.api_rate_limit_acquire('other', 2, 60, 1, '2026-01-01 00:00:20Z'), 'another key has its own window');
SELECT is(ops.api_rate_limit_clear('k'), 2, 'clearing a key forgets its requests');
SELECT throws_ok($$SELECT ops.api_rate_limit_acquire('', 2, 60)$$, '22023', NULL, 'an empty key is refused');
SELECT throws_ok($$SELECT ops.api_rate_limit_acquire('k', 0, 60)$$, '22023', NULL, 'a limit below one is refused');

SELECT * FROM finish();
ROLLBACK;
