-- 0051 undone: the four bodies and the column comment with their history notes
CREATE OR REPLACE FUNCTION ops._audit_changes() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET enable_nestloop TO 'off'
    SET jit TO 'off'
    SET search_path TO 'ops', 'pg_temp'
    AS $$
DECLARE
    v_key text := TG_ARGV[0];
    v_noise text[] := TG_ARGV[1:];
    v_note text := nullif(pg_catalog.current_setting('opsguard.note', true), '');
    v_actor text := ops.current_actor();
    -- the tables ops._audit_redacted rewrites: the others (incidents, a tick's 10k rows) pay no call per row
    v_redact boolean := TG_TABLE_NAME IN ('settings', 'route_webhooks', 'escalation_policy_steps');
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ops.audit_log (actor, action, table_name, row_key, changes, note)
        SELECT v_actor, 'INSERT', TG_TABLE_NAME, n.j ->> v_key, n.j, v_note
        FROM (SELECT CASE WHEN v_redact THEN ops._audit_redacted(TG_TABLE_NAME, to_jsonb(r)) ELSE to_jsonb(r) END AS j FROM new_rows AS r) AS n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO ops.audit_log (actor, action, table_name, row_key, changes, note)
        SELECT v_actor, 'DELETE', TG_TABLE_NAME, o.j ->> v_key, o.j, v_note
        FROM (SELECT CASE WHEN v_redact THEN ops._audit_redacted(TG_TABLE_NAME, to_jsonb(r)) ELSE to_jsonb(r) END AS j FROM old_rows AS r) AS o;
    ELSE
        -- each row becomes jsonb once (0002 built it twice, once for the key and once whole),
        -- with its secrets redacted before the diff (0041: a changed webhook shows as two hashes),
        -- materialized, so the diff below does not rebuild it for every column it compares;
        -- static SQL keeps its cached plan, which one-row updates (an ack) depend on
        WITH n AS MATERIALIZED (
            SELECT CASE WHEN v_redact THEN ops._audit_redacted(TG_TABLE_NAME, to_jsonb(r)) ELSE to_jsonb(r) END AS j FROM new_rows AS r
        ),
        o AS MATERIALIZED (
            SELECT CASE WHEN v_redact THEN ops._audit_redacted(TG_TABLE_NAME, to_jsonb(r)) ELSE to_jsonb(r) END AS j FROM old_rows AS r
        ),
        pairs AS MATERIALIZED (
            SELECT n.j ->> v_key AS row_key, n.j AS nj, o.j AS oj
            FROM n INNER JOIN o ON n.j ->> v_key = o.j ->> v_key
        ),
        d AS MATERIALIZED (
            SELECT p.row_key,
                   (SELECT pg_catalog.jsonb_object_agg(c.key, pg_catalog.jsonb_build_array(p.oj -> c.key, c.value))
                    FROM pg_catalog.jsonb_each(p.nj) AS c
                    WHERE c.value IS DISTINCT FROM p.oj -> c.key AND c.key <> 'updated_at') AS diff
            FROM pairs AS p
        )
        INSERT INTO ops.audit_log (actor, action, table_name, row_key, changes, note)
        SELECT v_actor, 'UPDATE', TG_TABLE_NAME, d.row_key, d.diff, v_note
        FROM d
        WHERE d.diff - v_noise <> '{}';
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION ops._incidents_before_write() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    AS $$
BEGIN
    NEW.route := coalesce(nullif(NEW.route, ''), nullif(pg_catalog.split_part(NEW.incident_key, '::', 1), ''));
    IF TG_OP = 'UPDATE' THEN
        -- reopening (status back to open) clears the old acknowledgement unless the UPDATE sets one
        IF NEW.status = 'open' AND OLD.status <> 'open'
           AND NEW.acknowledged_at IS NOT DISTINCT FROM OLD.acknowledged_at THEN
            NEW.acknowledged_at := NULL;
            NEW.acknowledged_by := NULL;
        END IF;
        NEW.updated_at := pg_catalog.now();
    END IF;
    -- an UPDATE that only sets acknowledged_at is an acknowledgement
    IF NEW.status = 'open' AND NEW.acknowledged_at IS NOT NULL THEN
        NEW.status := 'acknowledged';
    END IF;
    IF NEW.status = 'acknowledged' THEN
        NEW.acknowledged_at := coalesce(NEW.acknowledged_at, pg_catalog.now());
        NEW.acknowledged_by := coalesce(NEW.acknowledged_by, ops.current_actor());
    ELSIF NEW.status = 'open' THEN
        NEW.acknowledged_by := NULL;  -- no acknowledgement, so nobody acknowledged it
    END IF;
    IF NEW.status = 'resolved' THEN
        NEW.resolved_at := coalesce(NEW.resolved_at, pg_catalog.now());
        NEW.resolved_by := coalesce(NEW.resolved_by, ops.current_actor());
    ELSE
        NEW.resolved_at := NULL;
        NEW.resolved_by := NULL;
    END IF;
    -- ops.next_due(NEW), written out: a call would switch search_path a second time for every row
    -- (ops.recalc_next_due() counts rows where the two disagree: 30-next-due.sql and the bench expect none).
    -- One statement for the three lookups (0038): each statement with a subquery is an executor run
    -- of its own, for every row written; an acknowledged or resolved row needs none.
    IF NEW.acknowledged_at IS NOT NULL OR NEW.status <> 'open' THEN
        NEW.next_due_at := NULL;
    ELSE
        NEW.next_due_at := CASE
            WHEN NEW.escalation_level >= (SELECT s.value FROM ops.settings AS s WHERE s.key = 'max_esc_level')::int THEN NULL
            ELSE (SELECT GREATEST(
                      NEW.first_seen + pg_catalog.make_interval(mins => sla.ack_minutes * (NEW.escalation_level + 1)),
                      NEW.last_escalated_at
                          + pg_catalog.make_interval(
                              mins => (SELECT s.value FROM ops.settings AS s WHERE s.key = 'snooze_min')::int),
                      NEW.snoozed_until)
                  FROM ops.sla WHERE sla.severity = NEW.severity AND sla.ack_minutes IS NOT NULL)
        END;
    END IF;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION ops.api_alertmanager(p_token text, p_body jsonb, p_now timestamp with time zone DEFAULT now()) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    AS $_$
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
$_$;

CREATE OR REPLACE FUNCTION ops.schedule_feed_token(p_schedule text, p_actor text) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    AS $$
DECLARE
    v_token text;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    -- FOR KEY SHARE: the schedule cannot go away between this check and the insert
    PERFORM 1 FROM ops.schedules WHERE name = p_schedule FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no schedule "%"', pg_catalog.left(p_schedule, 100)
            USING ERRCODE = 'P0002', HINT = 'SELECT name, time_zone FROM ops.schedules;';
    END IF;
    -- 244 random bits from the strong generator behind gen_random_uuid (two v4 uuids), as 0027
    v_token := 'ogf_' || pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', '')
                      || pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', '');
    v_prev := ops._act_as(p_actor);
    INSERT INTO ops.schedule_feeds AS f (schedule, token_sha256, rotated_by)
    VALUES (p_schedule, pg_catalog.sha256(pg_catalog.convert_to(v_token, 'UTF8')), p_actor)
    ON CONFLICT (schedule) DO UPDATE
    SET token_sha256 = EXCLUDED.token_sha256, rotated_at = pg_catalog.clock_timestamp(), rotated_by = p_actor;
    PERFORM ops._act_as(v_prev);
    RETURN v_token;
END;
$$;

COMMENT ON COLUMN ops.guard_evaluations.fingerprint IS
'sha256 of the answer without evaluatedAt: equal fingerprints, equal answers '
'(NULL before 0022).';
