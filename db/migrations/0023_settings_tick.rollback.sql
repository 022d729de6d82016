-- restores the definitions of 0021 and before

DROP FUNCTION ops.setting_problems();
DROP FUNCTION ops._setting_problem(text, jsonb, int, int);

CREATE OR REPLACE FUNCTION ops._cron_field(
    p_field text, p_min integer, p_max integer, p_names text[], p_base integer, p_what text
) RETURNS integer[]
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'ops', 'pg_temp'
    AS $_$
DECLARE
    v_item text;
    v_range text;
    v_step int;
    v_lo int;
    v_hi int;
    v_out int[] := '{}';
BEGIN
    FOREACH v_item IN ARRAY pg_catalog.string_to_array(p_field, ',') LOOP
        IF v_item ~ '^[^/]+/[0-9]{1,4}$' THEN
            v_range := pg_catalog.split_part(v_item, '/', 1);
            v_step := pg_catalog.split_part(v_item, '/', 2)::int;
        ELSIF v_item ~ '^[^/]+$' THEN
            v_range := v_item;
            v_step := NULL;
        ELSE
            v_range := NULL;
        END IF;
        IF v_range IS NULL OR v_step = 0 THEN
            RAISE EXCEPTION 'cron %: "%" is not a valid item', p_what, v_item
                USING ERRCODE = '22023', HINT = 'A step is a positive number after one slash: */15, 0-30/5.';
        END IF;
        IF v_range = '*' THEN
            v_lo := p_min;
            v_hi := p_max;
        ELSIF v_range ~ '^[^-]+-[^-]+$' THEN
            v_lo := ops._cron_value(pg_catalog.split_part(v_range, '-', 1), p_names, p_base, p_what);
            v_hi := ops._cron_value(pg_catalog.split_part(v_range, '-', 2), p_names, p_base, p_what);
        ELSE
            v_lo := ops._cron_value(v_range, p_names, p_base, p_what);
            -- Vixie cron reads "5/15" as "5-max/15"
            v_hi := CASE WHEN v_step IS NULL THEN v_lo ELSE p_max END;
        END IF;
        IF v_lo < p_min OR v_hi > p_max OR v_lo > v_hi THEN
            RAISE EXCEPTION 'cron %: "%" is outside %-%', p_what, v_item, p_min, p_max
                USING ERRCODE = '22023', HINT = 'Ranges go low-high within the field''s bounds.';
        END IF;
        v_out := v_out || ARRAY(SELECT pg_catalog.generate_series(v_lo, v_hi, coalesce(v_step, 1)));
    END LOOP;
    RETURN v_out;
END;
$_$;
COMMENT ON FUNCTION ops._cron_field(text, integer, integer, text[], integer, text) IS
'Internal: the values one cron field allows.';

CREATE OR REPLACE FUNCTION ops.cron_matches(p_expr text, p_at timestamp with time zone) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    AS $$
DECLARE
    v_expr text := pg_catalog.lower(pg_catalog.btrim(p_expr));
    v_f text[];
    v_t timestamp := p_at AT TIME ZONE 'UTC';
    v_dom_ok boolean;
    v_dow_ok boolean;
BEGIN
    IF p_expr IS NULL OR p_at IS NULL THEN
        RAISE EXCEPTION 'cron_matches needs an expression and a time'
            USING ERRCODE = '22004', HINT = 'Example: ops.cron_matches(''0 22 * * 1-5'', now()).';
    END IF;
    v_expr := CASE v_expr
        WHEN '@hourly' THEN '0 * * * *'
        WHEN '@daily' THEN '0 0 * * *'
        WHEN '@midnight' THEN '0 0 * * *'
        WHEN '@weekly' THEN '0 0 * * 0'
        WHEN '@monthly' THEN '0 0 1 * *'
        WHEN '@yearly' THEN '0 0 1 1 *'
        WHEN '@annually' THEN '0 0 1 1 *'
        ELSE v_expr
    END;
    v_f := pg_catalog.regexp_split_to_array(v_expr, '\s+');
    IF pg_catalog.cardinality(v_f) <> 5 OR v_expr = '' THEN
        RAISE EXCEPTION 'cron expression "%" does not have 5 fields', p_expr
            USING ERRCODE = '22023',
                  HINT = 'minute hour day-of-month month day-of-week, in UTC; e.g. "0 22 * * 1-5" or "*/15 * * * *".';
    END IF;
    IF NOT (EXTRACT(minute FROM v_t)::int = ANY (ops._cron_field(v_f[1], 0, 59, '{}', 0, 'minute'))
        AND EXTRACT(hour FROM v_t)::int = ANY (ops._cron_field(v_f[2], 0, 23, '{}', 0, 'hour'))
        AND EXTRACT(month FROM v_t)::int = ANY (ops._cron_field(v_f[4], 1, 12,
            '{jan,feb,mar,apr,may,jun,jul,aug,sep,oct,nov,dec}', 1, 'month'))) THEN
        -- still validate the day fields, so a bad expression never passes silently
        PERFORM ops._cron_field(v_f[3], 1, 31, '{}', 1, 'day-of-month'),
                ops._cron_field(v_f[5], 0, 7, '{sun,mon,tue,wed,thu,fri,sat}', 0, 'day-of-week');
        RETURN false;
    END IF;
    v_dom_ok := EXTRACT(day FROM v_t)::int = ANY (ops._cron_field(v_f[3], 1, 31, '{}', 1, 'day-of-month'));
    -- Sunday is 0 and 7
    v_dow_ok := EXTRACT(dow FROM v_t)::int = ANY (
        SELECT d % 7 FROM pg_catalog.unnest(
            ops._cron_field(v_f[5], 0, 7, '{sun,mon,tue,wed,thu,fri,sat}', 0, 'day-of-week')) AS d);
    -- Vixie cron: when both day fields are restricted (neither starts with *), either may match
    IF pg_catalog.left(v_f[3], 1) = '*' OR pg_catalog.left(v_f[5], 1) = '*' THEN
        RETURN v_dom_ok AND v_dow_ok;
    END IF;
    RETURN v_dom_ok OR v_dow_ok;
END;
$$;
COMMENT ON FUNCTION ops.cron_matches(text, timestamp with time zone) IS
'True when the 5-field cron expression (UTC; *, lists, ranges, steps, month/day names, @daily...) matches the '
'minute of p_at. Day-of-month and day-of-week combine as in Vixie cron. Invalid expressions raise 22023.';

CREATE OR REPLACE FUNCTION ops.validate_url(p_url text, p_kind text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    AS $_$
DECLARE
    v_m text[] := pg_catalog.regexp_match(p_url, '^(https?)://([^/:?#@\s\[\]]+|\[[0-9a-fA-F:.]+\])(:[0-9]{1,5})?([/?#]\S*)?$');
BEGIN
    IF v_m IS NULL THEN
        RAISE EXCEPTION '"%" is not an http(s) URL', p_url
            USING ERRCODE = '22023', HINT = 'Example: https://ops.example.com';
    END IF;
    IF p_kind = 'webhook' AND v_m[1] = 'http'
       AND pg_catalog.lower(v_m[2]) NOT IN ('localhost', '[::1]') AND v_m[2] !~ '^127\.[0-9]+\.[0-9]+\.[0-9]+$' THEN
        RAISE EXCEPTION 'webhook "%" must use https', p_url
            USING ERRCODE = '22023', HINT = 'Plain http is allowed only to a loopback host (localhost, 127.0.0.1, [::1]).';
    END IF;
    RETURN p_url;
END;
$_$;
COMMENT ON FUNCTION ops.validate_url(text, text) IS
'Returns p_url when valid, else raises 22023. Kind ''url'': http(s) with a host; ''webhook'': https, or http '
'to a loopback host.';

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
        IF pg_catalog.lower(p_value) NOT IN ('true', 'false', 'on', 'off', 't', 'f', 'yes', 'no', '1', '0') THEN
            RAISE EXCEPTION 'setting % takes true or false, not "%"', p_key, p_value USING ERRCODE = '22023';
        END IF;
        v_value := to_jsonb(p_value::boolean);
    WHEN 'integer' THEN
        IF p_value !~ '^\s*-?[0-9]{1,12}\s*$' THEN
            RAISE EXCEPTION 'setting % takes a whole number, not "%"', p_key, p_value USING ERRCODE = '22023';
        END IF;
        v_int := p_value::bigint;
        IF v_int < v_def.min_value OR v_int > v_def.max_value THEN
            RAISE EXCEPTION 'setting % must be between % and %, not %', p_key, v_def.min_value, v_def.max_value, v_int
                USING ERRCODE = '22003', HINT = v_def.description;
        END IF;
        v_value := to_jsonb(v_int);
    WHEN 'cron' THEN
        IF pg_catalog.btrim(p_value) <> '' THEN
            PERFORM ops.cron_matches(p_value, pg_catalog.now());
        END IF;
        v_value := to_jsonb(pg_catalog.btrim(p_value));
    ELSE
        IF pg_catalog.btrim(p_value) <> '' THEN
            PERFORM ops.validate_url(pg_catalog.btrim(p_value), v_def.kind);
        END IF;
        v_value := to_jsonb(pg_catalog.btrim(p_value));
    END CASE;

    v_prev := ops._act_as(p_actor);
    UPDATE ops.settings SET value = v_value, updated_at = pg_catalog.now(), updated_by = p_actor
    WHERE key = p_key
    RETURNING * INTO v_def;
    PERFORM ops._act_as(v_prev);
    RETURN v_def;
END;
$_$;
COMMENT ON FUNCTION ops.set_setting(text, text, text) IS
'Validates and changes one setting, audited with p_actor: SELECT ops.set_setting(''snooze_min'', ''15'', '
'''alice''). Unknown key or bad value: 22023; out of range: 22003; NULLs: 22004.';

CREATE OR REPLACE FUNCTION ops.escalation_tick(
    p_now timestamp with time zone DEFAULT now(), p_source text DEFAULT 'sql'::text
) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    AS $$
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
COMMENT ON FUNCTION ops.escalation_tick(timestamp with time zone, text) IS
'Escalates every incident due at p_now (up to tick_batch_max) by one level: one escalation_events row and one '
'outbox message each, idempotent by unique_hash. Honours escalation_enabled, escalation_v1, pause_cron, '
'dry_run, canary_pct, ack_timeout_min. Writes a tick_log row and returns a jsonb summary.';

CREATE OR REPLACE FUNCTION ops.evaluate_alerts(p_now timestamp with time zone DEFAULT now())
RETURNS TABLE (
    alert text, firing boolean, severity text, summary text, value double precision, threshold double precision
)
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

    -- a dead ticker: pg_cron stopped, or its job failing; pg_cron's own record says which
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

    -- failures in each of the last five minutes, as the seeds' "Slack failures > 0 for 5 min"
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
END;
$$;
COMMENT ON FUNCTION ops.evaluate_alerts(timestamp with time zone) IS
'Every alert rule at p_now, firing or not: TickSlow, TickMissing (dead ticker), SlackFailing, '
'HighLevelIncidents, DeadLetters.';

CREATE OR REPLACE FUNCTION ops.notification_wait_s(p_now timestamp with time zone DEFAULT now()) RETURNS double precision
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    AS $$
    SELECT greatest(0, EXTRACT(epoch FROM least(
        (SELECT min(next_attempt_at) FROM ops.notification_outbox WHERE status = 'pending'),
        (SELECT min(lease_until) FROM ops.notification_outbox WHERE status = 'sending')) - p_now))::float8
$$;
COMMENT ON FUNCTION ops.notification_wait_s(timestamp with time zone) IS
'Dispatchers only: seconds until a message is next due (a retry or an expiring lease); NULL when none is '
'waiting.';

DROP FUNCTION ops._cron_sets(text);

ALTER TABLE ops.tick_log DROP COLUMN invalid_settings;
