-- 0031 undone: ops._intake_trigger as 0027 defined it

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
