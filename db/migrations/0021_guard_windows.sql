-- depends: 0020_api_input
-- Guard windows that slide to the minute, a non-blocking 3d/6h ticket tier, exact SLO targets.
--
-- Before: the 30m/1h windows read whole 5-minute buckets and the 6h window whole hours, so
-- "6h" spanned 6-7 hours and a burn-rate pair fired up to ~50 minutes after the SRE
-- workbook's arithmetic says it should. Now every window is exactly its length, ending with
-- p_now's minute, built from the coarsest rollups that fit inside it (minutes at both ends,
-- 5-minute buckets, whole hours), so an evaluation still reads a few dozen rows per route.
-- The 3-day ticket window reads daily rollups (new here), its oldest day pro-rated.


CREATE TABLE ops.route_day_stats (
    route text NOT NULL,
    day timestamptz NOT NULL,
    requests bigint NOT NULL DEFAULT 0,
    errors bigint NOT NULL DEFAULT 0,
    slow bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (route, day)
);
CREATE INDEX route_day_stats_day ON ops.route_day_stats (day);
COMMENT ON TABLE ops.route_day_stats IS
'The same rollups per UTC day, kept beside the minutes at ingest, for the 3-day window of the slo_burn_ticket tier.';
-- what the hours already hold (whole UTC hours fall in one UTC day)
INSERT INTO ops.route_day_stats (route, day, requests, errors, slow)
SELECT
    route,
    pg_catalog.date_bin('1 day', hour, '2000-01-01 00:00+00') AS day,
    sum(requests) AS requests,
    sum(errors) AS errors,
    sum(slow) AS slow
FROM ops.route_hour_stats
GROUP BY 1, 2;

CREATE OR REPLACE FUNCTION ops.set_route_slo(
    p_route text, p_error_pct_target numeric, p_min_samples integer, p_actor text,
    p_latency_threshold_ms integer DEFAULT NULL, p_latency_target_pct numeric DEFAULT NULL
) RETURNS ops.route_slos
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
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
    IF p_min_samples < 1 THEN
        RAISE EXCEPTION 'min_samples must be at least 1, not %', p_min_samples USING ERRCODE = '22023',
            HINT = 'A window with fewer requests than min_samples is listed as inconclusive.';
    END IF;
    -- checked here too, so a bad pair is the documented 22023 and not the 23514 of a table constraint
    IF (p_latency_threshold_ms IS NULL) <> (p_latency_target_pct IS NULL)
       OR p_latency_threshold_ms <= 0 OR p_latency_target_pct <= 0 OR p_latency_target_pct >= 100 THEN
        RAISE EXCEPTION 'a latency objective is a threshold in ms (> 0) and a target share in %% (0-100), or neither'
            USING ERRCODE = '22023', HINT = 'For example 300 ms and 1 %: at most 1 % of requests slower than 300 ms.';
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
'Sets a route''s objectives (route ''*'': the defaults), audited; targets are stored exactly as given (99.9999 % SLO: 0.0001). '
'Targets the burn-rate rules could never fire on, or a half latency objective: 22023.';

-- Ingest as 0012, plus the daily rollups.
CREATE OR REPLACE FUNCTION ops.record_requests(p_batch jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
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
        ),
        days AS (
            -- UTC days whatever the time zone of the session
            INSERT INTO ops.route_day_stats AS y (route, day, requests, errors, slow)
            SELECT route, pg_catalog.date_bin('1 day', minute, '2000-01-01 00:00+00'), sum(requests), sum(errors), sum(slow)
            FROM folded
            GROUP BY route, pg_catalog.date_bin('1 day', minute, '2000-01-01 00:00+00')
            ON CONFLICT (route, day) DO UPDATE
            SET requests = y.requests + EXCLUDED.requests, errors = y.errors + EXCLUDED.errors, slow = y.slow + EXCLUDED.slow
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
'latency threshold), and the 5-minute, hourly and daily ones beside them. A malformed sample rejects the whole batch '
'with 22023 naming it (numbered from 0).';

CREATE OR REPLACE FUNCTION ops.route_findings(p_now timestamptz DEFAULT pg_catalog.now(), p_route_prefix text DEFAULT NULL)
RETURNS TABLE (route text, reason text, verdict text, evidence jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = ops, pg_temp
-- as release_guard: compiling the query costs more than running it, and the window bounds
-- must be constants to the planner (a generic plan cannot use them to pick index ranges)
SET jit = off
SET plan_cache_mode = force_custom_plan
AS $$
#variable_conflict use_column
DECLARE
    -- Every window is the minutes (e - length, e]: e is the minute of p_now, counted whole; f starts
    -- the 5-minute bucket of e, h its hour, d its UTC day. The bounds below are variables because
    -- timestamptz arithmetic is not folded by the planner: inline, it ran for every row.
    v_e timestamptz := pg_catalog.date_trunc('minute', p_now);
    v_f timestamptz := pg_catalog.date_bin('5 minutes', pg_catalog.date_trunc('minute', p_now), '2000-01-01');
    v_h timestamptz := pg_catalog.date_trunc('hour', p_now);
    v_d timestamptz := pg_catalog.date_bin('1 day', p_now, '2000-01-01 00:00+00');
    v_1m timestamptz := v_e - interval '1 minute';      -- error_rate_critical: this minute and the one before
    v_5m timestamptz := v_e - interval '4 minutes';
    -- the oldest minutes of each window, up to its first whole 5-minute bucket
    v_30m_from timestamptz := v_e - interval '29 minutes';
    v_30m_to timestamptz := v_f - interval '26 minutes';
    v_1h_from timestamptz := v_e - interval '59 minutes';
    v_1h_to timestamptz := v_f - interval '56 minutes';
    v_6h_from timestamptz := v_e - interval '359 minutes';
    v_6h_to timestamptz := v_f - interval '356 minutes';
    -- whole 5-minute buckets: [f - 25, f) for 30m, [f - 55, f) for 1h; for 6h [f - 355, h - 300)
    -- before its whole hours [h - 300, h) and [h, f) after them
    v_30m_buckets timestamptz := v_f - interval '25 minutes';
    v_1h_buckets timestamptz := v_f - interval '55 minutes';
    v_6h_buckets timestamptz := v_f - interval '355 minutes';
    v_6h_hours timestamptz := v_h - interval '300 minutes';
    v_3d_whole_days timestamptz := v_d - interval '2 days';
    v_3d_oldest_day timestamptz := v_d - interval '3 days';
    -- the share of the oldest of the 4 days the 3-day window touches (the others are whole,
    -- today up to e): the daily rollup is pro-rated, assuming even traffic that day
    v_oldest_day_share float8 := (1439 - pg_catalog.date_part('epoch', v_e - v_d) / 60) / 1440;
    v_crit_pct float8 := ops.setting('guard_critical_error_pct')::float8;
    v_hard_pct float8 := ops.setting('guard_hard_error_pct')::float8;
BEGIN
    -- A window of W minutes is: the minutes from e - W + 1 up to the first 5-minute bucket
    -- inside it (0-4 rows), whole 5-minute buckets (and for 6h whole hours between them),
    -- and the minutes of the 5-minute bucket holding e, [f, e]. Rows are summed per table first.
    RETURN QUERY
    WITH mins AS (
        SELECT m.route,
               sum(m.requests) FILTER (WHERE m.minute >= v_1m)::float8 AS n1,
               sum(m.errors) FILTER (WHERE m.minute >= v_1m)::float8 AS e1,
               sum(m.requests) FILTER (WHERE m.minute >= v_5m)::float8 AS n5,
               sum(m.errors) FILTER (WHERE m.minute >= v_5m)::float8 AS e5,
               sum(m.slow) FILTER (WHERE m.minute >= v_5m)::float8 AS s5,
               sum(m.requests) FILTER (WHERE m.minute >= v_f OR m.minute BETWEEN v_30m_from AND v_30m_to)::float8 AS n30,
               sum(m.errors) FILTER (WHERE m.minute >= v_f OR m.minute BETWEEN v_30m_from AND v_30m_to)::float8 AS e30,
               sum(m.requests) FILTER (WHERE m.minute >= v_f OR m.minute BETWEEN v_1h_from AND v_1h_to)::float8 AS n60,
               sum(m.errors) FILTER (WHERE m.minute >= v_f OR m.minute BETWEEN v_1h_from AND v_1h_to)::float8 AS e60,
               sum(m.requests) FILTER (WHERE m.minute >= v_f OR m.minute BETWEEN v_6h_from AND v_6h_to)::float8 AS n360,
               sum(m.errors) FILTER (WHERE m.minute >= v_f OR m.minute BETWEEN v_6h_from AND v_6h_to)::float8 AS e360
        FROM ops.route_minute_stats AS m
        WHERE (m.minute BETWEEN v_5m AND v_e
               OR m.minute BETWEEN v_30m_from AND v_30m_to
               OR m.minute BETWEEN v_1h_from AND v_1h_to
               OR m.minute BETWEEN v_6h_from AND v_6h_to)
          AND (p_route_prefix IS NULL OR pg_catalog.starts_with(m.route, p_route_prefix))
        GROUP BY m.route
    ),
    fives AS (
        -- [f - 55 min, f) serves 30m, 1h and the current hour of the 6h window; [f - 355 min, h - 300 min)
        -- the oldest hour of the 6h window
        SELECT b.route,
               sum(b.requests) FILTER (WHERE b.bucket >= v_30m_buckets)::float8 AS n30,
               sum(b.errors) FILTER (WHERE b.bucket >= v_30m_buckets)::float8 AS e30,
               sum(b.requests) FILTER (WHERE b.bucket >= v_1h_buckets)::float8 AS n60,
               sum(b.errors) FILTER (WHERE b.bucket >= v_1h_buckets)::float8 AS e60,
               sum(b.requests) FILTER (WHERE b.bucket >= v_h OR b.bucket < v_6h_hours)::float8 AS n360,
               sum(b.errors) FILTER (WHERE b.bucket >= v_h OR b.bucket < v_6h_hours)::float8 AS e360
        FROM ops.route_5min_stats AS b
        WHERE (b.bucket >= v_1h_buckets AND b.bucket < v_f
               OR b.bucket >= v_6h_buckets AND b.bucket < v_6h_hours)
          AND (p_route_prefix IS NULL OR pg_catalog.starts_with(b.route, p_route_prefix))
        GROUP BY b.route
    ),
    hours AS (
        SELECT h.route, sum(h.requests)::float8 AS n360, sum(h.errors)::float8 AS e360
        FROM ops.route_hour_stats AS h
        WHERE h.hour >= v_6h_hours AND h.hour < v_h
          AND (p_route_prefix IS NULL OR pg_catalog.starts_with(h.route, p_route_prefix))
        GROUP BY h.route
    ),
    days AS (
        SELECT y.route,
               sum(y.requests * CASE WHEN y.day < v_3d_whole_days THEN v_oldest_day_share ELSE 1 END::float8) AS n3d,
               sum(y.errors * CASE WHEN y.day < v_3d_whole_days THEN v_oldest_day_share ELSE 1 END::float8) AS e3d
        FROM ops.route_day_stats AS y
        WHERE y.day >= v_3d_oldest_day AND y.day <= v_d
          AND (p_route_prefix IS NULL OR pg_catalog.starts_with(y.route, p_route_prefix))
        GROUP BY y.route
    ),
    s AS (
        SELECT p.route, sum(p.n1) AS n1, sum(p.e1) AS e1, sum(p.n5) AS n5, sum(p.e5) AS e5, sum(p.s5) AS s5,
               sum(p.n30) AS n30, sum(p.e30) AS e30, sum(p.n60) AS n60, sum(p.e60) AS e60,
               sum(p.n360) AS n360, sum(p.e360) AS e360, sum(p.n3d) AS n3d, sum(p.e3d) AS e3d
        FROM (
            SELECT mins.route, coalesce(mins.n1, 0) AS n1, coalesce(mins.e1, 0) AS e1, coalesce(mins.n5, 0) AS n5,
                   coalesce(mins.e5, 0) AS e5, coalesce(mins.s5, 0) AS s5, coalesce(mins.n30, 0) AS n30,
                   coalesce(mins.e30, 0) AS e30, coalesce(mins.n60, 0) AS n60, coalesce(mins.e60, 0) AS e60,
                   coalesce(mins.n360, 0) AS n360, coalesce(mins.e360, 0) AS e360, 0::float8 AS n3d, 0::float8 AS e3d
            FROM mins
            UNION ALL
            SELECT fives.route, 0, 0, 0, 0, 0, coalesce(fives.n30, 0), coalesce(fives.e30, 0), coalesce(fives.n60, 0),
                   coalesce(fives.e60, 0), coalesce(fives.n360, 0), coalesce(fives.e360, 0), 0, 0
            FROM fives
            UNION ALL
            SELECT hours.route, 0, 0, 0, 0, 0, 0, 0, 0, 0, hours.n360, hours.e360, 0, 0
            FROM hours
            UNION ALL
            SELECT days.route, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, days.n3d, days.e3d
            FROM days
        ) AS p
        GROUP BY p.route
    ),
    r AS (
        SELECT s.*,
               coalesce(o.error_pct_target, d.error_pct_target) AS target,
               coalesce(o.min_samples, d.min_samples) AS min_n,
               coalesce(o.latency_threshold_ms, d.latency_threshold_ms) AS lat_ms,
               coalesce(o.latency_target_pct, d.latency_target_pct) AS lat_pct,
               coalesce(o.error_pct_target, d.error_pct_target)::float8 AS target_f
        FROM s
        CROSS JOIN (SELECT * FROM ops.route_slos WHERE route = '*') AS d
        LEFT JOIN ops.route_slos AS o ON s.route = o.route
    ),
    b AS MATERIALIZED (
        -- burn rate: the error rate as a multiple of the error budget (the share of errors the SLO allows).
        -- Counts and verdicts are float8 (exact for counts below 2^53; numeric sums and divisions
        -- for 1,000 routes were most of the cost); the evidence of the few listed rows is numeric.
        -- MATERIALIZED: inlined, every use of a burn rate below re-ran its arithmetic (and the
        -- numeric-to-float8 cast of the target) per verdict, which cost more than reading the rollups
        SELECT r.*,
               r.n5 >= r.min_n AND r.n60 >= r.min_n AS fast_judged,
               r.n30 >= r.min_n AND r.n360 >= r.min_n AS slow_judged,
               r.n3d >= r.min_n AND r.n360 >= r.min_n AS ticket_judged,
               CASE WHEN r.n5 > 0 THEN 100 * r.e5 / r.n5 / r.target_f END AS burn5,
               CASE WHEN r.n60 > 0 THEN 100 * r.e60 / r.n60 / r.target_f END AS burn60,
               CASE WHEN r.n30 > 0 THEN 100 * r.e30 / r.n30 / r.target_f END AS burn30,
               CASE WHEN r.n360 > 0 THEN 100 * r.e360 / r.n360 / r.target_f END AS burn360,
               CASE WHEN r.n3d > 0 THEN 100 * r.e3d / r.n3d / r.target_f END AS burn3d
        FROM r
    ),
    p AS (
        SELECT b.*,
               b.fast_judged AND b.burn5 > 14.4 AND b.burn60 > 14.4 AS fast_fired,
               b.slow_judged AND b.burn30 > 6 AND b.burn360 > 6 AS slow_fired,
               b.ticket_judged AND b.burn3d > 1 AND b.burn360 > 1 AS ticket_fired,
               CASE WHEN b.n5 > 0 THEN 100 * b.s5 / b.n5 > b.lat_pct::float8 END AS too_slow
        FROM b
    ),
    v AS (
        -- verdicts first; evidence is built below only for the few rows that have one
        SELECT p.*, f.reason, f.verdict
        FROM p
        CROSS JOIN LATERAL (VALUES
            ('error_rate_critical',
             CASE WHEN p.n1 = 0 THEN NULL
                  WHEN p.n1 < p.min_n THEN 'inconclusive'
                  WHEN 100 * p.e1 / p.n1 >= v_crit_pct THEN 'violation' END),
            ('hard_error_threshold',
             CASE WHEN p.n5 = 0 THEN NULL
                  WHEN p.n5 < p.min_n THEN 'inconclusive'
                  WHEN 100 * p.e5 / p.n5 > v_hard_pct THEN 'violation' END),
            ('slo_violation',
             CASE WHEN p.fast_fired OR p.slow_fired THEN 'violation'
                  -- too little recent traffic to judge either pair; a route idle for 30 minutes is not listed
                  WHEN NOT p.fast_judged AND NOT p.slow_judged AND p.n30 > 0 THEN 'inconclusive' END),
            -- the ticket tier of the workbook: budget spent faster than it refills for days; a page supersedes it
            ('slo_burn_ticket',
             CASE WHEN p.ticket_fired AND NOT p.fast_fired AND NOT p.slow_fired THEN 'ticket' END),
            ('latency_slo',
             CASE WHEN p.lat_ms IS NULL OR p.n5 = 0 THEN NULL
                  WHEN p.n5 < p.min_n THEN 'inconclusive'
                  WHEN p.too_slow THEN 'violation' END)
        ) AS f (reason, verdict)
        WHERE f.verdict IS NOT NULL
    )
    SELECT v.route, v.reason, v.verdict,
           CASE v.reason
               WHEN 'error_rate_critical' THEN pg_catalog.jsonb_build_object(
                   'err_rate_1m', ops._pct(v.e1::numeric, v.n1::numeric), 'samples_1m', v.n1::numeric, 'threshold_pct', v_crit_pct::numeric,
                   'min_samples', v.min_n)
               WHEN 'hard_error_threshold' THEN pg_catalog.jsonb_build_object(
                   'err_rate_5m', ops._pct(v.e5::numeric, v.n5::numeric), 'samples_5m', v.n5::numeric, 'threshold_pct', v_hard_pct::numeric,
                   'min_samples', v.min_n)
               WHEN 'slo_violation' THEN pg_catalog.jsonb_build_object(
                   'error_pct_target', pg_catalog.trim_scale(v.target), 'min_samples', v.min_n,
                   'pairs', pg_catalog.jsonb_build_array(
                       pg_catalog.jsonb_build_object('windows', '5m/1h', 'factor', 14.4, 'judged', v.fast_judged,
                           'fired', v.fast_fired),
                       pg_catalog.jsonb_build_object('windows', '30m/6h', 'factor', 6, 'judged', v.slow_judged,
                           'fired', v.slow_fired)),
                   'windows', pg_catalog.jsonb_build_object(
                       '5m', ops._burn_window(v.e5, v.n5, v.burn5),
                       '30m', ops._burn_window(v.e30, v.n30, v.burn30),
                       '1h', ops._burn_window(v.e60, v.n60, v.burn60),
                       '6h', ops._burn_window(v.e360, v.n360, v.burn360)))
               WHEN 'slo_burn_ticket' THEN pg_catalog.jsonb_build_object(
                   'error_pct_target', pg_catalog.trim_scale(v.target), 'min_samples', v.min_n,
                   'pairs', pg_catalog.jsonb_build_array(
                       pg_catalog.jsonb_build_object('windows', '3d/6h', 'factor', 1, 'judged', true,
                           'fired', true)),
                   'windows', pg_catalog.jsonb_build_object(
                       '3d', ops._burn_window(round(v.e3d), round(v.n3d), v.burn3d),
                       '6h', ops._burn_window(v.e360, v.n360, v.burn360)))
               ELSE pg_catalog.jsonb_build_object(
                   'slow_pct_5m', ops._pct(v.s5::numeric, v.n5::numeric), 'samples_5m', v.n5::numeric, 'threshold_ms', v.lat_ms,
                   'target_pct', pg_catalog.trim_scale(v.lat_pct), 'min_samples', v.min_n)
           END
    FROM v;
END;
$$;
COMMENT ON FUNCTION ops.route_findings(timestamptz, text) IS
'Route health at p_now from the rollups: one row per route and rule that is a violation, inconclusive (too few samples) '
'or a ticket, with evidence. Rules: error_rate_critical (1m), hard_error_threshold (5m), slo_violation (burn rates '
'5m&1h > 14.4x or 30m&6h > 6x), slo_burn_ticket (3d&6h > 1x, non-blocking), latency_slo (5m slow '
'share). Windows end with p_now''s minute and span exactly their length (3d: its oldest day pro-rated).';

CREATE FUNCTION ops._burn_window(p_errors float8, p_requests float8, p_burn float8) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = ops, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object('err_rate', ops._pct(p_errors::numeric, p_requests::numeric),
                                         'samples', p_requests::numeric,
                                         'burn_rate', pg_catalog.trim_scale(round(p_burn::numeric, 2)))
$$;
COMMENT ON FUNCTION ops._burn_window(float8, float8, float8) IS
'Internal: one window''s evidence, {"err_rate": %, "samples": n, "burn_rate": x}.';

-- The ticket tier is listed under warnings and never blocks, not even with guard_block_inconclusive
-- (which is about windows too thin to judge). Otherwise as 0013.
CREATE OR REPLACE FUNCTION ops._guard_items(p_now timestamptz, p_route_prefix text)
RETURNS TABLE (item_key text, kind text, inconclusive boolean, item jsonb)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
    SELECT 'incident:' || i.id, 'incident', false,
           pg_catalog.jsonb_build_object('kind', 'incident', 'key', 'incident:' || i.id, 'id', i.id,
               'incidentKey', i.incident_key, 'route', i.route, 'severity', i.severity,
               'escalationLevel', i.escalation_level, 'lastSeen', i.last_seen)
    FROM ops.incidents AS i
    WHERE i.status = 'open' AND i.acknowledged_at IS NULL AND i.severity = 'critical'
      AND i.last_seen >= p_now - pg_catalog.make_interval(mins => ops.setting('guard_lookback_min')::int)
      AND (p_route_prefix IS NULL OR pg_catalog.starts_with(i.route, p_route_prefix))
    UNION ALL
    SELECT f.route || '::' || f.reason, CASE WHEN f.verdict = 'ticket' THEN 'ticket' ELSE 'violation' END,
           f.verdict <> 'violation',
           pg_catalog.jsonb_build_object('kind', CASE WHEN f.verdict = 'ticket' THEN 'ticket' ELSE 'violation' END,
               'key', f.route || '::' || f.reason,
               'route', f.route, 'reason', f.reason, 'evidence', f.evidence)
    FROM ops.route_findings(p_now, p_route_prefix) AS f
$$;
COMMENT ON FUNCTION ops._guard_items(timestamptz, text) IS
'Internal: blocking incidents (open, unacknowledged, critical, seen within guard_lookback_min), route findings, and '
'tickets (kind ''ticket'': listed as warnings, never blocking).';

-- (after route_findings and _guard_items: 0019's SQL-standard bodies depended on these columns)
-- Targets like 99.9999 % (budget 0.0001 %) must be stored as given: numeric(6,3) rounded
-- 0.0015 to 0.002 and 0.0001 to 0, which then failed the > 0 check with 23514.
ALTER TABLE ops.route_slos ALTER COLUMN error_pct_target TYPE numeric, ALTER COLUMN latency_target_pct TYPE numeric;

CREATE OR REPLACE FUNCTION ops.release_guard(
    p_now timestamptz DEFAULT pg_catalog.now(), p_route_prefix text DEFAULT NULL,
    p_caller text DEFAULT NULL, p_context jsonb DEFAULT '{}'
) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
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
               items.override IS NULL
                   AND (NOT items.inconclusive OR (v_block_inconclusive AND items.kind <> 'ticket')) AS counts
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
                                 'message', CASE WHEN m.kind = 'ticket'
                                                 THEN 'error budget burning faster than it refills (3d and 6h): '
                                                      || 'open a ticket; not blocking'
                                                 ELSE 'too few samples to judge; not blocking'
                                                      || CASE WHEN v_block_inconclusive
                                                              THEN ' (blocking: guard_block_inconclusive)' ELSE '' END
                                            END))
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
'violates a rule (route_findings). Exempted items stay listed, marked, and do not count; slo_burn_ticket items are '
'warnings only. Every evaluation is stored.';

CREATE OR REPLACE FUNCTION ops.purge_guard_history(p_now timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
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
    -- the 3-day ticket window reads 4 daily rollups, whatever the setting
    DELETE FROM ops.route_day_stats
    WHERE day < p_now - pg_catalog.make_interval(days => GREATEST(ops.setting('guard_rollup_retention_days')::int, 4));
    DELETE FROM ops.guard_evaluations
    WHERE evaluated_at < p_now - pg_catalog.make_interval(days => ops.setting('guard_evaluation_retention_days')::int);
    GET DIAGNOSTICS v_evaluations = ROW_COUNT;
    DELETE FROM ops.api_replay WHERE expires_at < p_now;
    RETURN pg_catalog.jsonb_build_object('rollups', v_rollups, 'evaluations', v_evaluations);
END;
$$;
COMMENT ON FUNCTION ops.purge_guard_history(timestamptz) IS
'Retention: drops rollups (daily ones after at least 4 days, for the 3-day window) and stored evaluations older than their '
'settings; returns how many. Daily by pg_cron.';

-- nothing in ops is for everyone (see 0011)
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ops FROM public;
