-- 0022 undone: release_guard as 0021 defined it, the table without repeats and fingerprints
-- (rows that stood for repeats stay one row each), the three indexes gone
DROP INDEX ops.incidents_guard_blocking;
DROP INDEX ops.incidents_guard_blocking_id;
DROP INDEX ops.guard_evaluations_latest;
ALTER TABLE ops.guard_evaluations RESET (toast_tuple_target);
ALTER TABLE ops.guard_evaluations
DROP COLUMN repeats,
DROP COLUMN last_evaluated_at,
DROP COLUMN fingerprint;
-- counter_base keeps the repeats it was given: the metric stays exact without the column
COMMENT ON TABLE ops.counter_base IS
'What purged rows had counted (ticks, escalations, notifications, guard verdicts): the start of each counter in ops.metrics.';
COMMENT ON TABLE ops.guard_evaluations IS
'Every release-guard evaluation: verdict, items, thresholds, who asked and their CI context (commit, pipeline).';

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
