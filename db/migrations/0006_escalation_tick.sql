-- depends: 0005_incidents
-- The escalation tick: claims due incidents through the next_due_at index,
-- escalates them set-based, records idempotent events, queues notifications.

CREATE TABLE ops.tick_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tick_at timestamptz NOT NULL,
    started_at timestamptz NOT NULL,
    source text NOT NULL,
    state text NOT NULL CHECK (state IN ('ran', 'dry_run', 'paused', 'disabled', 'flag_off', 'busy')),
    dry_run boolean NOT NULL,
    paused boolean NOT NULL,
    disabled boolean NOT NULL,
    due_count integer NOT NULL DEFAULT 0,
    escalations_count integer NOT NULL DEFAULT 0,
    skipped_idempotent integer NOT NULL DEFAULT 0,
    dry_run_count integer NOT NULL DEFAULT 0,
    reopened_count integer NOT NULL DEFAULT 0,
    queue_lag_ms bigint NOT NULL DEFAULT 0,
    escalation_tick_ms numeric(12, 3) NOT NULL
);
CREATE INDEX tick_log_started_at ON ops.tick_log (started_at);
COMMENT ON TABLE ops.tick_log IS 'One row per escalation tick: what it did and how long it took (the seeds'' counters).';
COMMENT ON COLUMN ops.tick_log.tick_at IS 'The tick''s clock (p_now).';
COMMENT ON COLUMN ops.tick_log.state IS
'ran; dry_run (reported only); paused (pause_cron matched); disabled (escalation_enabled off); flag_off (escalation_v1 off); '
'busy (another tick held the lock).';
COMMENT ON COLUMN ops.tick_log.queue_lag_ms IS 'How late the most overdue claimed incident was: p_now - its next_due_at.';
COMMENT ON COLUMN ops.tick_log.dry_run_count IS 'Due incidents reported but not escalated (dry run, or outside the canary share).';

CREATE TABLE ops.notification_outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key text NOT NULL UNIQUE,
    event_id bigint NOT NULL REFERENCES ops.escalation_events (id),
    incident_id uuid NOT NULL REFERENCES ops.incidents (id),
    route text,
    channel text NOT NULL DEFAULT 'slack',
    payload jsonb NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'sent', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_error text,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    sent_at timestamptz
);
CREATE INDEX notification_outbox_pending ON ops.notification_outbox (next_attempt_at) WHERE status = 'pending';
COMMENT ON TABLE ops.notification_outbox IS
'Messages queued by escalations in the same transaction as their event; a dispatcher delivers them (at least once, with dedup_key).';
COMMENT ON COLUMN ops.notification_outbox.dedup_key IS 'The escalation event''s unique_hash; sent as X-Dedup-Key and in the payload.';

CREATE FUNCTION ops.route_bucket(p_route text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT (('x' || pg_catalog.left(pg_catalog.md5(coalesce(p_route, '')), 8))::bit(32)::bigint % 100)::int
$$;
COMMENT ON FUNCTION ops.route_bucket(text) IS
'A route''s stable canary bucket 0..99: the first 32 bits of md5(route) mod 100. Same on every server and version.';

CREATE FUNCTION ops.route_in_canary(p_route text, p_pct integer) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_pct >= 100 OR ops.route_bucket(p_route) < p_pct
$$;
COMMENT ON FUNCTION ops.route_in_canary(text, integer) IS
'True when the route escalates for real under canary_pct = p_pct (its bucket is below p_pct). Raising p_pct only adds routes.';

CREATE FUNCTION ops.escalation_tick(p_now timestamptz DEFAULT pg_catalog.now(), p_source text DEFAULT 'sql')
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_started timestamptz := pg_catalog.clock_timestamp();
    v_dry boolean := ops.setting('dry_run')::boolean;
    v_canary int := ops.setting('canary_pct')::int;
    v_max int := ops.setting('max_esc_level')::int;
    v_ack_timeout int := ops.setting('ack_timeout_min')::int;
    v_pause text := ops.setting('pause_cron') #>> '{}';
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
BEGIN
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'escalation_tick needs a time'
            USING ERRCODE = '22004', HINT = 'Call ops.escalation_tick() for now, or pass p_now.';
    END IF;

    -- one tick at a time per database; a second caller reports busy rather than queueing behind it
    IF NOT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('opsguard.escalation_tick')) THEN
        v_state := 'busy';
    ELSIF NOT ops.setting('escalation_enabled')::boolean THEN
        v_state := 'disabled';
    ELSIF NOT ops.setting('escalation_v1')::boolean THEN
        v_state := 'flag_off';
    ELSIF v_pause <> '' AND ops.cron_matches(v_pause, p_now) THEN
        v_state := 'paused';
    ELSIF v_dry THEN
        v_state := 'dry_run';
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
            LIMIT ops.setting('tick_batch_max')::int
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
                       'link', nullif(pg_catalog.rtrim(ops.setting('app_base_url') #>> '{}', '/'), '')
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
                              queue_lag_ms, escalation_tick_ms)
    OVERRIDING SYSTEM VALUE
    VALUES (coalesce(v_tick_id, pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('ops.tick_log', 'id'))),
            p_now, v_started, coalesce(p_source, 'sql'), v_state, v_dry, v_state = 'paused',
            v_state IN ('disabled', 'flag_off'), v_due, v_events, v_live - v_events, v_due - v_live, v_reopened,
            v_lag, v_ms)
    RETURNING id INTO v_tick_id;

    RETURN pg_catalog.jsonb_build_object(
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
END;
$$;
COMMENT ON FUNCTION ops.escalation_tick(timestamptz, text) IS
'Escalates every incident due at p_now (up to tick_batch_max) by one level: one escalation_events row and one outbox message each, '
'idempotent by unique_hash. Honours escalation_enabled, escalation_v1, pause_cron, dry_run, canary_pct, ack_timeout_min. '
'Writes a tick_log row and returns a jsonb summary.';

CREATE FUNCTION ops.recalc_next_due() RETURNS integer
LANGUAGE sql AS $$
    WITH changed AS (
        UPDATE ops.incidents AS i
        SET next_due_at = ops.next_due(i)
        WHERE i.status <> 'resolved'
          AND i.next_due_at IS DISTINCT FROM ops.next_due(i)
        RETURNING 1
    )
    SELECT count(*)::int FROM changed
$$;
COMMENT ON FUNCTION ops.recalc_next_due() IS
'Recomputes next_due_at for every active incident; returns how many changed. Runs by itself when the SLA table, '
'max_esc_level or snooze_min change.';

CREATE FUNCTION ops._recalc_after_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ops.recalc_next_due();
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ops._recalc_after_change() IS 'Internal trigger: next_due_at follows SLA and setting changes at once.';

CREATE TRIGGER sla_recalc AFTER INSERT OR UPDATE OR DELETE ON ops.sla
FOR EACH STATEMENT EXECUTE FUNCTION ops._recalc_after_change();
CREATE TRIGGER settings_recalc AFTER UPDATE ON ops.settings
FOR EACH ROW WHEN (old.key IN ('max_esc_level', 'snooze_min') AND old.value IS DISTINCT FROM new.value)
EXECUTE FUNCTION ops._recalc_after_change();
