-- depends: 0055_senders
-- Prometheus as a source of route health. A route (or a route prefix, ending in *) may name the
-- team's Prometheus instead of pushing samples: a collector asks it for each minute not yet
-- collected and writes the counts into the same rollups ops.record_requests fills, so the guard's
-- rules, evidence, history and overrides stay as they are. A minute is counted once however often
-- it is collected (ops.metrics_source_minutes), and while a source's data is late the guard lists
-- its routes with stale_since and treats them per guard_stale_metrics.

-- a minute's counts are added to rows that are there (5-minute, hourly, daily): room on each page lets
-- those updates stay on the page (HOT) instead of adding index entries, for pushed and collected alike
ALTER TABLE ops.route_minute_stats SET (fillfactor = 70);
ALTER TABLE ops.route_5min_stats SET (fillfactor = 70);
ALTER TABLE ops.route_hour_stats SET (fillfactor = 70);
ALTER TABLE ops.route_day_stats SET (fillfactor = 70);

-- a setting that takes one of a few words
ALTER TABLE ops.settings ADD COLUMN choices text[];
ALTER TABLE ops.settings DROP CONSTRAINT settings_kind_check;
ALTER TABLE ops.settings ADD CONSTRAINT settings_kind_check
CHECK (kind IN ('boolean', 'integer', 'cron', 'url', 'webhook', 'policy', 'host', 'email', 'choice'));
ALTER TABLE ops.settings ADD CONSTRAINT settings_choices CHECK ((kind = 'choice') = (choices IS NOT NULL));
COMMENT ON COLUMN ops.settings.kind IS
'How a value is validated: boolean, integer (min_value..max_value), cron (5 fields, empty = none), url, webhook '
'(https or loopback http), policy (an escalation policy name, empty = none), host (a host name or IP address, '
'empty = none), email (an e-mail address), choice (one of choices).';
COMMENT ON COLUMN ops.settings.choices IS 'kind choice: the words the value may be.';
INSERT INTO ops.settings (key, value, default_value, kind, choices, description) VALUES
(
    'guard_stale_metrics', '"inconclusive"', '"inconclusive"', 'choice', ARRAY['inconclusive', 'fail'],
    'Routes whose Prometheus source is stale: inconclusive (listed under warnings) or fail (they block releases).'
);

CREATE TABLE ops.metrics_sources (
    route_pattern text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('push', 'prometheus')),
    config jsonb NOT NULL DEFAULT '{}',
    url text,
    route_label text,
    requests_query text,
    errors_query text,
    slow_query text,
    delay_s int NOT NULL DEFAULT 30 CHECK (delay_s BETWEEN 0 AND 600),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by text NOT NULL,
    -- * only at the end: a prefix
    CONSTRAINT metrics_sources_pattern CHECK (
        pg_catalog.length(route_pattern) BETWEEN 1 AND 300 AND route_pattern !~ '[[:cntrl:]]'
        AND pg_catalog.strpos(pg_catalog.rtrim(route_pattern, '*'), '*') = 0
        AND route_pattern !~ '\*\*$'
    ),
    CONSTRAINT metrics_sources_prometheus CHECK (
        (kind = 'prometheus')
        = (url IS NOT NULL AND route_label IS NOT NULL AND requests_query IS NOT NULL AND errors_query IS NOT NULL)
    )
);
COMMENT ON TABLE ops.metrics_sources IS
'Where a route''s request metrics come from: push (POST /ops/metrics/requests, the default for a route with no row) '
'or prometheus (collected by the collector, make collect). route_pattern is a route, or a prefix ending in *; the '
'longest pattern that matches a route is its source. Change with ops.set_metrics_source (audited).';
COMMENT ON COLUMN ops.metrics_sources.requests_query IS
'PromQL for the requests of each route in the minute before its evaluation time, grouped by route_label; $route is '
'replaced by a regex matching the pattern when the collector asks (ops.metrics_work). errors_query: the 5xx ones; '
'slow_query ($le: the route''s latency threshold in seconds): those slower than it, NULL when not collected.';
COMMENT ON COLUMN ops.metrics_sources.delay_s IS
'A minute is asked for once this many seconds have passed after its end (Prometheus must have scraped it).';

CREATE TRIGGER metrics_sources_audit_insert AFTER INSERT ON ops.metrics_sources
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('route_pattern');
CREATE TRIGGER metrics_sources_audit_update AFTER UPDATE ON ops.metrics_sources
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('route_pattern', 'updated_at', 'updated_by');

CREATE TABLE ops.metrics_source_state (
    route_pattern text PRIMARY KEY REFERENCES ops.metrics_sources (route_pattern) ON DELETE CASCADE,
    since timestamptz NOT NULL,
    collected_through timestamptz,
    last_success_at timestamptz,
    last_error text CHECK (pg_catalog.length(last_error) <= 500),
    last_error_at timestamptz,
    queries bigint NOT NULL DEFAULT 0,
    failures bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE ops.metrics_source_state IS
'The collector''s progress per Prometheus source: the last minute collected (collected_through, its start), the '
'last success and failure, queries and failures counted for GET /metrics. Written by ops.record_metrics_minutes and '
'ops.metrics_source_failed only.';
COMMENT ON COLUMN ops.metrics_source_state.since IS
'When the source became a prometheus one: stale from then until a first minute is collected.';

CREATE TABLE ops.metrics_source_minutes (
    route text NOT NULL,
    minute timestamptz NOT NULL,
    requests int NOT NULL,
    errors int NOT NULL,
    slow int NOT NULL,
    PRIMARY KEY (route, minute)
);
CREATE INDEX metrics_source_minutes_minute ON ops.metrics_source_minutes (minute);
COMMENT ON TABLE ops.metrics_source_minutes IS
'Each route minute collected from Prometheus, as folded into the rollups: a minute collected again adds nothing. '
'Kept one day (back-fill reaches back 6 hours at most).';

CREATE TABLE ops.metrics_source_routes (
    route text PRIMARY KEY,
    route_pattern text NOT NULL
);
COMMENT ON TABLE ops.metrics_source_routes IS
'The routes each Prometheus source has reported: the guard lists these when the source is stale.';

-- the collector's connections: get work, report it, and the boot check; no table access
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'opsguard_collector') THEN
        CREATE ROLE opsguard_collector NOLOGIN;
    END IF;
END;
$$;
GRANT USAGE ON SCHEMA ops TO opsguard_collector;

CREATE FUNCTION ops._metrics_matcher(p_pattern text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = ops, pg_temp
AS $$
    -- the body of a PromQL string holding an anchored RE2 regex: the route's metacharacters escaped,
    -- a prefix's * as .*, then \ and " escaped for the string
    SELECT pg_catalog.replace(pg_catalog.replace(
        pg_catalog.regexp_replace(pg_catalog.rtrim(p_pattern, '*'), '([.+*?()|\[\]{}^$\\])', '\\\1', 'g')
        || CASE WHEN p_pattern LIKE '%*' THEN '.*' ELSE '' END,
        '\', '\\'), '"', '\"');
$$;
COMMENT ON FUNCTION ops._metrics_matcher(text) IS
'Internal: what replaces $route in a source''s PromQL: a regex (in a PromQL string) matching the route, or every route '
'with the prefix of a pattern ending in *.';

CREATE FUNCTION ops._metrics_le(p_ms int) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = ops, pg_temp
AS $$
    -- the le label as Go (1) and prometheus_client (1.0) print it, as a regex in a PromQL string
    SELECT CASE WHEN p_ms % 1000 = 0 THEN (p_ms / 1000)::text || '(\\.0)?'
                ELSE pg_catalog.replace(pg_catalog.trim_scale(p_ms / 1000.0)::text, '.', '\\.') END;
$$;
COMMENT ON FUNCTION ops._metrics_le(int) IS
'Internal: what replaces $le in a slow query: a latency threshold in ms as the le label of a histogram bucket.';

CREATE FUNCTION ops._metrics_config_problem(p_config jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_key text;
BEGIN
    IF pg_catalog.jsonb_typeof(p_config) IS DISTINCT FROM 'object' THEN
        RETURN 'the config is a JSON object';
    END IF;
    SELECT k INTO v_key FROM pg_catalog.jsonb_object_keys(p_config) AS k
    WHERE k NOT IN ('url', 'metric', 'route_label', 'code_label', 'latency_metric', 'requests', 'errors', 'slow',
                    'delay_s')
    ORDER BY k LIMIT 1;
    IF v_key IS NOT NULL THEN
        RETURN pg_catalog.format('unknown key %s', pg_catalog.to_jsonb(pg_catalog.left(v_key, 100)));
    END IF;
    SELECT k INTO v_key FROM pg_catalog.jsonb_each(p_config) AS e (k, v)
    WHERE pg_catalog.jsonb_typeof(e.v) <> CASE e.k WHEN 'delay_s' THEN 'number' ELSE 'string' END
       OR pg_catalog.length(e.v #>> '{}') > 4000
       OR (e.k IN ('metric', 'latency_metric') AND e.v #>> '{}' !~ '^([a-zA-Z_:][a-zA-Z0-9_:]{0,199})?$')
       OR (e.k IN ('route_label', 'code_label') AND e.v #>> '{}' !~ '^[a-zA-Z_][a-zA-Z0-9_]{0,99}$')
       OR (e.k IN ('requests', 'errors') AND pg_catalog.strpos(e.v #>> '{}', '$route') = 0)
       OR (e.k = 'slow' AND e.v #>> '{}' <> '' AND pg_catalog.strpos(e.v #>> '{}', '$route') = 0)
       OR (e.k = 'delay_s' AND pg_catalog.jsonb_typeof(e.v) = 'number'
           AND CASE WHEN pg_catalog.jsonb_typeof(e.v) = 'number'
                    THEN e.v::numeric NOT BETWEEN 0 AND 600 OR e.v::numeric <> pg_catalog.trunc(e.v::numeric) END)
    ORDER BY k LIMIT 1;
    IF v_key IS NOT NULL THEN
        RETURN pg_catalog.format('%s: %s is not %s', v_key, pg_catalog.left((p_config -> v_key)::text, 200),
            CASE WHEN v_key IN ('requests', 'errors', 'slow') THEN 'PromQL with the placeholder $route'
                 WHEN v_key = 'delay_s' THEN 'a whole number of seconds from 0 to 600'
                 WHEN v_key IN ('route_label', 'code_label') THEN 'a label name'
                 WHEN v_key IN ('metric', 'latency_metric') THEN 'a metric name'
                 ELSE 'a string of at most 4000 characters' END);
    END IF;
    IF NOT p_config ? 'url' THEN
        RETURN 'url is required: the Prometheus base URL, for example http://prometheus:9090';
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ops._metrics_config_problem(jsonb) IS
'Internal: what is wrong with a prometheus source''s config (NULL: nothing): unknown keys, types, names, PromQL '
'without $route, delay_s outside 0-600, no url.';

CREATE FUNCTION ops._metrics_queries(p_config jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = ops, pg_temp
AS $$
    -- the defaults fit a counter with route and code labels and a histogram of durations in seconds
    SELECT pg_catalog.jsonb_build_object(
        'route_label', d.rl,
        'requests', coalesce(p_config ->> 'requests',
            pg_catalog.format('sum by (%s) (increase(%s{%s=~"$route"}[1m]))', d.rl, d.metric, d.rl)),
        'errors', coalesce(p_config ->> 'errors',
            pg_catalog.format('sum by (%s) (increase(%s{%s=~"$route",%s=~"5.."}[1m]))', d.rl, d.metric, d.rl, d.cl)),
        'slow', nullif(coalesce(p_config ->> 'slow', CASE WHEN d.lat <> '' THEN pg_catalog.format(
            'sum by (%s) (increase(%s_bucket{%s=~"$route",le="+Inf"}[1m])) - '
            'sum by (%s) (increase(%s_bucket{%s=~"$route",le=~"$le"}[1m]))', d.rl, d.lat, d.rl, d.rl, d.lat, d.rl) END), ''))
    FROM (SELECT coalesce(p_config ->> 'route_label', 'route') AS rl, coalesce(p_config ->> 'code_label', 'code') AS cl,
                 coalesce(p_config ->> 'metric', 'http_requests_total') AS metric,
                 coalesce(p_config ->> 'latency_metric', 'http_request_duration_seconds') AS lat) AS d;
$$;
COMMENT ON FUNCTION ops._metrics_queries(jsonb) IS
'Internal: the PromQL of a valid prometheus config: its own requests/errors/slow, else generated from metric, '
'route_label, code_label and latency_metric (defaults http_requests_total, route, code, http_request_duration_seconds; '
'latency_metric "" collects no slow requests).';

CREATE FUNCTION ops.set_metrics_source(
    p_route_pattern text, p_kind text, p_config jsonb, p_actor text, p_now timestamptz DEFAULT pg_catalog.now()
) RETURNS ops.metrics_sources
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_config jsonb := coalesce(p_config, '{}');
    v_problem text;
    v_q jsonb;
    v_row ops.metrics_sources;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    IF p_route_pattern IS NULL OR pg_catalog.length(p_route_pattern) NOT BETWEEN 1 AND 300
       OR p_route_pattern ~ '[[:cntrl:]]' OR pg_catalog.strpos(pg_catalog.left(p_route_pattern, -1), '*') > 0 THEN
        RAISE EXCEPTION 'a route pattern is a route, or a prefix ending in *, of 1-300 characters'
            USING ERRCODE = '22023', HINT = 'For example ''GET /search'' or ''GET /billing*''.';
    END IF;
    IF p_kind IS NULL OR p_kind NOT IN ('push', 'prometheus') THEN
        RAISE EXCEPTION 'a metrics source is push or prometheus, not %', coalesce(p_kind, 'NULL')
            USING ERRCODE = '22023', HINT = 'push: POST /ops/metrics/requests; prometheus: the collector asks it.';
    END IF;
    IF p_kind = 'push' AND v_config <> '{}' THEN
        RAISE EXCEPTION 'a push source takes no config' USING ERRCODE = '22023', HINT = 'Pass ''{}''.';
    END IF;
    IF p_kind = 'prometheus' THEN
        v_problem := ops._metrics_config_problem(v_config);
        IF v_problem IS NULL THEN
            BEGIN
                PERFORM ops.validate_url(v_config ->> 'url', 'url');
            EXCEPTION WHEN invalid_parameter_value THEN
                v_problem := 'url: ' || SQLERRM;
            END;
        END IF;
        IF v_problem IS NOT NULL THEN
            RAISE EXCEPTION 'bad prometheus config: %', v_problem USING ERRCODE = '22023',
                HINT = '{"url": "http://prometheus:9090"} or with "metric", "route_label", "code_label", '
                       '"latency_metric", or PromQL "requests", "errors", "slow" containing $route; "delay_s".';
        END IF;
        v_q := ops._metrics_queries(v_config);
    END IF;
    v_prev := ops._act_as(p_actor);
    INSERT INTO ops.metrics_sources AS s (route_pattern, kind, config, url, route_label, requests_query, errors_query,
                                          slow_query, delay_s, updated_by)
    VALUES (p_route_pattern, p_kind, v_config, v_config ->> 'url', v_q ->> 'route_label', v_q ->> 'requests',
            v_q ->> 'errors', v_q ->> 'slow', coalesce((v_config ->> 'delay_s')::int, 30), p_actor)
    ON CONFLICT (route_pattern) DO UPDATE
    SET kind = EXCLUDED.kind, config = EXCLUDED.config, url = EXCLUDED.url, route_label = EXCLUDED.route_label,
        requests_query = EXCLUDED.requests_query, errors_query = EXCLUDED.errors_query,
        slow_query = EXCLUDED.slow_query, delay_s = EXCLUDED.delay_s, updated_at = pg_catalog.now(),
        updated_by = p_actor
    RETURNING * INTO v_row;
    PERFORM ops._act_as(v_prev);
    -- what was collected stays counted once: a changed config goes on from the last minute collected
    INSERT INTO ops.metrics_source_state (route_pattern, since)
    SELECT p_route_pattern, p_now WHERE p_kind = 'prometheus'
    ON CONFLICT (route_pattern) DO NOTHING;
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops.set_metrics_source(text, text, jsonb, text, timestamptz) IS
'Sets where a route''s (or a prefix''s, ending in *) request metrics come from, audited: push, or prometheus with a '
'config {"url", "metric", "route_label", "code_label", "latency_metric", "requests", "errors", "slow", "delay_s"} '
'(docs/release-guard.md#metrics-from-prometheus). Bad pattern, kind or config: 22023.';

CREATE FUNCTION ops._metrics_last_ready(p_now timestamptz, p_delay_s int) RETURNS timestamptz
LANGUAGE sql IMMUTABLE
SET search_path = ops, pg_temp
AS $$
    -- the newest minute whose end is p_delay_s or more before p_now
    SELECT pg_catalog.date_bin('1 minute', p_now - pg_catalog.make_interval(secs => p_delay_s), '2000-01-01 00:00+00')
           - interval '1 minute';
$$;
COMMENT ON FUNCTION ops._metrics_last_ready(timestamptz, int) IS
'Internal: the start of the newest minute a source may be asked for at p_now (ended p_delay_s ago or more).';

CREATE FUNCTION ops.metrics_work(p_now timestamptz DEFAULT pg_catalog.now(), p_max_minutes int DEFAULT 60)
RETURNS TABLE (route_pattern text, url text, route_label text, requests text, errors text, slow text,
               first_minute timestamptz, last_minute timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
    -- from the minute after the last collected (back-fill), at most 6 hours back, p_max_minutes at a time
    SELECT s.route_pattern, s.url, s.route_label,
           pg_catalog.replace(s.requests_query, '$route', m.matcher),
           pg_catalog.replace(s.errors_query, '$route', m.matcher),
           pg_catalog.replace(pg_catalog.replace(s.slow_query, '$route', m.matcher), '$le', ops._metrics_le(
               (ops.route_slo(pg_catalog.rtrim(s.route_pattern, '*'))).latency_threshold_ms)),
           w.first_minute,
           LEAST(w.first_minute + pg_catalog.make_interval(mins => LEAST(GREATEST(p_max_minutes, 1), 360) - 1), r.ready)
    FROM ops.metrics_sources AS s
    INNER JOIN ops.metrics_source_state AS st ON s.route_pattern = st.route_pattern
    CROSS JOIN LATERAL (SELECT ops._metrics_last_ready(p_now, s.delay_s) AS ready) AS r
    CROSS JOIN LATERAL (SELECT GREATEST(st.collected_through + interval '1 minute',
                                        r.ready - interval '359 minutes') AS first_minute) AS w
    CROSS JOIN LATERAL (SELECT ops._metrics_matcher(s.route_pattern) AS matcher) AS m
    WHERE s.kind = 'prometheus' AND w.first_minute <= r.ready
    ORDER BY s.route_pattern
$$;
COMMENT ON FUNCTION ops.metrics_work(timestamptz, int) IS
'The collector''s work at p_now: per prometheus source, its PromQL ($route and $le filled in) and the minutes not yet '
'collected (first_minute..last_minute, their starts; at most p_max_minutes, and none older than 6 hours). Ask '
'query_range from first_minute + 1 min to last_minute + 1 min, step 60 s: each point counts the minute before it.';

CREATE FUNCTION ops._fold_route_minutes(p_rows jsonb) RETURNS void
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
COMMENT ON FUNCTION ops._fold_route_minutes(jsonb) IS
'Internal: adds [{route, minute, requests, errors, slow}] (one row per route and minute) to the minute, 5-minute, '
'hourly and daily rollups.';

CREATE FUNCTION ops._metrics_rows(p_route_pattern text, p_last_minute timestamptz, p_rows jsonb)
RETURNS TABLE (route text, minute timestamptz, requests int, errors int, slow int, ok boolean, mine boolean)
LANGUAGE sql STABLE
SET search_path = ops, pg_temp
AS $$
    -- one pass: a cast that fails raises (22P02, 22003, 0A000 for NaN), a value out of bounds is ok = false
    WITH p AS MATERIALIZED (
        SELECT CASE WHEN p_route_pattern LIKE '%*' THEN pg_catalog.left(p_route_pattern, -1) END AS prefix,
               -- longer prefixes inside this one: their routes are theirs
               ARRAY(SELECT pg_catalog.left(s.route_pattern, -1) FROM ops.metrics_sources AS s
                     WHERE s.route_pattern LIKE '%*' AND s.route_pattern <> p_route_pattern
                       AND pg_catalog.starts_with(s.route_pattern, pg_catalog.rtrim(p_route_pattern, '*'))) AS longer
    ),
    x AS (
        SELECT x.route, x.minute::timestamptz AS minute, x.requests::numeric AS n, x.errors::numeric AS e,
               coalesce(x.slow, '0')::numeric AS s
        FROM pg_catalog.jsonb_to_recordset(p_rows) AS x (route text, minute text, requests text, errors text, slow text)
    )
    SELECT x.route, x.minute, round(x.n)::int, LEAST(round(x.e), round(x.n))::int, LEAST(round(x.s), round(x.n))::int,
           coalesce(pg_catalog.length(x.route) BETWEEN 1 AND 300 AND x.route !~ '[[:cntrl:]]'
                    AND (x.route = p_route_pattern OR pg_catalog.starts_with(x.route, p.prefix))
                    AND x.minute = pg_catalog.date_trunc('minute', x.minute)
                    AND x.minute BETWEEN p_last_minute - interval '1 day' AND p_last_minute
                    AND x.n BETWEEN 0 AND 2e9 AND x.e BETWEEN 0 AND 2e9 AND x.s BETWEEN 0 AND 2e9, false),
           x.route = p_route_pattern
           OR (NOT EXISTS (SELECT 1 FROM ops.metrics_sources AS s WHERE s.route_pattern = x.route)
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(p.longer) AS l (prefix)
                               WHERE pg_catalog.starts_with(x.route, l.prefix)))
    FROM x CROSS JOIN p
$$;
COMMENT ON FUNCTION ops._metrics_rows(text, timestamptz, jsonb) IS
'Internal: the collector''s minutes, cast (a failed cast raises) and checked (ok), counts rounded, errors and slow at '
'most requests (Prometheus extrapolates each series alone); mine: no more specific source covers the route.';

CREATE FUNCTION ops._metrics_source_check(p_route_pattern text) RETURNS ops.metrics_sources
LANGUAGE plpgsql STABLE
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_row ops.metrics_sources;
BEGIN
    SELECT * INTO v_row FROM ops.metrics_sources WHERE route_pattern = p_route_pattern;
    IF v_row.kind IS DISTINCT FROM 'prometheus' THEN
        RAISE EXCEPTION 'no prometheus source %', coalesce(pg_catalog.to_jsonb(pg_catalog.left(p_route_pattern, 300))::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'SELECT route_pattern FROM ops.metrics_work(); lists the sources to collect.';
    END IF;
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops._metrics_source_check(text) IS 'Internal: the prometheus source named, else 22023.';

CREATE FUNCTION ops.record_metrics_minutes(
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
COMMENT ON FUNCTION ops.record_metrics_minutes(text, timestamptz, jsonb, integer, timestamptz) IS
'The collector''s report: a source''s minutes up to p_last_minute (a start; minutes with no row had no requests), '
'[{route, minute, requests, errors, slow}], added to the rollups once per route and minute (a minute collected again '
'is skipped, as is a route a more specific source covers). Bad rows: 22023, nothing written.';

CREATE FUNCTION ops.metrics_source_failed(
    p_route_pattern text, p_problem text, p_queries int DEFAULT 1, p_now timestamptz DEFAULT pg_catalog.now()
) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_src ops.metrics_sources := ops._metrics_source_check(p_route_pattern);
    -- what a Prometheus (or something posing as one) answered is shown in psql and /healthz: one line, capped
    v_problem text := pg_catalog.left(pg_catalog.regexp_replace(coalesce(p_problem, 'failed'), '[[:cntrl:]]+', ' ', 'g'), 500);
BEGIN
    UPDATE ops.metrics_source_state
    SET last_error = v_problem, last_error_at = p_now, failures = failures + 1,
        queries = queries + GREATEST(coalesce(p_queries, 0), 0)
    WHERE route_pattern = v_src.route_pattern;
    RETURN pg_catalog.jsonb_build_object('ok', true, 'source', p_route_pattern, 'problem', v_problem);
END;
$$;
COMMENT ON FUNCTION ops.metrics_source_failed(text, text, integer, timestamptz) IS
'The collector''s report of a failed query (unreachable, an HTTP error, not Prometheus''s JSON, too large): shown '
'by ops.config_problems() until a minute is collected again; nothing is written to the rollups.';

CREATE FUNCTION ops._metrics_stale(p_now timestamptz)
RETURNS TABLE (route_pattern text, stale_since timestamptz, url text, last_error text, last_error_at timestamptz)
LANGUAGE sql STABLE
SET search_path = ops, pg_temp
AS $$
    -- stale once three minutes Prometheus should have had are not collected; stale_since: where the data ends
    SELECT s.route_pattern, coalesce(st.collected_through + interval '1 minute', st.since), s.url, st.last_error,
           st.last_error_at
    FROM ops.metrics_sources AS s
    INNER JOIN ops.metrics_source_state AS st ON s.route_pattern = st.route_pattern
    WHERE s.kind = 'prometheus'
      AND p_now - coalesce(st.collected_through + interval '1 minute', st.since)
          > pg_catalog.make_interval(secs => s.delay_s + 180);
$$;
COMMENT ON FUNCTION ops._metrics_stale(timestamptz) IS
'Internal: the prometheus sources whose data is stale at p_now (no minute collected that ended more than delay_s + '
'3 min ago), and since when (the end of the last minute collected, or when the source was set).';

CREATE FUNCTION ops._metrics_stale_findings(p_now timestamptz, p_route_prefix text)
RETURNS TABLE (route text, reason text, verdict text, evidence jsonb)
LANGUAGE sql STABLE
SET search_path = ops, pg_temp
AS $$
    -- the routes a stale source reported, or the pattern itself before it reported any
    SELECT r.route, 'stale_metrics',
           CASE WHEN ops.setting('guard_stale_metrics') #>> '{}' = 'fail' THEN 'violation' ELSE 'stale' END,
           pg_catalog.jsonb_build_object('stale_since', st.stale_since, 'source', st.route_pattern)
    FROM ops._metrics_stale(p_now) AS st
    CROSS JOIN LATERAL (
        SELECT m.route FROM ops.metrics_source_routes AS m WHERE m.route_pattern = st.route_pattern
        UNION ALL
        SELECT st.route_pattern
        WHERE NOT EXISTS (SELECT 1 FROM ops.metrics_source_routes AS m WHERE m.route_pattern = st.route_pattern)
    ) AS r
    WHERE p_route_prefix IS NULL OR pg_catalog.starts_with(r.route, p_route_prefix);
$$;
COMMENT ON FUNCTION ops._metrics_stale_findings(timestamptz, text) IS
'Internal: one stale_metrics finding per route of a stale prometheus source, evidence stale_since and source; verdict '
'stale (a warning, as inconclusive) or violation when guard_stale_metrics is fail.';

CREATE FUNCTION ops._metrics_source_problems() RETURNS TABLE (setting text, problem text)
LANGUAGE sql STABLE
SET search_path = ops, pg_temp
AS $$
    SELECT pg_catalog.format('metrics_sources[%s]', s.route_pattern),
           pg_catalog.format('the last query to %s failed at %s: %s; collected through %s', s.url, st.last_error_at,
                             st.last_error, coalesce((st.collected_through + interval '1 minute')::text, 'nothing yet'))
    FROM ops.metrics_sources AS s
    INNER JOIN ops.metrics_source_state AS st ON s.route_pattern = st.route_pattern
    WHERE s.kind = 'prometheus' AND st.last_error_at IS NOT NULL;
$$;
COMMENT ON FUNCTION ops._metrics_source_problems() IS
'Internal: a prometheus source whose last query failed (ops.config_problems lists it, not blocking).';

CREATE FUNCTION ops._metrics_stale_alert(p_now timestamptz)
RETURNS TABLE (alert text, firing boolean, severity text, summary text, value float8, threshold float8)
LANGUAGE sql STABLE
SET search_path = ops, pg_temp
AS $$
    SELECT 'MetricsSourceStale', count(*) > 0, 'warning',
           CASE WHEN count(*) = 0 THEN 'every Prometheus source is collected'
                ELSE pg_catalog.format('%s Prometheus sources stale for 5 minutes or more (%s): the guard judges their '
                                       'routes on old data; see SELECT * FROM ops.config_problems()', count(*),
                                       pg_catalog.string_agg(st.route_pattern || ' since ' || st.stale_since, ', '
                                                             ORDER BY st.route_pattern)) END,
           count(*)::float8, 0::float8
    FROM ops._metrics_stale(p_now - interval '5 minutes') AS st;
$$;
COMMENT ON FUNCTION ops._metrics_stale_alert(timestamptz) IS
'Internal: the MetricsSourceStale alert rule of ops.evaluate_alerts: a prometheus source stale for 5 minutes.';

CREATE FUNCTION ops._collector_metrics(p_now timestamptz)
RETURNS TABLE (metric text, kind text, help text, labels jsonb, value float8)
LANGUAGE sql STABLE
SET search_path = ops, pg_temp
AS $$
    SELECT 'opsguard_collector_queries', 'counter', 'Queries the collector sent to Prometheus sources.', '{}'::jsonb,
           coalesce(sum(st.queries), 0)::float8
    FROM ops.metrics_source_state AS st
    UNION ALL
    SELECT 'opsguard_collector_failures', 'counter',
           'Collections that failed (Prometheus unreachable, an HTTP error, an answer not understood or too large).',
           '{}', coalesce(sum(st.failures), 0)::float8
    FROM ops.metrics_source_state AS st
    UNION ALL
    SELECT 'opsguard_collector_lag_ms', 'gauge',
           'How far behind p_now the least recent Prometheus source''s data ends, in ms (0: no source).', '{}',
           coalesce(max(EXTRACT(EPOCH FROM p_now - coalesce(st.collected_through + interval '1 minute', st.since))) * 1000,
                    0)::float8
    FROM ops.metrics_sources AS s
    INNER JOIN ops.metrics_source_state AS st ON s.route_pattern = st.route_pattern
    WHERE s.kind = 'prometheus'
    UNION ALL
    SELECT 'opsguard_metrics_sources_stale', 'gauge', 'Prometheus sources whose data is stale now.', '{}',
           count(*)::float8
    FROM ops._metrics_stale(p_now) AS x;
$$;
COMMENT ON FUNCTION ops._collector_metrics(timestamptz) IS
'Internal: the collector''s series of ops.collect_metrics: queries, failures, lag, stale sources.';

INSERT INTO ops.metric_exports (metric, exported_as, kind, divide_by, unit, help) VALUES
(
    'opsguard_collector_queries', 'opsguard_collector_queries_total', 'counter', 1, NULL,
    'Queries the collector sent to Prometheus sources.'
),
(
    'opsguard_collector_failures', 'opsguard_collector_failures_total', 'counter', 1, NULL,
    'Collections from Prometheus sources that failed (unreachable, an HTTP error, an answer not understood or too large).'
),
(
    'opsguard_collector_lag_ms', 'opsguard_collector_lag_seconds', 'gauge', 1000, 'seconds',
    'How far behind now the least recent Prometheus source''s collected data ends.'
),
(
    'opsguard_metrics_sources_stale', 'opsguard_metrics_sources_stale', 'gauge', 1, NULL,
    'Prometheus sources whose data is stale now (the guard lists their routes with stale_since).'
);

CREATE OR REPLACE FUNCTION ops._guard_findings(p_now timestamptz, p_route_prefix text, p_since timestamptz)
RETURNS TABLE (item_key text, kind text, inconclusive boolean, blocks boolean, item jsonb)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT
        f.route || '::' || f.reason AS item_key,
        CASE f.verdict WHEN 'ticket' THEN 'ticket' WHEN 'stale' THEN 'stale' ELSE 'violation' END AS kind,
        f.verdict <> 'violation' AS inconclusive,
        -- a ticket never blocks; an inconclusive (or stale) finding only under guard_block_inconclusive
        f.verdict = 'violation'
        OR (f.verdict <> 'ticket' AND (SELECT ops.setting('guard_block_inconclusive')::boolean)) AS blocks,
        pg_catalog.jsonb_build_object(
            'kind', CASE WHEN f.verdict = 'ticket' THEN 'ticket' ELSE 'violation' END,
            'key', f.route || '::' || f.reason, 'route', f.route, 'reason', f.reason,
            'evidence', f.evidence || coalesce(rc.changes, '{}')
        ) AS item
    FROM (
        SELECT
            x.route,
            x.reason,
            x.verdict,
            x.evidence
        FROM ops.route_findings(p_now, p_route_prefix) AS x  -- noqa: RF03
        UNION ALL
        SELECT
            y.route,
            y.reason,
            y.verdict,
            y.evidence
        FROM ops._metrics_stale_findings(p_now, p_route_prefix) AS y  -- noqa: RF03
    ) AS f
    LEFT JOIN ops._guard_changes(p_since, p_now) AS rc ON f.route = rc.route;  -- noqa: RF03
END;

CREATE OR REPLACE FUNCTION ops._guard_warning(p_kind text, p_block_inconclusive boolean) RETURNS text
LANGUAGE sql IMMUTABLE
BEGIN ATOMIC
    SELECT CASE p_kind
               WHEN 'ticket' THEN 'error budget burning faster than it refills (3d and 6h): open a ticket; not blocking'
               WHEN 'stale' THEN 'metrics from Prometheus are stale (evidence stale_since): judged on the data '
                                 || 'collected so far; not blocking'
               ELSE 'too few samples to judge; not blocking'
           END
           || CASE WHEN p_kind <> 'ticket' AND p_block_inconclusive
                   THEN ' (blocking: guard_block_inconclusive)' ELSE '' END;
END;
COMMENT ON FUNCTION ops._guard_warning(text, boolean) IS
'Internal: the message of a warning item (ticket, stale metrics, or inconclusive).';

-- the bodies below are restated whole, as db/schema.sql had them, each with its one change
-- noqa: disable=all
CREATE OR REPLACE FUNCTION ops.set_setting(p_key text, p_value text, p_actor text) RETURNS ops.settings
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    AS $_$
DECLARE
    v_def ops.settings;
    v_value jsonb;
    v_int bigint;
    v_prev text;
BEGIN
    IF p_key IS NULL OR p_value IS NULL OR coalesce(pg_catalog.btrim(p_actor), '') = '' THEN
        RAISE EXCEPTION 'set_setting needs a key, a value and an actor'
            USING ERRCODE = '22004', HINT = 'Example: SELECT ops.set_setting(''dry_run'', ''true'', ''alice'');';
    END IF;
    SELECT * INTO v_def FROM ops.settings WHERE key = p_key FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown setting "%"', p_key
            USING ERRCODE = '22023',
                  HINT = 'Known settings: ' || (SELECT pg_catalog.string_agg(key, ', ' ORDER BY key) FROM ops.settings);
    END IF;
    CASE v_def.kind
    WHEN 'boolean' THEN
        IF pg_catalog.lower(pg_catalog.btrim(p_value)) NOT IN ('true', 'false', 'on', 'off', 't', 'f', 'yes', 'no', '1', '0') THEN
            RAISE EXCEPTION 'setting % takes true or false, not "%"', p_key, p_value
                USING ERRCODE = '22023', HINT = 'true/false, on/off, yes/no or 1/0.';
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value)::boolean);
    WHEN 'integer' THEN
        IF p_value !~ '^\s*-?[0-9]{1,12}\s*$' THEN
            RAISE EXCEPTION 'setting % takes a whole number, not "%"', p_key, p_value
                USING ERRCODE = '22023', HINT = pg_catalog.format('A whole number from %s to %s: %s',
                                                                  v_def.min_value, v_def.max_value, v_def.description);
        END IF;
        v_int := p_value::bigint;
        IF v_int < v_def.min_value OR v_int > v_def.max_value THEN
            RAISE EXCEPTION 'setting % must be between % and %, not %', p_key, v_def.min_value, v_def.max_value, v_int
                USING ERRCODE = '22003', HINT = v_def.description;
        END IF;
        v_value := pg_catalog.to_jsonb(v_int);
    WHEN 'cron' THEN
        -- parsed in full, never matched against the clock: hour 99 is refused at any minute
        IF pg_catalog.btrim(p_value) <> '' THEN
            PERFORM ops._cron_sets(p_value);
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value));
    WHEN 'host', 'email' THEN
        IF pg_catalog.btrim(p_value) <> '' THEN
            PERFORM ops._check_setting_text(v_def.kind, pg_catalog.btrim(p_value));
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value));
    WHEN 'choice' THEN
        IF pg_catalog.btrim(p_value) <> ALL (v_def.choices) THEN
            RAISE EXCEPTION 'setting % takes one of %, not "%"', p_key, pg_catalog.array_to_string(v_def.choices, ', '), p_value
                USING ERRCODE = '22023', HINT = v_def.description;
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value));
    WHEN 'policy' THEN
        IF pg_catalog.btrim(p_value) <> ''
           AND NOT EXISTS (SELECT 1 FROM ops.escalation_policies WHERE name = pg_catalog.btrim(p_value)) THEN
            RAISE EXCEPTION 'setting % names no escalation policy: "%"', p_key, p_value
                USING ERRCODE = '22023',
                      HINT = coalesce('Policies: ' || (SELECT pg_catalog.string_agg(name, ', ' ORDER BY name)
                                                       FROM ops.escalation_policies) || '; ', '')
                             || 'create one with ops.create_policy, or pass an empty value for none.';
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value));
    ELSE
        IF pg_catalog.btrim(p_value) <> '' THEN
            PERFORM ops.validate_url(pg_catalog.btrim(p_value), v_def.kind);
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value));
    END CASE;

    v_prev := ops._act_as(p_actor);
    UPDATE ops.settings SET value = v_value, updated_at = pg_catalog.now(), updated_by = p_actor
    WHERE key = p_key
    RETURNING * INTO v_def;
    PERFORM ops._act_as(v_prev);
    -- dispatchers wait on LISTEN: a webhook set or a pause lifted has messages to send at once
    IF p_key IN ('slack_webhook_url', 'notify_paused') THEN
        PERFORM pg_catalog.pg_notify('ops_outbox', 'settings');
    END IF;
    RETURN v_def;
END;
$_$;

CREATE OR REPLACE FUNCTION ops._setting_problem(p_kind text, p_value jsonb, p_min integer, p_max integer) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'ops', 'pg_temp'
    AS $$
BEGIN
    IF p_value IS NULL THEN
        RETURN 'no value';
    END IF;
    CASE p_kind
    WHEN 'boolean' THEN
        IF pg_catalog.jsonb_typeof(p_value) <> 'boolean' THEN
            RETURN pg_catalog.format('%s is not true or false', p_value);
        END IF;
    WHEN 'integer' THEN
        IF pg_catalog.jsonb_typeof(p_value) <> 'number' OR p_value::numeric <> pg_catalog.trunc(p_value::numeric) THEN
            RETURN pg_catalog.format('%s is not a whole number', p_value);
        END IF;
        IF p_value::numeric < p_min OR p_value::numeric > p_max THEN
            RETURN pg_catalog.format('%s is outside %s-%s', p_value, p_min, p_max);
        END IF;
    WHEN 'cron', 'url', 'webhook', 'host', 'email' THEN
        IF pg_catalog.jsonb_typeof(p_value) <> 'string' THEN
            RETURN pg_catalog.format('%s is not a string', p_value);
        END IF;
        IF pg_catalog.btrim(p_value #>> '{}') <> '' THEN
            BEGIN
                IF p_kind = 'cron' THEN
                    PERFORM ops._cron_sets(p_value #>> '{}');
                ELSIF p_kind IN ('host', 'email') THEN
                    PERFORM ops._check_setting_text(p_kind, p_value #>> '{}');
                ELSE
                    PERFORM ops.validate_url(p_value #>> '{}', p_kind);
                END IF;
            EXCEPTION WHEN invalid_parameter_value THEN
                -- a webhook path is its secret
                RETURN CASE p_kind WHEN 'webhook' THEN ops._redact_url(SQLERRM, p_value #>> '{}') ELSE SQLERRM END;
            END;
        END IF;
    WHEN 'choice' THEN
        -- the choices are the setting's own (settings.choices); only guard_stale_metrics is of this kind
        IF NOT EXISTS (SELECT 1 FROM ops.settings AS s WHERE s.kind = 'choice' AND p_value #>> '{}' = ANY (s.choices)) THEN
            RETURN pg_catalog.format('%s is none of the choices', p_value);
        END IF;
    WHEN 'policy' THEN
        IF pg_catalog.jsonb_typeof(p_value) <> 'string' THEN
            RETURN pg_catalog.format('%s is not a string', p_value);
        END IF;
        IF p_value #>> '{}' <> '' AND NOT EXISTS (SELECT 1 FROM ops.escalation_policies WHERE name = p_value #>> '{}') THEN
            RETURN pg_catalog.format('no escalation policy is named %s', p_value);
        END IF;
    ELSE
        RETURN pg_catalog.format('unknown kind %s', p_kind);
    END CASE;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION ops.config_problems(p_dispatch_timeout_s float8 DEFAULT NULL)
RETURNS TABLE (setting text, problem text, blocking boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_row record;
    v_lease int := ops.setting('notify_lease_s')::int;
BEGIN
    -- a dispatcher starts a message only while its lease outlasts the HTTP timeout
    IF p_dispatch_timeout_s IS NOT NULL AND v_lease < p_dispatch_timeout_s + 2 THEN
        setting := 'notify_lease_s';
        problem := pg_catalog.format('%s s is too short for a dispatcher HTTP timeout of %s s: make it at least %s',
                                     v_lease, p_dispatch_timeout_s, ceil(p_dispatch_timeout_s + 2));
        blocking := true;
        RETURN NEXT;
    END IF;
    -- timestamps render in the session's zone (to_jsonb, psql): opsguard shows UTC only
    IF pg_catalog.current_setting('TimeZone') NOT IN ('UTC', 'Etc/UTC', 'Etc/UCT', 'UCT', 'Universal', 'Zulu') THEN
        setting := 'TimeZone';
        problem := pg_catalog.format('the time zone is %s, not UTC: SELECT ops.use_utc(); then reconnect',
                                     pg_catalog.current_setting('TimeZone'));
        blocking := true;
        RETURN NEXT;
    END IF;
    FOR v_row IN
        SELECT s.key AS name, s.value #>> '{}' AS url, s.kind
        FROM ops.settings AS s WHERE s.kind IN ('url', 'webhook') AND s.value #>> '{}' <> ''
        UNION ALL
        SELECT pg_catalog.format('route_webhooks[%s]', w.route), w.webhook_url, 'webhook'
        FROM ops.route_webhooks AS w
        ORDER BY 1
    LOOP
        BEGIN
            PERFORM ops.validate_url(v_row.url, v_row.kind);
        EXCEPTION WHEN invalid_parameter_value THEN
            setting := v_row.name;
            problem := CASE v_row.kind WHEN 'webhook' THEN ops._redact_url(SQLERRM, v_row.url) ELSE SQLERRM END;
            blocking := true;
            RETURN NEXT;
        END;
    END LOOP;
    RETURN QUERY
    SELECT x.setting, x.problem, false
    FROM (
        -- a default policy written around set_setting: ticks treat it as none
        SELECT s.key AS setting,
               ops._setting_problem(s.kind, s.value, s.min_value, s.max_value)
               || ': routes without their own policy page as if there were none' AS problem
        FROM ops.settings AS s
        WHERE s.kind = 'policy' AND ops._setting_problem(s.kind, s.value, s.min_value, s.max_value) IS NOT NULL
        UNION ALL
        SELECT pg_catalog.format('escalation_policies[%s]', ep.name),
               'has no steps: the routes that use it page as if they had no policy; add one with ops.add_policy_step'
        FROM ops.escalation_policies AS ep
        WHERE NOT EXISTS (SELECT 1 FROM ops.escalation_policy_steps AS s WHERE s.policy = ep.name)
          AND (EXISTS (SELECT 1 FROM ops.route_policies AS r WHERE r.policy = ep.name)
               OR ep.name = ops.setting('default_policy') #>> '{}')
        UNION ALL
        SELECT pg_catalog.format('escalation_policy_steps[%s/%s]', s.policy, s.step),
               pg_catalog.format('target %s names schedule %s, which does not exist: it pages no one; replace the step '
                                 'with ops.add_policy_step', e.n, e.target -> 'schedule')
        FROM ops.escalation_policy_steps AS s
        CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(s.targets) WITH ORDINALITY AS e (target, n)
        WHERE e.target ? 'schedule'
          AND NOT EXISTS (SELECT 1 FROM ops.schedules AS sc WHERE sc.name = e.target ->> 'schedule')
        UNION ALL
        -- a disabled principal still takes their turns: ops.on_call names them, and the tick pages no one for
        -- the schedule in those turns
        SELECT pg_catalog.format('principals[%s]', d.principal),
               pg_catalog.format('%s is disabled but on call in %s: those turns page no one; replace the rotation '
                                 '(ops.remove_rotation, ops.add_rotation) or the override (ops.remove_override)',
                                 d.principal, d.via)
        FROM (
            SELECT w.principal, pg_catalog.string_agg(DISTINCT w.via, ', ') AS via
            FROM (
                SELECT u.principal, pg_catalog.format('schedule %s rotation %s', r.schedule, r.name) AS via
                FROM ops.schedule_rotations AS r
                CROSS JOIN LATERAL pg_catalog.unnest(r.participants) AS u (principal)
                UNION ALL
                SELECT o.principal, pg_catalog.format('schedule %s override %s', o.schedule, o.id)
                FROM ops.schedule_overrides AS o
                WHERE o.ends_at > pg_catalog.now()
            ) AS w
            INNER JOIN ops.principals AS p ON w.principal = p.name AND p.disabled
            GROUP BY w.principal
        ) AS d
        UNION ALL
        SELECT pg_catalog.format('principals[%s]', g.principal),
               pg_catalog.format('%s can be paged (%s) but has no linked Slack user: paged and recorded, mentioned by '
                                 'no one; SELECT ops.link_chat_identity(''slack'', <team id>, <user id>, %L, <actor>)',
                                 g.principal, g.via, g.principal)
        FROM ops._pageable_principals() AS g
        WHERE NOT EXISTS (SELECT 1 FROM ops.chat_identities AS c WHERE c.principal = g.principal AND c.provider = 'slack')
          AND NOT EXISTS (SELECT 1 FROM ops.usable_notification_rules AS u WHERE u.principal = g.principal)
        UNION ALL
        SELECT pg_catalog.format('principals[%s]', g.principal),
               pg_catalog.format('principal %s has no notification rules: can be paged (%s) but only a Slack channel '
                                 'mention tells them; add a contact method and a rule (ops.add_contact_method, '
                                 'ops.add_notification_rule, or POST /ops/me/contact-methods)', g.principal, g.via)
        FROM ops._pageable_principals() AS g
        WHERE NOT EXISTS (SELECT 1 FROM ops.usable_notification_rules AS u WHERE u.principal = g.principal)
        UNION ALL
        SELECT pg_catalog.format('notification_rules[%s]', r.id),
               pg_catalog.format('rule %s of %s (after %s min) waits for its %s contact method to be verified: it '
                                 'notifies no one until then (ops.verify_contact_method)', r.id, r.principal,
                                 r.delay_min, c.kind)
        FROM ops.notification_rules AS r
        INNER JOIN ops.contact_methods AS c ON r.contact_method = c.id
        WHERE c.verified_at IS NULL AND c.removed_at IS NULL
        UNION ALL
        SELECT m.setting, m.problem FROM ops._metrics_source_problems() AS m
    ) AS x
    ORDER BY 1;
END;
$$;

CREATE OR REPLACE FUNCTION ops.evaluate_alerts(p_now timestamp with time zone DEFAULT now()) RETURNS TABLE(alert text, firing boolean, severity text, summary text, value double precision, threshold double precision)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    AS $$
DECLARE
    v_tick_ms float8 := ops.setting('tick_ms')::float8;
    v_last ops.tick_log;
    v_age_ms float8;
    v_cron record;
    v_cron_note text;
    v_minutes int;
    v_level_min int := ops.setting('alert_high_level_min')::int;
    v_level_max int := ops.setting('alert_high_level_max')::int;
    v_count bigint;
    v_note text;
BEGIN
    -- the tick's own clock (tick_at = its p_now), so a test can move time
    SELECT * INTO v_last FROM ops.tick_log WHERE tick_at <= p_now ORDER BY tick_at DESC, id DESC LIMIT 1;

    alert := 'TickSlow';
    severity := 'warning';
    value := v_last.escalation_tick_ms;
    threshold := 2 * v_tick_ms;
    firing := coalesce(v_last.escalation_tick_ms > 2 * v_tick_ms, false);
    summary := pg_catalog.format('the last tick took %s ms; ticks are expected every %s ms', value, v_tick_ms);
    RETURN NEXT;

    -- a dead ticker: pg_cron stopped, or its job failing; the record of pg_cron says which
    SELECT * INTO v_cron FROM ops.cron_job_last_run('opsguard-escalation-tick');
    v_cron_note := CASE
        WHEN v_cron.scheduled IS NULL THEN 'pg_cron job not scheduled here (' || ops.pg_cron_status() || ')'
        WHEN v_cron.status IS NULL THEN 'pg_cron has not run the job yet'
        ELSE pg_catalog.format('pg_cron''s last run: %s at %s%s', v_cron.status, v_cron.start_time,
                               coalesce(': ' || nullif(v_cron.return_message, ''), ''))
    END;
    v_age_ms := EXTRACT(epoch FROM p_now - v_last.tick_at) * 1000;
    alert := 'TickMissing';
    severity := 'critical';
    value := v_age_ms;
    threshold := 2 * v_tick_ms;
    firing := CASE WHEN v_last.id IS NULL  -- never ticked: missing once the first tick was overdue
                   THEN p_now - coalesce(ops.installed_at(), '-infinity') > pg_catalog.make_interval(secs => 2 * v_tick_ms / 1000)
                   ELSE v_age_ms > 2 * v_tick_ms END;
    summary := CASE WHEN v_age_ms IS NULL THEN 'no tick has run yet'
                    ELSE pg_catalog.format('no tick for %s s', round((v_age_ms / 1000)::numeric, 1)) END
               || '; ' || v_cron_note;
    RETURN NEXT;

    -- failures in each of the last five minutes, as in the seeds: "Slack failures > 0 for 5 min"
    SELECT count(DISTINCT floor(EXTRACT(epoch FROM p_now - a.finished_at) / 60)) INTO v_minutes
    FROM ops.notification_attempts AS a
    WHERE a.outcome = 'failed' AND a.finished_at > p_now - interval '5 minutes' AND a.finished_at <= p_now;
    alert := 'SlackFailing';
    severity := 'critical';
    value := v_minutes;
    threshold := 5;
    firing := v_minutes >= 5;
    summary := pg_catalog.format('Slack deliveries failed in %s of the last 5 minutes', v_minutes);
    RETURN NEXT;

    SELECT count(*) INTO v_count FROM ops.incidents
    WHERE status = 'open' AND escalation_level >= v_level_min;
    alert := 'HighLevelIncidents';
    severity := 'critical';
    value := v_count;
    threshold := v_level_max;
    firing := v_count > v_level_max;
    summary := pg_catalog.format('%s open incidents at level %s or above (more than %s fires)', v_count, v_level_min, v_level_max);
    RETURN NEXT;

    SELECT count(*) INTO v_count FROM ops.notification_outbox WHERE status = 'dead';
    alert := 'DeadLetters';
    severity := 'warning';
    value := v_count;
    threshold := 0;
    firing := v_count > 0;
    summary := pg_catalog.format('%s notifications gave up; fix the cause, then SELECT ops.replay_dead_notifications(''you'')',
                                 v_count);
    RETURN NEXT;

    -- a value written around set_setting: ticks treat it as unset, so someone must fix it
    SELECT count(*), pg_catalog.string_agg(p.key || ': ' || p.problem, '; ' ORDER BY p.key)
    INTO v_count, v_note
    FROM ops.setting_problems() AS p;
    alert := 'SettingInvalid';
    severity := 'warning';
    value := v_count;
    threshold := 0;
    firing := v_count > 0;
    summary := CASE WHEN v_count = 0 THEN 'every stored setting is valid'
                    ELSE pg_catalog.format('%s stored settings are invalid and treated as unset (%s); '
                                           'fix each with SELECT ops.set_setting(key, value, ''you'')', v_count, v_note) END;
    RETURN NEXT;

    -- a Prometheus source whose data stopped 5 minutes ago or more: the guard judges its routes on old data
    SELECT a.alert, a.firing, a.severity, a.summary, a.value, a.threshold
    INTO alert, firing, severity, summary, value, threshold
    FROM ops._metrics_stale_alert(p_now) AS a;
    RETURN NEXT;
END;
$$;

CREATE OR REPLACE FUNCTION ops.collect_metrics(p_now timestamp with time zone DEFAULT now()) RETURNS TABLE(metric text, kind text, help text, labels jsonb, value double precision)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    AS $$
    WITH last_tick AS (
        SELECT
            escalation_tick_ms,
            queue_lag_ms,
            tick_at
        FROM ops.tick_log WHERE tick_at <= p_now ORDER BY tick_at DESC, id DESC LIMIT 1
    ),

    outbox AS (
        SELECT
            status,
            count(*) AS n
        FROM ops.notification_outbox GROUP BY status
    )

    SELECT
        'opsguard_escalations_count' AS metric,
        'counter' AS kind,
        'Escalations recorded by ticks (one escalation_events row each).' AS help,
        '{}'::jsonb AS labels,
        (ops._counter('escalations_count') + (SELECT coalesce(sum(escalations_count), 0) FROM ops.tick_log))::float8 AS value
    UNION ALL
    SELECT
        'opsguard_skipped_idempotent',
        'counter',
        'Due escalations whose event already existed (sent nothing twice).',
        '{}',
        (ops._counter('skipped_idempotent') + (SELECT coalesce(sum(skipped_idempotent), 0) FROM ops.tick_log))::float8
    UNION ALL
    SELECT
        'opsguard_ticks',
        'counter',
        'Escalation ticks, by what they did (ran, dry_run, paused, disabled, flag_off, busy).',
        jsonb_build_object('state', s.state),
        (ops._counter('ticks', s.state) + (SELECT count(*) FROM ops.tick_log AS t WHERE t.state = s.state))::float8
    FROM unnest(ARRAY['ran', 'dry_run', 'paused', 'disabled', 'flag_off', 'busy']) AS s (state)
    UNION ALL
    SELECT
        'opsguard_escalation_tick_ms',
        'gauge',
        'How long the last tick took, in ms.',
        '{}',
        (SELECT escalation_tick_ms FROM last_tick)::float8
    UNION ALL
    SELECT
        'opsguard_queue_lag_ms',
        'gauge',
        'How late the most overdue incident of the last tick was, in ms.',
        '{}',
        (SELECT queue_lag_ms FROM last_tick)::float8
    UNION ALL
    SELECT
        'opsguard_last_tick_age_seconds',
        'gauge',
        'Seconds since the last tick started.',
        '{}',
        (SELECT extract(EPOCH FROM p_now - tick_at) FROM last_tick)::float8
    UNION ALL
    SELECT
        'opsguard_tick_interval_ms',
        'gauge',
        'The expected tick interval (setting tick_ms), in ms.',
        '{}',
        ops.setting('tick_ms')::float8
    UNION ALL
    SELECT
        'opsguard_slack_send_failures',
        'counter',
        'Failed Slack delivery attempts (HTTP errors, timeouts, refused connections).',
        '{}',
        (ops._counter('slack_send_failures')
         + (SELECT count(*) FROM ops.notification_attempts WHERE outcome = 'failed'))::float8
    UNION ALL
    SELECT
        'opsguard_notifications_sent',
        'counter',
        'Notifications delivered.',
        '{}',
        (ops._counter('notifications_sent') + coalesce((SELECT n FROM outbox WHERE status = 'sent'), 0))::float8
    UNION ALL
    SELECT
        'opsguard_notifications',
        'gauge',
        'Notifications not delivered yet, by status (pending, sending, dead).',
        jsonb_build_object('status', s.status),
        coalesce((SELECT n FROM outbox WHERE outbox.status = s.status), 0)::float8
    FROM unnest(ARRAY['pending', 'sending', 'dead']) AS s (status)
    UNION ALL
    SELECT
        'opsguard_oldest_pending_notification_seconds',
        'gauge',
        'Age of the oldest notification not delivered yet (0 when none waits).',
        '{}',
        coalesce((SELECT extract(EPOCH FROM p_now - min(created_at)) FROM ops.notification_outbox
                  WHERE status IN ('pending', 'sending')), 0)::float8
    UNION ALL
    SELECT
        'opsguard_open_incidents',
        'gauge',
        'Incidents not resolved, by status, severity and escalation level.',
        jsonb_build_object('status', status, 'severity', severity, 'level', escalation_level::text),
        count(*)::float8
    FROM ops.incidents WHERE status <> 'resolved'
    GROUP BY status, severity, escalation_level
    UNION ALL
    SELECT
        'opsguard_guard_evaluations',
        'counter',
        'Release-guard evaluations, by verdict (ok: clear, blocked: failing items).',
        jsonb_build_object('verdict', v.verdict),
        (ops._counter('guard_evaluations', v.verdict)
         + (SELECT count(*) FROM ops.guard_evaluations AS e WHERE e.ok = (v.verdict = 'ok')))::float8
    FROM unnest(ARRAY['ok', 'blocked']) AS v (verdict)
    UNION ALL
    SELECT
        'opsguard_guard_failing_items',
        'gauge',
        'Failing items in the last release-guard evaluation.',
        '{}',
        (SELECT failing_count FROM ops.guard_evaluations ORDER BY id DESC LIMIT 1)::float8
    UNION ALL
    SELECT
        'opsguard_alert_firing',
        'gauge',
        'Alert rules of ops.evaluate_alerts: 1 firing, 0 not.',
        jsonb_build_object('alert', a.alert, 'severity', a.severity),
        a.firing::int::float8
    FROM ops.evaluate_alerts(p_now) AS a
    UNION ALL
    SELECT c.metric, c.kind, c.help, c.labels, c.value FROM ops._collector_metrics(p_now) AS c
$$;

-- noqa: enable=all
REVOKE ALL ON FUNCTION
    ops._metrics_matcher(text), ops._metrics_le(int), ops._metrics_config_problem(jsonb), ops._metrics_queries(jsonb),
    ops.set_metrics_source(text, text, jsonb, text, timestamptz), ops._metrics_last_ready(timestamptz, int),
    ops.metrics_work(timestamptz, int), ops._fold_route_minutes(jsonb), ops._metrics_rows(text, timestamptz, jsonb),
    ops._metrics_source_check(text),
    ops.record_metrics_minutes(text, timestamptz, jsonb, integer, timestamptz),
    ops.metrics_source_failed(text, text, integer, timestamptz), ops._metrics_stale(timestamptz),
    ops._metrics_stale_findings(timestamptz, text), ops._metrics_source_problems(), ops._metrics_stale_alert(timestamptz),
    ops._collector_metrics(timestamptz)
FROM public;
-- operators run the verbs in psql (a collection by hand included); the collector only its three and the boot check
GRANT EXECUTE ON FUNCTION
    ops.set_metrics_source(text, text, jsonb, text, timestamptz), ops.metrics_work(timestamptz, int),
    ops.record_metrics_minutes(text, timestamptz, jsonb, integer, timestamptz),
    ops.metrics_source_failed(text, text, integer, timestamptz)
TO opsguard_operator;
GRANT EXECUTE ON FUNCTION
    ops.metrics_work(timestamptz, int), ops.record_metrics_minutes(text, timestamptz, jsonb, integer, timestamptz),
    ops.metrics_source_failed(text, text, integer, timestamptz), ops.config_problems(float8)
TO opsguard_collector;
