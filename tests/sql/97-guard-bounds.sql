-- The open release guard is cheap to abuse (docs/release-guard.md): each list holds at most
-- 100 items while failingCount stays exact, an unchanged answer adds no row (the stored one
-- counts repeats and keeps the last time), and what an anonymous caller sends is stored capped.
-- The clock: 2026-03-02 12:00:30 UTC.
BEGIN;
SELECT plan(29);

-- 150 open critical incidents seen a minute ago, on routes GET /many/1 .. /150
CREATE TEMP TABLE inc AS
SELECT
    g,
    (ops.trigger_incident('GET /many/' || g || '::x', 'critical', 'GET /many/' || g,
                          p_now => '2026-03-02 11:59:30Z')).id AS id
FROM generate_series(1, 150) AS g;

CREATE TEMP TABLE r AS SELECT ops.release_guard('2026-03-02 12:00:30Z') AS v;
SELECT is((SELECT (v ->> 'failingCount')::int FROM r), 150, '150 blocking incidents: failingCount 150, exact');
SELECT is((SELECT jsonb_array_length(v -> 'failing') FROM r), 100, '150 blocking incidents: 100 of them listed under failing');
SELECT is((SELECT jsonb_array_length(v -> 'incidents') FROM r), 100, '150 blocking incidents: 100 of them listed under incidents');
SELECT is((SELECT v -> 'truncated' FROM r), 'true'::jsonb, 'a guard answer cut to 100 items says truncated: true');
SELECT is((SELECT v ->> 'ok' FROM r), 'false', 'a guard answer with 150 blocking incidents blocks');
SELECT is((SELECT array_agg(el.e ->> 'key' ORDER BY el.o) FROM r, jsonb_array_elements(v -> 'failing') WITH ORDINALITY AS el (e, o)),
          (SELECT array_agg(k ORDER BY k)
           FROM (SELECT item_key AS k FROM ops._guard_items('2026-03-02 12:00:30Z', NULL) ORDER BY item_key LIMIT 100) AS s),
          'the listed ones are the first 100 in key order, as _guard_items lists them');
SELECT is((SELECT count(*)::int FROM ops._guard_items('2026-03-02 12:00:30Z', NULL) WHERE kind = 'incident'), 150,
          'failingCount agrees with _guard_items');
SELECT is((SELECT jsonb_build_array(v -> 'failing' -> 0 ? 'incidentKey', v -> 'failing' -> 0 ->> 'severity')
           FROM r), '[true, "critical"]', 'listed items keep their shape');

-- scoped to fewer than 100: nothing cut
SELECT is((SELECT jsonb_build_object('n', v -> 'failingCount', 'listed', jsonb_array_length(v -> 'failing'), 't', v -> 'truncated')
           FROM (SELECT ops.release_guard('2026-03-02 12:00:30Z', 'GET /many/1') AS v) AS s),
          '{"n": 62, "listed": 62, "t": false}', 'GET /many/1 prefix (/1, /10-19, /100-150): 62 items, all listed, truncated false');

-- an exempted incident among the first 100: still listed under incidents, the next one takes its place in failing
SELECT ops.override_guard_item('incident:' || (SELECT min(id::text) FROM inc), 'INC-7 known', 30, 'ops-bot',
                               '2026-03-02 12:00:30Z');
CREATE TEMP TABLE x AS SELECT ops.release_guard('2026-03-02 12:00:31Z') AS v;
SELECT is((SELECT (v ->> 'failingCount')::int FROM x), 149, 'one exempted: failingCount 149');
SELECT is((SELECT jsonb_array_length(v -> 'failing') FROM x), 100, 'one of 150 incidents exempted: still 100 listed under failing');
SELECT ok((SELECT NOT (v -> 'failing') @> jsonb_build_array(jsonb_build_object('key', 'incident:' || (SELECT min(id::text) FROM inc)))
           FROM x), 'the exempted incident is not listed under failing');
SELECT is((SELECT v #>> '{incidents,0,exempted,reason}' FROM x), 'INC-7 known',
          'the exempted incident stays listed under incidents, marked with its reason');

-- opsguard_guard_evaluations, the metric of every evaluation
CREATE FUNCTION pg_temp.evaluations_counted() RETURNS float8
LANGUAGE sql AS $$
    SELECT sum(value) FROM ops.collect_metrics('2026-03-02 12:05Z') WHERE metric = 'opsguard_guard_evaluations'
$$;

-- 1,000 evaluations with an unchanged answer, from anonymous callers sending what they like
-- (scoped to GET /many: the same items, but no answer for that prefix is stored yet)
CREATE TEMP TABLE before AS
SELECT
    (SELECT count(*) FROM ops.guard_evaluations) AS n,
    pg_total_relation_size('ops.guard_evaluations') AS bytes,
    (SELECT max(id) FROM ops.guard_evaluations) AS last_id,
    pg_temp.evaluations_counted() AS counted;
CREATE TEMP TABLE evals AS
SELECT
    g,
    (ops.release_guard('2026-03-02 12:01:00Z'::timestamptz + make_interval(secs => g / 10.0),
                             'GET /many', 'anon-' || g || repeat('x', 5000),
                             jsonb_build_object('webhook', repeat(md5(g::text), 200), 'commit', 'c' || g))
          ->> 'evaluationId')::bigint AS eval_id
FROM generate_series(1, 1000) AS g;
SELECT is((SELECT count(*)::int FROM ops.guard_evaluations) - (SELECT n::int FROM before), 1,
          '1,000 unchanged evaluations add one row');
SELECT is((SELECT count(DISTINCT eval_id)::int FROM evals), 1, '1,000 unchanged evaluations all return the one row''s evaluationId');
SELECT is((SELECT jsonb_build_object('repeats', repeats, 'first', evaluated_at, 'last', last_evaluated_at)
           FROM ops.guard_evaluations WHERE id = (SELECT max(eval_id) FROM evals)),
          jsonb_build_object('repeats', 1000, 'first', '2026-03-02 12:01:00.1Z'::timestamptz,
                             'last', '2026-03-02 12:02:40Z'::timestamptz),
          'the one row of 1,000 unchanged evaluations counts 1000 (repeats: evaluations it stands for) and keeps the first and last time');
SELECT cmp_ok(pg_total_relation_size('ops.guard_evaluations') - (SELECT bytes FROM before), '<', 1024 * 1024::bigint,
              '1,000 unchanged evaluations grow guard_evaluations by less than 1 MB');
SELECT is(pg_temp.evaluations_counted() - (SELECT counted FROM before), 1000::float8,
          'the opsguard_guard_evaluations metric counts each of 1,000 unchanged evaluations');
SELECT is((SELECT length(caller) FROM ops.guard_evaluations WHERE id = (SELECT max(eval_id) FROM evals)), 200,
          'a 5,000-character caller is stored capped at 200');
SELECT is((SELECT jsonb_build_array(context - 'bytes', (context ->> 'bytes')::int > 6400)
           FROM ops.guard_evaluations WHERE id = (SELECT max(eval_id) FROM evals)),
          '[{"commit": "c1", "truncated": true}, true]', 'a context over 2 KiB keeps its CI keys and its size, not the rest');

-- a change in the answer adds a row; the same answer again counts on the new row
SELECT ops.ack_incident(id, 'alice', p_now => '2026-03-02 12:03:00Z') FROM inc WHERE id::text = (SELECT max(i.id::text) FROM inc AS i);
SELECT is((ops.release_guard('2026-03-02 12:03:10Z', 'GET /many') ->> 'failingCount')::int, 148, 'an ack changes the answer');
SELECT is((SELECT count(*)::int FROM ops.guard_evaluations) - (SELECT n::int FROM before), 2,
          'an answer changed by an ack adds a row to guard_evaluations');
SELECT ops.ack_incident(id, 'alice', p_now => '2026-03-02 12:03:00Z') FROM inc WHERE id::text < (SELECT max(i.id::text) FROM inc AS i);
SELECT is((ops.release_guard('2026-03-02 12:03:20Z', 'GET /many') ->> 'ok'), 'true', 'all acked: clear');
SELECT is((SELECT array_agg(ok ORDER BY id) FROM ops.guard_evaluations WHERE id > (SELECT last_id FROM before)),
          ARRAY[FALSE, FALSE, TRUE], 'a change of verdict (blocking to clear) adds a row to guard_evaluations');
SELECT is((ops.release_guard('2026-03-02 12:03:30Z', 'GET /many') ->> 'evaluationId')::bigint,
          (SELECT max(id) FROM ops.guard_evaluations), 'the same clear answer again: the clear row''s id');
SELECT is((SELECT repeats::int FROM ops.guard_evaluations ORDER BY id DESC LIMIT 1), 2,
          'the same clear answer again counts on the clear row (repeats 2)');

-- the previous answer is the one for the same route prefix: two pipelines alternating add a row each
SELECT ops.release_guard('2026-03-02 12:04:00Z'::timestamptz + make_interval(secs => g), p)
FROM generate_series(1, 5) AS g, unnest(ARRAY['GET /many/1', 'GET /many/2']) AS p;
SELECT is((SELECT array_agg(repeats::int ORDER BY route_prefix) FROM ops.guard_evaluations
           WHERE route_prefix IN ('GET /many/1', 'GET /many/2') AND evaluated_at >= '2026-03-02 12:04Z'),
          ARRAY[5, 5], 'alternating prefixes: one row each, 5 repeats each');

SELECT throws_ok($$SELECT ops.release_guard('2026-03-02 12:05Z', repeat('x', 501))$$, '22023', NULL,
                 'a route prefix longer than any incident key is refused');
SELECT throws_ok($$SELECT ops.release_guard(NULL)$$, '22004', NULL, 'a time is still required');

SELECT * FROM finish();
ROLLBACK;
