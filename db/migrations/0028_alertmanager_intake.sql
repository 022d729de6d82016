-- depends: 0027_integration_keys
-- POST /ops/integrations/alertmanager (SPEC 10): Alertmanager webhook payloads (version 4) and
-- Grafana alerting ones (the same shape, version 1, with orgId, title, state, message, values).
-- One incident per alert group: the incident key is alertmanager:<key name>:<sha256 of groupKey>,
-- bounded (at most 178 characters, whatever the groupKey), stable across notifications of the
-- group, and scoped by the key so two Alertmanagers (or Grafana, whose groupKey is often "{}:{}")
-- never share an incident. The details keep at most 20 alerts and 16 KiB of them, plus counts,
-- so a group of 10k alerts stays a few KiB.

-- a SQL-standard body, so the planner inlines it into the one pass over the alerts
CREATE FUNCTION ops._is_string_map(p_value jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE
RETURN CASE WHEN pg_catalog.jsonb_typeof(p_value) = 'object'
            THEN NOT pg_catalog.jsonb_path_exists(p_value, '$.* ? (@.type() != "string")')
            ELSE false END;
COMMENT ON FUNCTION ops._is_string_map(jsonb) IS
'Internal: true for a JSON object whose values are all strings (labels, annotations).';

CREATE FUNCTION ops._alertmanager_problem(p_body jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = ops, pg_temp AS $$
DECLARE
    v_field text;
    v_alert jsonb;
BEGIN
    IF p_body IS NULL OR pg_catalog.jsonb_typeof(p_body) <> 'object' THEN
        RETURN 'the body must be a JSON object (an Alertmanager or Grafana webhook payload)';
    END IF;
    IF pg_catalog.jsonb_typeof(p_body -> 'version') IS DISTINCT FROM 'string'
       OR NOT (p_body ->> 'version' = '4' OR (p_body ->> 'version' = '1' AND p_body ? 'orgId')) THEN
        RETURN 'version must be "4" (Alertmanager) or "1" with orgId (Grafana)';
    END IF;
    IF pg_catalog.jsonb_typeof(p_body -> 'groupKey') IS DISTINCT FROM 'string'
       OR pg_catalog.btrim(p_body ->> 'groupKey') = '' THEN
        RETURN 'groupKey must be a non-empty string';
    END IF;
    IF pg_catalog.jsonb_typeof(p_body -> 'status') IS DISTINCT FROM 'string'
       OR p_body ->> 'status' NOT IN ('firing', 'resolved') THEN
        RETURN 'status must be "firing" or "resolved"';
    END IF;
    IF pg_catalog.jsonb_typeof(p_body -> 'alerts') IS DISTINCT FROM 'array' THEN
        RETURN 'alerts must be an array';
    END IF;
    -- optional fields: absent or null is fine, another type is not
    SELECT f INTO v_field FROM pg_catalog.unnest(ARRAY['receiver', 'externalURL', 'title', 'state', 'message']) AS f
    WHERE pg_catalog.jsonb_typeof(p_body -> f) NOT IN ('string', 'null') LIMIT 1;
    IF FOUND THEN
        RETURN pg_catalog.format('%s must be a string', v_field);
    END IF;
    SELECT f INTO v_field FROM pg_catalog.unnest(ARRAY['truncatedAlerts', 'orgId']) AS f
    WHERE pg_catalog.jsonb_typeof(p_body -> f) NOT IN ('number', 'null') LIMIT 1;
    IF FOUND THEN
        RETURN pg_catalog.format('%s must be a number', v_field);
    END IF;
    SELECT f INTO v_field FROM pg_catalog.unnest(ARRAY['groupLabels', 'commonLabels', 'commonAnnotations']) AS f
    WHERE p_body -> f IS NOT NULL AND p_body -> f <> 'null' AND NOT ops._is_string_map(p_body -> f) LIMIT 1;
    IF FOUND THEN
        RETURN pg_catalog.format('%s must be an object of strings', v_field);
    END IF;
    -- the first bad alert: one boolean per alert, the message only for the alert that fails it
    SELECT pg_catalog.format('alerts[%s]', a.ord - 1), a.v INTO v_field, v_alert
    FROM pg_catalog.jsonb_array_elements(p_body -> 'alerts') WITH ORDINALITY AS a (v, ord)
    WHERE NOT coalesce(pg_catalog.jsonb_typeof(a.v) = 'object'
               AND a.v ->> 'status' IN ('firing', 'resolved') AND pg_catalog.jsonb_typeof(a.v -> 'status') = 'string'
               AND ops._is_string_map(a.v -> 'labels')
               AND (a.v -> 'annotations' IS NULL OR a.v -> 'annotations' = 'null'
                    OR ops._is_string_map(a.v -> 'annotations'))
               AND coalesce(pg_catalog.jsonb_typeof(a.v -> 'values') IN ('object', 'null'), true)
               AND coalesce(pg_catalog.jsonb_typeof(a.v -> 'startsAt') IN ('string', 'null'), true)
               AND coalesce(pg_catalog.jsonb_typeof(a.v -> 'endsAt') IN ('string', 'null'), true)
               AND coalesce(pg_catalog.jsonb_typeof(a.v -> 'generatorURL') IN ('string', 'null'), true)
               AND coalesce(pg_catalog.jsonb_typeof(a.v -> 'fingerprint') IN ('string', 'null'), true)
               AND coalesce(pg_catalog.jsonb_typeof(a.v -> 'silenceURL') IN ('string', 'null'), true)
               AND coalesce(pg_catalog.jsonb_typeof(a.v -> 'dashboardURL') IN ('string', 'null'), true)
               AND coalesce(pg_catalog.jsonb_typeof(a.v -> 'panelURL') IN ('string', 'null'), true)
               AND coalesce(pg_catalog.jsonb_typeof(a.v -> 'imageURL') IN ('string', 'null'), true)
               AND coalesce(pg_catalog.jsonb_typeof(a.v -> 'valueString') IN ('string', 'null'), true),
                       false)
    ORDER BY a.ord LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN CASE
        WHEN pg_catalog.jsonb_typeof(v_alert) <> 'object' THEN v_field || ' must be an object'
        WHEN pg_catalog.jsonb_typeof(v_alert -> 'status') IS DISTINCT FROM 'string'
             OR v_alert ->> 'status' NOT IN ('firing', 'resolved')
            THEN v_field || '.status must be "firing" or "resolved"'
        WHEN NOT ops._is_string_map(v_alert -> 'labels') THEN v_field || '.labels must be an object of strings'
        WHEN v_alert -> 'annotations' <> 'null' AND NOT ops._is_string_map(v_alert -> 'annotations')
            THEN v_field || '.annotations must be an object of strings'
        WHEN pg_catalog.jsonb_typeof(v_alert -> 'values') NOT IN ('object', 'null') THEN v_field || '.values must be an object'
        ELSE (SELECT pg_catalog.format('%s.%s must be a string', v_field, f)
              FROM pg_catalog.unnest(ARRAY['startsAt', 'endsAt', 'generatorURL', 'fingerprint', 'silenceURL',
                                           'dashboardURL', 'panelURL', 'imageURL', 'valueString']) AS f
              WHERE pg_catalog.jsonb_typeof(v_alert -> f) NOT IN ('string', 'null') LIMIT 1)
    END;
END;
$$;
COMMENT ON FUNCTION ops._alertmanager_problem(jsonb) IS
'Internal: what is wrong with an Alertmanager or Grafana webhook payload, naming the field; NULL when nothing.';

CREATE FUNCTION ops.api_alertmanager(p_token text, p_body jsonb, p_now timestamptz DEFAULT pg_catalog.now())
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
           coalesce(nullif(v_common ->> 'route', ''),
                    (pg_catalog.array_agg(a.v #>> '{labels,route}' ORDER BY a.v ->> 'status' <> 'firing', a.ord)
                         FILTER (WHERE nullif(a.v #>> '{labels,route}', '') IS NOT NULL))[1],
                    nullif(v_common ->> 'service', ''),
                    (pg_catalog.array_agg(a.v #>> '{labels,service}' ORDER BY a.v ->> 'status' <> 'firing', a.ord)
                         FILTER (WHERE nullif(a.v #>> '{labels,service}', '') IS NOT NULL))[1],
                    nullif(v_common ->> 'job', ''),
                    (pg_catalog.array_agg(a.v #>> '{labels,job}' ORDER BY a.v ->> 'status' <> 'firing', a.ord)
                         FILTER (WHERE nullif(a.v #>> '{labels,job}', '') IS NOT NULL))[1],
                    v_key.route),
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
            SELECT f.rn, pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                       'status', f.v -> 'status', 'labels', f.v -> 'labels', 'annotations', f.v -> 'annotations',
                       'startsAt', f.v -> 'startsAt', 'endsAt', f.v -> 'endsAt', 'generatorURL', f.v -> 'generatorURL',
                       'fingerprint', f.v -> 'fingerprint', 'silenceURL', f.v -> 'silenceURL',
                       'dashboardURL', nullif(f.v -> 'dashboardURL', '""'), 'panelURL', nullif(f.v -> 'panelURL', '""'),
                       'imageURL', f.v -> 'imageURL', 'values', f.v -> 'values', 'valueString', f.v -> 'valueString'))
                   AS alert
            FROM (
                SELECT a.v, pg_catalog.row_number() OVER (ORDER BY a.v ->> 'status' <> 'firing', a.ord) AS rn
                FROM pg_catalog.jsonb_array_elements(p_body -> 'alerts') WITH ORDINALITY AS a (v, ord)
                ORDER BY a.v ->> 'status' <> 'firing', a.ord
                LIMIT 20
            ) AS f
        ) AS b
    ) AS k
    WHERE k.running <= 16384;

    v_details := pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
        'source', CASE WHEN p_body ? 'orgId' THEN 'grafana' ELSE 'alertmanager' END,
        'receiver', pg_catalog.left(p_body ->> 'receiver', 200),
        'groupKey', pg_catalog.left(p_body ->> 'groupKey', 1024),
        'status', p_body -> 'status',
        'externalURL', pg_catalog.left(p_body ->> 'externalURL', 2048),
        'title', pg_catalog.left(p_body ->> 'title', 1024),
        'orgId', p_body -> 'orgId',
        'groupLabels', CASE WHEN pg_catalog.octet_length((p_body -> 'groupLabels')::text) <= 8192
                            THEN p_body -> 'groupLabels' END,
        'commonLabels', CASE WHEN pg_catalog.octet_length((p_body -> 'commonLabels')::text) <= 8192
                             THEN p_body -> 'commonLabels' END,
        'commonAnnotations', CASE WHEN pg_catalog.octet_length((p_body -> 'commonAnnotations')::text) <= 8192
                                  THEN p_body -> 'commonAnnotations' END,
        'alerts', v_alerts,
        'alertsTotal', v_total,
        'alertsFiring', v_firing,
        'alertsOmitted', v_total - v_kept,
        'truncatedAlerts', p_body -> 'truncatedAlerts'));

    v_row := ops._intake_trigger(v_incident_key, CASE WHEN v_critical THEN 'critical' ELSE 'warning' END,
                                 v_route, v_summary, v_details, v_key.name, p_now);
    RETURN pg_catalog.jsonb_build_object('ok', true, 'incidents', pg_catalog.jsonb_build_array(ops.incident_json(v_row)));
END;
$$;
COMMENT ON FUNCTION ops.api_alertmanager(text, jsonb, timestamptz) IS
'POST /ops/integrations/alertmanager (bearer key of kind alertmanager): one incident per alert group '
'(key alertmanager:<key name>:<sha256 of groupKey>), opened or refreshed while it fires, resolved by the resolved '
'notification. {"ok": true, "incidents": [...]}; a bad key 28000, a bad payload 22023 naming the field.';

-- the API calls it with the bearer token it was sent; operators have the SQL verbs
REVOKE ALL ON FUNCTION ops._is_string_map(jsonb), ops._alertmanager_problem(jsonb),
ops.api_alertmanager(text, jsonb, timestamptz) FROM public;
GRANT EXECUTE ON FUNCTION ops.api_alertmanager(text, jsonb, timestamptz) TO opsguard_api;
