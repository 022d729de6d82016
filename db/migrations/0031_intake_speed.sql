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
