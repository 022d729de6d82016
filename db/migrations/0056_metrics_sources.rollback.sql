-- 0056 undone: no metrics sources; the guard, alerts, metrics, settings and config check as before, verbatim as
-- pg_dump wrote them (db/schema.sql before this migration)
-- noqa: disable=all
CREATE OR REPLACE FUNCTION ops._guard_findings(p_now timestamp with time zone, p_route_prefix text, p_since timestamp with time zone) RETURNS TABLE(item_key text, kind text, inconclusive boolean, blocks boolean, item jsonb)
    LANGUAGE sql STABLE
    BEGIN ATOMIC
 SELECT ((f.route || '::'::text) || f.reason) AS item_key,
         CASE
             WHEN (f.verdict = 'ticket'::text) THEN 'ticket'::text
             ELSE 'violation'::text
         END AS kind,
     (f.verdict <> 'violation'::text) AS inconclusive,
     ((f.verdict = 'violation'::text) OR ((f.verdict <> 'ticket'::text) AND ( SELECT (ops.setting('guard_block_inconclusive'::text))::boolean AS setting))) AS blocks,
     jsonb_build_object('kind',
         CASE
             WHEN (f.verdict = 'ticket'::text) THEN 'ticket'::text
             ELSE 'violation'::text
         END, 'key', ((f.route || '::'::text) || f.reason), 'route', f.route, 'reason', f.reason, 'evidence', (f.evidence || COALESCE(rc.changes, '{}'::jsonb))) AS item
    FROM (ops.route_findings(_guard_findings.p_now, _guard_findings.p_route_prefix) f(route, reason, verdict, evidence)
      LEFT JOIN ops._guard_changes(_guard_findings.p_since, _guard_findings.p_now) rc(route, changes) ON ((f.route = rc.route)));
END;

CREATE OR REPLACE FUNCTION ops._guard_warning(p_kind text, p_block_inconclusive boolean) RETURNS text
    LANGUAGE sql IMMUTABLE
    BEGIN ATOMIC
 SELECT
         CASE
             WHEN (p_kind = 'ticket'::text) THEN 'error budget burning faster than it refills (3d and 6h): open a ticket; not blocking'::text
             ELSE ('too few samples to judge; not blocking'::text ||
             CASE
                 WHEN p_block_inconclusive THEN ' (blocking: guard_block_inconclusive)'::text
                 ELSE ''::text
             END)
         END AS "case";
END;

CREATE OR REPLACE FUNCTION ops.collect_metrics(p_now timestamp with time zone DEFAULT now()) RETURNS TABLE(metric text, kind text, help text, labels jsonb, value double precision)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    AS $$
    WITH last_tick AS (
        SELECT
            escalation_tick_ms,
            queue_lag_ms,
            tick_at
        FROM ops.tick_log WHERE tick_at <= p_now ORDER BY tick_at DESC, id DESC LIMIT 1
    ),

    outbox AS (
        SELECT
            status,
            count(*) AS n
        FROM ops.notification_outbox GROUP BY status
    )

    SELECT
        'opsguard_escalations_count' AS metric,
        'counter' AS kind,
        'Escalations recorded by ticks (one escalation_events row each).' AS help,
        '{}'::jsonb AS labels,
        (ops._counter('escalations_count') + (SELECT coalesce(sum(escalations_count), 0) FROM ops.tick_log))::float8 AS value
    UNION ALL
    SELECT
        'opsguard_skipped_idempotent',
        'counter',
        'Due escalations whose event already existed (sent nothing twice).',
        '{}',
        (ops._counter('skipped_idempotent') + (SELECT coalesce(sum(skipped_idempotent), 0) FROM ops.tick_log))::float8
    UNION ALL
    SELECT
        'opsguard_ticks',
        'counter',
        'Escalation ticks, by what they did (ran, dry_run, paused, disabled, flag_off, busy).',
        jsonb_build_object('state', s.state),
        (ops._counter('ticks', s.state) + (SELECT count(*) FROM ops.tick_log AS t WHERE t.state = s.state))::float8
    FROM unnest(ARRAY['ran', 'dry_run', 'paused', 'disabled', 'flag_off', 'busy']) AS s (state)
    UNION ALL
    SELECT
        'opsguard_escalation_tick_ms',
        'gauge',
        'How long the last tick took, in ms.',
        '{}',
        (SELECT escalation_tick_ms FROM last_tick)::float8
    UNION ALL
    SELECT
        'opsguard_queue_lag_ms',
        'gauge',
        'How late the most overdue incident of the last tick was, in ms.',
        '{}',
        (SELECT queue_lag_ms FROM last_tick)::float8
    UNION ALL
    SELECT
        'opsguard_last_tick_age_seconds',
        'gauge',
        'Seconds since the last tick started.',
        '{}',
        (SELECT extract(EPOCH FROM p_now - tick_at) FROM last_tick)::float8
    UNION ALL
    SELECT
        'opsguard_tick_interval_ms',
        'gauge',
        'The expected tick interval (setting tick_ms), in ms.',
        '{}',
        ops.setting('tick_ms')::float8
    UNION ALL
    SELECT
        'opsguard_slack_send_failures',
        'counter',
        'Failed Slack delivery attempts (HTTP errors, timeouts, refused connections).',
        '{}',
        (ops._counter('slack_send_failures')
         + (SELECT count(*) FROM ops.notification_attempts WHERE outcome = 'failed'))::float8
    UNION ALL
    SELECT
        'opsguard_notifications_sent',
        'counter',
        'Notifications delivered.',
        '{}',
        (ops._counter('notifications_sent') + coalesce((SELECT n FROM outbox WHERE status = 'sent'), 0))::float8
    UNION ALL
    SELECT
        'opsguard_notifications',
        'gauge',
        'Notifications not delivered yet, by status (pending, sending, dead).',
        jsonb_build_object('status', s.status),
        coalesce((SELECT n FROM outbox WHERE outbox.status = s.status), 0)::float8
    FROM unnest(ARRAY['pending', 'sending', 'dead']) AS s (status)
    UNION ALL
    SELECT
        'opsguard_oldest_pending_notification_seconds',
        'gauge',
        'Age of the oldest notification not delivered yet (0 when none waits).',
        '{}',
        coalesce((SELECT extract(EPOCH FROM p_now - min(created_at)) FROM ops.notification_outbox
                  WHERE status IN ('pending', 'sending')), 0)::float8
    UNION ALL
    SELECT
        'opsguard_open_incidents',
        'gauge',
        'Incidents not resolved, by status, severity and escalation level.',
        jsonb_build_object('status', status, 'severity', severity, 'level', escalation_level::text),
        count(*)::float8
    FROM ops.incidents WHERE status <> 'resolved'
    GROUP BY status, severity, escalation_level
    UNION ALL
    SELECT
        'opsguard_guard_evaluations',
        'counter',
        'Release-guard evaluations, by verdict (ok: clear, blocked: failing items).',
        jsonb_build_object('verdict', v.verdict),
        (ops._counter('guard_evaluations', v.verdict)
         + (SELECT count(*) FROM ops.guard_evaluations AS e WHERE e.ok = (v.verdict = 'ok')))::float8
    FROM unnest(ARRAY['ok', 'blocked']) AS v (verdict)
    UNION ALL
    SELECT
        'opsguard_guard_failing_items',
        'gauge',
        'Failing items in the last release-guard evaluation.',
        '{}',
        (SELECT failing_count FROM ops.guard_evaluations ORDER BY id DESC LIMIT 1)::float8
    UNION ALL
    SELECT
        'opsguard_alert_firing',
        'gauge',
        'Alert rules of ops.evaluate_alerts: 1 firing, 0 not.',
        jsonb_build_object('alert', a.alert, 'severity', a.severity),
        a.firing::int::float8
    FROM ops.evaluate_alerts(p_now) AS a
$$;

CREATE OR REPLACE FUNCTION ops.evaluate_alerts(p_now timestamp with time zone DEFAULT now()) RETURNS TABLE(alert text, firing boolean, severity text, summary text, value double precision, threshold double precision)
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

CREATE OR REPLACE FUNCTION ops.config_problems(p_dispatch_timeout_s float8 DEFAULT NULL)
RETURNS TABLE (setting text, problem text, blocking boolean)
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
        blocking := true;
        RETURN NEXT;
    END IF;
    -- timestamps render in the session's zone (to_jsonb, psql): opsguard shows UTC only
    IF pg_catalog.current_setting('TimeZone') NOT IN ('UTC', 'Etc/UTC', 'Etc/UCT', 'UCT', 'Universal', 'Zulu') THEN
        setting := 'TimeZone';
        problem := pg_catalog.format('the time zone is %s, not UTC: SELECT ops.use_utc(); then reconnect',
                                     pg_catalog.current_setting('TimeZone'));
        blocking := true;
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
            blocking := true;
            RETURN NEXT;
        END;
    END LOOP;
    RETURN QUERY
    SELECT x.setting, x.problem, false
    FROM (
        -- a default policy written around set_setting: ticks treat it as none
        SELECT s.key AS setting,
               ops._setting_problem(s.kind, s.value, s.min_value, s.max_value)
               || ': routes without their own policy page as if there were none' AS problem
        FROM ops.settings AS s
        WHERE s.kind = 'policy' AND ops._setting_problem(s.kind, s.value, s.min_value, s.max_value) IS NOT NULL
        UNION ALL
        SELECT pg_catalog.format('escalation_policies[%s]', ep.name),
               'has no steps: the routes that use it page as if they had no policy; add one with ops.add_policy_step'
        FROM ops.escalation_policies AS ep
        WHERE NOT EXISTS (SELECT 1 FROM ops.escalation_policy_steps AS s WHERE s.policy = ep.name)
          AND (EXISTS (SELECT 1 FROM ops.route_policies AS r WHERE r.policy = ep.name)
               OR ep.name = ops.setting('default_policy') #>> '{}')
        UNION ALL
        SELECT pg_catalog.format('escalation_policy_steps[%s/%s]', s.policy, s.step),
               pg_catalog.format('target %s names schedule %s, which does not exist: it pages no one; replace the step '
                                 'with ops.add_policy_step', e.n, e.target -> 'schedule')
        FROM ops.escalation_policy_steps AS s
        CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(s.targets) WITH ORDINALITY AS e (target, n)
        WHERE e.target ? 'schedule'
          AND NOT EXISTS (SELECT 1 FROM ops.schedules AS sc WHERE sc.name = e.target ->> 'schedule')
        UNION ALL
        -- a disabled principal still takes their turns: ops.on_call names them, and the tick pages no one for
        -- the schedule in those turns
        SELECT pg_catalog.format('principals[%s]', d.principal),
               pg_catalog.format('%s is disabled but on call in %s: those turns page no one; replace the rotation '
                                 '(ops.remove_rotation, ops.add_rotation) or the override (ops.remove_override)',
                                 d.principal, d.via)
        FROM (
            SELECT w.principal, pg_catalog.string_agg(DISTINCT w.via, ', ') AS via
            FROM (
                SELECT u.principal, pg_catalog.format('schedule %s rotation %s', r.schedule, r.name) AS via
                FROM ops.schedule_rotations AS r
                CROSS JOIN LATERAL pg_catalog.unnest(r.participants) AS u (principal)
                UNION ALL
                SELECT o.principal, pg_catalog.format('schedule %s override %s', o.schedule, o.id)
                FROM ops.schedule_overrides AS o
                WHERE o.ends_at > pg_catalog.now()
            ) AS w
            INNER JOIN ops.principals AS p ON w.principal = p.name AND p.disabled
            GROUP BY w.principal
        ) AS d
        UNION ALL
        SELECT pg_catalog.format('principals[%s]', g.principal),
               pg_catalog.format('%s can be paged (%s) but has no linked Slack user: paged and recorded, mentioned by '
                                 'no one; SELECT ops.link_chat_identity(''slack'', <team id>, <user id>, %L, <actor>)',
                                 g.principal, g.via, g.principal)
        FROM ops._pageable_principals() AS g
        WHERE NOT EXISTS (SELECT 1 FROM ops.chat_identities AS c WHERE c.principal = g.principal AND c.provider = 'slack')
          AND NOT EXISTS (SELECT 1 FROM ops.usable_notification_rules AS u WHERE u.principal = g.principal)
        UNION ALL
        SELECT pg_catalog.format('principals[%s]', g.principal),
               pg_catalog.format('principal %s has no notification rules: can be paged (%s) but only a Slack channel '
                                 'mention tells them; add a contact method and a rule (ops.add_contact_method, '
                                 'ops.add_notification_rule, or POST /ops/me/contact-methods)', g.principal, g.via)
        FROM ops._pageable_principals() AS g
        WHERE NOT EXISTS (SELECT 1 FROM ops.usable_notification_rules AS u WHERE u.principal = g.principal)
        UNION ALL
        SELECT pg_catalog.format('notification_rules[%s]', r.id),
               pg_catalog.format('rule %s of %s (after %s min) waits for its %s contact method to be verified: it '
                                 'notifies no one until then (ops.verify_contact_method)', r.id, r.principal,
                                 r.delay_min, c.kind)
        FROM ops.notification_rules AS r
        INNER JOIN ops.contact_methods AS c ON r.contact_method = c.id
        WHERE c.verified_at IS NULL AND c.removed_at IS NULL
    ) AS x
    ORDER BY 1;
END;
$$;

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
    WHEN 'host', 'email' THEN
        IF pg_catalog.btrim(p_value) <> '' THEN
            PERFORM ops._check_setting_text(v_def.kind, pg_catalog.btrim(p_value));
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value));
    WHEN 'policy' THEN
        IF pg_catalog.btrim(p_value) <> ''
           AND NOT EXISTS (SELECT 1 FROM ops.escalation_policies WHERE name = pg_catalog.btrim(p_value)) THEN
            RAISE EXCEPTION 'setting % names no escalation policy: "%"', p_key, p_value
                USING ERRCODE = '22023',
                      HINT = coalesce('Policies: ' || (SELECT pg_catalog.string_agg(name, ', ' ORDER BY name)
                                                       FROM ops.escalation_policies) || '; ', '')
                             || 'create one with ops.create_policy, or pass an empty value for none.';
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
$_$;

CREATE OR REPLACE FUNCTION ops._setting_problem(p_kind text, p_value jsonb, p_min integer, p_max integer) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'ops', 'pg_temp'
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
    WHEN 'cron', 'url', 'webhook', 'host', 'email' THEN
        IF pg_catalog.jsonb_typeof(p_value) <> 'string' THEN
            RETURN pg_catalog.format('%s is not a string', p_value);
        END IF;
        IF pg_catalog.btrim(p_value #>> '{}') <> '' THEN
            BEGIN
                IF p_kind = 'cron' THEN
                    PERFORM ops._cron_sets(p_value #>> '{}');
                ELSIF p_kind IN ('host', 'email') THEN
                    PERFORM ops._check_setting_text(p_kind, p_value #>> '{}');
                ELSE
                    PERFORM ops.validate_url(p_value #>> '{}', p_kind);
                END IF;
            EXCEPTION WHEN invalid_parameter_value THEN
                -- a webhook path is its secret
                RETURN CASE p_kind WHEN 'webhook' THEN ops._redact_url(SQLERRM, p_value #>> '{}') ELSE SQLERRM END;
            END;
        END IF;
    WHEN 'policy' THEN
        IF pg_catalog.jsonb_typeof(p_value) <> 'string' THEN
            RETURN pg_catalog.format('%s is not a string', p_value);
        END IF;
        IF p_value #>> '{}' <> '' AND NOT EXISTS (SELECT 1 FROM ops.escalation_policies WHERE name = p_value #>> '{}') THEN
            RETURN pg_catalog.format('no escalation policy is named %s', p_value);
        END IF;
    ELSE
        RETURN pg_catalog.format('unknown kind %s', p_kind);
    END CASE;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION ops._guard_warning(p_kind text, p_block_inconclusive boolean) IS 'Internal: the message of a warning item (ticket or inconclusive).';
-- noqa: enable=all

DELETE FROM ops.metric_exports WHERE metric IN ('opsguard_collector_queries', 'opsguard_collector_failures',
                                                'opsguard_collector_lag_ms', 'opsguard_metrics_sources_stale');
DROP FUNCTION ops._collector_metrics(timestamptz);
DROP FUNCTION ops._metrics_stale_alert(timestamptz);
DROP FUNCTION ops._metrics_source_problems();
DROP FUNCTION ops._metrics_stale_findings(timestamptz, text);
DROP FUNCTION ops._metrics_stale(timestamptz);
DROP FUNCTION ops.metrics_source_failed(text, text, integer, timestamptz);
DROP FUNCTION ops.record_metrics_minutes(text, timestamptz, jsonb, integer, timestamptz);
DROP FUNCTION ops._metrics_source_check(text);
DROP FUNCTION ops._metrics_rows(text, timestamptz, jsonb);
DROP FUNCTION ops._fold_route_minutes(jsonb);
DROP FUNCTION ops.metrics_work(timestamptz, int);
DROP FUNCTION ops._metrics_last_ready(timestamptz, int);
DROP FUNCTION ops.set_metrics_source(text, text, jsonb, text, timestamptz);
DROP FUNCTION ops._metrics_queries(jsonb);
DROP FUNCTION ops._metrics_config_problem(jsonb);
DROP FUNCTION ops._metrics_le(int);
DROP FUNCTION ops._metrics_matcher(text);
DROP TABLE ops.metrics_source_routes;
DROP TABLE ops.metrics_source_minutes;
DROP TABLE ops.metrics_source_state;
DROP TABLE ops.metrics_sources;
REVOKE ALL ON FUNCTION ops.config_problems(float8) FROM opsguard_collector;
REVOKE ALL ON SCHEMA ops FROM opsguard_collector;

DELETE FROM ops.settings WHERE key = 'guard_stale_metrics';
ALTER TABLE ops.settings DROP CONSTRAINT settings_choices;
ALTER TABLE ops.settings DROP CONSTRAINT settings_kind_check;
ALTER TABLE ops.settings ADD CONSTRAINT settings_kind_check
CHECK (kind IN ('boolean', 'integer', 'cron', 'url', 'webhook', 'policy', 'host', 'email'));
ALTER TABLE ops.settings DROP COLUMN choices;
COMMENT ON COLUMN ops.settings.kind IS
'How a value is validated: boolean, integer (min_value..max_value), cron (5 fields, empty = none), url, webhook '
'(https or loopback http), policy (an escalation policy name, empty = none), host (a host name or IP address, '
'empty = none), email (an e-mail address).';
ALTER TABLE ops.route_minute_stats RESET (fillfactor);
ALTER TABLE ops.route_5min_stats RESET (fillfactor);
ALTER TABLE ops.route_hour_stats RESET (fillfactor);
ALTER TABLE ops.route_day_stats RESET (fillfactor);
