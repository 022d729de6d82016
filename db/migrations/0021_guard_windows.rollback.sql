-- 0021 undone: the functions as 0019 left them (route_findings and _guard_items with SQL-standard
-- bodies, which need the columns back first), no daily rollups, targets back to numeric(6,3)
DROP FUNCTION ops._burn_window(float8, float8, float8);
DROP TABLE ops.route_day_stats;
ALTER TABLE ops.route_slos ALTER COLUMN error_pct_target TYPE numeric(6, 3),
ALTER COLUMN latency_target_pct TYPE numeric(6, 3);

-- noqa: disable=all
CREATE OR REPLACE FUNCTION ops.route_findings(p_now timestamptz DEFAULT pg_catalog.now(), p_route_prefix text DEFAULT NULL)
RETURNS TABLE (route text, reason text, verdict text, evidence jsonb)
LANGUAGE sql STABLE
BEGIN ATOMIC
    WITH cfg AS MATERIALIZED (
        -- read once: inlined, each reference below re-ran the settings lookups for every route
        SELECT ops.setting('guard_critical_error_pct')::float8 AS crit_pct,
               ops.setting('guard_hard_error_pct')::float8 AS hard_pct
    ),
    d AS (
        SELECT * FROM ops.route_slos WHERE route = '*'
    ),
    w AS (
        -- window starts, computed once (date_trunc is not folded; per row it was most of the cost).
        -- A window of w covers the buckets that overlap the last w: minutes for 1m and 5m,
        -- 5-minute buckets for 30m and 1h, hours for 6h, so an evaluation reads ~26 rows per route
        SELECT pg_catalog.date_trunc('minute', p_now - interval '1 minute') AS t1,
               pg_catalog.date_trunc('minute', p_now - interval '5 minutes') AS t5,
               pg_catalog.date_bin('5 minutes', p_now - interval '30 minutes', '2000-01-01') AS t30,
               pg_catalog.date_bin('5 minutes', p_now - interval '1 hour', '2000-01-01') AS t60,
               pg_catalog.date_trunc('hour', p_now - interval '6 hours') AS t360
    ),
    parts AS (
        SELECT m.route,
               CASE WHEN m.minute >= w.t1 THEN m.requests ELSE 0 END AS n1,
               CASE WHEN m.minute >= w.t1 THEN m.errors ELSE 0 END AS e1,
               m.requests AS n5, m.errors AS e5, m.slow AS s5,
               0 AS n30, 0 AS e30, 0 AS n60, 0 AS e60, 0 AS n360, 0 AS e360
        FROM w
        INNER JOIN ops.route_minute_stats AS m ON m.minute >= w.t5 AND m.minute <= p_now
        WHERE p_route_prefix IS NULL OR pg_catalog.starts_with(m.route, p_route_prefix)
        UNION ALL
        SELECT f.route, 0, 0, 0, 0, 0,
               CASE WHEN f.bucket >= w.t30 THEN f.requests ELSE 0 END,
               CASE WHEN f.bucket >= w.t30 THEN f.errors ELSE 0 END,
               f.requests, f.errors, 0, 0
        FROM w
        INNER JOIN ops.route_5min_stats AS f ON f.bucket >= w.t60 AND f.bucket <= p_now
        WHERE p_route_prefix IS NULL OR pg_catalog.starts_with(f.route, p_route_prefix)
        UNION ALL
        SELECT h.route, 0, 0, 0, 0, 0, 0, 0, 0, 0, h.requests, h.errors
        FROM w
        INNER JOIN ops.route_hour_stats AS h ON h.hour >= w.t360 AND h.hour <= p_now
        WHERE p_route_prefix IS NULL OR pg_catalog.starts_with(h.route, p_route_prefix)
    ),
    s AS (
        SELECT parts.route, sum(parts.n1) AS n1, sum(parts.e1) AS e1, sum(parts.n5) AS n5, sum(parts.e5) AS e5,
               sum(parts.s5) AS s5, sum(parts.n30) AS n30, sum(parts.e30) AS e30, sum(parts.n60) AS n60,
               sum(parts.e60) AS e60, sum(parts.n360) AS n360, sum(parts.e360) AS e360
        FROM parts
        GROUP BY parts.route
    ),
    r AS (
        SELECT s.*,
               coalesce(o.error_pct_target, d.error_pct_target) AS target,
               coalesce(o.min_samples, d.min_samples) AS min_n,
               coalesce(o.latency_threshold_ms, d.latency_threshold_ms) AS lat_ms,
               coalesce(o.latency_target_pct, d.latency_target_pct) AS lat_pct,
               cfg.crit_pct, cfg.hard_pct
        FROM s
        CROSS JOIN d
        CROSS JOIN cfg
        LEFT JOIN ops.route_slos AS o ON s.route = o.route
    ),
    b AS (
        -- burn rate: the error rate as a multiple of the error budget (the SLO's allowed error share).
        -- Verdicts use float8 (numeric division for 1000 routes x 4 rules was half the cost);
        -- the evidence of the few failing rows is exact numeric
        SELECT r.*,
               r.n5 >= r.min_n AND r.n60 >= r.min_n AS fast_judged,
               r.n30 >= r.min_n AND r.n360 >= r.min_n AS slow_judged,
               CASE WHEN r.n5 > 0 THEN 100 * r.e5::float8 / r.n5 / r.target::float8 END AS burn5,
               CASE WHEN r.n60 > 0 THEN 100 * r.e60::float8 / r.n60 / r.target::float8 END AS burn60,
               CASE WHEN r.n30 > 0 THEN 100 * r.e30::float8 / r.n30 / r.target::float8 END AS burn30,
               CASE WHEN r.n360 > 0 THEN 100 * r.e360::float8 / r.n360 / r.target::float8 END AS burn360
        FROM r
    ),
    v AS (
        -- verdicts first; evidence is built below only for the few rows that have one
        SELECT b.*, f.reason, f.verdict
        FROM b
        CROSS JOIN LATERAL (VALUES
            ('error_rate_critical',
             CASE WHEN b.n1 = 0 THEN NULL
                  WHEN b.n1 < b.min_n THEN 'inconclusive'
                  WHEN 100 * b.e1::float8 / b.n1 >= b.crit_pct THEN 'violation' END),
            ('hard_error_threshold',
             CASE WHEN b.n5 = 0 THEN NULL
                  WHEN b.n5 < b.min_n THEN 'inconclusive'
                  WHEN 100 * b.e5::float8 / b.n5 > b.hard_pct THEN 'violation' END),
            ('slo_violation',
             CASE WHEN (b.fast_judged AND b.burn5 > 14.4 AND b.burn60 > 14.4)
                       OR (b.slow_judged AND b.burn30 > 6 AND b.burn360 > 6) THEN 'violation'
                  -- too little recent traffic to judge either pair; a route idle for 30 minutes is not listed
                  WHEN NOT b.fast_judged AND NOT b.slow_judged AND b.n30 > 0 THEN 'inconclusive' END),
            ('latency_slo',
             CASE WHEN b.lat_ms IS NULL OR b.n5 = 0 THEN NULL
                  WHEN b.n5 < b.min_n THEN 'inconclusive'
                  WHEN 100 * b.s5::float8 / b.n5 > b.lat_pct::float8 THEN 'violation' END)
        ) AS f (reason, verdict)
        WHERE f.verdict IS NOT NULL
    )
    SELECT v.route, v.reason, v.verdict,
           CASE v.reason
               WHEN 'error_rate_critical' THEN pg_catalog.jsonb_build_object(
                   'err_rate_1m', ops._pct(v.e1, v.n1), 'samples_1m', v.n1, 'threshold_pct', v.crit_pct::numeric,
                   'min_samples', v.min_n)
               WHEN 'hard_error_threshold' THEN pg_catalog.jsonb_build_object(
                   'err_rate_5m', ops._pct(v.e5, v.n5), 'samples_5m', v.n5, 'threshold_pct', v.hard_pct::numeric,
                   'min_samples', v.min_n)
               WHEN 'slo_violation' THEN pg_catalog.jsonb_build_object(
                   'error_pct_target', pg_catalog.trim_scale(v.target), 'min_samples', v.min_n,
                   'pairs', pg_catalog.jsonb_build_array(
                       pg_catalog.jsonb_build_object('windows', '5m/1h', 'factor', 14.4, 'judged', v.fast_judged,
                           'fired', v.fast_judged AND v.burn5 > 14.4 AND v.burn60 > 14.4),
                       pg_catalog.jsonb_build_object('windows', '30m/6h', 'factor', 6, 'judged', v.slow_judged,
                           'fired', v.slow_judged AND v.burn30 > 6 AND v.burn360 > 6)),
                   'windows', pg_catalog.jsonb_build_object(
                       '5m', pg_catalog.jsonb_build_object('err_rate', ops._pct(v.e5, v.n5), 'samples', v.n5,
                                                           'burn_rate', pg_catalog.trim_scale(round(v.burn5::numeric, 2))),
                       '30m', pg_catalog.jsonb_build_object('err_rate', ops._pct(v.e30, v.n30), 'samples', v.n30,
                                                            'burn_rate', pg_catalog.trim_scale(round(v.burn30::numeric, 2))),
                       '1h', pg_catalog.jsonb_build_object('err_rate', ops._pct(v.e60, v.n60), 'samples', v.n60,
                                                           'burn_rate', pg_catalog.trim_scale(round(v.burn60::numeric, 2))),
                       '6h', pg_catalog.jsonb_build_object('err_rate', ops._pct(v.e360, v.n360), 'samples', v.n360,
                                                           'burn_rate', pg_catalog.trim_scale(round(v.burn360::numeric, 2)))))
               ELSE pg_catalog.jsonb_build_object(
                   'slow_pct_5m', ops._pct(v.s5, v.n5), 'samples_5m', v.n5, 'threshold_ms', v.lat_ms,
                   'target_pct', pg_catalog.trim_scale(v.lat_pct), 'min_samples', v.min_n)
           END
    FROM v;
END;

CREATE OR REPLACE FUNCTION ops._guard_items(p_now timestamptz, p_route_prefix text)
RETURNS TABLE (item_key text, kind text, inconclusive boolean, item jsonb)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT 'incident:' || i.id, 'incident', false,
           pg_catalog.jsonb_build_object('kind', 'incident', 'key', 'incident:' || i.id, 'id', i.id,
               'incidentKey', i.incident_key, 'route', i.route, 'severity', i.severity,
               'escalationLevel', i.escalation_level, 'lastSeen', i.last_seen)
    FROM ops.incidents AS i
    WHERE i.status = 'open' AND i.acknowledged_at IS NULL AND i.severity = 'critical'
      AND i.last_seen >= p_now - pg_catalog.make_interval(mins => ops.setting('guard_lookback_min')::int)
      AND (p_route_prefix IS NULL OR pg_catalog.starts_with(i.route, p_route_prefix))
    UNION ALL
    SELECT f.route || '::' || f.reason, 'violation', f.verdict = 'inconclusive',
           pg_catalog.jsonb_build_object('kind', 'violation', 'key', f.route || '::' || f.reason,
               'route', f.route, 'reason', f.reason, 'evidence', f.evidence)
    FROM ops.route_findings(p_now, p_route_prefix) AS f;
END;
-- noqa: enable=all
COMMENT ON FUNCTION ops.route_findings(timestamptz, text) IS
'Route health at p_now from the rollups: one row per route and rule that is a violation or inconclusive (too few samples), '
'with evidence. Rules: error_rate_critical (1m), hard_error_threshold (5m), slo_violation (burn rates 5m&1h > 14.4x '
'or 30m&6h > 6x; 30m/1h in 5-minute buckets, 6h in whole hours), latency_slo (5m slow share).';
COMMENT ON FUNCTION ops._guard_items(timestamptz, text) IS
'Internal: blocking incidents (open, unacknowledged, critical, seen within guard_lookback_min) and route findings.';

CREATE OR REPLACE FUNCTION ops.release_guard(
    p_now timestamptz DEFAULT pg_catalog.now(), p_route_prefix text DEFAULT NULL,
    p_caller text DEFAULT NULL, p_context jsonb DEFAULT '{}'
) RETURNS jsonb
LANGUAGE plpgsql
-- the rollup query's cost estimate crosses jit_above_cost, and compiling it took longer
-- (~40 ms) than running it (~18 ms for 1,000 routes): a gate CI calls on every deploy.
-- From the 6th call in a session plpgsql would switch to a generic plan, which cannot
-- see p_now's window bounds and ran ~60 % slower; planning each call costs ~1 ms
SET jit = off
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    v_block_inconclusive boolean := ops.setting('guard_block_inconclusive')::boolean;
    v_result jsonb;
    v_id bigint;
BEGIN
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'release_guard needs a time' USING ERRCODE = '22004';
    END IF;
    WITH items AS (
        SELECT g.*, o.override
        FROM ops._guard_items(p_now, p_route_prefix) AS g
        LEFT JOIN LATERAL (
            SELECT pg_catalog.jsonb_build_object('reason', ov.reason, 'by', ov.created_by, 'expiresAt', ov.expires_at,
                                                 'overrideId', ov.id) AS override
            FROM ops.guard_overrides AS ov
            WHERE ov.item_key = g.item_key AND ov.created_at <= p_now AND ov.expires_at > p_now
            ORDER BY ov.expires_at DESC
            LIMIT 1
        ) AS o ON true
    ),
    marked AS (
        SELECT items.*,
               items.item || CASE WHEN items.override IS NOT NULL
                                  THEN pg_catalog.jsonb_build_object('exempted', items.override)
                                  ELSE '{}' END AS shown,
               items.override IS NULL AND (NOT items.inconclusive OR v_block_inconclusive) AS counts
        FROM items
    )
    SELECT pg_catalog.jsonb_build_object(
        'ok', NOT coalesce(bool_or(m.counts), false),
        'failingCount', count(*) FILTER (WHERE m.counts),
        'failing', coalesce(pg_catalog.jsonb_agg(m.shown ORDER BY m.kind, m.item_key) FILTER (WHERE m.counts), '[]'),
        'incidents', coalesce(pg_catalog.jsonb_agg(m.shown ORDER BY m.item_key) FILTER (WHERE m.kind = 'incident'), '[]'),
        'violations', coalesce(pg_catalog.jsonb_agg(m.shown ORDER BY m.item_key)
                               FILTER (WHERE m.kind = 'violation' AND NOT m.inconclusive), '[]'),
        'warnings', coalesce(pg_catalog.jsonb_agg(m.shown || pg_catalog.jsonb_build_object(
                                 'message', 'too few samples to judge; not blocking'
                                            || CASE WHEN v_block_inconclusive THEN ' (blocking: guard_block_inconclusive)' ELSE '' END))
                             FILTER (WHERE m.inconclusive), '[]'),
        'evaluatedAt', p_now,
        'routePrefix', p_route_prefix,
        'thresholds', pg_catalog.jsonb_build_object(
            'lookbackMin', ops.setting('guard_lookback_min'),
            'criticalErrorPct', ops.setting('guard_critical_error_pct'),
            'hardErrorPct', ops.setting('guard_hard_error_pct'),
            'burnRatePairs', '[{"windows": "5m/1h", "factor": 14.4}, {"windows": "30m/6h", "factor": 6}]'::jsonb,
            'blockInconclusive', v_block_inconclusive))
    INTO v_result
    FROM marked AS m;

    INSERT INTO ops.guard_evaluations (evaluated_at, ok, failing_count, route_prefix, caller, context, result)
    VALUES (p_now, (v_result ->> 'ok')::boolean, (v_result ->> 'failingCount')::int, p_route_prefix, p_caller,
            coalesce(p_context, '{}'), v_result)
    RETURNING id INTO v_id;
    RETURN v_result || pg_catalog.jsonb_build_object('evaluationId', v_id);
END;
$$;
COMMENT ON FUNCTION ops.release_guard(timestamptz, text, text, jsonb) IS
'May a release proceed? ok=false while an open unacknowledged critical incident was seen within guard_lookback_min or a route '
'violates a rule (route_findings). Exempted items stay listed, marked, and do not count. Every evaluation is stored.';

CREATE OR REPLACE FUNCTION ops.purge_guard_history(p_now timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_rollups int;
    v_evaluations int;
BEGIN
    DELETE FROM ops.route_minute_stats
    WHERE minute < p_now - pg_catalog.make_interval(days => ops.setting('guard_rollup_retention_days')::int);
    GET DIAGNOSTICS v_rollups = ROW_COUNT;
    DELETE FROM ops.route_5min_stats
    WHERE bucket < p_now - pg_catalog.make_interval(days => ops.setting('guard_rollup_retention_days')::int);
    DELETE FROM ops.route_hour_stats
    WHERE hour < p_now - pg_catalog.make_interval(days => ops.setting('guard_rollup_retention_days')::int);
    DELETE FROM ops.guard_evaluations
    WHERE evaluated_at < p_now - pg_catalog.make_interval(days => ops.setting('guard_evaluation_retention_days')::int);
    GET DIAGNOSTICS v_evaluations = ROW_COUNT;
    DELETE FROM ops.api_replay WHERE expires_at < p_now;
    RETURN pg_catalog.jsonb_build_object('rollups', v_rollups, 'evaluations', v_evaluations);
END;
$$;
COMMENT ON FUNCTION ops.purge_guard_history(timestamptz) IS
'Retention: drops rollups and stored evaluations older than their settings; returns how many. Daily by pg_cron.';

CREATE OR REPLACE FUNCTION ops.set_route_slo(
    p_route text, p_error_pct_target numeric, p_min_samples integer, p_actor text,
    p_latency_threshold_ms integer DEFAULT NULL, p_latency_target_pct numeric DEFAULT NULL
) RETURNS ops.route_slos
LANGUAGE plpgsql AS $$
DECLARE
    v_row ops.route_slos;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    IF p_route IS NULL OR p_error_pct_target IS NULL OR p_min_samples IS NULL THEN
        RAISE EXCEPTION 'set_route_slo needs a route, an error target and a minimum sample count' USING ERRCODE = '22004';
    END IF;
    IF p_error_pct_target * 14.4 > 100 OR p_error_pct_target <= 0 THEN
        RAISE EXCEPTION 'an error target of % %% can never fire the 14.4x burn-rate rule', p_error_pct_target
            USING ERRCODE = '22023',
                  HINT = 'A target must be above 0 and at most 6.944 %: 14.4 x the budget must not exceed 100 %.';
    END IF;
    v_prev := ops._act_as(p_actor);
    INSERT INTO ops.route_slos AS s (route, error_pct_target, min_samples, latency_threshold_ms, latency_target_pct, updated_by)
    VALUES (p_route, p_error_pct_target, p_min_samples, p_latency_threshold_ms, p_latency_target_pct, p_actor)
    ON CONFLICT (route) DO UPDATE
    SET error_pct_target = EXCLUDED.error_pct_target, min_samples = EXCLUDED.min_samples,
        latency_threshold_ms = EXCLUDED.latency_threshold_ms, latency_target_pct = EXCLUDED.latency_target_pct,
        updated_at = pg_catalog.now(), updated_by = p_actor
    RETURNING * INTO v_row;
    PERFORM ops._act_as(v_prev);
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops.set_route_slo(text, numeric, integer, text, integer, numeric) IS
'Sets a route''s objectives (route ''*'': the defaults), audited. Targets the burn-rate rules could never fire on: 22023.';

CREATE OR REPLACE FUNCTION ops.record_requests(p_batch jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_all_ok boolean;
    v_bad text;
BEGIN
    IF p_batch IS NULL OR pg_catalog.jsonb_typeof(p_batch) <> 'array' THEN
        RAISE EXCEPTION 'a batch is a JSON array of samples' USING ERRCODE = '22023',
            HINT = '[{"route": "GET /projects", "status": 200, "latency_ms": 12, "at": "2026-11-23T10:00:00Z"}]';
    END IF;
    -- Fast path: one pass that casts and checks every sample and folds the batch only when all
    -- pass. Anything wrong (a failed check or a failed cast) falls to the slow path below,
    -- which names the sample; either way a batch is folded whole or not at all.
    BEGIN
        WITH samples AS MATERIALIZED (
            SELECT x.route, x.status::int AS status, x.latency_ms::numeric AS latency_ms, x.at::timestamptz AS at,
                   pg_catalog.length(x.route) BETWEEN 1 AND 300
                   AND x.status::int BETWEEN 100 AND 599
                   AND x.latency_ms::numeric >= 0
                   -- a zone is required: Z, or +hh, +hhmm, +hh:mm at the end
                   AND (pg_catalog.right(x.at, 1) = 'Z' OR pg_catalog.substr(x.at, pg_catalog.length(x.at) - 2, 1) IN ('+', '-')
                        OR pg_catalog.substr(x.at, pg_catalog.length(x.at) - 4, 1) IN ('+', '-')
                        OR pg_catalog.substr(x.at, pg_catalog.length(x.at) - 5, 1) IN ('+', '-'))
                   AND x.at ~ '^\d{4}-' AS ok
            FROM pg_catalog.jsonb_to_recordset(p_batch) AS x (route text, status text, latency_ms text, at text)
        ),
        verdict AS (
            SELECT coalesce(bool_and(ok), true) AS all_ok FROM samples
        ),
        folded AS (
            SELECT s.route, pg_catalog.date_trunc('minute', s.at) AS minute, count(*)::int AS requests,
                   (count(*) FILTER (WHERE s.status >= 500))::int AS errors,
                   (count(*) FILTER (WHERE s.latency_ms > coalesce(r.latency_threshold_ms, d.latency_threshold_ms)))::int AS slow
            FROM samples AS s
            CROSS JOIN verdict AS v
            CROSS JOIN (SELECT latency_threshold_ms FROM ops.route_slos WHERE route = '*') AS d
            LEFT JOIN ops.route_slos AS r ON s.route = r.route
            WHERE v.all_ok
            GROUP BY s.route, pg_catalog.date_trunc('minute', s.at)
        ),
        minutes AS (
            INSERT INTO ops.route_minute_stats AS m (route, minute, requests, errors, slow)
            SELECT route, minute, requests, errors, slow FROM folded
            ON CONFLICT (route, minute) DO UPDATE
            SET requests = m.requests + EXCLUDED.requests, errors = m.errors + EXCLUDED.errors, slow = m.slow + EXCLUDED.slow
            RETURNING 1
        ),
        fives AS (
            INSERT INTO ops.route_5min_stats AS f (route, bucket, requests, errors, slow)
            SELECT route, pg_catalog.date_bin('5 minutes', minute, '2000-01-01'), sum(requests), sum(errors), sum(slow)
            FROM folded
            GROUP BY route, pg_catalog.date_bin('5 minutes', minute, '2000-01-01')
            ON CONFLICT (route, bucket) DO UPDATE
            SET requests = f.requests + EXCLUDED.requests, errors = f.errors + EXCLUDED.errors, slow = f.slow + EXCLUDED.slow
            RETURNING 1
        ),
        hours AS (
            INSERT INTO ops.route_hour_stats AS h (route, hour, requests, errors, slow)
            SELECT route, pg_catalog.date_trunc('hour', minute), sum(requests), sum(errors), sum(slow)
            FROM folded
            GROUP BY route, pg_catalog.date_trunc('hour', minute)
            ON CONFLICT (route, hour) DO UPDATE
            SET requests = h.requests + EXCLUDED.requests, errors = h.errors + EXCLUDED.errors, slow = h.slow + EXCLUDED.slow
            RETURNING 1
        )
        SELECT all_ok INTO v_all_ok FROM verdict;
    EXCEPTION WHEN data_exception OR invalid_parameter_value THEN
        v_all_ok := false;  -- a cast failed (or not an array of objects): nothing was folded
    END;
    IF NOT v_all_ok THEN
        v_bad := coalesce(ops._first_bad_sample(p_batch), 'a sample is malformed');
        RAISE EXCEPTION '%', v_bad USING ERRCODE = '22023',
            HINT = 'Samples are numbered from 0: {"route": "GET /projects", "status": 200, "latency_ms": 12, "at": "2026-11-23T10:00:00Z"}';
    END IF;
    RETURN pg_catalog.jsonb_build_object('ok', true, 'accepted', pg_catalog.jsonb_array_length(p_batch));
END;
$$;
COMMENT ON FUNCTION ops.record_requests(jsonb) IS
'Folds a batch [{route, status, latency_ms, at}] into per-minute rollups (errors: status >= 500; slow: over the route''s '
'latency threshold). A malformed sample rejects the whole batch with 22023 naming it (numbered from 0).';


-- pinned as 0019 pinned them
ALTER FUNCTION ops.purge_guard_history(timestamptz) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.record_requests(jsonb) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.release_guard(timestamptz, text, text, jsonb) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.set_route_slo(text, numeric, integer, text, integer, numeric) SECURITY DEFINER SET search_path = ops, pg_temp;
