-- depends: 0048_guard_steps

-- One path opens or refreshes an incident: ops.trigger_incident (SQL, POST /ops/incidents, the
-- guard's route incidents) and every intake sender (Alertmanager, Events API v2, heartbeats) go
-- through ops._intake_trigger, and its inputs through one set of limits, ops._check_incident_input.
-- Before, the two bodies kept different limits: trigger_incident took a summary and a route of any
-- length, the intake path cut them at 1024 and 500 characters without saying so.

-- The limits every way in keeps, checked before anything is written; the SQLSTATE is the contract
-- (22004 a value is missing, 22023 a value is out of bounds) and the message names the field.
CREATE FUNCTION ops._check_incident_input(
    p_incident_key text, p_severity text, p_route text, p_summary text, p_actor text, p_now timestamptz
) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = ops, pg_temp AS $$
BEGIN
    IF p_incident_key IS NULL OR p_severity IS NULL OR p_now IS NULL THEN
        RAISE EXCEPTION 'trigger_incident needs an incident key, a severity and a time'
            USING ERRCODE = '22004',
                  HINT = 'Example: SELECT * FROM ops.trigger_incident(''GET /projects::slo_violation'', ''critical'');';
    END IF;
    IF pg_catalog.btrim(p_incident_key) = '' OR pg_catalog.length(p_incident_key) > 500 THEN
        RAISE EXCEPTION 'incident_key must be 1 to 500 characters, not %', pg_catalog.length(p_incident_key)
            USING ERRCODE = '22023', HINT = 'A dedup key such as ''GET /projects::slo_violation''.';
    END IF;
    -- the two that ops.incidents and ops.sla allow: a constant, not a lookup on every alert
    IF p_severity NOT IN ('critical', 'warning') THEN
        RAISE EXCEPTION 'unknown severity "%"', p_severity
            USING ERRCODE = '22023', HINT = 'Severities: critical, warning';
    END IF;
    IF pg_catalog.length(p_route) > 500 THEN
        RAISE EXCEPTION 'route must be at most 500 characters, not %', pg_catalog.length(p_route)
            USING ERRCODE = '22023', HINT = 'A route such as ''GET /projects'' or a service name.';
    END IF;
    IF pg_catalog.length(p_summary) > 1024 THEN
        RAISE EXCEPTION 'summary must be at most 1024 characters, not %', pg_catalog.length(p_summary)
            USING ERRCODE = '22023', HINT = 'Put the long text in the details, which keep up to 64 KiB.';
    END IF;
    IF coalesce(pg_catalog.btrim(p_actor), '') = '' THEN
        RAISE EXCEPTION 'an actor is required'
            USING ERRCODE = '22004', HINT = 'Pass who is acting (p_actor), e.g. ''alice'' or ''ops-bot''.';
    END IF;
END;
$$;
COMMENT ON FUNCTION ops._check_incident_input(text, text, text, text, text, timestamptz) IS
'Internal: the limits of an incident, the same from every way in: key 1 to 500 characters, severity critical or '
'warning, route at most 500, summary at most 1024 characters, an actor and a time (22004 missing, 22023 out of '
'bounds, the message naming the field). Details are cut, not refused: ops._intake_fit_details.';
REVOKE ALL ON FUNCTION ops._check_incident_input(text, text, text, text, text, timestamptz) FROM public;

CREATE OR REPLACE FUNCTION ops._intake_trigger(
    p_incident_key text, p_severity text, p_route text, p_summary text, p_details jsonb, p_actor text,
    p_now timestamptz
) RETURNS ops.incidents
LANGUAGE plpgsql SET search_path = ops, pg_temp AS $$
DECLARE
    v_row ops.incidents;
    v_id uuid;
    v_details jsonb;
    v_prev text := coalesce(pg_catalog.current_setting('opsguard.actor', true), '');
    -- a sender's text past the limits is cut and marked, not refused: most senders do not retry
    -- a 4xx, so a refusal would lose the alert. ops.trigger_incident (details NULL: a person or a
    -- script, who can send again) gets the refusal instead.
    v_sender boolean := p_details IS NOT NULL;
    v_summary text := CASE WHEN v_sender THEN pg_catalog.left(p_summary, 1024) ELSE p_summary END;
    v_route text := CASE WHEN v_sender THEN pg_catalog.left(p_route, 500) ELSE p_route END;
    v_cut jsonb := (SELECT coalesce(pg_catalog.jsonb_agg(c.x), '[]') FROM (VALUES
        (CASE WHEN v_summary IS DISTINCT FROM p_summary
              THEN pg_catalog.jsonb_build_object('field', 'summary', 'chars', pg_catalog.length(p_summary)) END),
        (CASE WHEN v_route IS DISTINCT FROM p_route
              THEN pg_catalog.jsonb_build_object('field', 'route', 'chars', pg_catalog.length(p_route)) END)
    ) AS c (x) WHERE c.x IS NOT NULL);
BEGIN
    PERFORM ops._check_incident_input(p_incident_key, p_severity, v_route, v_summary, p_actor, p_now);
    -- NULL (ops.trigger_incident has none to give) keeps what the incident holds
    v_details := ops._intake_fit_details(p_details);
    IF v_cut <> '[]' THEN
        v_details := v_details || pg_catalog.jsonb_build_object('truncated', coalesce(v_details -> 'truncated', '[]') || v_cut);
    END IF;
    -- the actor for the audit trigger, as ops._act_as sets it, without two more function calls
    PERFORM pg_catalog.set_config('opsguard.actor', p_actor, true), pg_catalog.set_config('opsguard.note', '', true);
    LOOP
        SELECT i.id INTO v_id FROM ops.incidents AS i WHERE i.incident_key = p_incident_key AND i.status <> 'resolved';
        IF FOUND THEN
            -- a warning that fires again as critical becomes critical (severity never drops on its own)
            UPDATE ops.incidents AS i
            SET last_seen = GREATEST(i.last_seen, p_now),
                severity = CASE WHEN p_severity = 'critical' THEN 'critical' ELSE i.severity END,
                summary = coalesce(v_summary, i.summary),
                -- a repeat usually says the same: keeping the stored value keeps its TOAST pointer,
                -- so a refresh does not write the details again
                details = CASE WHEN v_details IS NULL OR i.details = v_details THEN i.details ELSE v_details END
            WHERE i.id = v_id AND i.status <> 'resolved'
            RETURNING * INTO v_row;
        ELSE
            INSERT INTO ops.incidents AS i (incident_key, route, severity, summary, details, first_seen, last_seen)
            VALUES (p_incident_key, v_route, p_severity, v_summary, coalesce(v_details, '{}'), p_now, p_now)
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
'Internal: the one path that opens or refreshes the not-resolved incident with this key, for ops.trigger_incident '
'and every intake sender: the limits of ops._check_incident_input; from a sender (details given) a summary over '
'1024 or a route over 500 characters is cut and the details, cut to 64 KiB by ops._intake_fit_details, say so '
'under "truncated"; NULL details keep the stored ones. A resolved key opens a new occurrence.';

CREATE OR REPLACE FUNCTION ops.trigger_incident(
    p_incident_key text,
    p_severity text,
    p_route text DEFAULT NULL,
    p_summary text DEFAULT NULL,
    p_actor text DEFAULT 'ops-bot',
    p_now timestamptz DEFAULT pg_catalog.now()
) RETURNS ops.incidents
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
BEGIN
    -- the same path and limits as the intake senders; it has no details to give, so it keeps the stored ones
    RETURN ops._intake_trigger(p_incident_key, p_severity, p_route, p_summary, NULL, p_actor, p_now);
END;
$$;
COMMENT ON FUNCTION ops.trigger_incident(text, text, text, text, text, timestamptz) IS
'Opens an incident, or refreshes last_seen of the not-resolved one with this key (dedup). A resolved key opens a new '
'occurrence at level 0. Returns the row. Limits: key 1 to 500 characters, severity critical or warning, route at '
'most 500, summary at most 1024 characters (22023 naming the field).';
