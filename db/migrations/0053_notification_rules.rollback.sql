-- 0053 undone: no contact method or rule functions, no fan-out, cancellation or page_log; the tick, its
-- targets and config_problems as before
DROP VIEW ops.page_log;
DROP FUNCTION ops.api_my_contact_methods(text, text);
DROP FUNCTION ops.api_add_contact_method(text, text, text, jsonb);
DROP FUNCTION ops.api_verify_contact_method(text, text, text, text, jsonb);
DROP FUNCTION ops.api_resend_verification(text, text, text, text);
DROP FUNCTION ops.api_remove_contact_method(text, text, text, text);
DROP FUNCTION ops.api_my_notification_rules(text, text);
DROP FUNCTION ops.api_add_notification_rule(text, text, text, jsonb);
DROP FUNCTION ops.api_remove_notification_rule(text, text, text, text);
DROP FUNCTION ops._contact_method_json(ops.contact_methods);
CREATE OR REPLACE FUNCTION ops.api_me(p_principal text, p_actor text) RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    AS $$
DECLARE
    v_who text := coalesce(nullif(p_actor, ''), p_principal);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ops.principals WHERE name = p_principal AND NOT disabled) THEN
        RAISE EXCEPTION 'unknown principal %', p_principal USING ERRCODE = '42501';
    END IF;
    IF v_who <> p_principal AND NOT ops.has_permission(p_principal, 'actors.delegate') THEN
        RAISE EXCEPTION '% may not act for others', p_principal USING ERRCODE = '42501',
            HINT = 'Only principals with actors.delegate (ops_admin) may send X-Ops-Actor.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ops.principals WHERE name = v_who AND NOT disabled) THEN
        RAISE EXCEPTION 'unknown actor %', v_who USING ERRCODE = '42501',
            DETAIL = 'no such principal, or disabled',
            HINT = pg_catalog.format('X-Ops-Actor must name an enabled principal; an operator adds one '
                   'in psql: SELECT ops.add_principal(%L, %L, ARRAY[%L], %L); (README, Acting for a person)',
                   v_who, 'human', 'ops_responder', 'your-name');
    END IF;
    RETURN pg_catalog.jsonb_build_object(
        'ok', true,
        'principal', p_principal,
        'actor', v_who,
        'roles', coalesce((SELECT pg_catalog.jsonb_agg(role ORDER BY role) FROM ops.principal_roles WHERE principal = v_who), '[]'),
        'permissions', coalesce((SELECT pg_catalog.jsonb_agg(name ORDER BY name) FROM ops.permissions
                                 WHERE ops.has_permission(v_who, name)), '[]'));
END;
$$;
DROP FUNCTION ops._api_me_actor(text, text);
CREATE OR REPLACE FUNCTION ops._api_begin(p_principal text, p_actor text, p_permission text, p_replay_key text)
RETURNS text
LANGUAGE plpgsql
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_actor text;
BEGIN
    IF p_replay_key IS NOT NULL THEN
        DELETE FROM ops.api_replay WHERE expires_at < pg_catalog.now();
        INSERT INTO ops.api_replay (replay_key, expires_at) VALUES (p_replay_key, pg_catalog.now() + interval '10 minutes')
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'this signed request was already used' USING ERRCODE = '28000',
                HINT = 'Sign each request with a fresh X-Timestamp.';
        END IF;
    END IF;
    v_actor := ops.authorize(p_principal, p_permission, nullif(p_actor, ''));
    PERFORM ops._act_as(v_actor);
    RETURN v_actor;
END;
$$;
DROP FUNCTION ops._api_replay(text);
CREATE OR REPLACE FUNCTION ops.contact_address_redacted(p_kind text, p_address text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = ops, pg_temp
RETURN CASE p_kind
    WHEN 'email' THEN pg_catalog.left(p_address, 1) || '…@' || pg_catalog.split_part(p_address, '@', 2)
    WHEN 'sms' THEN '+…' || pg_catalog.right(p_address, 2)
    WHEN 'voice' THEN '+…' || pg_catalog.right(p_address, 2)
    WHEN 'slack_dm' THEN pg_catalog.left(p_address, 1) || '…' || pg_catalog.right(p_address, 2)
    WHEN 'webhook' THEN ops._audit_secret(p_address)
END;
DROP TRIGGER incidents_cancel_pages ON ops.incidents;
DROP FUNCTION ops._incidents_cancel_pages();
DROP FUNCTION ops.remove_notification_rule(bigint, text);
DROP FUNCTION ops.add_notification_rule(text, uuid, int, text);
DROP FUNCTION ops.remove_contact_method(uuid, text, timestamptz);
DROP FUNCTION ops.resend_verification(uuid, text, timestamptz);
DROP FUNCTION ops.verify_contact_method(uuid, text, text, timestamptz);
DROP FUNCTION ops._managed_method(uuid, text);
DROP FUNCTION ops.add_webhook_contact_method(text, text, text, text);
DROP FUNCTION ops.add_contact_method(text, text, text, text, text);
DROP FUNCTION ops._add_contact_method(text, text, text, text, text);
DROP FUNCTION ops._queue_verification(uuid, text, text);
DROP FUNCTION ops._contact_address_refused(text, text);
DROP FUNCTION ops._check_contact_address(text, text);
DROP FUNCTION ops._may_manage(text, text);

CREATE OR REPLACE FUNCTION ops._step_targets(p_policy text, p_step int, p_at timestamptz, OUT r_targets jsonb, OUT r_webhooks text[])
RETURNS record
LANGUAGE sql STABLE SET search_path = ops, pg_temp AS $$
    WITH t AS (
        SELECT e.target, e.n
        FROM ops.escalation_policy_steps AS s
        CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(s.targets) WITH ORDINALITY AS e (target, n)
        WHERE s.policy = p_policy AND s.step = p_step
    ),
    named AS (
        SELECT t.target ->> 'principal' AS principal, t.n * 1000 AS pos
        FROM t WHERE t.target ? 'principal'
        UNION ALL
        SELECT o.principal, t.n * 1000 + o.k
        FROM t
        INNER JOIN ops.schedules AS sc ON t.target ->> 'schedule' = sc.name
        CROSS JOIN LATERAL ops._on_call_or_nobody(sc.name, p_at) WITH ORDINALITY AS o (principal, k)
    ),
    who AS (
        SELECT n.principal, min(n.pos) AS pos
        FROM named AS n
        INNER JOIN ops.principals AS p ON n.principal = p.name AND NOT p.disabled
        GROUP BY n.principal
    ),
    hooks AS (
        SELECT t.target ->> 'webhook' AS url, t.n FROM t WHERE t.target ? 'webhook'
    ),
    dest AS (
        SELECT 0 AS n, pg_catalog.jsonb_build_object('type', 'route') AS d
        WHERE EXISTS (SELECT 1 FROM who) OR NOT EXISTS (SELECT 1 FROM hooks)
        UNION ALL
        SELECT h.n, pg_catalog.jsonb_build_object(
            'type', 'webhook', 'url', ops._redact_url(h.url, h.url),
            'sha256', pg_catalog.left(pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(h.url, 'UTF8')), 'hex'), 16))
        FROM hooks AS h
    )
    SELECT pg_catalog.jsonb_build_object(
               'policy', p_policy,
               'step', p_step,
               'principals', coalesce((SELECT pg_catalog.jsonb_agg(w.principal ORDER BY w.pos) FROM who AS w), '[]'),
               'destinations', (SELECT pg_catalog.jsonb_agg(d.d ORDER BY d.n) FROM dest AS d),
               -- Slack user ids only: anything else in a mention could become another markup
               'mentions', coalesce((
                   SELECT pg_catalog.jsonb_agg('<@' || c.external_user || '>' ORDER BY w.pos, c.external_user)
                   FROM who AS w
                   INNER JOIN ops.chat_identities AS c ON w.principal = c.principal
                   WHERE c.provider = 'slack' AND c.external_user ~ '^[A-Z0-9]{1,40}$'), '[]')),
           ARRAY(SELECT h.url FROM hooks AS h ORDER BY h.n)
$$;

CREATE OR REPLACE FUNCTION ops._tick_due(
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
        FROM (
            SELECT w.principal, pg_catalog.string_agg(DISTINCT w.via, ', ') AS via
            FROM (
                SELECT e.target ->> 'principal' AS principal,
                       pg_catalog.format('policy %s step %s', s.policy, s.step) AS via
                FROM ops.escalation_policy_steps AS s
                CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(s.targets) AS e (target)
                WHERE e.target ? 'principal'
                UNION ALL
                SELECT u.principal, pg_catalog.format('schedule %s', r.schedule)
                FROM ops.schedule_rotations AS r
                CROSS JOIN LATERAL pg_catalog.unnest(r.participants) AS u (principal)
                UNION ALL
                SELECT o.principal, pg_catalog.format('schedule %s override', o.schedule)
                FROM ops.schedule_overrides AS o
                WHERE o.ends_at > pg_catalog.now()
            ) AS w
            INNER JOIN ops.principals AS p ON w.principal = p.name AND NOT p.disabled
            WHERE NOT EXISTS (SELECT 1 FROM ops.chat_identities AS c
                              WHERE c.principal = w.principal AND c.provider = 'slack')
            GROUP BY w.principal
        ) AS g
    ) AS x
    ORDER BY 1;
END;
$$;

COMMENT ON FUNCTION ops._tick_due(timestamptz, bigint, jsonb, boolean) IS
'Internal tick step: escalates what ops._tick_claim claims (p_settings as ops._tick_settings returns them) under '
'tick p_tick_id: events, levels and outbox messages for live rows; returns due, live, new events, the queue lag in ms '
'and wouldEscalate (dry-run and canary rows, first 100).';
COMMENT ON FUNCTION ops.config_problems(float8) IS
'What is wrong with the configuration, one row per setting (empty: all is well): SELECT * FROM ops.config_problems(); '
'Checks URLs and webhooks, the time zone (UTC), and for a dispatcher its lease (blocking: the API and the dispatcher '
'refuse to start while such rows exist; a dispatcher passes its HTTP timeout). Rows with blocking false are paging gaps '
'that start-up and /healthz only warn about: a principal a policy or schedule can page with no linked Slack user, a '
'step naming a schedule that no longer exists, a disabled principal still on call in a schedule, a default_policy '
'naming no policy, a policy in use without steps.';

DROP FUNCTION ops._pageable_principals();
DROP VIEW ops.usable_notification_rules;
ALTER TABLE ops.notification_outbox DROP COLUMN due_at;
