-- depends: 0012_route_metrics
-- The release guard: open unacknowledged critical incidents and route violations computed
-- from the per-minute rollups, with evidence, stored evaluations and audited overrides;
-- and route violations that hold for two minutes open incidents of their own.

INSERT INTO ops.settings (key, value, kind, min_value, max_value, description) VALUES
('guard_critical_error_pct', '50', 'integer', 1, 100,
 'error_rate_critical: the 1-minute error rate (%) at or above which a route blocks releases.'),
('guard_hard_error_pct', '20', 'integer', 1, 100,
 'hard_error_threshold: a 5-minute error rate (%) above this blocks releases whatever the SLO.'),
('guard_block_inconclusive', 'false', 'boolean', NULL, NULL,
 'true: windows with too few samples block releases too; false: they are only listed under warnings.'),
('guard_autoresolve_min', '10', 'integer', 1, 1440,
 'An incident opened by route evaluation resolves by itself after the route has been healthy this many minutes.'),
('guard_rollup_retention_days', '7', 'integer', 1, 365, 'Per-minute request rollups older than this are purged.'),
('guard_evaluation_retention_days', '30', 'integer', 1, 3650, 'Stored guard evaluations older than this are purged.');

CREATE FUNCTION ops._pct(p_part numeric, p_whole numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_whole > 0 THEN pg_catalog.trim_scale(round(100.0 * p_part / p_whole, 2)) END
$$;
COMMENT ON FUNCTION ops._pct(numeric, numeric) IS 'Internal: a share in %, 2 decimals, no trailing zeros; NULL for an empty window.';

CREATE FUNCTION ops.route_findings(p_now timestamptz DEFAULT pg_catalog.now(), p_route_prefix text DEFAULT NULL)
RETURNS TABLE (route text, reason text, verdict text, evidence jsonb)
LANGUAGE sql STABLE AS $$
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
    FROM v
$$;
COMMENT ON FUNCTION ops.route_findings(timestamptz, text) IS
'Route health at p_now from the rollups: one row per route and rule that is a violation or inconclusive (too few samples), '
'with evidence. Rules: error_rate_critical (1m), hard_error_threshold (5m), slo_violation (burn rates 5m&1h > 14.4x '
'or 30m&6h > 6x; 30m/1h in 5-minute buckets, 6h in whole hours), latency_slo (5m slow share).';

CREATE TABLE ops.guard_overrides (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item_key text NOT NULL,
    reason text NOT NULL CHECK (length(btrim(reason)) >= 3),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at timestamptz NOT NULL,
    CONSTRAINT guard_overrides_at_most_a_day CHECK (expires_at <= created_at + interval '24 hours')
);
CREATE INDEX guard_overrides_active ON ops.guard_overrides (item_key, expires_at);
COMMENT ON TABLE ops.guard_overrides IS
'Exemptions of one failing guard item (incident:<id> or <route>::<reason>) with a reason, for at most 24 h. Append-only.';
CREATE TRIGGER guard_overrides_append_only BEFORE UPDATE OR DELETE ON ops.guard_overrides
FOR EACH ROW EXECUTE FUNCTION ops._forbid_change();
CREATE TRIGGER guard_overrides_audit_insert AFTER INSERT ON ops.guard_overrides
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('id');

CREATE TABLE ops.guard_evaluations (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    evaluated_at timestamptz NOT NULL,
    ok boolean NOT NULL,
    failing_count integer NOT NULL,
    route_prefix text,
    caller text,
    context jsonb NOT NULL DEFAULT '{}',
    result jsonb NOT NULL
);
CREATE INDEX guard_evaluations_at ON ops.guard_evaluations (evaluated_at);
COMMENT ON TABLE ops.guard_evaluations IS
'Every release-guard evaluation: verdict, items, thresholds, who asked and their CI context (commit, pipeline).';

-- Everything the guard looks at, one row per item; shared by the verdict and by overrides.
CREATE FUNCTION ops._guard_items(p_now timestamptz, p_route_prefix text)
RETURNS TABLE (item_key text, kind text, inconclusive boolean, item jsonb)
LANGUAGE sql STABLE AS $$
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
    FROM ops.route_findings(p_now, p_route_prefix) AS f
$$;
COMMENT ON FUNCTION ops._guard_items(timestamptz, text) IS
'Internal: blocking incidents (open, unacknowledged, critical, seen within guard_lookback_min) and route findings.';

CREATE FUNCTION ops.release_guard(
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

CREATE FUNCTION ops.override_guard_item(
    p_item_key text, p_reason text, p_minutes integer, p_actor text, p_now timestamptz DEFAULT pg_catalog.now()
) RETURNS ops.guard_overrides
LANGUAGE plpgsql
SET jit = off  -- as release_guard: compiling costs more than running
SET plan_cache_mode = force_custom_plan  -- as release_guard
AS $$
DECLARE
    v_row ops.guard_overrides;
    v_prev text;
BEGIN
    PERFORM ops.authorize(p_actor, 'guard.override');
    IF p_item_key IS NULL OR p_reason IS NULL OR p_minutes IS NULL THEN
        RAISE EXCEPTION 'override_guard_item needs an item, a reason and minutes' USING ERRCODE = '22004';
    END IF;
    IF p_minutes NOT BETWEEN 1 AND 1440 THEN
        RAISE EXCEPTION 'an override lasts 1 to 1440 minutes, not %', p_minutes USING ERRCODE = '22003';
    END IF;
    IF pg_catalog.length(pg_catalog.btrim(p_reason)) < 3 THEN
        RAISE EXCEPTION 'an override needs a reason' USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ops._guard_items(p_now, NULL) AS g WHERE g.item_key = p_item_key) THEN
        RAISE EXCEPTION '"%" is not failing now', p_item_key USING ERRCODE = 'P0002',
            HINT = 'Use the "key" of an item that GET /ops/release-guard lists (incident:<id> or <route>::<reason>).';
    END IF;
    v_prev := ops._act_as(p_actor, p_reason);
    INSERT INTO ops.guard_overrides (item_key, reason, created_by, created_at, expires_at)
    VALUES (p_item_key, p_reason, p_actor, p_now, p_now + pg_catalog.make_interval(mins => p_minutes))
    RETURNING * INTO v_row;
    PERFORM ops._act_as(v_prev);
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops.override_guard_item(text, text, integer, text, timestamptz) IS
'Exempts one failing guard item for p_minutes (at most 1440) with a reason; p_actor needs guard.override. Audited.';

CREATE TABLE ops.route_violation_state (
    route text NOT NULL,
    reason text NOT NULL,
    first_violation_at timestamptz NOT NULL,
    last_violation_at timestamptz NOT NULL,
    consecutive_minutes integer NOT NULL,
    incident_id uuid REFERENCES ops.incidents (id),
    PRIMARY KEY (route, reason)
);
COMMENT ON TABLE ops.route_violation_state IS
'What ops.evaluate_routes remembers between minutes: how long each violation has held, and the incident it opened.';

CREATE FUNCTION ops.evaluate_routes(p_now timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
LANGUAGE plpgsql
SET jit = off  -- as release_guard: compiling costs more than running
SET plan_cache_mode = force_custom_plan  -- as release_guard
AS $$
DECLARE
    v_minute timestamptz := pg_catalog.date_trunc('minute', p_now);
    v_opened int;
    v_resolved int;
    v_prev text;
BEGIN
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'evaluate_routes needs a time' USING ERRCODE = '22004';
    END IF;
    v_prev := ops._act_as('opsguard:guard');
    -- a violation counts one more minute when it was also seen in the minute before
    INSERT INTO ops.route_violation_state AS s (route, reason, first_violation_at, last_violation_at, consecutive_minutes)
    SELECT f.route, f.reason, p_now, p_now, 1
    FROM ops.route_findings(p_now) AS f
    WHERE f.verdict = 'violation'
    ON CONFLICT (route, reason) DO UPDATE
    SET consecutive_minutes = CASE
            WHEN pg_catalog.date_trunc('minute', s.last_violation_at) = v_minute THEN s.consecutive_minutes
            WHEN pg_catalog.date_trunc('minute', s.last_violation_at) = v_minute - interval '1 minute'
                THEN s.consecutive_minutes + 1
            ELSE 1 END,
        first_violation_at = CASE
            WHEN pg_catalog.date_trunc('minute', s.last_violation_at) >= v_minute - interval '1 minute'
                THEN s.first_violation_at ELSE p_now END,
        last_violation_at = p_now;

    -- held two consecutive minutes: open (or refresh) its incident; no flapping on one bad minute
    WITH opened AS (
        UPDATE ops.route_violation_state AS s
        SET incident_id = (ops.trigger_incident(
                s.route || '::' || s.reason,
                CASE WHEN s.reason = 'latency_slo' THEN 'warning' ELSE 'critical' END,
                s.route, pg_catalog.format('%s on %s for %s minutes', s.reason, s.route, s.consecutive_minutes),
                'opsguard:guard', p_now)).id
        WHERE s.last_violation_at = p_now AND s.consecutive_minutes >= 2
        RETURNING 1
    )
    SELECT count(*) INTO v_opened FROM opened;

    -- healthy for guard_autoresolve_min: resolve what it opened, and forget the violation
    WITH healed AS (
        DELETE FROM ops.route_violation_state AS s
        WHERE s.last_violation_at <= p_now - pg_catalog.make_interval(mins => ops.setting('guard_autoresolve_min')::int)
        RETURNING s.incident_id
    ),
    resolved AS (
        SELECT ops.resolve_incident(h.incident_id, 'opsguard:guard', 'route healthy again', p_now)
        FROM healed AS h
        JOIN ops.incidents AS i ON h.incident_id = i.id
        WHERE i.status <> 'resolved'
    )
    SELECT count(*) INTO v_resolved FROM resolved;
    PERFORM ops._act_as(v_prev);
    RETURN pg_catalog.jsonb_build_object('ok', true, 'incidentsOpenedOrRefreshed', v_opened, 'incidentsResolved', v_resolved,
        'violating', (SELECT count(*) FROM ops.route_violation_state WHERE last_violation_at = p_now));
END;
$$;
COMMENT ON FUNCTION ops.evaluate_routes(timestamptz) IS
'Every minute (pg_cron): route violations that held two consecutive minutes open or refresh incidents keyed <route>::<reason>; '
'those incidents resolve by themselves once the route has been healthy for guard_autoresolve_min.';

CREATE FUNCTION ops.purge_guard_history(p_now timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
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

CREATE FUNCTION ops.api_release_guard(p_route_prefix text, p_caller text, p_context jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
BEGIN
    RETURN ops.release_guard(pg_catalog.now(), nullif(p_route_prefix, ''), p_caller, p_context);
END;
$$;
COMMENT ON FUNCTION ops.api_release_guard(text, text, jsonb) IS 'GET/POST /ops/release-guard: open to CI, no signature.';

CREATE FUNCTION ops.api_override_guard_item(p_principal text, p_actor text, p_replay_key text, p_body jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_actor text;
    v_row ops.guard_overrides;
BEGIN
    v_actor := ops._api_begin(p_principal, p_actor, 'guard.override', p_replay_key);
    IF p_body IS NULL OR pg_catalog.jsonb_typeof(p_body) <> 'object'
       OR pg_catalog.jsonb_typeof(p_body -> 'key') IS DISTINCT FROM 'string'
       OR pg_catalog.jsonb_typeof(p_body -> 'reason') IS DISTINCT FROM 'string'
       OR pg_catalog.jsonb_typeof(p_body -> 'minutes') IS DISTINCT FROM 'number' THEN
        RAISE EXCEPTION 'an override is {"key": ..., "reason": ..., "minutes": ...}' USING ERRCODE = '22023',
            HINT = '{"key": "GET /projects::slo_violation", "reason": "known flaky, INC-123", "minutes": 60}';
    END IF;
    v_row := ops.override_guard_item(p_body ->> 'key', p_body ->> 'reason', (p_body ->> 'minutes')::numeric::int, v_actor);
    RETURN pg_catalog.jsonb_build_object('ok', true, 'override', pg_catalog.jsonb_build_object(
        'id', v_row.id, 'key', v_row.item_key, 'reason', v_row.reason, 'by', v_row.created_by,
        'createdAt', v_row.created_at, 'expiresAt', v_row.expires_at));
END;
$$;
COMMENT ON FUNCTION ops.api_override_guard_item(text, text, text, jsonb) IS
'POST /ops/release-guard/overrides: exempt one failing item (guard.override).';

GRANT EXECUTE ON FUNCTION ops.api_release_guard(text, text, jsonb),
                          ops.api_override_guard_item(text, text, text, jsonb) TO opsguard_api;

INSERT INTO ops.cron_jobs (name, schedule, command, description) VALUES
('opsguard-evaluate-routes', '* * * * *', 'SELECT ops.evaluate_routes()', 'route violations to incidents, and back'),
('opsguard-guard-retention', '17 3 * * *', 'SELECT ops.purge_guard_history()', 'daily purge of old rollups and evaluations');
DO $$ BEGIN PERFORM ops.install_cron_jobs(); END $$;

-- nothing in ops is for everyone (see 0011)
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ops FROM public;
