-- Guard windows slide to the minute (docs/release-guard.md): each burn-rate window spans exactly its length,
-- ending with p_now's minute, so a pair fires when the SRE workbook's arithmetic says so
-- (detection after W·k·b/e minutes of a steady error rate e, budget b, factor k, clean history
-- before): the fast pair within a minute, the slow pair within five, never before. Plus the
-- non-blocking 3d/6h ticket tier, retention that keeps the 3 days, and exact SLO targets.
BEGIN;
SELECT plan(33);

-- p_minutes minutes from p_from, each with p_n requests of which p_e are 5xx, in one batch
CREATE FUNCTION pg_temp.feed(p_route text, p_from timestamptz, p_minutes int, p_n int, p_e int) RETURNS void
LANGUAGE sql AS $$
    SELECT ops.record_requests(jsonb_agg(jsonb_build_object(
        'route', p_route, 'status', CASE WHEN g <= p_e THEN 500 ELSE 200 END, 'latency_ms', 10,
        'at', p_from + make_interval(mins => m, secs => 30))))
    FROM generate_series(0, p_minutes - 1) AS m, generate_series(1, p_n) AS g
$$;

-- Errors start at p_t0 on a route with 6 h of clean history at the same traffic. Minute by
-- minute: record that minute, evaluate at its last second (the minute's requests are in by
-- then, so t whole minutes of errors have been seen), and note when each pair first fires.
CREATE FUNCTION pg_temp.first_fires(p_route text, p_t0 timestamptz, p_n int, p_e int, p_max int)
RETURNS TABLE (fast int, slow int)
LANGUAGE plpgsql AS $$
DECLARE
    v_fast int;
    v_slow int;
    v_ev jsonb;
BEGIN
    PERFORM pg_temp.feed(p_route, p_t0 - interval '6 hours', 360, p_n, 0);
    FOR i IN 0 .. p_max - 1 LOOP
        PERFORM pg_temp.feed(p_route, p_t0 + make_interval(mins => i), 1, p_n, p_e);
        SELECT f.evidence INTO v_ev
        FROM ops.route_findings(p_t0 + make_interval(mins => i + 1) - interval '1 second', p_route) AS f
        WHERE f.reason = 'slo_violation' AND f.verdict = 'violation';
        IF v_fast IS NULL AND (v_ev #>> '{pairs,0,fired}')::boolean THEN v_fast := i + 1; END IF;
        IF v_slow IS NULL AND (v_ev #>> '{pairs,1,fired}')::boolean THEN v_slow := i + 1; END IF;
        EXIT WHEN v_fast IS NOT NULL AND v_slow IS NOT NULL;
    END LOOP;
    RETURN QUERY SELECT v_fast, v_slow;
END;
$$;

-- the workbook's detection time in minutes: the long window W of a pair, factor k, budget b, error rate e
CREATE FUNCTION pg_temp.workbook(p_w int, p_k numeric, p_budget numeric, p_err numeric) RETURNS numeric
LANGUAGE sql AS $$ SELECT p_w * p_k * p_budget / p_err $$;

CREATE TEMP TABLE fired (scenario text PRIMARY KEY, fast int, slow int);

-- 1. The field test's case: 99.9 % SLO, a steady 0.7 % error rate. The fast pair (14.4 x 0.1 %
--    = 1.44 %) never fires; the slow pair fires at 360·6·0.001/0.007 = 308.6 min (the hour-grained
--    6h window fired at 361). Errors start at 06:23, mid-bucket and mid-hour.
SELECT ops.set_route_slo('GET /w/a', 0.1, 5, 'alice');
INSERT INTO fired
SELECT
    'a' AS scenario,
    f.fast,
    f.slow
FROM pg_temp.first_fires('GET /w/a', '2026-03-02 06:23Z', 1000, 7, 315) AS f;
SELECT is((SELECT fast FROM fired WHERE scenario = 'a'), NULL, '0.7 % at 99.9 %: the fast pair never fires');
SELECT cmp_ok((SELECT slow FROM fired WHERE scenario = 'a')::numeric, '>', pg_temp.workbook(360, 6, 0.001, 0.007),
              '0.7 % at 99.9 %: the slow pair does not fire before 308.6 min');
SELECT cmp_ok((SELECT slow FROM fired WHERE scenario = 'a')::numeric, '<=', pg_temp.workbook(360, 6, 0.001, 0.007) + 5,
              '0.7 % at 99.9 %: the slow pair fires within 5 minutes of 308.6 min');

-- 2. 99.9 % SLO, 2 % errors: fast pair at 60·14.4·0.001/0.02 = 43.2 min, slow pair at 108 min
--    (exactly 6x at 108: it must not fire until past it). Errors start at 09:07.
SELECT ops.set_route_slo('GET /w/b', 0.1, 5, 'alice');
INSERT INTO fired
SELECT
    'b' AS scenario,
    f.fast,
    f.slow
FROM pg_temp.first_fires('GET /w/b', '2026-03-02 09:07Z', 50, 1, 115) AS f;
SELECT cmp_ok((SELECT fast FROM fired WHERE scenario = 'b')::numeric, '>', pg_temp.workbook(60, 14.4, 0.001, 0.02),
              '2 % at 99.9 %: the fast pair does not fire before 43.2 min');
SELECT cmp_ok((SELECT fast FROM fired WHERE scenario = 'b')::numeric, '<=', pg_temp.workbook(60, 14.4, 0.001, 0.02) + 1,
              '2 % at 99.9 %: the fast pair fires within a minute of 43.2 min');
SELECT cmp_ok((SELECT slow FROM fired WHERE scenario = 'b')::numeric, '>', pg_temp.workbook(360, 6, 0.001, 0.02),
              '2 % at 99.9 %: the slow pair does not fire at or before 108 min');
SELECT cmp_ok((SELECT slow FROM fired WHERE scenario = 'b')::numeric, '<=', pg_temp.workbook(360, 6, 0.001, 0.02) + 5,
              '2 % at 99.9 %: the slow pair fires within 5 minutes of 108 min');

-- 3. 99.9 % SLO, 10 % errors: fast pair at 8.64 min, slow pair at 21.6 min. Errors start at 11:58,
--    so the windows cross an hour boundary while it burns.
SELECT ops.set_route_slo('GET /w/c', 0.1, 5, 'alice');
INSERT INTO fired
SELECT
    'c' AS scenario,
    f.fast,
    f.slow
FROM pg_temp.first_fires('GET /w/c', '2026-03-02 11:58Z', 10, 1, 30) AS f;
SELECT cmp_ok((SELECT fast FROM fired WHERE scenario = 'c')::numeric, '>', pg_temp.workbook(60, 14.4, 0.001, 0.1),
              '10 % at 99.9 %: the fast pair does not fire before 8.64 min');
SELECT cmp_ok((SELECT fast FROM fired WHERE scenario = 'c')::numeric, '<=', pg_temp.workbook(60, 14.4, 0.001, 0.1) + 1,
              '10 % at 99.9 %: the fast pair fires within a minute of 8.64 min');
SELECT cmp_ok((SELECT slow FROM fired WHERE scenario = 'c')::numeric, '>', pg_temp.workbook(360, 6, 0.001, 0.1),
              '10 % at 99.9 %: the slow pair does not fire before 21.6 min');
SELECT cmp_ok((SELECT slow FROM fired WHERE scenario = 'c')::numeric, '<=', pg_temp.workbook(360, 6, 0.001, 0.1) + 5,
              '10 % at 99.9 %: the slow pair fires within 5 minutes of 21.6 min');

-- 4. A 99 % SLO (the default 1 % budget), 25 % errors: fast pair at 34.56 min, slow at 86.4 min.
INSERT INTO fired
SELECT
    'd' AS scenario,
    f.fast,
    f.slow
FROM pg_temp.first_fires('GET /w/d', '2026-03-02 13:41Z', 4, 1, 95) AS f;
SELECT cmp_ok((SELECT fast FROM fired WHERE scenario = 'd')::numeric, '>', pg_temp.workbook(60, 14.4, 0.01, 0.25),
              '25 % at 99 %: the fast pair does not fire before 34.56 min');
SELECT cmp_ok((SELECT fast FROM fired WHERE scenario = 'd')::numeric, '<=', pg_temp.workbook(60, 14.4, 0.01, 0.25) + 1,
              '25 % at 99 %: the fast pair fires within a minute of 34.56 min');
SELECT cmp_ok((SELECT slow FROM fired WHERE scenario = 'd')::numeric, '>', pg_temp.workbook(360, 6, 0.01, 0.25),
              '25 % at 99 %: the slow pair does not fire before 86.4 min');
SELECT cmp_ok((SELECT slow FROM fired WHERE scenario = 'd')::numeric, '<=', pg_temp.workbook(360, 6, 0.01, 0.25) + 5,
              '25 % at 99 %: the slow pair fires within 5 minutes of 86.4 min');

-- Each window counts exactly its minutes, wherever p_now falls in a bucket or an hour:
-- one failing request a minute for 8 hours, evidence read at several seconds of the clock.
SELECT ops.set_route_slo('GET /w/exact', 1, 1, 'alice');
SELECT pg_temp.feed('GET /w/exact', '2026-03-03 00:00Z', 480, 1, 1);
SELECT is((SELECT jsonb_agg(ARRAY[(f.evidence #>> '{windows,5m,samples}')::int, (f.evidence #>> '{windows,30m,samples}')::int,
                                  (f.evidence #>> '{windows,1h,samples}')::int, (f.evidence #>> '{windows,6h,samples}')::int]
                            ORDER BY u.t)
           FROM unnest(ARRAY['2026-03-03 07:00:00Z', '2026-03-03 07:02:59Z', '2026-03-03 07:34:30Z',
                             '2026-03-03 07:59:59Z']::timestamptz[]) AS u (t),
                ops.route_findings(u.t, 'GET /w/exact') AS f
           WHERE f.reason = 'slo_violation'),
          '[[5, 30, 60, 360], [5, 30, 60, 360], [5, 30, 60, 360], [5, 30, 60, 360]]'::jsonb,
          'the 5m, 30m, 1h and 6h windows hold exactly 5, 30, 60 and 360 minutes');

-- hard_error_threshold (5m): one bad minute is seen for exactly 5 minutes, not 6
SELECT pg_temp.feed('GET /w/blip', '2026-03-03 09:12Z', 1, 10, 10);
SELECT is((SELECT array_agg(coalesce((SELECT f.verdict FROM ops.route_findings(u.t, 'GET /w/blip') AS f
                                      WHERE f.reason = 'hard_error_threshold'), 'healthy') ORDER BY u.t)
           FROM unnest(ARRAY['2026-03-03 09:12:40Z', '2026-03-03 09:16:59Z', '2026-03-03 09:17:00Z']::timestamptz[]) AS u (t)),
          ARRAY['violation', 'violation', 'healthy'], 'a bad minute leaves the 5-minute window 5 minutes later');

-- The ticket tier: 3 days and 6 h above 1x the budget, below either page pair. One sample batch an
-- hour for 3.5 days up to p_now, 1.5 % errors against the default 1 % budget (burn 1.5).
SELECT pg_temp.feed('GET /w/ticket', '2026-03-06 00:30Z'::timestamptz + make_interval(hours => h), 1, 200, 3)
FROM generate_series(0, 83) AS h;
SELECT pg_temp.feed('GET /w/fine', '2026-03-06 00:30Z'::timestamptz + make_interval(hours => h), 1, 200, 1)
FROM generate_series(0, 83) AS h;
SELECT is((SELECT verdict FROM ops.route_findings('2026-03-09 12:00:30Z', 'GET /w/ticket') WHERE reason = 'slo_burn_ticket'),
          'ticket', '1.5x the budget over 3 days and 6 hours: a ticket');
SELECT is((SELECT count(*) FROM ops.route_findings('2026-03-09 12:00:30Z', 'GET /w/ticket') WHERE reason = 'slo_violation'),
          0::bigint, '1.5x the budget over 3 days and 6 hours: no page');
SELECT is((SELECT count(*) FROM ops.route_findings('2026-03-09 12:00:30Z', 'GET /w/fine')), 0::bigint,
          '0.5x the budget: nothing at all');
-- 72 hourly batches of 200 fall in the 3 days; the oldest day is pro-rated (even traffic assumed)
SELECT cmp_ok(abs((SELECT (evidence #>> '{windows,3d,samples}')::numeric FROM ops.route_findings('2026-03-09 12:00:30Z', 'GET /w/ticket')
                   WHERE reason = 'slo_burn_ticket') - 72 * 200), '<=', 200::numeric,
              'the 3-day window holds 3 days of requests');
SELECT is((SELECT w -> 'message' FROM jsonb_array_elements(ops.release_guard('2026-03-09 12:00:30Z', 'GET /w/ticket') -> 'warnings') AS w
           WHERE w ->> 'key' = 'GET /w/ticket::slo_burn_ticket'),
          '"error budget burning faster than it refills (3d and 6h): open a ticket; not blocking"'::jsonb,
          'the guard lists the ticket under warnings');
SELECT is((ops.release_guard('2026-03-09 12:00:30Z', 'GET /w/ticket') ->> 'ok')::boolean, TRUE, 'the ticket tier does not block the guard');
SELECT ops.set_setting('guard_block_inconclusive', 'true', 'alice');
SELECT is((ops.release_guard('2026-03-09 12:00:30Z', 'GET /w/ticket') ->> 'failingCount')::int, 0,
          'not even when inconclusive windows block');
SELECT ops.set_setting('guard_block_inconclusive', 'false', 'alice');
-- a page supersedes the ticket: the same route burning at 10 % for the last hour
SELECT pg_temp.feed('GET /w/ticket', '2026-03-09 11:01Z', 60, 100, 10);
SELECT is((SELECT array_agg(reason ORDER BY reason) FROM ops.route_findings('2026-03-09 12:00:30Z', 'GET /w/ticket')),
          ARRAY['slo_violation'], 'while a page fires, its ticket is not listed');

-- Retention keeps the daily rollups 3-day windows read, whatever guard_rollup_retention_days says
SELECT ops.set_setting('guard_rollup_retention_days', '1', 'alice');
SELECT ops.purge_guard_history('2026-03-09 12:30Z');
SELECT is((SELECT count(*) FROM ops.route_day_stats WHERE route = 'GET /w/ticket'), 4::bigint,
          'a 1-day retention still keeps the 4 daily rollups a 3-day window touches');
SELECT is((SELECT count(*) FROM ops.route_minute_stats WHERE route = 'GET /w/ticket' AND minute < '2026-03-08 12:30Z'), 0::bigint,
          'a 1-day retention purges the minute rollups after 1 day');
SELECT ops.purge_guard_history('2026-03-11 00:30Z');
SELECT is((SELECT min(day) FROM ops.route_day_stats WHERE route = 'GET /w/ticket'), '2026-03-08 00:00Z'::timestamptz,
          'daily rollups older than 4 days go');

-- SLO targets are stored exactly: 99.9999 % and 99.9985 % SLOs
SELECT is((ops.set_route_slo('GET /w/six9', 0.0001, 5, 'alice')).error_pct_target, 0.0001,
          'a 99.9999 % SLO (0.0001 % budget) is stored as given');
SELECT is((ops.set_route_slo('GET /w/odd', 0.0015, 5, 'alice')).error_pct_target, 0.0015, '0.0015 is not rounded to 0.002');
SELECT throws_ok($$SELECT ops.set_route_slo('GET /w/zero', 0, 5, 'alice')$$, '22023', NULL, 'a zero budget is 22023');
SELECT throws_ok($$SELECT ops.set_route_slo('GET /w/lat', 1, 5, 'alice', 300, 100)$$, '22023', NULL,
                 'a latency target of 100 % is 22023, not a constraint''s 23514');
SELECT throws_ok($$SELECT ops.set_route_slo('GET /w/lat', 1, 5, 'alice', 300, NULL)$$, '22023', NULL,
                 'half a latency objective is 22023');

SELECT * FROM finish();
ROLLBACK;
