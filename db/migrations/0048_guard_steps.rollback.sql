-- 0048 undone: the guard as 0043 left it (one body, the old signatures), no anonymous cap

DROP FUNCTION ops.api_release_guard(text, text, jsonb, boolean);
DROP FUNCTION ops.release_guard(timestamptz, text, text, jsonb, boolean);
DROP FUNCTION ops._guard_store(timestamptz, text, text, jsonb, jsonb, boolean);
DROP FUNCTION ops._guard_trim_anonymous();
DROP FUNCTION ops._guard_context(jsonb, integer, integer);
DROP FUNCTION ops._guard_answer(timestamptz, text);
DROP FUNCTION ops._guard_thresholds(boolean);
DROP FUNCTION ops._guard_warning(text, boolean);

-- verbatim as pg_dump wrote it (db/schema.sql before this migration)
-- noqa: disable=all
CREATE OR REPLACE FUNCTION ops._guard_items(p_now timestamp with time zone, p_route_prefix text) RETURNS TABLE(item_key text, kind text, inconclusive boolean, item jsonb)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    AS $$
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

COMMENT ON FUNCTION ops._guard_items(p_now timestamp with time zone, p_route_prefix text) IS 'Internal: blocking incidents (open, unacknowledged, critical, seen within guard_lookback_min), route findings, and tickets (kind ''ticket'': listed as warnings, never blocking).';
-- noqa: enable=all

DROP FUNCTION ops._guard_overrides(timestamptz);
DROP FUNCTION ops._guard_findings(timestamptz, text, timestamptz);
DROP FUNCTION ops._guard_incident_item(ops.incidents);
DROP FUNCTION ops._guard_incidents(timestamptz, text);
DROP TRIGGER guard_usage_insert ON ops.guard_evaluations;
DROP TRIGGER guard_usage_delete ON ops.guard_evaluations;
DROP TRIGGER guard_usage_truncate ON ops.guard_evaluations;
DROP FUNCTION ops._guard_usage_count();
DELETE FROM ops.settings WHERE key = 'guard_anonymous_history_mb';
DROP TABLE ops.guard_anonymous_usage;
DROP INDEX ops.guard_evaluations_anonymous;
ALTER TABLE ops.guard_evaluations DROP COLUMN anonymous_bytes;

-- verbatim as pg_dump wrote it (db/schema.sql before this migration)
-- noqa: disable=all
CREATE FUNCTION ops.release_guard(p_now timestamp with time zone DEFAULT now(), p_route_prefix text DEFAULT NULL::text, p_caller text DEFAULT NULL::text, p_context jsonb DEFAULT '{}'::jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    SET jit TO 'off'
    SET plan_cache_mode TO 'force_custom_plan'
    AS $_$
DECLARE
    -- at most this many items in each list of an answer
    c_listed constant int := 100;
    -- caller and context are what an anonymous client sent: stored capped
    c_caller_chars constant int := 200;
    c_context_bytes constant int := 2048;
    v_block_inconclusive boolean := ops.setting('guard_block_inconclusive')::boolean;
    v_since timestamptz;
    v_context jsonb;
    v_result jsonb;
    v_fingerprint bytea;
    v_id bigint;
BEGIN
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'release_guard needs a time' USING ERRCODE = '22004';
    END IF;
    IF pg_catalog.length(p_route_prefix) > 500 THEN
        RAISE EXCEPTION 'a route prefix is at most 500 characters, not %', pg_catalog.length(p_route_prefix)
            USING ERRCODE = '22023', HINT = 'Incident keys are at most 500 characters: a longer prefix matches nothing.';
    END IF;
    v_since := p_now - pg_catalog.make_interval(mins => ops.setting('guard_lookback_min')::int);

    -- The items of _guard_items, kept apart: blocking incidents are counted on their keys and
    -- built as jsonb only when listed; route findings (one per route and rule at most) as 0021.
    WITH ov AS MATERIALIZED (
        -- the active exemption of each item, the one that expires last (as 0021)
        SELECT DISTINCT ON (o.item_key) o.item_key,
               CASE WHEN o.item_key ~ '^incident:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                    THEN pg_catalog.substr(o.item_key, 10)::uuid END AS incident_id,
               pg_catalog.jsonb_build_object('reason', o.reason, 'by', o.created_by, 'expiresAt', o.expires_at,
                                             'overrideId', o.id) AS override
        FROM ops.guard_overrides AS o
        WHERE o.created_at <= p_now AND o.expires_at > p_now
        ORDER BY o.item_key, o.expires_at DESC
    ),
    inc AS NOT MATERIALIZED (
        -- blocking incidents as _guard_items selects them: open, unacknowledged, critical, seen
        -- within guard_lookback_min; ids only (inlined where used: each use is its own index scan)
        SELECT i.id
        FROM ops.incidents AS i
        WHERE i.status = 'open' AND i.acknowledged_at IS NULL AND i.severity = 'critical'
          AND i.last_seen >= v_since
          AND (p_route_prefix IS NULL OR pg_catalog.starts_with(i.route, p_route_prefix))
    ),
    inc_n AS MATERIALIZED (
        -- the exempted are the few active exemptions of blocking incidents: counted from those
        SELECT (SELECT count(*) FROM inc) AS total,
               (SELECT count(*) FROM ov INNER JOIN inc ON ov.incident_id = inc.id) AS exempted
    ),
    inc_listed AS (
        -- the first of them in key order, exempted or not (the incidents list) ...
        SELECT inc.id FROM inc ORDER BY inc.id LIMIT c_listed
    ),
    inc_failing AS (
        -- ... and those that count (the head of the failing list)
        SELECT inc.id FROM inc
        WHERE NOT EXISTS (SELECT FROM ov WHERE ov.incident_id = inc.id)
        ORDER BY inc.id LIMIT c_listed
    ),
    inc_items AS (
        SELECT 'incident:' || i.id AS item_key, 'incident' AS kind, false AS inconclusive,
               pg_catalog.jsonb_build_object('kind', 'incident', 'key', 'incident:' || i.id, 'id', i.id,
                   'incidentKey', i.incident_key, 'route', i.route, 'severity', i.severity,
                   'escalationLevel', i.escalation_level, 'lastSeen', i.last_seen)
               || CASE WHEN ov.override IS NOT NULL THEN pg_catalog.jsonb_build_object('exempted', ov.override)
                       ELSE '{}' END AS shown,
               ov.override IS NULL AS counts,
               i.id IN (SELECT inc_failing.id FROM inc_failing) AS in_failing
        FROM ops.incidents AS i
        LEFT JOIN ov ON i.id = ov.incident_id
        WHERE i.id IN (SELECT inc_listed.id FROM inc_listed UNION SELECT inc_failing.id FROM inc_failing)
    ),
    findings AS MATERIALIZED (
        SELECT f.route || '::' || f.reason AS item_key,
               CASE WHEN f.verdict = 'ticket' THEN 'ticket' ELSE 'violation' END AS kind,
               f.verdict <> 'violation' AS inconclusive,
               pg_catalog.jsonb_build_object('kind', CASE WHEN f.verdict = 'ticket' THEN 'ticket' ELSE 'violation' END,
                   'key', f.route || '::' || f.reason,
                   'route', f.route, 'reason', f.reason, 'evidence', f.evidence || coalesce(rc.changes, '{}'))
               || CASE WHEN ov.override IS NOT NULL THEN pg_catalog.jsonb_build_object('exempted', ov.override)
                       ELSE '{}' END AS shown,
               ov.override IS NULL
                   AND (f.verdict = 'violation' OR (v_block_inconclusive AND f.verdict <> 'ticket')) AS counts
        FROM ops.route_findings(p_now, p_route_prefix) AS f
        LEFT JOIN ov ON f.route || '::' || f.reason = ov.item_key
        LEFT JOIN ops._guard_changes(v_since, p_now) AS rc ON f.route = rc.route
    ),
    failing AS (
        -- incidents sort before violations (kind, then key), as in 0021
        SELECT s.kind, s.item_key, s.shown
        FROM (SELECT kind, item_key, shown FROM inc_items WHERE in_failing
              UNION ALL
              SELECT kind, item_key, shown FROM findings WHERE counts) AS s
        ORDER BY s.kind, s.item_key
        LIMIT c_listed
    ),
    violations AS (
        SELECT item_key, shown FROM findings WHERE kind = 'violation' AND NOT inconclusive ORDER BY item_key LIMIT c_listed
    ),
    warnings AS (
        SELECT item_key, kind, shown FROM findings WHERE inconclusive ORDER BY item_key LIMIT c_listed
    ),
    n AS MATERIALIZED (
        SELECT inc_n.total AS incidents,
               inc_n.total - inc_n.exempted + (SELECT count(*) FROM findings WHERE counts) AS failing,
               (SELECT count(*) FROM findings WHERE kind = 'violation' AND NOT inconclusive) AS violations,
               (SELECT count(*) FROM findings WHERE inconclusive) AS warnings
        FROM inc_n
    )
    SELECT pg_catalog.jsonb_build_object(
        'ok', n.failing = 0,
        'failingCount', n.failing,
        'warningCount', n.warnings,
        'truncated', GREATEST(n.failing, n.incidents, n.violations, n.warnings) > c_listed,
        'failing', coalesce((SELECT pg_catalog.jsonb_agg(shown ORDER BY kind, item_key) FROM failing), '[]'),
        'incidents', coalesce((SELECT pg_catalog.jsonb_agg(shown ORDER BY item_key) FROM inc_items
                               WHERE inc_items.item_key IN (SELECT 'incident:' || inc_listed.id FROM inc_listed)), '[]'),
        'violations', coalesce((SELECT pg_catalog.jsonb_agg(shown ORDER BY item_key) FROM violations), '[]'),
        'warnings', coalesce((SELECT pg_catalog.jsonb_agg(w.shown || pg_catalog.jsonb_build_object(
                                 'message', CASE WHEN w.kind = 'ticket'
                                                 THEN 'error budget burning faster than it refills (3d and 6h): '
                                                      || 'open a ticket; not blocking'
                                                 ELSE 'too few samples to judge; not blocking'
                                                      || CASE WHEN v_block_inconclusive
                                                              THEN ' (blocking: guard_block_inconclusive)' ELSE '' END
                                            END) ORDER BY w.item_key)
                              FROM warnings AS w), '[]'),
        'evaluatedAt', p_now,
        'routePrefix', p_route_prefix,
        'thresholds', pg_catalog.jsonb_build_object(
            'lookbackMin', ops.setting('guard_lookback_min'),
            'criticalErrorPct', ops.setting('guard_critical_error_pct'),
            'hardErrorPct', ops.setting('guard_hard_error_pct'),
            'burnRatePairs', '[{"windows": "5m/1h", "factor": 14.4}, {"windows": "30m/6h", "factor": 6}]'::jsonb,
            'blockInconclusive', v_block_inconclusive))
    INTO v_result
    FROM n;

    -- An answer equal to the previous one stored for this prefix adds no row: that row counts
    -- the repeat. Two calls racing on a new answer may both store it; neither is lost.
    v_fingerprint := pg_catalog.sha256(pg_catalog.convert_to((v_result - 'evaluatedAt')::text, 'UTF8'));
    UPDATE ops.guard_evaluations AS e
    SET repeats = e.repeats + 1, last_evaluated_at = GREATEST(e.last_evaluated_at, p_now)
    WHERE e.id = (SELECT l.id FROM ops.guard_evaluations AS l
                  WHERE coalesce(l.route_prefix, '') = coalesce(p_route_prefix, '')
                  ORDER BY l.id DESC
                  LIMIT 1)
      AND e.fingerprint = v_fingerprint
    RETURNING e.id INTO v_id;
    IF v_id IS NOT NULL THEN
        -- the metric opsguard_guard_evaluations counts rows plus counter_base: a repeat has no row
        INSERT INTO ops.counter_base AS c (name, label, value)
        VALUES ('guard_evaluations', CASE WHEN (v_result ->> 'ok')::boolean THEN 'ok' ELSE 'blocked' END, 1)
        ON CONFLICT (name, label) DO UPDATE SET value = c.value + 1;
    ELSE
        -- a context over the cap keeps only the CI headers the API sends (each capped) and its size
        v_context := coalesce(p_context, '{}');
        IF pg_catalog.octet_length(v_context::text) > c_context_bytes THEN
            v_context := (SELECT coalesce(pg_catalog.jsonb_object_agg(k.key, pg_catalog.left(k.value, c_caller_chars)), '{}')
                          FROM pg_catalog.jsonb_each_text(
                              CASE WHEN pg_catalog.jsonb_typeof(v_context) = 'object' THEN v_context ELSE '{}' END) AS k
                          WHERE k.key IN ('commit', 'pipeline', 'job', 'ref'))
                         || pg_catalog.jsonb_build_object('truncated', true, 'bytes', pg_catalog.octet_length(v_context::text));
        END IF;
        INSERT INTO ops.guard_evaluations (evaluated_at, last_evaluated_at, ok, failing_count, route_prefix, caller, context,
                                           result, fingerprint)
        VALUES (p_now, p_now, (v_result ->> 'ok')::boolean, (v_result ->> 'failingCount')::int, p_route_prefix,
                pg_catalog.left(p_caller, c_caller_chars), v_context, v_result, v_fingerprint)
        RETURNING id INTO v_id;
    END IF;
    RETURN v_result || pg_catalog.jsonb_build_object('evaluationId', v_id);
END;
$_$;

COMMENT ON FUNCTION ops.release_guard(p_now timestamp with time zone, p_route_prefix text, p_caller text, p_context jsonb) IS 'May a release proceed? ok=false while an open unacknowledged critical incident was seen within guard_lookback_min or a route violates a rule (route_findings). Exempted items stay listed, marked, and do not count; slo_burn_ticket items are warnings only. Each list holds at most 100 items (failingCount, warningCount exact; truncated: a list was cut). Stored unless equal to the previous answer for the prefix (then that row counts repeats); caller and context capped.';
-- noqa: enable=all

-- verbatim as pg_dump wrote it (db/schema.sql before this migration)
-- noqa: disable=all
CREATE FUNCTION ops.api_release_guard(p_route_prefix text, p_caller text, p_context jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    AS $$
BEGIN
    RETURN ops.release_guard(pg_catalog.now(), nullif(p_route_prefix, ''), p_caller, p_context);
END;
$$;

COMMENT ON FUNCTION ops.api_release_guard(p_route_prefix text, p_caller text, p_context jsonb) IS 'GET/POST /ops/release-guard: open to CI, no signature.';
-- noqa: enable=all

REVOKE ALL ON FUNCTION ops.release_guard(timestamptz, text, text, jsonb), ops.api_release_guard(text, text, jsonb)
FROM public;
GRANT EXECUTE ON FUNCTION ops.release_guard(timestamptz, text, text, jsonb) TO opsguard_operator;
GRANT EXECUTE ON FUNCTION ops.api_release_guard(text, text, jsonb) TO opsguard_api;

-- route_findings in one body again
-- verbatim as pg_dump wrote it (db/schema.sql before this migration)
-- noqa: disable=all
CREATE OR REPLACE FUNCTION ops.route_findings(p_now timestamp with time zone DEFAULT now(), p_route_prefix text DEFAULT NULL::text) RETURNS TABLE(route text, reason text, verdict text, evidence jsonb)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    SET jit TO 'off'
    SET plan_cache_mode TO 'force_custom_plan'
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

COMMENT ON FUNCTION ops.route_findings(p_now timestamp with time zone, p_route_prefix text) IS 'Route health at p_now from the rollups: one row per route and rule that is a violation, inconclusive (too few samples) or a ticket, with evidence. Rules: error_rate_critical (1m), hard_error_threshold (5m), slo_violation (burn rates 5m&1h > 14.4x or 30m&6h > 6x), slo_burn_ticket (3d&6h > 1x, non-blocking), latency_slo (5m slow share). Windows end with p_now''s minute and span exactly their length (3d: its oldest day pro-rated).';
-- noqa: enable=all
DROP FUNCTION ops._route_burn_rates(timestamptz, text);
DROP FUNCTION ops._route_coarse_sums(timestamptz, text);
DROP FUNCTION ops._route_minute_sums(timestamptz, text);
