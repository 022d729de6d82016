-- depends: 0022_guard_bounds
-- Settings valid whatever the clock; a bad stored value never stops ticks; an idle dispatcher is idle.
--
-- Before: set_setting checked pause_cron with cron_matches(value, now()), whose AND stopped at the
-- first field that did not match, so 5 99 * * * was accepted in every minute but :05. Now every
-- field of a cron expression is parsed whatever the time (ops._cron_sets), and every kind of
-- setting is checked completely (URL ports too).
-- A value stored anyway (by the schema owner, or by the old check) is treated as unset by the tick
-- (the install default), recorded in tick_log.invalid_settings and the summary, and fires the
-- SettingInvalid alert. notification_wait_s said 0 instead of NULL when nothing was waiting, so
-- an idle dispatcher polled about 150 times a second; now it waits on LISTEN.


-- the five fields of a cron expression as value sets; raises 22023 on any bad field, whatever the time
CREATE FUNCTION ops._cron_sets(
    p_expr text,
    OUT r_minute int[], OUT r_hour int[], OUT r_dom int[], OUT r_month int[], OUT r_dow int[],
    OUT r_dom_star boolean, OUT r_dow_star boolean
)
LANGUAGE plpgsql IMMUTABLE
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_expr text := pg_catalog.lower(pg_catalog.btrim(p_expr));
    v_f text[];
BEGIN
    IF p_expr IS NULL THEN
        RAISE EXCEPTION 'a cron expression is needed'
            USING ERRCODE = '22004', HINT = 'Example: ''0 22 * * 1-5'' (22:00 UTC on weekdays).';
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
    -- every field is parsed, in order, so the first bad one is named whatever the time
    r_minute := ops._cron_field(v_f[1], 0, 59, '{}', 0, 'minute');
    r_hour := ops._cron_field(v_f[2], 0, 23, '{}', 0, 'hour');
    r_dom := ops._cron_field(v_f[3], 1, 31, '{}', 1, 'day-of-month');
    r_month := ops._cron_field(v_f[4], 1, 12, '{jan,feb,mar,apr,may,jun,jul,aug,sep,oct,nov,dec}', 1, 'month');
    -- Sunday is 0 and 7
    r_dow := ARRAY(
        SELECT DISTINCT d % 7
        FROM pg_catalog.unnest(ops._cron_field(v_f[5], 0, 7, '{sun,mon,tue,wed,thu,fri,sat}', 0, 'day-of-week')) AS d
    );
    -- Vixie cron: a day field starting with * is unrestricted, so the two combine with AND
    r_dom_star := pg_catalog.left(v_f[3], 1) = '*';
    r_dow_star := pg_catalog.left(v_f[5], 1) = '*';
END;
$$;
COMMENT ON FUNCTION ops._cron_sets(text) IS
'Internal: the values each field of a 5-field cron expression allows; every field is checked (22023), whatever the time.';

-- one field: the same grammar as before, hints that name the field and its bounds
CREATE OR REPLACE FUNCTION ops._cron_field(
    p_field text, p_min int, p_max int, p_names text[], p_base int, p_what text
) RETURNS int[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_item text;
    v_range text;
    v_step int;
    v_lo int;
    v_hi int;
    v_out int[] := '{}';
    v_takes text := pg_catalog.format('The %s field takes %s-%s%s', p_what, p_min, p_max,
        CASE WHEN pg_catalog.cardinality(p_names) > 0
             THEN ' or names (' || pg_catalog.array_to_string(p_names, ', ') || ')' ELSE '' END);
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
                USING ERRCODE = '22023',
                      HINT = v_takes || '; lists (1,3), ranges (1-5) and steps (*/15, 0-30/5; a step is a positive number).';
        END IF;
        IF v_range = '*' THEN
            v_lo := p_min;
            v_hi := p_max;
        ELSIF v_range ~ '^[^-]+-[^-]+$' THEN
            v_lo := ops._cron_value(pg_catalog.split_part(v_range, '-', 1), p_names, p_base, p_what);
            v_hi := ops._cron_value(pg_catalog.split_part(v_range, '-', 2), p_names, p_base, p_what);
        ELSE
            v_lo := ops._cron_value(v_range, p_names, p_base, p_what);
            -- Vixie cron reads 5/15 as 5-max/15
            v_hi := CASE WHEN v_step IS NULL THEN v_lo ELSE p_max END;
        END IF;
        IF v_lo < p_min OR v_hi > p_max OR v_lo > v_hi THEN
            RAISE EXCEPTION 'cron %: "%" is outside %-%', p_what, v_item, p_min, p_max
                USING ERRCODE = '22023', HINT = v_takes || '; a range goes low-high within those bounds.';
        END IF;
        v_out := v_out || ARRAY(SELECT pg_catalog.generate_series(v_lo, v_hi, coalesce(v_step, 1)));
    END LOOP;
    RETURN v_out;
END;
$$;

CREATE OR REPLACE FUNCTION ops.cron_matches(p_expr text, p_at timestamptz) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_c record;
    v_t timestamp := p_at AT TIME ZONE 'UTC';
    v_dom_ok boolean;
    v_dow_ok boolean;
BEGIN
    IF p_expr IS NULL OR p_at IS NULL THEN
        RAISE EXCEPTION 'cron_matches needs an expression and a time'
            USING ERRCODE = '22004', HINT = 'Example: ops.cron_matches(''0 22 * * 1-5'', now()).';
    END IF;
    -- all five fields are parsed before any is compared: a bad expression raises at every time
    SELECT * INTO v_c FROM ops._cron_sets(p_expr);
    IF NOT (EXTRACT(minute FROM v_t)::int = ANY (v_c.r_minute)
            AND EXTRACT(hour FROM v_t)::int = ANY (v_c.r_hour)
            AND EXTRACT(month FROM v_t)::int = ANY (v_c.r_month)) THEN
        RETURN false;
    END IF;
    v_dom_ok := EXTRACT(day FROM v_t)::int = ANY (v_c.r_dom);
    v_dow_ok := EXTRACT(dow FROM v_t)::int = ANY (v_c.r_dow);
    IF v_c.r_dom_star OR v_c.r_dow_star THEN
        RETURN v_dom_ok AND v_dow_ok;
    END IF;
    -- Vixie cron: when both day fields are restricted, either may match
    RETURN v_dom_ok OR v_dow_ok;
END;
$$;
COMMENT ON FUNCTION ops.cron_matches(text, timestamptz) IS
'True when the 5-field cron expression (UTC; *, lists, ranges, steps, month/day names, @daily...) matches the minute of '
'p_at. Day-of-month and day-of-week combine as in Vixie cron. Every field is checked whatever p_at is: an invalid '
'expression raises 22023 naming the field.';

-- a port is 1-65535; the rest as before
CREATE OR REPLACE FUNCTION ops.validate_url(p_url text, p_kind text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_m text[] := pg_catalog.regexp_match(p_url, '^(https?)://([^/:?#@\s\[\]]+|\[[0-9a-fA-F:.]+\])(:[0-9]{1,5})?([/?#]\S*)?$');
BEGIN
    IF v_m IS NULL THEN
        RAISE EXCEPTION '"%" is not an http(s) URL', p_url
            USING ERRCODE = '22023', HINT = 'Example: https://ops.example.com';
    END IF;
    IF pg_catalog.substr(v_m[3], 2)::int NOT BETWEEN 1 AND 65535 THEN
        RAISE EXCEPTION '"%" has port %, outside 1-65535', p_url, pg_catalog.substr(v_m[3], 2)
            USING ERRCODE = '22023', HINT = 'Leave the port out for the default, or give one from 1 to 65535.';
    END IF;
    IF p_kind = 'webhook' AND v_m[1] = 'http'
       AND pg_catalog.lower(v_m[2]) NOT IN ('localhost', '[::1]') AND v_m[2] !~ '^127\.[0-9]+\.[0-9]+\.[0-9]+$' THEN
        RAISE EXCEPTION 'webhook "%" must use https', p_url
            USING ERRCODE = '22023', HINT = 'Plain http is allowed only to a loopback host (localhost, 127.0.0.1, [::1]).';
    END IF;
    RETURN p_url;
END;
$$;
COMMENT ON FUNCTION ops.validate_url(text, text) IS
'Returns p_url when valid, else raises 22023. Kind ''url'': http(s) with a host and an optional port 1-65535; '
'''webhook'': https, or http to a loopback host.';

-- why a stored value is not one set_setting would store; NULL when it is valid
CREATE FUNCTION ops._setting_problem(p_kind text, p_value jsonb, p_min int, p_max int) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = ops, pg_temp
AS $$
BEGIN
    IF p_value IS NULL THEN
        RETURN 'no value';
    END IF;
    CASE p_kind
    WHEN 'boolean' THEN
        IF pg_catalog.jsonb_typeof(p_value) <> 'boolean' THEN
            RETURN pg_catalog.format('%s is not true or false', p_value);
        END IF;
    WHEN 'integer' THEN
        IF pg_catalog.jsonb_typeof(p_value) <> 'number' OR p_value::numeric <> pg_catalog.trunc(p_value::numeric) THEN
            RETURN pg_catalog.format('%s is not a whole number', p_value);
        END IF;
        IF p_value::numeric < p_min OR p_value::numeric > p_max THEN
            RETURN pg_catalog.format('%s is outside %s-%s', p_value, p_min, p_max);
        END IF;
    WHEN 'cron', 'url', 'webhook' THEN
        IF pg_catalog.jsonb_typeof(p_value) <> 'string' THEN
            RETURN pg_catalog.format('%s is not a string', p_value);
        END IF;
        IF pg_catalog.btrim(p_value #>> '{}') <> '' THEN
            BEGIN
                IF p_kind = 'cron' THEN
                    PERFORM ops._cron_sets(p_value #>> '{}');
                ELSE
                    PERFORM ops.validate_url(p_value #>> '{}', p_kind);
                END IF;
            EXCEPTION WHEN invalid_parameter_value THEN
                -- a webhook path is its secret
                RETURN CASE p_kind WHEN 'webhook' THEN ops._redact_url(SQLERRM, p_value #>> '{}') ELSE SQLERRM END;
            END;
        END IF;
    ELSE
        RETURN pg_catalog.format('unknown kind %s', p_kind);
    END CASE;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ops._setting_problem(text, jsonb, int, int) IS
'Internal: why a stored setting value is one set_setting would refuse (webhook URLs redacted); NULL when it is valid.';

CREATE FUNCTION ops.setting_problems() RETURNS TABLE (key text, problem text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
    SELECT s.key, p.problem
    FROM ops.settings AS s
    CROSS JOIN LATERAL (SELECT ops._setting_problem(s.kind, s.value, s.min_value, s.max_value) AS problem) AS p
    WHERE p.problem IS NOT NULL
    ORDER BY s.key
$$;
COMMENT ON FUNCTION ops.setting_problems() IS
'Stored settings that set_setting would refuse (written around it), and why: SELECT * FROM ops.setting_problems(); '
'ticks treat them as unset and the SettingInvalid alert fires until they are fixed with ops.set_setting.';
REVOKE ALL ON FUNCTION ops.setting_problems() FROM public;
-- operators check their settings with it (the runbook, the SettingInvalid alert)
GRANT EXECUTE ON FUNCTION ops.setting_problems() TO opsguard_operator;

CREATE OR REPLACE FUNCTION ops.set_setting(p_key text, p_value text, p_actor text) RETURNS ops.settings
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
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
        IF pg_catalog.lower(pg_catalog.btrim(p_value)) NOT IN ('true', 'false', 'on', 'off', 't', 'f', 'yes', 'no', '1', '0') THEN
            RAISE EXCEPTION 'setting % takes true or false, not "%"', p_key, p_value
                USING ERRCODE = '22023', HINT = 'true/false, on/off, yes/no or 1/0.';
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value)::boolean);
    WHEN 'integer' THEN
        IF p_value !~ '^\s*-?[0-9]{1,12}\s*$' THEN
            RAISE EXCEPTION 'setting % takes a whole number, not "%"', p_key, p_value
                USING ERRCODE = '22023', HINT = pg_catalog.format('A whole number from %s to %s: %s',
                                                                  v_def.min_value, v_def.max_value, v_def.description);
        END IF;
        v_int := p_value::bigint;
        IF v_int < v_def.min_value OR v_int > v_def.max_value THEN
            RAISE EXCEPTION 'setting % must be between % and %, not %', p_key, v_def.min_value, v_def.max_value, v_int
                USING ERRCODE = '22003', HINT = v_def.description;
        END IF;
        v_value := pg_catalog.to_jsonb(v_int);
    WHEN 'cron' THEN
        -- parsed in full, never matched against the clock: hour 99 is refused at any minute
        IF pg_catalog.btrim(p_value) <> '' THEN
            PERFORM ops._cron_sets(p_value);
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value));
    ELSE
        IF pg_catalog.btrim(p_value) <> '' THEN
            PERFORM ops.validate_url(pg_catalog.btrim(p_value), v_def.kind);
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value));
    END CASE;

    v_prev := ops._act_as(p_actor);
    UPDATE ops.settings SET value = v_value, updated_at = pg_catalog.now(), updated_by = p_actor
    WHERE key = p_key
    RETURNING * INTO v_def;
    PERFORM ops._act_as(v_prev);
    -- dispatchers wait on LISTEN: a webhook set or a pause lifted has messages to send at once
    IF p_key IN ('slack_webhook_url', 'notify_paused') THEN
        PERFORM pg_catalog.pg_notify('ops_outbox', 'settings');
    END IF;
    RETURN v_def;
END;
$$;
COMMENT ON FUNCTION ops.set_setting(text, text, text) IS
'Validates and changes one setting, audited with p_actor: SELECT ops.set_setting(''snooze_min'', ''15'', ''alice''). '
'Every value is checked in full whatever the clock. Unknown key or bad value: 22023; out of range: 22003; NULLs: 22004.';

ALTER TABLE ops.tick_log ADD COLUMN invalid_settings jsonb NOT NULL DEFAULT '{}';
COMMENT ON COLUMN ops.tick_log.invalid_settings IS
'Settings this tick found invalid (written around set_setting) and treated as unset, with why: {"pause_cron": "..."}.';

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
    RETURN v_summary;
END;
$$;
COMMENT ON FUNCTION ops.escalation_tick(timestamptz, text) IS
'Escalates every incident due at p_now (up to tick_batch_max) by one level: one escalation_events row and one outbox '
'message each, idempotent by unique_hash. Honours escalation_enabled, escalation_v1, pause_cron, dry_run, canary_pct, '
'ack_timeout_min; a setting stored invalid is treated as unset and reported (invalidSettings, tick_log.invalid_settings). '
'Writes a tick_log row and returns a jsonb summary.';

CREATE OR REPLACE FUNCTION ops.evaluate_alerts(p_now timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE (alert text, firing boolean, severity text, summary text, value float8, threshold float8)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = ops, pg_temp
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
    v_note text;
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

    -- a dead ticker: pg_cron stopped, or its job failing; the record of pg_cron says which
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

    -- failures in each of the last five minutes, as in the seeds: "Slack failures > 0 for 5 min"
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

    -- a value written around set_setting: ticks treat it as unset, so someone must fix it
    SELECT count(*), pg_catalog.string_agg(p.key || ': ' || p.problem, '; ' ORDER BY p.key)
    INTO v_count, v_note
    FROM ops.setting_problems() AS p;
    alert := 'SettingInvalid';
    severity := 'warning';
    value := v_count;
    threshold := 0;
    firing := v_count > 0;
    summary := CASE WHEN v_count = 0 THEN 'every stored setting is valid'
                    ELSE pg_catalog.format('%s stored settings are invalid and treated as unset (%s); '
                                           'fix each with SELECT ops.set_setting(key, value, ''you'')', v_count, v_note) END;
    RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION ops.evaluate_alerts(timestamptz) IS
'Every alert rule at p_now, firing or not: TickSlow, TickMissing (dead ticker), SlackFailing, HighLevelIncidents, '
'DeadLetters, SettingInvalid (a stored setting set_setting would refuse; see ops.setting_problems()).';

-- NULL when nothing is waiting (greatest() skips NULLs, so it used to say 0: a busy loop); only what
-- a claim could take now counts (not while notify_paused, not without a webhook)
CREATE OR REPLACE FUNCTION ops.notification_wait_s(p_now timestamptz DEFAULT pg_catalog.now()) RETURNS float8
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
    SELECT greatest(0, EXTRACT(epoch FROM w.next_at - p_now))::float8
    FROM (
        SELECT least(
            (SELECT min(o.next_attempt_at)
             FROM ops.notification_outbox AS o
             LEFT JOIN ops.route_webhooks AS rw ON o.route = rw.route
             WHERE o.status = 'pending'
               AND NOT coalesce(ops.setting('notify_paused') = 'true', false)
               AND (rw.webhook_url IS NOT NULL OR nullif(ops.setting('slack_webhook_url') #>> '{}', '') IS NOT NULL)),
            (SELECT min(o.lease_until) FROM ops.notification_outbox AS o WHERE o.status = 'sending')) AS next_at
    ) AS w
    WHERE w.next_at IS NOT NULL
$$;
COMMENT ON FUNCTION ops.notification_wait_s(timestamptz) IS
'Dispatchers only: seconds until a message is next due (a retry a claim could take, or an expiring lease); NULL when '
'none is waiting, and the dispatcher then waits on LISTEN ops_outbox.';

-- nothing in ops is for everyone (see 0011)
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ops FROM public;
