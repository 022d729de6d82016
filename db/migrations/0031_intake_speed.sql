-- depends: 0030_heartbeats
-- Alert intake speed (issue 12): the same answers and the same audit trail, for less work per request.
--
-- ops._intake_trigger was one INSERT ... ON CONFLICT DO UPDATE. PostgreSQL fires both the INSERT and
-- the UPDATE statement triggers for such a statement, whichever way each row goes, and the BEFORE
-- INSERT row trigger even for a row that ends as an update: every intake event ran the audit trigger
-- twice (once over an empty transition table, which still runs the audit_log writer check) and a
-- refresh ran _incidents_before_write twice. Now the not-resolved row is looked up through
-- incidents_one_active_per_key first and either updated or inserted, so each event fires the
-- triggers of what it does. A concurrent sender that opens the same key between the lookup and the
-- INSERT makes the INSERT do nothing (ON CONFLICT DO NOTHING fires no UPDATE trigger); the loop then
-- finds that row and refreshes it, as the single statement did.
--
-- ops.api_alertmanager keeps up to 20 alerts in the incident details, each rebuilt from its known
-- fields with JSON nulls stripped. An alert that is already exactly that (the usual Alertmanager
-- alert) is now kept as sent, which is the same value: 20 alerts cost 0.28 ms instead of 0.41.

CREATE OR REPLACE FUNCTION ops._intake_trigger(
    p_incident_key text, p_severity text, p_route text, p_summary text, p_details jsonb, p_actor text,
    p_now timestamptz
) RETURNS ops.incidents
LANGUAGE plpgsql SET search_path = ops, pg_temp AS $$
DECLARE
    v_row ops.incidents;
    v_id uuid;
    v_details jsonb := coalesce(p_details, '{}');
    v_prev text := coalesce(pg_catalog.current_setting('opsguard.actor', true), '');
BEGIN
    IF pg_catalog.octet_length(p_details::text) > 65536 THEN
        RAISE EXCEPTION 'incident details are % bytes, more than 64 KiB', pg_catalog.octet_length(p_details::text)
            USING ERRCODE = '22023', HINT = 'Send fewer or shorter labels, annotations and custom details.';
    END IF;
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
