-- depends: 0005_incidents
-- The incident verbs: trigger (open or dedup), ack, resolve, snooze.

CREATE FUNCTION ops._require_actor(p_actor text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF coalesce(pg_catalog.btrim(p_actor), '') = '' THEN
        RAISE EXCEPTION 'an actor is required'
            USING ERRCODE = '22004', HINT = 'Pass who is acting (p_actor), e.g. ''alice'' or ''ops-bot''.';
    END IF;
END;
$$;
COMMENT ON FUNCTION ops._require_actor(text) IS 'Internal: raises 22004 for a NULL or blank actor.';

-- Locks and returns one incident, or raises P0002 (not found): the common start of ack, resolve and snooze.
CREATE FUNCTION ops._lock_incident(p_id uuid) RETURNS ops.incidents
LANGUAGE plpgsql AS $$
DECLARE
    v_row ops.incidents;
BEGIN
    IF p_id IS NULL THEN
        RAISE EXCEPTION 'an incident id is required' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO v_row FROM ops.incidents WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'incident % not found', p_id
            USING ERRCODE = 'P0002', HINT = 'SELECT id, incident_key, status FROM ops.incidents ORDER BY last_seen DESC;';
    END IF;
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops._lock_incident(uuid) IS 'Internal: SELECT ... FOR UPDATE one incident, P0002 when there is none.';

CREATE FUNCTION ops.trigger_incident(
    p_incident_key text,
    p_severity text,
    p_route text DEFAULT NULL,
    p_summary text DEFAULT NULL,
    p_actor text DEFAULT 'ops-bot',
    p_now timestamptz DEFAULT pg_catalog.now()
) RETURNS ops.incidents
LANGUAGE plpgsql AS $$
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

-- Moves one incident to acknowledged or resolved: the shared body of ack and resolve.
-- Idempotent (already there: the row comes back unchanged, the first actor stands);
-- resolved is final.
CREATE FUNCTION ops._transition(p_id uuid, p_to text, p_actor text, p_note text, p_now timestamptz)
RETURNS ops.incidents
LANGUAGE plpgsql AS $$
DECLARE
    v_row ops.incidents;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    v_row := ops._lock_incident(p_id);
    IF v_row.status = p_to THEN
        RETURN v_row;
    END IF;
    IF v_row.status = 'resolved' THEN
        RAISE EXCEPTION 'incident % is resolved', p_id
            USING ERRCODE = '55000', DETAIL = pg_catalog.format('resolved by %s at %s', v_row.resolved_by, v_row.resolved_at),
                  HINT = 'A resolved incident stays resolved; if it fires again, a new incident opens.';
    END IF;
    v_prev := ops._act_as(p_actor, p_note);
    UPDATE ops.incidents
    SET status = p_to,
        acknowledged_by = CASE WHEN p_to = 'acknowledged' THEN p_actor ELSE acknowledged_by END,
        acknowledged_at = CASE WHEN p_to = 'acknowledged' THEN p_now ELSE acknowledged_at END,
        resolved_by = CASE WHEN p_to = 'resolved' THEN p_actor END,
        resolved_at = CASE WHEN p_to = 'resolved' THEN p_now END
    WHERE id = p_id
    RETURNING * INTO v_row;
    PERFORM ops._act_as(v_prev);
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops._transition(uuid, text, text, text, timestamptz) IS
'Internal: ack or resolve one incident, idempotently, audited with p_actor and p_note.';

CREATE FUNCTION ops.ack_incident(
    p_id uuid,
    p_actor text DEFAULT 'ops-bot',
    p_note text DEFAULT NULL,
    p_now timestamptz DEFAULT pg_catalog.now()
) RETURNS ops.incidents
LANGUAGE sql AS $$
    SELECT ops._transition(p_id, 'acknowledged', p_actor, p_note, p_now)
$$;
COMMENT ON FUNCTION ops.ack_incident(uuid, text, text, timestamptz) IS
'Acknowledges an incident (escalation stops). Idempotent: acking again returns the row unchanged. '
'Not found: P0002; resolved: 55000.';

CREATE FUNCTION ops.resolve_incident(
    p_id uuid,
    p_actor text DEFAULT 'ops-bot',
    p_note text DEFAULT NULL,
    p_now timestamptz DEFAULT pg_catalog.now()
) RETURNS ops.incidents
LANGUAGE sql AS $$
    SELECT ops._transition(p_id, 'resolved', p_actor, p_note, p_now)
$$;
COMMENT ON FUNCTION ops.resolve_incident(uuid, text, text, timestamptz) IS
'Resolves an incident; idempotent. The key may then fire again as a new occurrence. Not found: P0002.';

CREATE FUNCTION ops.snooze_incident(
    p_id uuid,
    p_minutes integer,
    p_actor text DEFAULT 'ops-bot',
    p_now timestamptz DEFAULT pg_catalog.now()
) RETURNS ops.incidents
LANGUAGE plpgsql AS $$
DECLARE
    v_row ops.incidents;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    IF p_minutes IS NULL OR p_minutes NOT BETWEEN 0 AND 10080 THEN
        RAISE EXCEPTION 'snooze minutes must be between 0 and 10080, not %', p_minutes
            USING ERRCODE = '22003', HINT = '0 clears a snooze.';
    END IF;
    v_row := ops._lock_incident(p_id);
    v_prev := ops._act_as(p_actor);
    UPDATE ops.incidents
    SET snoozed_until = CASE WHEN p_minutes = 0 THEN NULL ELSE p_now + pg_catalog.make_interval(mins => p_minutes) END
    WHERE id = p_id
    RETURNING * INTO v_row;
    PERFORM ops._act_as(v_prev);
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops.snooze_incident(uuid, integer, text, timestamptz) IS
'Holds escalation of one incident for p_minutes from p_now (0 clears it); next_due_at moves accordingly.';
