-- depends: 0041_audit_redacts_webhooks
-- Alert intake, as an outside sender could abuse it or lose alerts to it:
--   - an Alertmanager key bound to a route opened incidents on any route a label named (route,
--     service, job), paging that route's rotation: a key with a route now only ever acts on it, the
--     label stays in the details. Events API v2 keys already put the key's route first; their
--     incidents are events_v2:<key name>:<dedup_key>, which names one key only while no key name is
--     another's plus ':' (key a with dedup_key b:c met key a:b with dedup_key c): such a name is
--     refused now. Heartbeat keys already pinged only heartbeats of their route.
--   - details over 64 KiB (100 KB of custom_details) were a 400, which Alertmanager and most senders
--     do not retry: the alert was lost. ops._intake_fit_details now cuts the largest parts until the
--     details fit, and says what it cut; Alertmanager's label maps lose their silent 8 KiB caps to it.
--   - an Events API v2 image whose src is not https is refused, as PagerDuty does; the event checks
--     move to ops._events_v2_problems so that ops.api_events_v2 stays one screen of verbs.

CREATE FUNCTION ops._intake_fit_details(p_details jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SET search_path = ops, pg_temp AS $$
DECLARE
    v_size int := pg_catalog.octet_length(p_details::text);
    v_out jsonb;
BEGIN
    IF v_size IS NULL OR v_size <= 65536 THEN
        RETURN p_details;
    END IF;
    -- what may go: members of top-level objects and arrays (the top-level strings are bounded by
    -- each sender's checks), largest first, links last, until 1 KiB under the limit (room for the
    -- marker). A member's share of the text is its key, its value and the separators.
    WITH part AS (
        SELECT f.k AS field, m.k AS member, m.pos, m.v, pg_catalog.octet_length(m.v::text) AS bytes,
               pg_catalog.octet_length(m.v::text) + 2
               + coalesce(pg_catalog.octet_length(pg_catalog.to_jsonb(m.k)::text) + 2, 0) AS share
        FROM pg_catalog.jsonb_each(p_details) AS f (k, v)
        CROSS JOIN LATERAL (
            SELECT o.k, NULL::bigint AS pos, o.v
            FROM pg_catalog.jsonb_each(CASE WHEN pg_catalog.jsonb_typeof(f.v) = 'object' THEN f.v END) AS o (k, v)
            UNION ALL
            SELECT NULL, a.pos, a.v
            FROM pg_catalog.jsonb_array_elements(CASE WHEN pg_catalog.jsonb_typeof(f.v) = 'array' THEN f.v END)
                 WITH ORDINALITY AS a (v, pos)
        ) AS m
    ),
    ranked AS (
        SELECT r.*, r.running - r.share < v_size - (65536 - 1024) AS cut
        FROM (SELECT p.*, pg_catalog.sum(p.share) OVER (ORDER BY p.field = 'links', p.share DESC, p.field, p.member, p.pos)
                          AS running
              FROM part AS p) AS r
    )
    -- rebuilt from what is kept rather than with jsonb - text[], which is quadratic in the keys cut
    SELECT pg_catalog.jsonb_object_agg(f.k, CASE
               WHEN NOT EXISTS (SELECT 1 FROM ranked WHERE ranked.field = f.k AND ranked.cut) THEN f.v
               WHEN pg_catalog.jsonb_typeof(f.v) = 'object'
                   THEN (SELECT coalesce(pg_catalog.jsonb_object_agg(k.member, k.v), '{}')
                         FROM ranked AS k WHERE k.field = f.k AND NOT k.cut)
               ELSE (SELECT coalesce(pg_catalog.jsonb_agg(k.v ORDER BY k.pos), '[]')
                     FROM ranked AS k WHERE k.field = f.k AND NOT k.cut)
           END)
           || pg_catalog.jsonb_build_object('truncated', (
               SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('field', c.field, 'bytes', c.bytes)
                                           ORDER BY c.field)
               FROM (SELECT ranked.field, pg_catalog.sum(ranked.bytes)::bigint AS bytes
                     FROM ranked WHERE ranked.cut GROUP BY ranked.field) AS c))
    INTO v_out
    FROM pg_catalog.jsonb_each(p_details) AS f (k, v);
    -- only top-level strings left, which the senders' own checks keep short: a caller in SQL
    IF pg_catalog.octet_length(v_out::text) > 65536 THEN
        RAISE EXCEPTION 'incident details are % bytes, more than 64 KiB', v_size
            USING ERRCODE = '22023', HINT = 'Send fewer or shorter fields.';
    END IF;
    RETURN v_out;
END;
$$;
COMMENT ON FUNCTION ops._intake_fit_details(jsonb) IS
'Internal: sender details cut to 64 KiB, so that no alert is refused for its size: the largest members of its objects'
' and arrays go first (links last), and "truncated": [{"field": "custom_details", "bytes": N}, ...] says from which '
'field how many bytes went. Details within the limit come back as they are; 22023 when only top-level strings are '
'left and still too long.';

CREATE FUNCTION ops._events_v2_problems(p_body jsonb) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = ops, pg_temp AS $$
-- plpgsql, not sql: its plans are cached across calls, where a sql function with SET is planned on every call
DECLARE
    v_action text := CASE WHEN pg_catalog.jsonb_typeof(p_body -> 'event_action') = 'string'
                          THEN p_body ->> 'event_action' END;
    v_payload jsonb := p_body -> 'payload';
BEGIN
    -- payload fields are looked at only when there is a payload object: a missing payload is one error
    RETURN pg_catalog.array_remove(ARRAY[
        CASE WHEN v_action IS NULL OR v_action NOT IN ('trigger', 'acknowledge', 'resolve')
             THEN '''event_action'' must be one of trigger, acknowledge, resolve' END,
        ops._events_v2_string_problem(p_body -> 'dedup_key', 'dedup_key', 255, v_action IN ('acknowledge', 'resolve')),
        CASE WHEN pg_catalog.jsonb_typeof(p_body -> 'dedup_key') = 'string' AND p_body ->> 'dedup_key' = ''
             THEN '''dedup_key'' must not be empty' END
    ] || CASE WHEN v_action = 'trigger' AND pg_catalog.jsonb_typeof(v_payload) IS DISTINCT FROM 'object' THEN ARRAY[
        '''payload'' is required: an object with summary, source and severity'
    ] ELSE '{}' END || CASE WHEN v_action = 'trigger' AND pg_catalog.jsonb_typeof(v_payload) = 'object' THEN ARRAY[
        ops._events_v2_string_problem(v_payload -> 'summary', 'payload.summary', 1024, true),
        ops._events_v2_string_problem(v_payload -> 'source', 'payload.source', 255, true),
        CASE WHEN pg_catalog.jsonb_typeof(v_payload -> 'severity') IS DISTINCT FROM 'string'
                  OR v_payload ->> 'severity' NOT IN ('critical', 'error', 'warning', 'info')
             THEN '''payload.severity'' must be one of critical, error, warning, info' END,
        ops._events_v2_string_problem(v_payload -> 'timestamp', 'payload.timestamp', 64, false),
        CASE WHEN pg_catalog.jsonb_typeof(v_payload -> 'timestamp') = 'string'
                  AND pg_catalog.length(v_payload ->> 'timestamp') <= 64
                  AND ops._events_v2_timestamp(v_payload ->> 'timestamp') IS NULL
             THEN '''payload.timestamp'' must be an ISO 8601 time, e.g. 2026-12-01T08:00:00Z' END,
        ops._events_v2_string_problem(v_payload -> 'component', 'payload.component', 1024, false),
        ops._events_v2_string_problem(v_payload -> 'group', 'payload.group', 1024, false),
        ops._events_v2_string_problem(v_payload -> 'class', 'payload.class', 1024, false),
        CASE WHEN coalesce(pg_catalog.jsonb_typeof(v_payload -> 'custom_details'), 'null') NOT IN ('object', 'null')
             THEN '''payload.custom_details'' must be an object' END
    ] ELSE '{}' END || CASE WHEN v_action = 'trigger' THEN ARRAY[
        CASE WHEN coalesce(pg_catalog.jsonb_typeof(p_body -> 'links'), 'null') NOT IN ('array', 'null')
                  OR pg_catalog.jsonb_typeof(p_body -> 'links') = 'array' AND EXISTS (
                      SELECT 1 FROM pg_catalog.jsonb_array_elements(p_body -> 'links') AS l (e)
                      WHERE pg_catalog.jsonb_typeof(l.e) <> 'object'
                         OR pg_catalog.jsonb_typeof(l.e -> 'href') IS DISTINCT FROM 'string'
                         OR coalesce(pg_catalog.jsonb_typeof(l.e -> 'text'), 'null') NOT IN ('string', 'null'))
             THEN '''links'' must be a list of {"href": string, "text": string}' END,
        CASE WHEN coalesce(pg_catalog.jsonb_typeof(p_body -> 'images'), 'null') NOT IN ('array', 'null')
                  OR pg_catalog.jsonb_typeof(p_body -> 'images') = 'array' AND EXISTS (
                      SELECT 1 FROM pg_catalog.jsonb_array_elements(p_body -> 'images') AS i (e)
                      WHERE pg_catalog.jsonb_typeof(i.e) <> 'object'
                         OR pg_catalog.jsonb_typeof(i.e -> 'src') IS DISTINCT FROM 'string'
                         OR coalesce(pg_catalog.jsonb_typeof(i.e -> 'href'), 'null') NOT IN ('string', 'null')
                         OR coalesce(pg_catalog.jsonb_typeof(i.e -> 'alt'), 'null') NOT IN ('string', 'null'))
             THEN '''images'' must be a list of {"src": string, "href": string, "alt": string}' END,
        ops._events_v2_string_problem(p_body -> 'client', 'client', 1024, false),
        ops._events_v2_string_problem(p_body -> 'client_url', 'client_url', 2048, false)
    ] ELSE '{}' END
    -- PagerDuty shows images only over HTTPS and refuses an event with another src: one error per image
    || CASE WHEN v_action = 'trigger' AND pg_catalog.jsonb_typeof(p_body -> 'images') = 'array' THEN ARRAY(
        SELECT pg_catalog.format('''images[%s].src'' must be an https:// URL', i.pos - 1)
        FROM pg_catalog.jsonb_array_elements(p_body -> 'images') WITH ORDINALITY AS i (e, pos)
        WHERE pg_catalog.jsonb_typeof(i.e -> 'src') = 'string' AND i.e ->> 'src' !~* '^https://[^/?#[:space:]]'
        ORDER BY i.pos) ELSE '{}' END, NULL);
END;
$$;
COMMENT ON FUNCTION ops._events_v2_problems(jsonb) IS
'Internal: every problem of an Events API v2 event apart from its routing_key, as PagerDuty lists them (a type, a '
'missing or too long field, an image src that is not https), else an empty array.';

CREATE OR REPLACE FUNCTION ops._intake_trigger(
    p_incident_key text, p_severity text, p_route text, p_summary text, p_details jsonb, p_actor text,
    p_now timestamptz
) RETURNS ops.incidents
LANGUAGE plpgsql SET search_path = ops, pg_temp AS $$
DECLARE
    v_row ops.incidents;
    v_id uuid;
    -- cut, not refused: most senders do not retry a 4xx, so a refusal would lose the alert
    v_details jsonb := ops._intake_fit_details(coalesce(p_details, '{}'));
    v_prev text := coalesce(pg_catalog.current_setting('opsguard.actor', true), '');
BEGIN
    IF pg_catalog.length(p_incident_key) > 500 OR pg_catalog.btrim(p_incident_key) = '' THEN
        RAISE EXCEPTION 'incident key must be 1 to 500 characters' USING ERRCODE = '22023';
    END IF;
    -- the errors the INSERT raised for these before it knew whether the key was open (a refresh
    -- included); callers check first, so only a caller in SQL can meet them
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'a time is required' USING ERRCODE = '23502', HINT = 'Pass p_now.';
    END IF;
    IF p_severity IS NULL OR p_severity NOT IN ('critical', 'warning') THEN
        RAISE EXCEPTION 'severity must be critical or warning, not %', coalesce(p_severity, 'NULL')
            USING ERRCODE = '23514', HINT = 'Map the sender severity to critical or warning first.';
    END IF;
    -- the actor for the audit trigger, as ops._act_as sets it, without two more function calls
    PERFORM pg_catalog.set_config('opsguard.actor', coalesce(p_actor, ''), true),
            pg_catalog.set_config('opsguard.note', '', true);
    LOOP
        SELECT i.id INTO v_id FROM ops.incidents AS i WHERE i.incident_key = p_incident_key AND i.status <> 'resolved';
        IF FOUND THEN
            UPDATE ops.incidents AS i
            SET last_seen = GREATEST(i.last_seen, p_now),
                severity = CASE WHEN p_severity = 'critical' THEN 'critical' ELSE i.severity END,
                summary = coalesce(pg_catalog.left(p_summary, 1024), i.summary),
                -- a repeat usually says the same: keeping the stored value keeps its TOAST pointer,
                -- so a refresh does not write the details again
                details = CASE WHEN i.details = v_details THEN i.details ELSE v_details END
            WHERE i.id = v_id AND i.status <> 'resolved'
            RETURNING * INTO v_row;
        ELSE
            INSERT INTO ops.incidents AS i (incident_key, route, severity, summary, details, first_seen, last_seen)
            VALUES (p_incident_key, pg_catalog.left(p_route, 500), p_severity, pg_catalog.left(p_summary, 1024),
                    v_details, p_now, p_now)
            ON CONFLICT (incident_key) WHERE status <> 'resolved' DO NOTHING
            RETURNING * INTO v_row;
        END IF;
        -- not found: resolved, or opened by another sender, since the lookup; look again
        EXIT WHEN FOUND;
    END LOOP;
    PERFORM pg_catalog.set_config('opsguard.actor', v_prev, true), pg_catalog.set_config('opsguard.note', '', true);
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops._intake_trigger(text, text, text, text, jsonb, text, timestamptz) IS
'Internal: opens or refreshes the not-resolved incident with this key (as ops.trigger_incident), keeping the sender '
'details, cut to 64 KiB with a "truncated" marker by ops._intake_fit_details.';

CREATE OR REPLACE FUNCTION ops.api_events_v2(p_body jsonb, p_now timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_key ops.integration_keys;
    v_action text := CASE WHEN pg_catalog.jsonb_typeof(p_body -> 'event_action') = 'string'
                          THEN p_body ->> 'event_action' END;
    v_payload jsonb := p_body -> 'payload';
    v_dedup text;
    v_errors text[];
    v_details jsonb;
BEGIN
    IF p_body IS NULL OR pg_catalog.jsonb_typeof(p_body) <> 'object' OR p_now IS NULL THEN
        RAISE EXCEPTION 'the body must be a JSON object' USING ERRCODE = '22023',
            DETAIL = '["the body must be a JSON object"]',
            HINT = '{"routing_key": "ogk_...", "event_action": "trigger", "payload": '
                   '{"summary": "disk full", "source": "db-1", "severity": "critical"}}';
    END IF;
    -- the key first: without a live key nothing else is looked at (one 28000 for every bad key)
    v_key := ops._integration_key(
        CASE WHEN pg_catalog.jsonb_typeof(p_body -> 'routing_key') = 'string' THEN p_body ->> 'routing_key' END,
        'events_v2');

    v_errors := ops._events_v2_problems(p_body);
    IF pg_catalog.cardinality(v_errors) > 0 THEN
        RAISE EXCEPTION '%', v_errors[1] USING ERRCODE = '22023',
            DETAIL = pg_catalog.array_to_json(v_errors)::text,
            HINT = '{"routing_key": "ogk_...", "event_action": "trigger", "dedup_key": "db-1/disk", "payload": '
                   '{"summary": "disk full", "source": "db-1", "severity": "critical"}}';
    END IF;

    -- PagerDuty makes a dedup_key for a trigger without one, and answers it
    v_dedup := coalesce(p_body ->> 'dedup_key', pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', ''));
    IF v_action = 'trigger' THEN
        -- the fields the sender set, JSON nulls dropped (custom_details is kept as sent)
        SELECT coalesce(pg_catalog.jsonb_object_agg(f.k, f.v), '{}') INTO v_details
        FROM pg_catalog.jsonb_each(pg_catalog.jsonb_build_object(
            'sender', 'events_v2', 'dedup_key', v_dedup,
            'source', v_payload -> 'source', 'severity', v_payload -> 'severity',
            'timestamp', v_payload -> 'timestamp', 'component', v_payload -> 'component',
            'group', v_payload -> 'group', 'class', v_payload -> 'class',
            'custom_details', v_payload -> 'custom_details', 'links', p_body -> 'links', 'images', p_body -> 'images',
            'client', p_body -> 'client', 'client_url', p_body -> 'client_url')) AS f (k, v)
        WHERE f.v <> 'null'::jsonb;
        PERFORM ops._intake_trigger(
            pg_catalog.format('events_v2:%s:%s', v_key.name, v_dedup),
            CASE WHEN v_payload ->> 'severity' IN ('critical', 'error') THEN 'critical' ELSE 'warning' END,
            -- a template that rendered empty (a component label the alerts lack) is none
            coalesce(v_key.route, NULLIF(pg_catalog.btrim(v_payload ->> 'component'), ''), v_payload ->> 'source'),
            v_payload ->> 'summary', v_details, v_key.name, p_now);
    ELSE
        -- nothing open under the key: PagerDuty answers success too, and nothing changes
        PERFORM ops._intake_transition(
            pg_catalog.format('events_v2:%s:%s', v_key.name, v_dedup),
            CASE v_action WHEN 'acknowledge' THEN 'acknowledged' ELSE 'resolved' END, v_key.name, p_now);
    END IF;
    RETURN pg_catalog.jsonb_build_object('status', 'success', 'message', 'Event processed', 'dedup_key', v_dedup);
END;
$$;

CREATE OR REPLACE FUNCTION ops.api_alertmanager(p_token text, p_body jsonb, p_now timestamptz DEFAULT pg_catalog.now())
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_key ops.integration_keys;
    v_problem text;
    v_incident_key text;
    v_common jsonb;
    v_firing int;
    v_total int;
    v_critical boolean;
    v_route text;
    v_summary text;
    v_alerts jsonb;
    v_kept int;
    v_details jsonb;
    v_row ops.incidents;
BEGIN
    -- the key first: a caller without one learns nothing about what a good payload looks like
    v_key := ops._integration_key(p_token, 'alertmanager');
    -- the API's depth limit (32 levels of objects and arrays, api/opsguard/views), checked here for
    -- this endpoint: one jsonpath costs 22 us on a 100-alert notification, the walk in Python 207 (0040)
    IF pg_catalog.jsonb_path_exists(p_body, 'strict $.**{32 to last} ? (@.type() == "object" || @.type() == "array")') THEN
        RAISE EXCEPTION 'the body is nested deeper than 32 levels'
            USING ERRCODE = '22023', HINT = 'Send the Alertmanager or Grafana webhook payload as is.';
    END IF;
    v_problem := ops._alertmanager_problem(p_body);
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION '%', v_problem
            USING ERRCODE = '22023',
                  HINT = 'Send the Alertmanager webhook payload (version 4) or Grafana alerting webhook payload as is.';
    END IF;
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'a time is required' USING ERRCODE = '22004';
    END IF;
    v_incident_key := 'alertmanager:' || v_key.name || ':'
                      || pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(p_body ->> 'groupKey', 'UTF8')), 'hex');

    IF p_body ->> 'status' = 'resolved' THEN
        v_row := ops._intake_transition(v_incident_key, 'resolved', v_key.name, p_now);
        RETURN pg_catalog.jsonb_build_object(
            'ok', true, 'incidents', CASE WHEN v_row.id IS NULL THEN '[]'::jsonb
                                          ELSE pg_catalog.jsonb_build_array(ops.incident_json(v_row)) END);
    END IF;

    v_common := coalesce(nullif(p_body -> 'commonLabels', 'null'), '{}');
    -- firing alerts first, in the order sent: what the route, severity and summary come from
    SELECT pg_catalog.count(*)::int,
           (pg_catalog.count(*) FILTER (WHERE a.v ->> 'status' = 'firing'))::int,
           coalesce(pg_catalog.bool_or(pg_catalog.lower(a.v #>> '{labels,severity}') IN ('critical', 'page', 'error'))
                        FILTER (WHERE a.v ->> 'status' = 'firing'), false),
           -- a key bound to a route acts on that route only: a label naming another one stays in
           -- the details but does not move the incident (nor page that route's rotation)
           coalesce(v_key.route,
                    nullif(v_common ->> 'route', ''),
                    (pg_catalog.array_agg(a.v #>> '{labels,route}' ORDER BY a.v ->> 'status' <> 'firing', a.ord)
                         FILTER (WHERE nullif(a.v #>> '{labels,route}', '') IS NOT NULL))[1],
                    nullif(v_common ->> 'service', ''),
                    (pg_catalog.array_agg(a.v #>> '{labels,service}' ORDER BY a.v ->> 'status' <> 'firing', a.ord)
                         FILTER (WHERE nullif(a.v #>> '{labels,service}', '') IS NOT NULL))[1],
                    nullif(v_common ->> 'job', ''),
                    (pg_catalog.array_agg(a.v #>> '{labels,job}' ORDER BY a.v ->> 'status' <> 'firing', a.ord)
                         FILTER (WHERE nullif(a.v #>> '{labels,job}', '') IS NOT NULL))[1]),
           coalesce(nullif(p_body #>> '{commonAnnotations,summary}', ''),
                    nullif(v_common ->> 'alertname', ''),
                    (pg_catalog.array_agg(a.v #>> '{labels,alertname}' ORDER BY a.v ->> 'status' <> 'firing', a.ord)
                         FILTER (WHERE nullif(a.v #>> '{labels,alertname}', '') IS NOT NULL))[1],
                    nullif(p_body ->> 'title', ''),
                    pg_catalog.left(p_body ->> 'groupKey', 200))
    INTO v_total, v_firing, v_critical, v_route, v_summary
    FROM pg_catalog.jsonb_array_elements(p_body -> 'alerts') WITH ORDINALITY AS a (v, ord);
    v_critical := v_critical OR pg_catalog.lower(v_common ->> 'severity') IN ('critical', 'page', 'error');

    -- at most 20 alerts and 16 KiB of them, the rest counted: every alert kept is written again
    -- (row, TOAST, audit) by each repeat of the notification, so the cap is what keeps a big group cheap
    SELECT coalesce(pg_catalog.jsonb_agg(k.alert ORDER BY k.rn), '[]'), pg_catalog.count(*)::int
    INTO v_alerts, v_kept
    FROM (
        SELECT b.rn, b.alert, pg_catalog.sum(pg_catalog.octet_length(b.alert::text)) OVER (ORDER BY b.rn) AS running
        FROM (
            -- an alert that already is what the expression below makes of it (only known fields, no
            -- nulls in its objects, no empty dashboardURL or panelURL) is kept as sent: the same value,
            -- without rebuilding and stripping it (most of the cost of keeping 20 alerts)
            SELECT f.rn, CASE WHEN f.v - ARRAY['status', 'labels', 'annotations', 'startsAt', 'endsAt', 'generatorURL',
                                              'fingerprint', 'silenceURL', 'dashboardURL', 'panelURL', 'imageURL',
                                              'values', 'valueString'] = '{}'
                                   AND NOT pg_catalog.jsonb_path_exists(f.v, 'lax $.** ? (@ == null)')
                                   AND f.v -> 'dashboardURL' IS DISTINCT FROM '""'
                                   AND f.v -> 'panelURL' IS DISTINCT FROM '""'
                              THEN f.v
                              ELSE pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                       'status', f.v -> 'status', 'labels', f.v -> 'labels', 'annotations', f.v -> 'annotations',
                       'startsAt', f.v -> 'startsAt', 'endsAt', f.v -> 'endsAt', 'generatorURL', f.v -> 'generatorURL',
                       'fingerprint', f.v -> 'fingerprint', 'silenceURL', f.v -> 'silenceURL',
                       'dashboardURL', nullif(f.v -> 'dashboardURL', '""'), 'panelURL', nullif(f.v -> 'panelURL', '""'),
                       'imageURL', f.v -> 'imageURL', 'values', f.v -> 'values', 'valueString', f.v -> 'valueString'))
                   END AS alert
            FROM (
                SELECT a.v, pg_catalog.row_number() OVER (ORDER BY a.v ->> 'status' <> 'firing', a.ord) AS rn
                FROM pg_catalog.jsonb_array_elements(p_body -> 'alerts') WITH ORDINALITY AS a (v, ord)
                ORDER BY a.v ->> 'status' <> 'firing', a.ord
                LIMIT 20
            ) AS f
        ) AS b
    ) AS k
    WHERE k.running <= 16384;

    -- the kept alerts hold no nulls (kept as sent only without any, else stripped above): only the
    -- fields around them are stripped, not the 16 KiB of alerts again (0040)
    v_details := pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
        'source', CASE WHEN p_body ? 'orgId' THEN 'grafana' ELSE 'alertmanager' END,
        'receiver', pg_catalog.left(p_body ->> 'receiver', 200),
        'groupKey', pg_catalog.left(p_body ->> 'groupKey', 1024),
        'status', p_body -> 'status',
        'externalURL', pg_catalog.left(p_body ->> 'externalURL', 2048),
        'title', pg_catalog.left(p_body ->> 'title', 1024),
        'orgId', p_body -> 'orgId',
        'groupLabels', p_body -> 'groupLabels',
        'commonLabels', p_body -> 'commonLabels',
        'commonAnnotations', p_body -> 'commonAnnotations',
        'alertsTotal', v_total,
        'alertsFiring', v_firing,
        'alertsOmitted', v_total - v_kept,
        'truncatedAlerts', p_body -> 'truncatedAlerts'))
        || pg_catalog.jsonb_build_object('alerts', v_alerts);

    v_row := ops._intake_trigger(v_incident_key, CASE WHEN v_critical THEN 'critical' ELSE 'warning' END,
                                 v_route, v_summary, v_details, v_key.name, p_now);
    RETURN pg_catalog.jsonb_build_object('ok', true, 'incidents', pg_catalog.jsonb_build_array(ops.incident_json(v_row)));
END;
$$;
COMMENT ON FUNCTION ops.api_alertmanager(text, jsonb, timestamptz) IS
'POST /ops/integrations/alertmanager (bearer key of kind alertmanager): one incident per alert group (key '
'alertmanager:<key name>:<sha256 of groupKey>), opened or refreshed while it fires, resolved by the resolved '
'notification; its route is the key''s, else the route/service/job label. {"ok": true, "incidents": [...]}; a bad key '
'28000, a bad payload 22023 naming the field.';

CREATE OR REPLACE FUNCTION ops.create_integration_key(p_name text, p_kind text, p_actor text, p_route text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_token text;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    IF p_name IS NULL OR p_name !~ '^[A-Za-z0-9._@:-]{1,100}$' THEN
        RAISE EXCEPTION 'invalid integration key name "%"', p_name
            USING ERRCODE = '22023', HINT = 'Names: 1 to 100 letters, digits, . _ @ : -, e.g. ''alertmanager-prod''.';
    END IF;
    IF p_kind IS NULL OR p_kind NOT IN ('alertmanager', 'events_v2', 'heartbeat') THEN
        RAISE EXCEPTION 'unknown integration key kind "%"', p_kind
            USING ERRCODE = '22023', HINT = 'Kinds: alertmanager (also Grafana), events_v2 (PagerDuty Events API v2), heartbeat.';
    END IF;
    IF p_route IS NOT NULL AND (pg_catalog.btrim(p_route) = '' OR pg_catalog.length(p_route) > 500) THEN
        RAISE EXCEPTION 'a route must be 1 to 500 characters' USING ERRCODE = '22023';
    END IF;
    -- events_v2:<key name>:<dedup_key> must name one key: key a with dedup_key b:c and key a:b with
    -- dedup_key c would share an incident, each acknowledging and resolving the other's
    IF p_kind = 'events_v2' THEN
        LOCK TABLE ops.integration_keys IN SHARE ROW EXCLUSIVE MODE;  -- two such names made at once: one waits
    END IF;
    IF p_kind = 'events_v2' AND EXISTS (
        SELECT 1 FROM ops.integration_keys
        WHERE kind = 'events_v2' AND name <> p_name
          AND (pg_catalog.starts_with(p_name, name || ':') OR pg_catalog.starts_with(name, p_name || ':'))) THEN
        RAISE EXCEPTION 'integration key name "%" would share incident keys with another events_v2 key', p_name
            USING ERRCODE = '23505',
                  HINT = 'An events_v2 key name may not be another one''s name plus '':'': choose another name.';
    END IF;
    IF EXISTS (SELECT 1 FROM ops.integration_keys WHERE name = p_name) THEN
        RAISE EXCEPTION 'integration key "%" exists', p_name
            USING ERRCODE = '23505', HINT = 'Names are never reused, revoked ones included: choose another name.';
    END IF;
    -- 244 random bits from the strong generator behind gen_random_uuid (two v4 uuids)
    v_token := 'ogk_' || pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', '')
                      || pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', '');
    v_prev := ops._act_as(p_actor);
    INSERT INTO ops.integration_keys (name, kind, route, token_sha256, created_by)
    VALUES (p_name, p_kind, p_route, pg_catalog.sha256(pg_catalog.convert_to(v_token, 'UTF8')), p_actor);
    PERFORM ops._act_as(v_prev);
    RETURN v_token;
END;
$$;
COMMENT ON FUNCTION ops.create_integration_key(text, text, text, text) IS
'Makes a key for a sender and returns its token, once (only the SHA-256 is stored): SELECT '
'ops.create_integration_key(''alertmanager-prod'', ''alertmanager'', ''alice'', ''platform''); A key with a route only ever '
'acts on that route (its incidents land there whatever the labels say; a heartbeat key pings only heartbeats of that '
'route). A key without a route is global: its incidents go where the labels, component or source say, and a heartbeat'
' key without one pings every heartbeat, so make one on purpose. Bad name, kind or route: 22023; a name taken, or an '
'events_v2 name that is another one''s plus '':'': 23505.';

COMMENT ON FUNCTION ops.api_heartbeat_ping(text, text, timestamptz) IS
'POST /ops/heartbeats/<name>: records a ping (due again one interval later) and resolves an open heartbeat::<name> '
'incident, actor the key name. A key with a route pings only heartbeats of that route; one without is global and '
'pings any. Bad key: 28000; unknown heartbeat, or one of another route than the key: P0002.';

-- internal helpers: called by the definer functions above, by nobody else
REVOKE ALL ON FUNCTION ops._intake_fit_details(jsonb), ops._events_v2_problems(jsonb) FROM public;
