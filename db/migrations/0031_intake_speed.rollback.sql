-- 0031 undone: ops._intake_trigger as 0027 defined it, ops.api_alertmanager as 0028 did

CREATE OR REPLACE FUNCTION ops._intake_trigger(
    p_incident_key text, p_severity text, p_route text, p_summary text, p_details jsonb, p_actor text,
    p_now timestamptz
) RETURNS ops.incidents
LANGUAGE plpgsql SET search_path = ops, pg_temp AS $$
DECLARE
    v_row ops.incidents;
    v_prev text;
BEGIN
    IF pg_catalog.octet_length(p_details::text) > 65536 THEN
        RAISE EXCEPTION 'incident details are % bytes, more than 64 KiB', pg_catalog.octet_length(p_details::text)
            USING ERRCODE = '22023', HINT = 'Send fewer or shorter labels, annotations and custom details.';
    END IF;
    IF pg_catalog.length(p_incident_key) > 500 OR pg_catalog.btrim(p_incident_key) = '' THEN
        RAISE EXCEPTION 'incident key must be 1 to 500 characters' USING ERRCODE = '22023';
    END IF;
    v_prev := ops._act_as(p_actor);
    INSERT INTO ops.incidents AS i (incident_key, route, severity, summary, details, first_seen, last_seen)
    VALUES (p_incident_key, pg_catalog.left(p_route, 500), p_severity, pg_catalog.left(p_summary, 1024),
            coalesce(p_details, '{}'), p_now, p_now)
    ON CONFLICT (incident_key) WHERE status <> 'resolved' DO UPDATE
    SET last_seen = GREATEST(i.last_seen, EXCLUDED.last_seen),
        severity = CASE WHEN EXCLUDED.severity = 'critical' THEN 'critical' ELSE i.severity END,
        summary = coalesce(EXCLUDED.summary, i.summary),
        -- a repeat usually says the same: keeping the stored value keeps its TOAST pointer,
        -- so a refresh does not write the details again
        details = CASE WHEN i.details = EXCLUDED.details THEN i.details ELSE EXCLUDED.details END
    RETURNING * INTO v_row;
    PERFORM ops._act_as(v_prev);
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops._intake_trigger(text, text, text, text, jsonb, text, timestamptz) IS
'Internal: opens or refreshes the not-resolved incident with this key (as ops.trigger_incident), keeping the sender '
'details (at most 64 KiB).';

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
