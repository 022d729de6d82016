-- depends: 0046_http_hardening
-- ops.escalation_tick as named steps, each a screen, so that a change redefines the step it
-- changes (its migration and rollback restate ~30 lines, not ~290):
--   ops._tick_settings   the settings a tick runs with (a stored value that is invalid: its default)
--   ops._tick_heartbeats heartbeats whose pings stopped open heartbeat::<name>
--   ops._tick_stale_acks acknowledged too long (ack_timeout_min): back to open
--   ops._tick_claim      the due incidents, locked, each with its new level and whom it pages
--   ops._tick_due        their events, levels and outbox messages (payload: ops._tick_payload)
--   ops._tick_log        the tick_log row and the summary the tick returns
-- The results are the same, row for row. A setting's default now lives in one place,
-- ops.settings.default_value: the tick no longer keeps its own copy of the install values.
-- And ops.escalation_hash is declared STABLE, as what it calls (convert_to) is: declared
-- IMMUTABLE, PostgreSQL never inlined it and ran it as a function call for every due row.

ALTER TABLE ops.settings ADD COLUMN default_value jsonb;
COMMENT ON COLUMN ops.settings.default_value IS
'The install value, valid for kind/min_value/max_value: what a tick uses while the stored value is invalid '
'(written around ops.set_setting), and what SELECT ops.set_setting(key, default_value #>> ''{}'', you) restores.';

-- every setting installed so far, with the value it was installed with: a value an operator
-- has changed since is not its default. Not audited: no setting changes, the schema does (the
-- migration is its record), as when the rows were installed.
ALTER TABLE ops.settings DISABLE TRIGGER settings_audit_update;
UPDATE ops.settings AS s SET default_value = d.value
FROM (VALUES
    ('ack_timeout_min', '0'::jsonb), ('alert_high_level_max', '3'), ('alert_high_level_min', '5'),
    ('app_base_url', '""'), ('canary_pct', '100'), ('cron_history_retention_days', '7'),
    ('default_policy', '""'), ('dry_run', 'false'), ('escalation_enabled', 'true'), ('escalation_v1', 'true'),
    ('guard_autoresolve_min', '10'), ('guard_block_inconclusive', 'false'), ('guard_critical_error_pct', '50'),
    ('change_retention_days', '30'), ('guard_evaluation_retention_days', '30'), ('guard_hard_error_pct', '20'),
    ('guard_lookback_min', '10'),
    ('guard_rollup_retention_days', '7'), ('max_esc_level', '7'), ('notify_backoff_max_ms', '300000'),
    ('notify_backoff_ms', '2000'), ('notify_lease_s', '60'), ('notify_max_attempts', '8'),
    ('notify_paused', 'false'), ('notify_retention_days', '7'), ('pause_cron', '""'),
    ('slack_webhook_url', '""'), ('snooze_min', '30'), ('tick_batch_max', '10000'),
    ('tick_log_retention_days', '14'), ('tick_ms', '60000')
) AS d (key, value)
WHERE s.key = d.key;
-- a setting another migration added that is not listed above: its value, while nobody changed it
UPDATE ops.settings SET default_value = value WHERE default_value IS NULL AND updated_by = 'install';
ALTER TABLE ops.settings ENABLE TRIGGER settings_audit_update;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM ops.settings WHERE default_value IS NULL
               OR ops._setting_problem(kind, default_value, min_value, max_value) IS NOT NULL) THEN
        RAISE EXCEPTION 'settings without a valid default: %',
            (SELECT pg_catalog.string_agg(key, ', ' ORDER BY key) FROM ops.settings
             WHERE default_value IS NULL OR ops._setting_problem(kind, default_value, min_value, max_value) IS NOT NULL)
            USING ERRCODE = '23502',
                  HINT = 'UPDATE ops.settings SET default_value = <its install value> WHERE key = ...; then migrate again.';
    END IF;
END
$$;
-- a migration that adds a setting names its default
ALTER TABLE ops.settings ALTER COLUMN default_value SET NOT NULL;

-- as IMMUTABLE, with convert_to (STABLE) inside, it was never inlined: a call for every due row
ALTER FUNCTION ops.escalation_hash(uuid, integer) STABLE;

-- The settings the tick reads, each valid or else its default (ops.settings.default_value): a value
-- written around set_setting never stops ticks; it is named in the tick log and fires SettingInvalid
CREATE FUNCTION ops._tick_settings(
    p_now timestamptz, OUT r_settings jsonb, OUT r_invalid jsonb, OUT r_paused boolean
)
LANGUAGE plpgsql STABLE
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_missing text;
    v_pause text;
BEGIN
    SELECT pg_catalog.jsonb_object_agg(k.key, CASE WHEN v.problem IS NULL THEN s.value ELSE s.default_value END),
           coalesce(pg_catalog.jsonb_object_agg(k.key, v.problem) FILTER (WHERE v.problem IS NOT NULL), '{}'),
           pg_catalog.string_agg(k.key, ', ') FILTER (WHERE s.key IS NULL)
    INTO r_settings, r_invalid, v_missing
    FROM pg_catalog.unnest(ARRAY['escalation_enabled', 'escalation_v1', 'dry_run', 'canary_pct', 'max_esc_level',
                                 'ack_timeout_min', 'tick_batch_max', 'pause_cron', 'app_base_url',
                                 'default_policy']) AS k (key)
    LEFT JOIN ops.settings AS s ON k.key = s.key
    CROSS JOIN LATERAL (
        -- a cron string is parsed once, by the pause check below
        SELECT CASE WHEN s.kind = 'cron' AND pg_catalog.jsonb_typeof(s.value) = 'string' THEN NULL
                    ELSE ops._setting_problem(s.kind, s.value, s.min_value, s.max_value) END AS problem
    ) AS v;
    IF v_missing IS NOT NULL THEN
        -- a deleted row took its default with it: there is nothing safe to run with
        RAISE EXCEPTION 'escalation_tick: settings % are missing from ops.settings', v_missing
            USING ERRCODE = 'P0002', HINT = 'Restore the row (key, value, kind, default_value, ...) as installed.';
    END IF;
    r_paused := false;
    v_pause := pg_catalog.btrim(r_settings ->> 'pause_cron');
    IF v_pause <> '' THEN
        BEGIN
            r_paused := ops.cron_matches(v_pause, p_now);
        EXCEPTION WHEN invalid_parameter_value THEN
            r_invalid := r_invalid || pg_catalog.jsonb_build_object('pause_cron', SQLERRM);
            v_pause := pg_catalog.btrim((SELECT s.default_value #>> '{}' FROM ops.settings AS s WHERE s.key = 'pause_cron'));
            r_paused := v_pause <> '' AND ops.cron_matches(v_pause, p_now);
        END;
    END IF;
    IF r_invalid <> '{}' THEN
        RAISE WARNING 'escalation_tick: invalid settings treated as unset: %', r_invalid
            USING HINT = 'SELECT * FROM ops.setting_problems(); then fix each with ops.set_setting.';
    END IF;
END;
$$;
COMMENT ON FUNCTION ops._tick_settings(timestamptz) IS
'Internal tick step: the settings escalation_tick reads as one jsonb (a stored value that is invalid replaced by '
'its default_value), the invalid ones and why, and whether pause_cron matches p_now. P0002 when a row is missing.';

-- Heartbeats whose pings stopped open heartbeat::<name>; a dry run only counts them. Due rows only,
-- through heartbeats_due.
CREATE FUNCTION ops._tick_heartbeats(p_now timestamptz, p_dry boolean, p_limit integer) RETURNS integer
LANGUAGE plpgsql
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_missed int;
BEGIN
    WITH missed AS (
        SELECT h.name, h.ping_interval, h.route, h.severity, h.due_at, h.last_ping_at, h.missed_at
        FROM ops.heartbeats AS h
        WHERE h.due_at <= p_now
        ORDER BY h.due_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ),
    opened AS (
        SELECT m.name, m.ping_interval, m.due_at, m.missed_at,
               CASE WHEN NOT p_dry THEN (ops._intake_trigger(
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
    RETURN v_missed;
END;
$$;
COMMENT ON FUNCTION ops._tick_heartbeats(timestamptz, boolean, integer) IS
'Internal tick step: opens or refreshes heartbeat::<name> for up to p_limit heartbeats due at p_now (skipping rows '
'another transaction holds) and moves each one interval on; with p_dry only counts them. Returns how many.';

-- Acknowledged but unresolved for p_minutes goes back to open (routes in the canary only).
CREATE FUNCTION ops._tick_stale_acks(p_now timestamptz, p_minutes integer, p_canary integer) RETURNS integer
LANGUAGE sql
SET search_path = ops, pg_temp
AS $$
    WITH reopened AS (
        UPDATE ops.incidents SET status = 'open'
        WHERE status = 'acknowledged'
          AND acknowledged_at <= p_now - pg_catalog.make_interval(mins => p_minutes)
          AND ops.route_in_canary(route, p_canary)
        RETURNING 1
    )
    SELECT count(*)::int FROM reopened
$$;
COMMENT ON FUNCTION ops._tick_stale_acks(timestamptz, integer, integer) IS
'Internal tick step (ack_timeout_min): incidents acknowledged at or before p_now - p_minutes and not resolved '
'reopen, on routes inside canary p_canary. Returns how many.';

-- The claim: one statement, ORDER BY next_due_at LIMIT n FOR UPDATE SKIP LOCKED on incidents_due,
-- so two ticks never take the same row; each row with its new level, its idempotency key, whether it
-- escalates for real and whom it pages (each distinct policy step resolved once per tick).
CREATE FUNCTION ops._tick_claim(
    p_now timestamptz, p_max_level integer, p_limit integer, p_dry boolean, p_canary integer, p_policy text
)
RETURNS TABLE (
    id uuid, incident_key text, route text, severity text, escalation_level integer, next_due_at timestamptz,
    new_level integer, live boolean, hash text, targets jsonb, webhooks text[]
)
LANGUAGE plpgsql
SET search_path = ops, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    -- plpgsql, not sql: its first plans are custom ones, made for this p_now and LIMIT (a SQL
    -- function is planned for unknown parameters, which could scan every incident)
    RETURN QUERY
    WITH due AS (
        SELECT i.id, i.incident_key, i.route, i.severity, i.escalation_level, i.next_due_at
        FROM ops.incidents AS i
        WHERE i.next_due_at <= p_now
          AND i.escalation_level < p_max_level
        ORDER BY i.next_due_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ),
    policies AS (
        -- a policy without steps is no policy: its incidents page as before
        SELECT ep.name, ep.repeat, count(*)::int AS steps
        FROM ops.escalation_policies AS ep
        INNER JOIN ops.escalation_policy_steps AS s ON ep.name = s.policy
        GROUP BY ep.name, ep.repeat
    ),
    stepped AS (
        SELECT d.*, d.escalation_level + 1 AS new_level,
               NOT p_dry AND ops.route_in_canary(d.route, p_canary) AS live,
               ops.escalation_hash(d.id, d.escalation_level + 1) AS hash,
               coalesce(rp.policy, p_policy) AS policy,
               ops.policy_step(pol.steps, pol.repeat, d.escalation_level + 1) AS step
        FROM due AS d
        LEFT JOIN ops.route_policies AS rp ON d.route = rp.route
        LEFT JOIN policies AS pol ON coalesce(rp.policy, p_policy) = pol.name
    ),
    resolved AS (
        -- each distinct (policy, step) once per tick: on_call runs a few times, not once per incident
        SELECT k.policy, k.step, r.r_targets, r.r_webhooks
        FROM (SELECT DISTINCT s.policy, s.step FROM stepped AS s WHERE s.step IS NOT NULL) AS k
        CROSS JOIN LATERAL ops._step_targets(k.policy, k.step, p_now) AS r
    )
    SELECT s.id, s.incident_key, s.route, s.severity, s.escalation_level, s.next_due_at, s.new_level, s.live, s.hash,
           r.r_targets, r.r_webhooks
    FROM stepped AS s
    LEFT JOIN resolved AS r ON s.policy = r.policy AND s.step = r.step;
END;
$$;
COMMENT ON FUNCTION ops._tick_claim(timestamptz, integer, integer, boolean, integer, text) IS
'Internal tick step: locks up to p_limit incidents due at p_now below p_max_level (skipping rows others hold) and '
'returns each with its new level, unique_hash, live (not p_dry and inside canary p_canary), and the targets and '
'webhooks of its policy step (route policy, else p_policy; NULL without one).';

-- One outbox payload. A SQL-standard body (bound when created: no search_path to pin) so that it
-- is inlined into the tick's INSERT, not called once per message.
CREATE FUNCTION ops._tick_payload(
    p_dedup_key text, p_incident_id uuid, p_incident_key text, p_route text, p_severity text, p_level integer,
    p_at timestamptz, p_targets jsonb, p_base_url text
) RETURNS jsonb
LANGUAGE sql STABLE
RETURN pg_catalog.jsonb_build_object(
    'dedup_key', p_dedup_key,
    'incident_id', p_incident_id,
    'incident_key', p_incident_key,
    'route', p_route,
    'severity', p_severity,
    'escalation_level', p_level,
    'escalated_at', p_at,
    'link', p_base_url || '/incidents/' || p_incident_id,
    'text', pg_catalog.format('[%s] %s escalated to level %s', pg_catalog.upper(p_severity), p_incident_key, p_level))
|| CASE WHEN p_targets IS NOT NULL THEN pg_catalog.jsonb_build_object(
       'policy', p_targets -> 'policy', 'step', p_targets -> 'step',
       'principals', p_targets -> 'principals', 'mentions', p_targets -> 'mentions') ELSE '{}' END;
COMMENT ON FUNCTION ops._tick_payload(text, uuid, text, text, text, integer, timestamptz, jsonb, text) IS
'Internal: the notification_outbox payload of one escalation (p_base_url: app_base_url without its trailing /, '
'NULL for no link); with targets, whom it paged.';

-- The due incidents, claimed by ops._tick_claim, each raised one level in this transaction: one
-- escalation_events row (ON CONFLICT on unique_hash: never twice) and one outbox message per
-- destination of a new event
CREATE FUNCTION ops._tick_due(
    p_now timestamptz, p_tick_id bigint, p_settings jsonb, p_dry boolean,
    OUT r_due integer, OUT r_live integer, OUT r_events integer, OUT r_lag bigint, OUT r_would jsonb
)
LANGUAGE plpgsql
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_base text := nullif(pg_catalog.rtrim(p_settings ->> 'app_base_url', '/'), '');
BEGIN
    WITH paged AS MATERIALIZED (
        SELECT * FROM ops._tick_claim(p_now, (p_settings -> 'max_esc_level')::int, (p_settings -> 'tick_batch_max')::int,
                                      p_dry, (p_settings -> 'canary_pct')::int, nullif(p_settings ->> 'default_policy', ''))
    ),
    events AS (
        INSERT INTO ops.escalation_events
            (incident_id, incident_key, route, severity, escalation_level, escalated_at, unique_hash, tick_id, targets)
        SELECT p.id, p.incident_key, p.route, p.severity, p.new_level, p_now, p.hash, p_tick_id, p.targets
        FROM paged AS p
        WHERE p.live
        ON CONFLICT (unique_hash) DO NOTHING
        RETURNING id, incident_id, incident_key, route, severity, escalation_level, escalated_at, unique_hash, targets
    ),
    raised AS (
        -- an event that already exists (the level was lowered by hand and reached again) still
        -- moves the incident on, so it is not due forever; it only sends nothing twice
        UPDATE ops.incidents AS i
        SET escalation_level = p.new_level, last_escalated_at = p_now
        FROM paged AS p
        WHERE p.live AND i.id = p.id
        RETURNING i.id
    ),
    queued AS (
        -- one message per destination: the route one keeps dedup_key = unique_hash (and without a
        -- policy the payload of before), each webhook target gets sha256(unique_hash:url)
        INSERT INTO ops.notification_outbox (dedup_key, event_id, incident_id, route, payload, webhook_url)
        SELECT e.dedup_key, e.id, e.incident_id, e.route,
               ops._tick_payload(e.dedup_key, e.incident_id, e.incident_key, e.route, e.severity,
                                 e.escalation_level, e.escalated_at, e.targets, v_base),
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
                   'why', CASE WHEN p_dry THEN 'dry_run' ELSE 'canary' END)
                   || CASE WHEN p2.targets IS NOT NULL
                           THEN pg_catalog.jsonb_build_object('wouldPage', p2.targets -> 'principals')
                           ELSE '{}' END AS w
               FROM paged AS p2 WHERE NOT p2.live ORDER BY p2.next_due_at LIMIT 100) AS x), '[]')
    INTO r_due, r_live, r_events, r_lag, r_would
    FROM paged AS p;
END;
$$;
COMMENT ON FUNCTION ops._tick_due(timestamptz, bigint, jsonb, boolean) IS
'Internal tick step: escalates what ops._tick_claim claims (p_settings as ops._tick_settings returns them) under '
'tick p_tick_id: events, levels and outbox messages for live rows; returns due, live, new events, the queue lag in ms '
'and wouldEscalate (dry-run and canary rows, first 100).';

-- The tick's row in tick_log and the summary it returns: the same figures, written in one place
CREATE FUNCTION ops._tick_log(
    p_now timestamptz, p_tick_id bigint, p_started timestamptz, p_source text, p_state text, p_dry boolean,
    p_due integer, p_live integer, p_events integer, p_reopened integer, p_lag bigint, p_invalid jsonb
) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_ms numeric := round((EXTRACT(epoch FROM pg_catalog.clock_timestamp() - p_started) * 1000)::numeric, 3);
    v_id bigint;
BEGIN
    INSERT INTO ops.tick_log (id, tick_at, started_at, source, state, dry_run, paused, disabled, due_count,
                              escalations_count, skipped_idempotent, dry_run_count, reopened_count,
                              queue_lag_ms, escalation_tick_ms, invalid_settings)
    OVERRIDING SYSTEM VALUE
    VALUES (coalesce(p_tick_id, pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('ops.tick_log', 'id'))),
            p_now, p_started, coalesce(p_source, 'sql'), p_state, p_dry, p_state = 'paused',
            p_state IN ('disabled', 'flag_off'), p_due, p_events, p_live - p_events, p_due - p_live, p_reopened,
            p_lag, v_ms, p_invalid)
    RETURNING id INTO v_id;
    RETURN pg_catalog.jsonb_build_object(
        'ok', true, 'tickId', v_id, 'state', p_state, 'dryRun', p_dry,
        'paused', p_state = 'paused', 'disabled', p_state IN ('disabled', 'flag_off'),
        'due', p_due, 'escalationsCount', p_events, 'skippedIdempotent', p_live - p_events,
        'dryRunCount', p_due - p_live, 'reopened', p_reopened, 'queueLagMs', p_lag, 'escalationTickMs', v_ms)
        -- present only when a setting was ignored, so a healthy summary keeps its shape
        || CASE WHEN p_invalid <> '{}' THEN pg_catalog.jsonb_build_object('invalidSettings', p_invalid) ELSE '{}' END;
END;
$$;
COMMENT ON FUNCTION ops._tick_log(timestamptz, bigint, timestamptz, text, text, boolean, integer, integer, integer,
                                  integer, bigint, jsonb) IS
'Internal tick step: writes the tick_log row of a tick (id p_tick_id, or a new one) with its time since p_started, '
'and returns the summary escalation_tick returns, but for wouldEscalate and heartbeatsMissed.';

-- jit off: the tick's statements cross jit_optimize_above_cost, and compiling took 2.2 s of a 10k
-- tick that runs in 3 (as release_guard)
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
    v_paused boolean;
    v_dry boolean;
    v_state text := 'ran';
    v_tick_id bigint;
    v_prev_actor text;
    v_reopened int := 0;
    v_missed int := 0;
    v_due int := 0;
    v_live int := 0;
    v_events int := 0;
    v_lag bigint := 0;
    v_would jsonb := '[]';
BEGIN
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'escalation_tick needs a time'
            USING ERRCODE = '22004', HINT = 'Call ops.escalation_tick() for now, or pass p_now.';
    END IF;
    SELECT * INTO v_set, v_invalid, v_paused FROM ops._tick_settings(p_now);
    v_dry := (v_set -> 'dry_run')::boolean;

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

    -- pause_cron and the kill switches hold back escalation, not intake: missed heartbeats open
    -- their incidents in every state but busy (an alert arriving meanwhile does too)
    -- (a step is called only when it has rows to work on: most ticks find none, and a call costs
    -- more than the probe that says so; min() reads the first entry of the due index whatever
    -- plan p_now gets, where an EXISTS planned for an unknown p_now may read the whole table)
    IF v_state <> 'busy' AND (SELECT min(h.due_at) FROM ops.heartbeats AS h) <= p_now THEN
        v_missed := ops._tick_heartbeats(p_now, v_dry, (v_set -> 'tick_batch_max')::int);
    END IF;

    IF v_state IN ('ran', 'dry_run') THEN
        v_prev_actor := ops._act_as('opsguard:tick');
        IF (v_set -> 'ack_timeout_min')::int > 0 AND NOT v_dry THEN
            v_reopened := ops._tick_stale_acks(p_now, (v_set -> 'ack_timeout_min')::int, (v_set -> 'canary_pct')::int);
        END IF;
        v_tick_id := pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('ops.tick_log', 'id'));
        IF (SELECT min(i.next_due_at) FROM ops.incidents AS i) <= p_now THEN
            SELECT * INTO v_due, v_live, v_events, v_lag, v_would FROM ops._tick_due(p_now, v_tick_id, v_set, v_dry);
        END IF;
        IF v_events > 0 THEN
            PERFORM pg_catalog.pg_notify('ops_outbox', v_tick_id::text);
        END IF;
        PERFORM ops._act_as(v_prev_actor);
    END IF;

    RETURN ops._tick_log(p_now, v_tick_id, v_started, p_source, v_state, v_dry, v_due, v_live, v_events, v_reopened,
                         v_lag, v_invalid)
        || pg_catalog.jsonb_build_object('wouldEscalate', v_would)
        || CASE WHEN v_missed > 0 THEN pg_catalog.jsonb_build_object('heartbeatsMissed', v_missed) ELSE '{}' END;
END;
$$;
COMMENT ON FUNCTION ops.escalation_tick(timestamptz, text) IS
'Escalates every incident due at p_now (up to tick_batch_max) by one level: one escalation_events row each, '
'idempotent by unique_hash, recording whom it paged (targets, from the route policy or default_policy; NULL without '
'one) and one outbox message per destination (without a policy: one, to the route webhook). '
'Honours escalation_enabled, escalation_v1, pause_cron, dry_run, canary_pct, '
'ack_timeout_min; a setting stored invalid is treated as its default_value and reported (invalidSettings, '
'tick_log.invalid_settings). Writes a tick_log row and returns a jsonb summary. Also opens heartbeat::<name> for each '
'heartbeat due at p_now (heartbeatsMissed; counted only on a dry run; done when paused or disabled too, skipped when '
'busy). Dry-run and canary entries of wouldEscalate carry wouldPage when a policy applies. '
'Its steps: ops._tick_settings, _tick_heartbeats, _tick_stale_acks, _tick_claim, _tick_due, _tick_log.';

-- internal steps: run by escalation_tick as its owner; nobody else calls them
REVOKE ALL ON FUNCTION ops._tick_settings(timestamptz), ops._tick_heartbeats(timestamptz, boolean, integer),
    ops._tick_stale_acks(timestamptz, integer, integer),
    ops._tick_claim(timestamptz, integer, integer, boolean, integer, text),
    ops._tick_payload(text, uuid, text, text, text, integer, timestamptz, jsonb, text),
    ops._tick_due(timestamptz, bigint, jsonb, boolean),
    ops._tick_log(timestamptz, bigint, timestamptz, text, text, boolean, integer, integer, integer, integer, bigint,
                  jsonb)
FROM public;
