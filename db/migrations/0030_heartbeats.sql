-- depends: 0029_events_v2
-- Heartbeats (SPEC 10): a dead man switch. A sender pings POST /ops/heartbeats/<name> at
-- least once per interval (the always-firing Watchdog alert, the last line of a cron job);
-- when the pings stop, the tick opens incident heartbeat::<name>, and the next ping
-- resolves it. The tick finds missed heartbeats through an index on due_at, so heartbeats
-- that are not due cost it nothing, however many there are.

CREATE TABLE ops.heartbeats (
    name text PRIMARY KEY,
    ping_interval interval NOT NULL,
    route text,
    severity text NOT NULL DEFAULT 'critical' REFERENCES ops.sla (severity),
    due_at timestamptz NOT NULL,
    last_ping_at timestamptz,
    last_ping_by text,
    missed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    created_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    updated_by text NOT NULL,
    CONSTRAINT heartbeats_name_format CHECK (name ~ '^[A-Za-z0-9._@:-]{1,100}$'),
    CONSTRAINT heartbeats_interval_range CHECK (ping_interval BETWEEN interval '1 minute' AND interval '7 days'),
    CONSTRAINT heartbeats_route_length CHECK (pg_catalog.length(route) BETWEEN 1 AND 500)
);
COMMENT ON TABLE ops.heartbeats IS
'Dead man''s switches: each expects a ping (POST /ops/heartbeats/<name>, a key of kind heartbeat) at least every '
'ping_interval. When due_at passes without one, the tick opens incident heartbeat::<name>; the next ping resolves it. '
'Change with ops.set_heartbeat, drop with ops.remove_heartbeat.';
COMMENT ON COLUMN ops.heartbeats.due_at IS
'When the tick next looks at this heartbeat: the last ping (or the setup) plus ping_interval; after a miss, the miss '
'plus ping_interval (a still-silent sender is checked again once per interval).';
COMMENT ON COLUMN ops.heartbeats.missed_at IS
'When the current silence was noticed (the due_at that passed); NULL while pings arrive.';
-- the tick reads only the due rows, in due order: the same shape as incidents_next_due
CREATE INDEX heartbeats_due ON ops.heartbeats (due_at);
-- pings and the tick move due_at, last_ping_at and missed_at on every ping: not worth an audit row each;
-- setting, changing and removing a heartbeat is audited
CREATE TRIGGER heartbeats_audit_insert AFTER INSERT ON ops.heartbeats
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('name');
CREATE TRIGGER heartbeats_audit_update AFTER UPDATE ON ops.heartbeats
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
EXECUTE FUNCTION ops._audit_changes('name', 'due_at', 'last_ping_at', 'last_ping_by', 'missed_at');
CREATE TRIGGER heartbeats_audit_delete AFTER DELETE ON ops.heartbeats
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('name');

CREATE FUNCTION ops.set_heartbeat(
    p_name text, p_interval interval, p_actor text, p_route text DEFAULT NULL, p_severity text DEFAULT 'critical',
    p_now timestamptz DEFAULT pg_catalog.now()
) RETURNS ops.heartbeats
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_row ops.heartbeats;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    IF p_name IS NULL OR p_name !~ '^[A-Za-z0-9._@:-]{1,100}$' THEN
        RAISE EXCEPTION 'invalid heartbeat name "%"', p_name
            USING ERRCODE = '22023', HINT = 'Names: 1 to 100 letters, digits, . _ @ : -, e.g. ''alertmanager-prod''.';
    END IF;
    IF p_interval IS NULL OR p_now IS NULL THEN
        RAISE EXCEPTION 'set_heartbeat needs an interval and a time'
            USING ERRCODE = '22004', HINT = 'Example: SELECT ops.set_heartbeat(''watchdog'', ''5 minutes'', ''alice'');';
    END IF;
    IF p_interval < INTERVAL '1 minute' OR p_interval > INTERVAL '7 days' THEN
        RAISE EXCEPTION 'heartbeat interval % is out of range', p_interval
            USING ERRCODE = '22003',
                  HINT = 'Between 1 minute (the tick runs once a minute) and 7 days; a few times the sender''s period.';
    END IF;
    IF p_route IS NOT NULL AND (pg_catalog.btrim(p_route) = '' OR pg_catalog.length(p_route) > 500) THEN
        RAISE EXCEPTION 'a route must be 1 to 500 characters' USING ERRCODE = '22023';
    END IF;
    IF p_severity IS NULL OR NOT EXISTS (SELECT 1 FROM ops.sla WHERE severity = p_severity) THEN
        RAISE EXCEPTION 'unknown severity "%"', p_severity
            USING ERRCODE = '22023', HINT = 'Severities: SELECT severity FROM ops.sla; (critical, warning).';
    END IF;
    v_prev := ops._act_as(p_actor);
    -- a new heartbeat gets one interval of grace for its first ping; a changed interval counts from
    -- the last ping (a shorter one may be missed at the next tick); a missed one stays missed
    INSERT INTO ops.heartbeats AS h (name, ping_interval, route, severity, due_at, created_by, updated_by)
    VALUES (p_name, p_interval, p_route, p_severity, p_now + p_interval, p_actor, p_actor)
    ON CONFLICT (name) DO UPDATE
    SET ping_interval = EXCLUDED.ping_interval, route = EXCLUDED.route, severity = EXCLUDED.severity,
        due_at = CASE WHEN h.missed_at IS NOT NULL OR h.ping_interval = EXCLUDED.ping_interval THEN h.due_at
                      ELSE coalesce(h.last_ping_at, p_now) + EXCLUDED.ping_interval END,
        updated_at = pg_catalog.clock_timestamp(), updated_by = p_actor
    RETURNING * INTO v_row;
    PERFORM ops._act_as(v_prev);
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops.set_heartbeat(text, interval, text, text, text, timestamptz) IS
'Creates or changes a heartbeat (audited): SELECT ops.set_heartbeat(''watchdog'', ''5 minutes'', ''alice'', '
'''platform''); pings come from a key of kind heartbeat. Bad name or severity: 22023; interval outside 1 minute to '
'7 days: 22003.';

CREATE FUNCTION ops.remove_heartbeat(p_name text, p_actor text) RETURNS ops.heartbeats
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_row ops.heartbeats;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    v_prev := ops._act_as(p_actor);
    DELETE FROM ops.heartbeats WHERE name = p_name RETURNING * INTO v_row;
    PERFORM ops._act_as(v_prev);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no heartbeat "%"', p_name
            USING ERRCODE = 'P0002', HINT = 'SELECT name, ping_interval, due_at FROM ops.heartbeats;';
    END IF;
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops.remove_heartbeat(text, text) IS
'Drops a heartbeat (audited); its pings get 404 from then on. An open heartbeat::<name> incident stays: resolve it.';

CREATE FUNCTION ops.api_heartbeat_ping(p_token text, p_name text, p_now timestamptz DEFAULT pg_catalog.now())
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_key ops.integration_keys := ops._integration_key(p_token, 'heartbeat');
    v_row ops.heartbeats;
    v_resolved ops.incidents;
BEGIN
    -- a key with a route pings only the heartbeats of that route; the answer for another route is
    -- the one for an unknown name, so a key learns nothing about heartbeats it may not ping
    UPDATE ops.heartbeats
    SET last_ping_at = GREATEST(last_ping_at, p_now), last_ping_by = v_key.name,
        due_at = GREATEST(last_ping_at, p_now) + ping_interval, missed_at = NULL
    WHERE name = p_name AND (v_key.route IS NULL OR route = v_key.route)
    RETURNING * INTO v_row;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no heartbeat "%" for this key', pg_catalog.left(p_name, 100)
            USING ERRCODE = 'P0002', HINT = 'An operator sets it up: SELECT ops.set_heartbeat(name, interval, actor);';
    END IF;
    -- the row lock above orders a ping after a tick that is opening the incident, so it resolves it
    v_resolved := ops._intake_transition('heartbeat::' || p_name, 'resolved', v_key.name, p_now);
    RETURN pg_catalog.jsonb_build_object(
        'ok', true,
        'heartbeat', pg_catalog.jsonb_build_object(
            'name', v_row.name, 'intervalSeconds', EXTRACT(epoch FROM v_row.ping_interval)::bigint,
            'lastPingAt', v_row.last_ping_at, 'dueAt', v_row.due_at),
        'resolved', CASE WHEN v_resolved.id IS NULL THEN NULL ELSE ops.incident_json(v_resolved) END);
END;
$$;
COMMENT ON FUNCTION ops.api_heartbeat_ping(text, text, timestamptz) IS
'POST /ops/heartbeats/<name>: records a ping (due again one interval later) and resolves an open heartbeat::<name> '
'incident, actor the key name. Bad key: 28000; unknown heartbeat, or one of another route than the key: P0002.';

CREATE OR REPLACE FUNCTION ops.escalation_tick(p_now timestamptz DEFAULT pg_catalog.now(), p_source text DEFAULT 'sql')
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
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
                 ('tick_batch_max', '10000'), ('pause_cron', '""'), ('app_base_url', '""')) AS d (key, fallback)
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
                   ops.escalation_hash(d.id, d.escalation_level + 1) AS hash
            FROM due AS d
        ),
        events AS (
            INSERT INTO ops.escalation_events
                (incident_id, incident_key, route, severity, escalation_level, escalated_at, unique_hash, tick_id)
            SELECT p.id, p.incident_key, p.route, p.severity, p.new_level, p_now, p.hash, v_tick_id
            FROM plan AS p
            WHERE p.live
            ON CONFLICT (unique_hash) DO NOTHING
            RETURNING id, incident_id, incident_key, route, severity, escalation_level, escalated_at, unique_hash
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
            INSERT INTO ops.notification_outbox (dedup_key, event_id, incident_id, route, payload)
            SELECT e.unique_hash, e.id, e.incident_id, e.route,
                   pg_catalog.jsonb_build_object(
                       'dedup_key', e.unique_hash,
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
            FROM events AS e
            RETURNING 1
        )
        SELECT count(*),
               count(*) FILTER (WHERE p.live),
               (SELECT count(*) FROM events),
               coalesce(max(floor(EXTRACT(epoch FROM p_now - p.next_due_at) * 1000)), 0),
               coalesce((SELECT pg_catalog.jsonb_agg(w) FROM (
                   SELECT pg_catalog.jsonb_build_object('id', p2.id, 'incidentKey', p2.incident_key,
                       'fromLevel', p2.escalation_level, 'toLevel', p2.new_level,
                       'why', CASE WHEN v_dry THEN 'dry_run' ELSE 'canary' END) AS w
                   FROM plan AS p2 WHERE NOT p2.live ORDER BY p2.next_due_at LIMIT 100) AS x), '[]')
        INTO v_due, v_live, v_events, v_lag, v_would
        FROM plan AS p;

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
'Escalates every incident due at p_now (up to tick_batch_max) by one level: one escalation_events row and one outbox '
'message each, idempotent by unique_hash. Honours escalation_enabled, escalation_v1, pause_cron, dry_run, canary_pct, '
'ack_timeout_min; a setting stored invalid is treated as unset and reported (invalidSettings, tick_log.invalid_settings). '
'Writes a tick_log row and returns a jsonb summary. Also opens heartbeat::<name> for each heartbeat due at p_now '
'(heartbeatsMissed; counted only on a dry run; done when paused or disabled too, skipped when busy).';

-- operators (admins at psql) set heartbeats up; the API checks the key inside api_heartbeat_ping
GRANT EXECUTE ON FUNCTION ops.set_heartbeat(text, interval, text, text, text, timestamptz),
ops.remove_heartbeat(text, text) TO opsguard_operator;
-- the ping endpoint (POST /ops/heartbeats/<name>)
GRANT EXECUTE ON FUNCTION ops.api_heartbeat_ping(text, text, timestamptz) TO opsguard_api;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ops FROM public;
