-- 0048 undone: the guard as 0043 left it (one body, the old signatures), no anonymous cap

DROP FUNCTION ops.api_release_guard(text, text, jsonb, boolean);
DROP FUNCTION ops.release_guard(timestamptz, text, text, jsonb, boolean);
DROP FUNCTION ops._guard_store(timestamptz, text, text, jsonb, jsonb, boolean);
DROP FUNCTION ops._guard_trim_anonymous();
DROP FUNCTION ops._guard_context(jsonb, integer, integer);
DROP FUNCTION ops._guard_answer(timestamptz, text);
DROP FUNCTION ops._guard_thresholds(boolean);
DROP FUNCTION ops._guard_warning(text, boolean);

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

CREATE FUNCTION ops.api_release_guard(p_route_prefix text, p_caller text, p_context jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    AS $$
BEGIN
    RETURN ops.release_guard(pg_catalog.now(), nullif(p_route_prefix, ''), p_caller, p_context);
END;
$$;

COMMENT ON FUNCTION ops.api_release_guard(p_route_prefix text, p_caller text, p_context jsonb) IS 'GET/POST /ops/release-guard: open to CI, no signature.';

REVOKE ALL ON FUNCTION ops.release_guard(timestamptz, text, text, jsonb), ops.api_release_guard(text, text, jsonb)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ops.release_guard(timestamptz, text, text, jsonb) TO opsguard_operator;
GRANT EXECUTE ON FUNCTION ops.api_release_guard(text, text, jsonb) TO opsguard_api;
