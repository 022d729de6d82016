-- depends: 0039_string_maps
-- An Alertmanager notification of 100 alerts cost twice one of a single alert (make bench: 1.90 to
-- 2.19 in three runs, goal <= 2). Two avoidable parts of the difference, nothing of a 1-alert one:
--   - stripping nulls from the whole details object, 16 KiB of kept alerts included, which hold
--     none (156 us): only the fields around the alerts are stripped now, the same value;
--   - the API's depth limit, a walk over the parsed body in Python (207 us): this endpoint hands
--     its body to SQL as text anyway, so the limit is one jsonpath here (22 us; it agreed with
--     the Python walk on 4,000 random bodies 25 to 40 levels deep). A too-deep body is still a
--     400, now with the key checked first.
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
        'groupLabels', CASE WHEN pg_catalog.octet_length((p_body -> 'groupLabels')::text) <= 8192
                            THEN p_body -> 'groupLabels' END,
        'commonLabels', CASE WHEN pg_catalog.octet_length((p_body -> 'commonLabels')::text) <= 8192
                             THEN p_body -> 'commonLabels' END,
        'commonAnnotations', CASE WHEN pg_catalog.octet_length((p_body -> 'commonAnnotations')::text) <= 8192
                                  THEN p_body -> 'commonAnnotations' END,
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
