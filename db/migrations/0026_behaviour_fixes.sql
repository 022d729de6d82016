-- depends: 0025_reopen_hint
-- Behaviour fixes found while pinning behaviours no test pinned (issue 11).
--
-- ops.evaluate_routes: an evaluation with an older p_now than the last one that saw a violation
-- (two pg_cron runs overlapping when one takes over a minute, or an operator replaying a
-- minute) moved last_violation_at backwards and reset consecutive_minutes to 1. The route then
-- went unrefreshed for a minute while still violating, and its incident auto-resolved up to that
-- much before guard_autoresolve_min of health had passed. A late evaluation now leaves the state
-- as the newer one left it (tests/sql/99-behaviours-guard.sql).

CREATE OR REPLACE FUNCTION ops.evaluate_routes(p_now timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET jit = off  -- as release_guard: compiling costs more than running
SET plan_cache_mode = force_custom_plan  -- as release_guard
SET search_path = ops, pg_temp
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
        last_violation_at = p_now
    -- a late evaluation (pg_cron runs that overlap, a replayed minute) is older news: it must not
    -- move last_violation_at back, reset the count, or start the auto-resolve clock early
    WHERE s.last_violation_at <= p_now;

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
'those incidents resolve by themselves once the route has been healthy for guard_autoresolve_min. '
'A late evaluation (p_now older than the last violation recorded) changes no violation state.';
