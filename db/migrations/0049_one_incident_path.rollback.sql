-- 0049 undone: ops.trigger_incident and ops._intake_trigger again as 0007 (0019 made it SECURITY DEFINER)
-- and 0042 wrote them, each with its own limits, and ops._check_incident_input goes
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

CREATE OR REPLACE FUNCTION ops.trigger_incident(
    p_incident_key text,
    p_severity text,
    p_route text DEFAULT NULL,
    p_summary text DEFAULT NULL,
    p_actor text DEFAULT 'ops-bot',
    p_now timestamptz DEFAULT pg_catalog.now()
) RETURNS ops.incidents
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_row ops.incidents;
    v_prev text;
BEGIN
    IF p_incident_key IS NULL OR p_severity IS NULL OR p_now IS NULL THEN
        RAISE EXCEPTION 'trigger_incident needs an incident key, a severity and a time'
            USING ERRCODE = '22004',
                  HINT = 'Example: SELECT * FROM ops.trigger_incident(''GET /projects::slo_violation'', ''critical'');';
    END IF;
    IF pg_catalog.btrim(p_incident_key) = '' OR pg_catalog.length(p_incident_key) > 500 THEN
        RAISE EXCEPTION 'incident key must be 1 to 500 characters' USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ops.sla WHERE severity = p_severity) THEN
        RAISE EXCEPTION 'unknown severity "%"', p_severity
            USING ERRCODE = '22023',
                  HINT = 'Severities: ' || (SELECT pg_catalog.string_agg(severity, ', ' ORDER BY severity) FROM ops.sla);
    END IF;
    PERFORM ops._require_actor(p_actor);

    v_prev := ops._act_as(p_actor);
    -- dedup: a not-resolved incident with this key is refreshed, and a warning that fires
    -- again as critical becomes critical (severity never drops on its own)
    INSERT INTO ops.incidents AS i (incident_key, route, severity, summary, first_seen, last_seen)
    VALUES (p_incident_key, p_route, p_severity, p_summary, p_now, p_now)
    ON CONFLICT (incident_key) WHERE status <> 'resolved' DO UPDATE
    SET last_seen = GREATEST(i.last_seen, EXCLUDED.last_seen),
        severity = CASE WHEN EXCLUDED.severity = 'critical' THEN 'critical' ELSE i.severity END,
        summary = coalesce(EXCLUDED.summary, i.summary)
    RETURNING * INTO v_row;
    PERFORM ops._act_as(v_prev);
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops.trigger_incident(text, text, text, text, text, timestamptz) IS
'Opens an incident, or refreshes last_seen of the not-resolved one with this key (dedup). A resolved key opens a new '
'occurrence at level 0. Returns the row.';

DROP FUNCTION ops._check_incident_input(text, text, text, text, text, timestamptz);
