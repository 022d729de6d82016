-- 0047 undone: escalation_tick as 0033 wrote it (one body, with its own copy of the defaults), its
-- steps dropped, escalation_hash IMMUTABLE again, and no default_value column
-- jit off: the bigger statement crossed jit_optimize_above_cost, and compiling it took 2.2 s
-- of a 10k tick that runs in 3 (as release_guard, 0013)
CREATE OR REPLACE FUNCTION ops.escalation_tick(p_now timestamptz DEFAULT pg_catalog.now(), p_source text DEFAULT 'sql')
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
SET jit = off
AS $$
DECLARE
    v_started timestamptz := pg_catalog.clock_timestamp();
    v_set jsonb;
    v_invalid jsonb;
    v_dry boolean;
    v_canary int;
    v_max int;
    v_ack_timeout int;
    v_pause text;
    v_paused boolean := false;
    v_state text := 'ran';
    v_tick_id bigint;
    v_prev_actor text;
    v_reopened int := 0;
    v_due int := 0;
    v_live int := 0;
    v_events int := 0;
    v_lag bigint := 0;
    v_would jsonb := '[]';
    v_ms numeric;
    v_summary jsonb;
    v_missed int := 0;
    v_policy text;
BEGIN
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'escalation_tick needs a time'
            USING ERRCODE = '22004', HINT = 'Call ops.escalation_tick() for now, or pass p_now.';
    END IF;

    -- the settings a tick reads, each valid or else unset (its install default): a value written
    -- around set_setting never stops ticks; it is named in the tick log and fires SettingInvalid
    SELECT pg_catalog.jsonb_object_agg(d.key, CASE WHEN v.problem IS NULL THEN s.value ELSE d.fallback END),
           coalesce(pg_catalog.jsonb_object_agg(d.key, v.problem) FILTER (WHERE v.problem IS NOT NULL), '{}')
    INTO v_set, v_invalid
    FROM (VALUES ('escalation_enabled', 'true'::jsonb), ('escalation_v1', 'true'), ('dry_run', 'false'),
                 ('canary_pct', '100'), ('max_esc_level', '7'), ('ack_timeout_min', '0'),
                 ('tick_batch_max', '10000'), ('pause_cron', '""'), ('app_base_url', '""'),
                 ('default_policy', '""')) AS d (key, fallback)
    LEFT JOIN ops.settings AS s ON d.key = s.key
    CROSS JOIN LATERAL (
        SELECT CASE WHEN s.key IS NULL THEN 'missing'
                    -- a cron string is parsed once, by the pause check below
                    WHEN s.kind = 'cron' AND pg_catalog.jsonb_typeof(s.value) = 'string' THEN NULL
                    ELSE ops._setting_problem(s.kind, s.value, s.min_value, s.max_value) END AS problem
    ) AS v;
    v_pause := pg_catalog.btrim(v_set ->> 'pause_cron');
    IF v_pause <> '' THEN
        BEGIN
            v_paused := ops.cron_matches(v_pause, p_now);
        EXCEPTION WHEN invalid_parameter_value THEN
            v_invalid := v_invalid || pg_catalog.jsonb_build_object('pause_cron', SQLERRM);
        END;
    END IF;
    IF v_invalid <> '{}' THEN
        RAISE WARNING 'escalation_tick: invalid settings treated as unset: %', v_invalid
            USING HINT = 'SELECT * FROM ops.setting_problems(); then fix each with ops.set_setting.';
    END IF;
    v_dry := (v_set -> 'dry_run')::boolean;
    v_canary := (v_set -> 'canary_pct')::int;
    v_max := (v_set -> 'max_esc_level')::int;
    v_ack_timeout := (v_set -> 'ack_timeout_min')::int;
    v_policy := nullif(v_set ->> 'default_policy', '');

    -- one tick at a time per database; a second caller reports busy rather than queueing behind it
    IF NOT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('opsguard.escalation_tick')) THEN
        v_state := 'busy';
    ELSIF NOT (v_set -> 'escalation_enabled')::boolean THEN
        v_state := 'disabled';
    ELSIF NOT (v_set -> 'escalation_v1')::boolean THEN
        v_state := 'flag_off';
    ELSIF v_paused THEN
        v_state := 'paused';
    ELSIF v_dry THEN
        v_state := 'dry_run';
    END IF;

    -- heartbeats whose pings stopped open heartbeat::<name> in every state but busy: pause_cron and
    -- the kill switches hold back escalation, not intake (an alert arriving meanwhile opens its
    -- incident too); a dry run only counts them. Due rows only, through heartbeats_due.
    IF v_state <> 'busy' THEN
        WITH missed AS (
            SELECT h.name, h.ping_interval, h.route, h.severity, h.due_at, h.last_ping_at, h.missed_at
            FROM ops.heartbeats AS h
            WHERE h.due_at <= p_now
            ORDER BY h.due_at
            LIMIT (v_set -> 'tick_batch_max')::int
            FOR UPDATE SKIP LOCKED
        ),
        opened AS (
            SELECT m.name, m.ping_interval, m.due_at, m.missed_at,
                   CASE WHEN NOT v_dry THEN (ops._intake_trigger(
                       'heartbeat::' || m.name, m.severity, m.route,
                       pg_catalog.format('heartbeat %s missed: no ping since %s (expected every %s)', m.name,
                                         coalesce(m.last_ping_at::text, 'it was set up'), m.ping_interval),
                       pg_catalog.jsonb_build_object('heartbeat', pg_catalog.jsonb_build_object(
                           'name', m.name, 'intervalSeconds', EXTRACT(epoch FROM m.ping_interval)::bigint,
                           'lastPingAt', m.last_ping_at, 'dueAt', m.due_at)),
                       'opsguard:tick', p_now)).id END AS incident_id
            FROM missed AS m
        ),
        moved AS (
            -- looked at again one interval on: a silence that goes on refreshes the incident, or opens
            -- a new occurrence when someone resolved it by hand
            UPDATE ops.heartbeats AS h
            SET due_at = p_now + o.ping_interval, missed_at = coalesce(o.missed_at, o.due_at)
            FROM opened AS o
            WHERE o.incident_id IS NOT NULL AND h.name = o.name
            RETURNING 1
        )
        SELECT count(*) INTO v_missed FROM opened;
    END IF;

    IF v_state IN ('ran', 'dry_run') THEN
        v_prev_actor := ops._act_as('opsguard:tick');

        -- ack timeout: acknowledged but unresolved for too long goes back to open
        IF v_ack_timeout > 0 AND NOT v_dry THEN
            WITH reopened AS (
                UPDATE ops.incidents SET status = 'open'
                WHERE status = 'acknowledged'
                  AND acknowledged_at <= p_now - pg_catalog.make_interval(mins => v_ack_timeout)
                  AND ops.route_in_canary(route, v_canary)
                RETURNING 1
            )
            SELECT count(*) INTO v_reopened FROM reopened;
        END IF;

        v_tick_id := pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('ops.tick_log', 'id'));

        WITH due AS (
            SELECT i.id, i.incident_key, i.route, i.severity, i.escalation_level, i.next_due_at
            FROM ops.incidents AS i
            WHERE i.next_due_at <= p_now
              AND i.escalation_level < v_max
            ORDER BY i.next_due_at
            LIMIT (v_set -> 'tick_batch_max')::int
            FOR UPDATE SKIP LOCKED
        ),
        plan AS (
            SELECT d.*,
                   d.escalation_level + 1 AS new_level,
                   NOT v_dry AND ops.route_in_canary(d.route, v_canary) AS live,
                   ops.escalation_hash(d.id, d.escalation_level + 1) AS hash,
                   coalesce(rp.policy, v_policy) AS policy
            FROM due AS d
            LEFT JOIN ops.route_policies AS rp ON d.route = rp.route
        ),
        policies AS (
            -- a policy without steps is no policy: its incidents page as before
            SELECT ep.name, ep.repeat, count(*)::int AS steps
            FROM ops.escalation_policies AS ep
            INNER JOIN ops.escalation_policy_steps AS s ON ep.name = s.policy
            GROUP BY ep.name, ep.repeat
        ),
        stepped AS (
            SELECT p.*, ops.policy_step(pol.steps, pol.repeat, p.new_level) AS step
            FROM plan AS p
            LEFT JOIN policies AS pol ON p.policy = pol.name
        ),
        resolved AS (
            -- each distinct (policy, step) once per tick: on_call runs a few times, not once per incident
            SELECT k.policy, k.step, r.r_targets, r.r_webhooks
            FROM (SELECT DISTINCT s.policy, s.step FROM stepped AS s WHERE s.step IS NOT NULL) AS k
            CROSS JOIN LATERAL ops._step_targets(k.policy, k.step, p_now) AS r
        ),
        paged AS (
            SELECT s.*, r.r_targets AS targets, r.r_webhooks AS webhooks
            FROM stepped AS s
            LEFT JOIN resolved AS r ON s.policy = r.policy AND s.step = r.step
        ),
        events AS (
            INSERT INTO ops.escalation_events
                (incident_id, incident_key, route, severity, escalation_level, escalated_at, unique_hash, tick_id,
                 targets)
            SELECT p.id, p.incident_key, p.route, p.severity, p.new_level, p_now, p.hash, v_tick_id, p.targets
            FROM paged AS p
            WHERE p.live
            ON CONFLICT (unique_hash) DO NOTHING
            RETURNING id, incident_id, incident_key, route, severity, escalation_level, escalated_at, unique_hash,
                      targets
        ),
        raised AS (
            -- an event that already exists (the level was lowered by hand and reached again) still
            -- moves the incident on, so it is not due forever; it only sends nothing twice
            UPDATE ops.incidents AS i
            SET escalation_level = p.new_level, last_escalated_at = p_now
            FROM plan AS p
            WHERE p.live AND i.id = p.id
            RETURNING i.id
        ),
        queued AS (
            -- one message per destination: the route one keeps dedup_key = unique_hash (and without a
            -- policy the payload of before), each webhook target gets sha256(unique_hash:url)
            INSERT INTO ops.notification_outbox (dedup_key, event_id, incident_id, route, payload, webhook_url)
            SELECT e.dedup_key, e.id, e.incident_id, e.route,
                   pg_catalog.jsonb_build_object(
                       'dedup_key', e.dedup_key,
                       'incident_id', e.incident_id,
                       'incident_key', e.incident_key,
                       'route', e.route,
                       'severity', e.severity,
                       'escalation_level', e.escalation_level,
                       'escalated_at', e.escalated_at,
                       'link', nullif(pg_catalog.rtrim(v_set ->> 'app_base_url', '/'), '')
                           || '/incidents/' || e.incident_id,
                       'text', pg_catalog.format('[%s] %s escalated to level %s',
                           pg_catalog.upper(e.severity), e.incident_key, e.escalation_level))
                   || CASE WHEN e.targets IS NOT NULL THEN pg_catalog.jsonb_build_object(
                          'policy', e.targets -> 'policy', 'step', e.targets -> 'step',
                          'principals', e.targets -> 'principals', 'mentions', e.targets -> 'mentions') ELSE '{}' END,
                   e.url
            FROM (
                SELECT e1.*, e1.unique_hash AS dedup_key, NULL::text AS url
                FROM events AS e1
                WHERE e1.targets IS NULL OR e1.targets -> 'destinations' @> '[{"type": "route"}]'
                UNION ALL
                SELECT e2.*,
                       pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(e2.unique_hash || ':' || w.url, 'UTF8')),
                                         'hex'),
                       w.url
                FROM events AS e2
                INNER JOIN paged AS p ON e2.incident_id = p.id
                CROSS JOIN LATERAL pg_catalog.unnest(p.webhooks) AS w (url)
                WHERE e2.targets IS NOT NULL AND p.webhooks <> '{}'
            ) AS e
            RETURNING 1
        )
        SELECT count(*),
               count(*) FILTER (WHERE p.live),
               (SELECT count(*) FROM events),
               coalesce(max(floor(EXTRACT(epoch FROM p_now - p.next_due_at) * 1000)), 0),
               coalesce((SELECT pg_catalog.jsonb_agg(w) FROM (
                   SELECT pg_catalog.jsonb_build_object('id', p2.id, 'incidentKey', p2.incident_key,
                       'fromLevel', p2.escalation_level, 'toLevel', p2.new_level,
                       'why', CASE WHEN v_dry THEN 'dry_run' ELSE 'canary' END)
                       || CASE WHEN p2.targets IS NOT NULL
                               THEN pg_catalog.jsonb_build_object('wouldPage', p2.targets -> 'principals')
                               ELSE '{}' END AS w
                   FROM paged AS p2 WHERE NOT p2.live ORDER BY p2.next_due_at LIMIT 100) AS x), '[]')
        INTO v_due, v_live, v_events, v_lag, v_would
        FROM paged AS p;

        IF v_events > 0 THEN
            PERFORM pg_catalog.pg_notify('ops_outbox', v_tick_id::text);
        END IF;
        PERFORM ops._act_as(v_prev_actor);
    END IF;

    v_ms := round((EXTRACT(epoch FROM pg_catalog.clock_timestamp() - v_started) * 1000)::numeric, 3);
    INSERT INTO ops.tick_log (id, tick_at, started_at, source, state, dry_run, paused, disabled, due_count,
                              escalations_count, skipped_idempotent, dry_run_count, reopened_count,
                              queue_lag_ms, escalation_tick_ms, invalid_settings)
    OVERRIDING SYSTEM VALUE
    VALUES (coalesce(v_tick_id, pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('ops.tick_log', 'id'))),
            p_now, v_started, coalesce(p_source, 'sql'), v_state, v_dry, v_state = 'paused',
            v_state IN ('disabled', 'flag_off'), v_due, v_events, v_live - v_events, v_due - v_live, v_reopened,
            v_lag, v_ms, v_invalid)
    RETURNING id INTO v_tick_id;

    v_summary := pg_catalog.jsonb_build_object(
        'ok', true,
        'tickId', v_tick_id,
        'state', v_state,
        'dryRun', v_dry,
        'paused', v_state = 'paused',
        'disabled', v_state IN ('disabled', 'flag_off'),
        'due', v_due,
        'escalationsCount', v_events,
        'skippedIdempotent', v_live - v_events,
        'dryRunCount', v_due - v_live,
        'reopened', v_reopened,
        'queueLagMs', v_lag,
        'escalationTickMs', v_ms,
        'wouldEscalate', v_would);
    -- present only when a setting was ignored, so a healthy summary keeps its shape
    IF v_invalid <> '{}' THEN
        v_summary := v_summary || pg_catalog.jsonb_build_object('invalidSettings', v_invalid);
    END IF;
    IF v_missed > 0 THEN
        v_summary := v_summary || pg_catalog.jsonb_build_object('heartbeatsMissed', v_missed);
    END IF;
    RETURN v_summary;
END;
$$;
COMMENT ON FUNCTION ops.escalation_tick(timestamptz, text) IS
'Escalates every incident due at p_now (up to tick_batch_max) by one level: one escalation_events row each, '
'idempotent by unique_hash, recording whom it paged (targets, from the route policy or default_policy; NULL without '
'one) and one outbox message per destination (without a policy: one, to the route webhook). '
'Honours escalation_enabled, escalation_v1, pause_cron, dry_run, canary_pct, '
'ack_timeout_min; a setting stored invalid is treated as unset and reported (invalidSettings, tick_log.invalid_settings). '
'Writes a tick_log row and returns a jsonb summary. Also opens heartbeat::<name> for each heartbeat due at p_now '
'(heartbeatsMissed; counted only on a dry run; done when paused or disabled too, skipped when busy). '
'Dry-run and canary entries of wouldEscalate carry wouldPage when a policy applies.';

DROP FUNCTION ops._tick_log(timestamptz, bigint, timestamptz, text, text, boolean, integer, integer, integer, integer,
                            bigint, jsonb);
DROP FUNCTION ops._tick_due(timestamptz, bigint, jsonb, boolean);
DROP FUNCTION ops._tick_payload(text, uuid, text, text, text, integer, timestamptz, jsonb, text);
DROP FUNCTION ops._tick_claim(timestamptz, integer, integer, boolean, integer, text);
DROP FUNCTION ops._tick_stale_acks(timestamptz, integer, integer);
DROP FUNCTION ops._tick_heartbeats(timestamptz, boolean, integer);
DROP FUNCTION ops._tick_settings(timestamptz);

ALTER FUNCTION ops.escalation_hash(uuid, integer) IMMUTABLE;

ALTER TABLE ops.settings DROP COLUMN default_value;
