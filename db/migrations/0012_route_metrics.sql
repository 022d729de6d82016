-- depends: 0011_db_roles
-- Request metrics: batches of samples folded into per-minute rollups per route, so
-- evaluating route health costs the same whatever the request volume; and per-route SLOs.

CREATE TABLE ops.route_slos (
    route text PRIMARY KEY,
    error_pct_target numeric(6, 3) NOT NULL DEFAULT 1 CHECK (error_pct_target > 0),
    min_samples integer NOT NULL DEFAULT 5 CHECK (min_samples >= 1),
    latency_threshold_ms integer CHECK (latency_threshold_ms > 0),
    latency_target_pct numeric(6, 3) CHECK (latency_target_pct > 0 AND latency_target_pct < 100),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by text NOT NULL DEFAULT 'install',
    -- the fast-burn page pair fires above 14.4x the error budget: a budget over 100/14.4 %
    -- would make it a rule that can never fire
    CONSTRAINT route_slos_burn_rate_can_fire CHECK (error_pct_target * 14.4 <= 100),
    CONSTRAINT route_slos_latency_pair CHECK ((latency_threshold_ms IS NULL) = (latency_target_pct IS NULL))
);
COMMENT ON TABLE ops.route_slos IS
'Per-route objectives. The row with route ''*'' holds the defaults for routes without a row of their own.';
COMMENT ON COLUMN ops.route_slos.error_pct_target IS
'Allowed share of 5xx, in %: the error budget. At most 100/14.4 (6.944) so the 14.4x burn-rate rule can fire.';
COMMENT ON COLUMN ops.route_slos.min_samples IS 'A window with fewer requests is not judged: it is listed as inconclusive.';
COMMENT ON COLUMN ops.route_slos.latency_threshold_ms IS 'Requests slower than this count as slow (with latency_target_pct).';
COMMENT ON COLUMN ops.route_slos.latency_target_pct IS 'At most this share of requests, in %, may be slow.';
INSERT INTO ops.route_slos (route) VALUES ('*');

CREATE TABLE ops.route_minute_stats (
    route text NOT NULL,
    minute timestamptz NOT NULL,
    requests integer NOT NULL DEFAULT 0,
    errors integer NOT NULL DEFAULT 0,
    slow integer NOT NULL DEFAULT 0,
    PRIMARY KEY (route, minute)
);
CREATE INDEX route_minute_stats_minute ON ops.route_minute_stats (minute);
COMMENT ON TABLE ops.route_minute_stats IS
'Per-minute rollups of request samples: requests, errors (5xx), slow (over the route''s latency threshold when recorded).';

CREATE TABLE ops.route_5min_stats (
    route text NOT NULL,
    bucket timestamptz NOT NULL,
    requests integer NOT NULL DEFAULT 0,
    errors integer NOT NULL DEFAULT 0,
    slow integer NOT NULL DEFAULT 0,
    PRIMARY KEY (route, bucket)
);
CREATE INDEX route_5min_stats_bucket ON ops.route_5min_stats (bucket);
COMMENT ON TABLE ops.route_5min_stats IS
'The same rollups per 5 minutes, kept beside the minutes at ingest, for the 30-minute and 1-hour windows.';

CREATE TABLE ops.route_hour_stats (
    route text NOT NULL,
    hour timestamptz NOT NULL,
    requests integer NOT NULL DEFAULT 0,
    errors integer NOT NULL DEFAULT 0,
    slow integer NOT NULL DEFAULT 0,
    PRIMARY KEY (route, hour)
);
CREATE INDEX route_hour_stats_hour ON ops.route_hour_stats (hour);
COMMENT ON TABLE ops.route_hour_stats IS
'The same rollups per hour, kept beside the minutes at ingest, so the 6-hour burn-rate window reads a few rows per route.';

CREATE FUNCTION ops.route_slo(p_route text) RETURNS ops.route_slos
LANGUAGE sql STABLE AS $$
    SELECT * FROM ops.route_slos WHERE route IN (p_route, '*') ORDER BY route = '*' LIMIT 1
$$;
COMMENT ON FUNCTION ops.route_slo(text) IS 'The objectives that apply to a route: its own row, else the ''*'' defaults.';

CREATE FUNCTION ops.set_route_slo(
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

CREATE TRIGGER route_slos_audit_insert AFTER INSERT ON ops.route_slos
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('route');
CREATE TRIGGER route_slos_audit_update AFTER UPDATE ON ops.route_slos
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('route', 'updated_at', 'updated_by');

-- Names the first bad sample of a batch (numbered from 0), or returns NULL: the slow path,
-- run only when the fast path in ops.record_requests found something wrong.
CREATE FUNCTION ops._first_bad_sample(p_batch jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT pg_catalog.format('sample %s: %s', s.n - 1, s.why)
    FROM (
        SELECT e.n,
               CASE
                   WHEN pg_catalog.jsonb_typeof(e.v) <> 'object' THEN 'is not an object'
                   WHEN pg_catalog.jsonb_typeof(e.v -> 'route') IS DISTINCT FROM 'string'
                        OR pg_catalog.length(e.v ->> 'route') NOT BETWEEN 1 AND 300 THEN 'route must be a string of 1-300 characters'
                   WHEN pg_catalog.jsonb_typeof(e.v -> 'status') IS DISTINCT FROM 'number'
                        OR (e.v ->> 'status') !~ '^[1-5][0-9][0-9]$' THEN 'status must be an HTTP status code (100-599)'
                   WHEN pg_catalog.jsonb_typeof(e.v -> 'latency_ms') IS DISTINCT FROM 'number'
                        OR (e.v ->> 'latency_ms')::numeric < 0 THEN 'latency_ms must be a number >= 0'
                   WHEN pg_catalog.jsonb_typeof(e.v -> 'at') IS DISTINCT FROM 'string'
                        OR (e.v ->> 'at') !~ '^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d(:?\d\d)?)$'
                        THEN 'at must be an ISO 8601 time with a zone'
               END AS why
        FROM pg_catalog.jsonb_array_elements(p_batch) WITH ORDINALITY AS e (v, n)
    ) AS s
    WHERE s.why IS NOT NULL
    ORDER BY s.n
    LIMIT 1
$$;
COMMENT ON FUNCTION ops._first_bad_sample(jsonb) IS 'Internal: "sample N: what is wrong" for the first bad sample, or NULL.';

CREATE FUNCTION ops.record_requests(p_batch jsonb) RETURNS jsonb
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

CREATE FUNCTION ops.api_record_requests(p_principal text, p_actor text, p_replay_key text, p_batch jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
BEGIN
    PERFORM ops._api_begin(p_principal, p_actor, 'metrics.write', p_replay_key);
    RETURN ops.record_requests(p_batch);
END;
$$;
COMMENT ON FUNCTION ops.api_record_requests(text, text, text, jsonb) IS 'POST /ops/metrics/requests: {"ok": true, "accepted": n}.';
GRANT EXECUTE ON FUNCTION ops.api_record_requests(text, text, text, jsonb) TO opsguard_api;

-- nothing in ops is for everyone (see 0011)
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ops FROM public;
