-- 0033 undone: no escalation policies; the tick, the outbox claim, the Slack message, the
-- configuration check, the health answer and the settings as 0030, 0017, 0014 and 0023 left them
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

CREATE OR REPLACE FUNCTION ops.claim_notifications(p_worker text, p_limit integer DEFAULT 100, p_now timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE (
    id bigint, claim_id bigint, dedup_key text, attempt integer, webhook_url text, message jsonb,
    lease_until timestamptz, lease_s integer
)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_global text := nullif(ops.setting('slack_webhook_url') #>> '{}', '');
    v_lease interval := pg_catalog.make_interval(secs => ops.setting('notify_lease_s')::int);
    v_max int := ops.setting('notify_max_attempts')::int;
    v_claim bigint;
BEGIN
    IF coalesce(pg_catalog.btrim(p_worker), '') = '' OR p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000
       OR p_now IS NULL THEN
        RAISE EXCEPTION 'claim_notifications needs a worker name, a limit of 1 to 1000 and a time'
            USING ERRCODE = '22023', HINT = 'SELECT * FROM ops.claim_notifications(''host:pid'', 100);';
    END IF;

    WITH lost AS (
        SELECT o.id, o.claimed_by, o.attempts
        FROM ops.notification_outbox AS o
        WHERE o.status = 'sending' AND o.lease_until <= p_now
        FOR UPDATE SKIP LOCKED
    ),
    back AS (
        UPDATE ops.notification_outbox AS o
        SET status = CASE WHEN l.attempts >= v_max THEN 'dead' ELSE 'pending' END,
            next_attempt_at = p_now,
            last_error = pg_catalog.format('lease expired: dispatcher %s stopped before reporting', l.claimed_by),
            claimed_by = NULL, claim_id = NULL, lease_until = NULL
        FROM lost AS l
        WHERE o.id = l.id
        RETURNING o.id
    )
    INSERT INTO ops.notification_attempts (outbox_id, attempt, worker, outcome, error, finished_at)
    SELECT l.id, l.attempts, l.claimed_by, 'lost', 'lease expired before the dispatcher reported', p_now
    FROM lost AS l INNER JOIN back AS b ON l.id = b.id;

    IF ops.setting('notify_paused')::boolean THEN
        RETURN;
    END IF;
    v_claim := pg_catalog.nextval('ops.notification_claim_seq');
    RETURN QUERY
    WITH due AS (
        SELECT o.id, coalesce(w.webhook_url, v_global) AS url
        FROM ops.notification_outbox AS o
        LEFT JOIN ops.route_webhooks AS w ON o.route = w.route
        WHERE o.status = 'pending' AND o.next_attempt_at <= p_now
          AND (w.webhook_url IS NOT NULL OR v_global IS NOT NULL)
        ORDER BY o.next_attempt_at, o.id
        LIMIT p_limit
        FOR UPDATE OF o SKIP LOCKED
    ),
    claimed AS (
        UPDATE ops.notification_outbox AS o
        SET status = 'sending', attempts = o.attempts + 1, claimed_by = p_worker, claim_id = v_claim,
            lease_until = p_now + v_lease
        FROM due AS d
        WHERE o.id = d.id
        RETURNING o.id, o.claim_id, o.dedup_key, o.attempts, d.url, ops.slack_message(o.payload), o.lease_until,
                  ops.setting('notify_lease_s')::int
    )
    SELECT * FROM claimed;
END;
$$;
COMMENT ON FUNCTION ops.claim_notifications(text, integer, timestamptz) IS
'Dispatchers only: claims due messages (status sending, lease notify_lease_s) with the webhook they go to now and '
'the Slack body. Expired leases first go back to pending. Paused (notify_paused): claims nothing.';

CREATE OR REPLACE FUNCTION ops.slack_message(p_payload jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object(
        'text', p_payload ->> 'text',
        'blocks', pg_catalog.jsonb_build_array(
            pg_catalog.jsonb_build_object('type', 'section', 'text', pg_catalog.jsonb_build_object(
                'type', 'mrkdwn',
                'text', pg_catalog.format('%s *%s* `%s` escalated to level *%s*',
                                          CASE p_payload ->> 'severity' WHEN 'critical' THEN ':rotating_light:'
                                              ELSE ':warning:' END,
                                          pg_catalog.upper(p_payload ->> 'severity'),
                                          ops.slack_escape(p_payload ->> 'incident_key'),
                                          p_payload ->> 'escalation_level')
                        || coalesce(E'\n<' || (p_payload ->> 'link') || '|Open the incident>', ''))),
            pg_catalog.jsonb_build_object('type', 'context', 'elements', pg_catalog.jsonb_build_array(
                pg_catalog.jsonb_build_object('type', 'mrkdwn', 'text', pg_catalog.format(
                    'incident %s · route %s · escalated %s · dedup %s',
                    p_payload ->> 'incident_id', ops.slack_escape(coalesce(p_payload ->> 'route', '-')),
                    p_payload ->> 'escalated_at', p_payload ->> 'dedup_key'))))),
        'dedup_key', p_payload ->> 'dedup_key')
$$;
COMMENT ON FUNCTION ops.slack_message(jsonb) IS
'The Slack incoming-webhook body for an outbox payload: text (the notification fallback), blocks, and dedup_key.';

DROP FUNCTION ops.config_problems(float8);
CREATE FUNCTION ops.config_problems(p_dispatch_timeout_s float8 DEFAULT NULL) RETURNS TABLE (setting text, problem text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_row record;
    v_lease int := ops.setting('notify_lease_s')::int;
BEGIN
    -- a dispatcher starts a message only while its lease outlasts the HTTP timeout
    IF p_dispatch_timeout_s IS NOT NULL AND v_lease < p_dispatch_timeout_s + 2 THEN
        setting := 'notify_lease_s';
        problem := pg_catalog.format('%s s is too short for a dispatcher HTTP timeout of %s s: make it at least %s',
                                     v_lease, p_dispatch_timeout_s, ceil(p_dispatch_timeout_s + 2));
        RETURN NEXT;
    END IF;
    -- timestamps render in the session's zone (to_jsonb, psql): opsguard shows UTC only
    IF pg_catalog.current_setting('TimeZone') NOT IN ('UTC', 'Etc/UTC', 'Etc/UCT', 'UCT', 'Universal', 'Zulu') THEN
        setting := 'TimeZone';
        problem := pg_catalog.format('the time zone is %s, not UTC: SELECT ops.use_utc(); then reconnect',
                                     pg_catalog.current_setting('TimeZone'));
        RETURN NEXT;
    END IF;
    FOR v_row IN
        SELECT s.key AS name, s.value #>> '{}' AS url, s.kind
        FROM ops.settings AS s WHERE s.kind IN ('url', 'webhook') AND s.value #>> '{}' <> ''
        UNION ALL
        SELECT pg_catalog.format('route_webhooks[%s]', w.route), w.webhook_url, 'webhook'
        FROM ops.route_webhooks AS w
        ORDER BY 1
    LOOP
        BEGIN
            PERFORM ops.validate_url(v_row.url, v_row.kind);
        EXCEPTION WHEN invalid_parameter_value THEN
            setting := v_row.name;
            problem := CASE v_row.kind WHEN 'webhook' THEN ops._redact_url(SQLERRM, v_row.url) ELSE SQLERRM END;
            RETURN NEXT;
        END;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION ops.config_problems(float8) IS
'What is wrong with the configuration, one row per setting (empty: all is well): SELECT * FROM ops.config_problems(); '
'Checks URLs and webhooks, the time zone (UTC), and for a dispatcher its lease. '
'The API and the dispatcher refuse to start while it has rows; a dispatcher passes its HTTP timeout.';

REVOKE ALL ON FUNCTION ops.config_problems(float8) FROM public;
-- in the order 0014 and 0019 granted them, so a rollback restores the same ACL
GRANT EXECUTE ON FUNCTION ops.config_problems(float8) TO opsguard_operator;
GRANT EXECUTE ON FUNCTION ops.config_problems(float8) TO opsguard_dispatcher;
GRANT EXECUTE ON FUNCTION ops.config_problems(float8) TO opsguard_api;

CREATE OR REPLACE FUNCTION ops.api_health(p_now timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_tick ops.tick_log;
    v_tick_ms float8 := ops.setting('tick_ms')::float8;
    v_age float8;
    v_cron record;
    v_status text := ops.pg_cron_status();
    v_reasons text[] := '{}';
BEGIN
    SELECT * INTO v_tick FROM ops.tick_log WHERE tick_at <= p_now ORDER BY tick_at DESC, id DESC LIMIT 1;
    v_age := round(EXTRACT(epoch FROM p_now - v_tick.tick_at)::numeric, 1);
    IF v_age IS NULL THEN
        IF p_now - coalesce(ops.installed_at(), '-infinity') > pg_catalog.make_interval(secs => 2 * v_tick_ms / 1000) THEN
            v_reasons := v_reasons || 'no escalation tick has run since opsguard was installed'::text;
        END IF;
    ELSIF v_age * 1000 > 2 * v_tick_ms THEN
        v_reasons := v_reasons || pg_catalog.format('the last tick was %s s ago (more than 2 x tick_ms)', v_age);
    END IF;
    SELECT * INTO v_cron FROM ops.cron_job_last_run('opsguard-escalation-tick');
    IF v_status = 'installed' AND v_cron.scheduled IS NULL THEN
        v_reasons := v_reasons || 'pg_cron is installed but the tick job is not scheduled: SELECT ops.install_cron_jobs()'::text;
    ELSIF v_cron.status = 'failed' THEN
        v_reasons := v_reasons || pg_catalog.format('the last pg_cron tick failed: %s', v_cron.return_message);
    END IF;
    v_reasons := v_reasons || ARRAY(SELECT c.setting || ': ' || c.problem FROM ops.config_problems() AS c);
    RETURN pg_catalog.jsonb_build_object(
        'database', 'ok',
        'reasons', pg_catalog.to_jsonb(v_reasons),
        'migrations', (SELECT pg_catalog.jsonb_agg(migration_id ORDER BY migration_id) FROM public._yoyo_migration),
        'lastTickAt', v_tick.tick_at,
        'lastTickAgeSeconds', v_age,
        'tickMs', ops.setting('tick_ms'),
        'pgCron', v_status,
        'pgCronJob', CASE WHEN v_cron.scheduled THEN pg_catalog.jsonb_build_object(
            'lastStatus', v_cron.status, 'lastStart', v_cron.start_time, 'lastMessage', v_cron.return_message) END);
END;
$$;
COMMENT ON FUNCTION ops.api_health(timestamptz) IS
'GET /healthz: database, applied migrations, last tick and its age, pg_cron job and its last run, and the reasons it is '
'not healthy (a late or missing tick, a failing or missing pg_cron job, a configuration problem).';

DROP FUNCTION ops.page_targets(text, int, timestamptz);
DROP FUNCTION ops._step_targets(text, int, timestamptz);
DROP FUNCTION ops.set_route_policy(text, text, text);
DROP FUNCTION ops.remove_policy_step(text, int, text);
DROP FUNCTION ops.add_policy_step(text, int, jsonb, text);
DROP FUNCTION ops._policy(text);
DROP FUNCTION ops.create_policy(text, text, int);
DROP FUNCTION ops.policy_step(int, int, int);

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

CREATE OR REPLACE FUNCTION ops._setting_problem(p_kind text, p_value jsonb, p_min int, p_max int) RETURNS text
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

DELETE FROM ops.settings WHERE key = 'default_policy';
ALTER TABLE ops.settings DROP CONSTRAINT settings_kind_check;
ALTER TABLE ops.settings ADD CONSTRAINT settings_kind_check CHECK (kind IN ('boolean', 'integer', 'cron', 'url', 'webhook'));
COMMENT ON COLUMN ops.settings.kind IS
'How a value is validated: boolean, integer (min_value..max_value), cron (5 fields, empty = none), url, webhook (https or loopback http).';

ALTER TABLE ops.notification_outbox DROP COLUMN webhook_url;
ALTER TABLE ops.escalation_events DROP COLUMN targets;
DROP TABLE ops.route_policies;
DROP TABLE ops.escalation_policy_steps;
DROP TABLE ops.escalation_policies;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ops FROM public;
