-- 0061 undone: the collector's minutes passed to the rollups as JSON again
DROP FUNCTION ops._fold_route_minutes(text[], timestamptz[], int[], int[], int[]);
CREATE OR REPLACE FUNCTION ops._fold_route_minutes(p_rows jsonb) RETURNS void
LANGUAGE sql
SET search_path = ops, pg_temp
AS $$
    -- into the rollups ops.record_requests fills: minutes, 5 minutes, hours and UTC days
    WITH folded AS MATERIALIZED (
        SELECT x.route, x.minute, x.requests, x.errors, x.slow
        FROM pg_catalog.jsonb_to_recordset(p_rows) AS x (route text, minute timestamptz, requests int, errors int, slow int)
    ),
    minutes AS (
        INSERT INTO ops.route_minute_stats AS m (route, minute, requests, errors, slow)
        SELECT route, minute, requests, errors, slow FROM folded
        ON CONFLICT (route, minute) DO UPDATE
        SET requests = m.requests + EXCLUDED.requests, errors = m.errors + EXCLUDED.errors, slow = m.slow + EXCLUDED.slow
    ),
    fives AS (
        INSERT INTO ops.route_5min_stats AS f (route, bucket, requests, errors, slow)
        SELECT route, pg_catalog.date_bin('5 minutes', minute, '2000-01-01'), sum(requests), sum(errors), sum(slow)
        FROM folded GROUP BY 1, 2
        ON CONFLICT (route, bucket) DO UPDATE
        SET requests = f.requests + EXCLUDED.requests, errors = f.errors + EXCLUDED.errors, slow = f.slow + EXCLUDED.slow
    ),
    hours AS (
        INSERT INTO ops.route_hour_stats AS h (route, hour, requests, errors, slow)
        SELECT route, pg_catalog.date_trunc('hour', minute), sum(requests), sum(errors), sum(slow)
        FROM folded GROUP BY 1, 2
        ON CONFLICT (route, hour) DO UPDATE
        SET requests = h.requests + EXCLUDED.requests, errors = h.errors + EXCLUDED.errors, slow = h.slow + EXCLUDED.slow
    )
    INSERT INTO ops.route_day_stats AS y (route, day, requests, errors, slow)
    SELECT route, pg_catalog.date_bin('1 day', minute, '2000-01-01 00:00+00'), sum(requests), sum(errors), sum(slow)
    FROM folded GROUP BY 1, 2
    ON CONFLICT (route, day) DO UPDATE
    SET requests = y.requests + EXCLUDED.requests, errors = y.errors + EXCLUDED.errors, slow = y.slow + EXCLUDED.slow
$$;

CREATE OR REPLACE FUNCTION ops.record_metrics_minutes(
    p_route_pattern text, p_last_minute timestamptz, p_rows jsonb, p_queries int DEFAULT 1,
    p_now timestamptz DEFAULT pg_catalog.now()
) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_src ops.metrics_sources := ops._metrics_source_check(p_route_pattern);
    v_ok boolean;
    v_n bigint;
    v_new jsonb;
BEGIN
    IF p_last_minute IS NULL OR p_last_minute <> pg_catalog.date_trunc('minute', p_last_minute)
       OR p_last_minute > ops._metrics_last_ready(p_now, v_src.delay_s) THEN
        RAISE EXCEPTION 'the last minute collected must be a whole minute that ended % s or more before now', v_src.delay_s
            USING ERRCODE = '22023', HINT = 'ops.metrics_work() says which minutes to collect.';
    END IF;
    IF pg_catalog.jsonb_typeof(p_rows) IS DISTINCT FROM 'array' OR pg_catalog.jsonb_array_length(p_rows) > 500000 THEN
        RAISE EXCEPTION 'minutes are a JSON array of at most 500000 rows' USING ERRCODE = '22023',
            HINT = '[{"route": "GET /search", "minute": "2026-12-01T10:00:00Z", "requests": 120, "errors": 3, "slow": 1}]';
    END IF;
    -- serializes two collectors on one source: the second sees the first's minutes as already counted
    PERFORM 1 FROM ops.metrics_source_state WHERE route_pattern = p_route_pattern FOR UPDATE;
    BEGIN
        WITH r AS MATERIALIZED (SELECT * FROM ops._metrics_rows(p_route_pattern, p_last_minute, p_rows)),
        v AS MATERIALIZED (SELECT coalesce(bool_and(r.ok), true) AS all_ok, count(*) AS n FROM r),
        ins AS (
            INSERT INTO ops.metrics_source_minutes AS x (route, minute, requests, errors, slow)
            -- a minute without requests adds nothing: it is collected, not stored
            SELECT r.route, r.minute, r.requests, r.errors, r.slow FROM r CROSS JOIN v
            WHERE v.all_ok AND r.mine AND r.requests > 0
            ON CONFLICT (route, minute) DO NOTHING
            RETURNING x.route, x.minute, x.requests, x.errors, x.slow
        )
        SELECT v.all_ok, v.n, (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(ins)) FROM ins) INTO v_ok, v_n, v_new FROM v;
    EXCEPTION WHEN data_exception OR invalid_parameter_value OR feature_not_supported THEN
        v_ok := false;  -- a cast failed (NaN or Infinity as a count: 0A000); nothing was written
    END;
    IF NOT v_ok THEN
        RAISE EXCEPTION 'bad minutes for %: every row needs its route, a whole minute up to %, and counts of 0 or more',
            p_route_pattern, p_last_minute USING ERRCODE = '22023',
            HINT = 'A route the pattern matches, at most a day old: {"route": "GET /search", '
                   '"minute": "2026-12-01T10:00:00Z", "requests": 120, "errors": 3, "slow": 1}';
    END IF;
    PERFORM ops._fold_route_minutes(v_new) WHERE v_new IS NOT NULL;
    -- which routes a source reported, for the guard's stale items; a route that moves keeps its first source
    INSERT INTO ops.metrics_source_routes (route, route_pattern)
    SELECT DISTINCT x.route, p_route_pattern FROM pg_catalog.jsonb_to_recordset(v_new) AS x (route text)
    ON CONFLICT (route) DO NOTHING;
    UPDATE ops.metrics_source_state
    SET collected_through = GREATEST(collected_through, p_last_minute), last_success_at = p_now,
        last_error = NULL, last_error_at = NULL, queries = queries + GREATEST(coalesce(p_queries, 0), 0)
    WHERE route_pattern = p_route_pattern;
    -- back-fill reaches 6 hours back: a day of minutes is enough to count each once
    DELETE FROM ops.metrics_source_minutes WHERE minute < p_now - interval '1 day';
    RETURN pg_catalog.jsonb_build_object('ok', true, 'source', p_route_pattern, 'through', p_last_minute,
        'counted', coalesce(pg_catalog.jsonb_array_length(v_new), 0),
        'skipped', v_n - coalesce(pg_catalog.jsonb_array_length(v_new), 0));
END;
$$;
