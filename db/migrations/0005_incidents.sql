-- depends: 0004_settings
-- Incidents and their escalation events; next_due_at is kept right by the
-- database itself, whoever writes the row (functions, API, an operator's UPDATE).

CREATE TABLE ops.incidents (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    incident_key text NOT NULL CHECK (incident_key <> '' AND length(incident_key) <= 500),
    route text,
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    severity text NOT NULL CHECK (severity IN ('critical', 'warning')),
    summary text,
    escalation_level integer NOT NULL DEFAULT 0 CHECK (escalation_level >= 0),
    first_seen timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_seen timestamptz NOT NULL DEFAULT pg_catalog.now(),
    acknowledged_by text,
    acknowledged_at timestamptz,
    resolved_by text,
    resolved_at timestamptz,
    last_escalated_at timestamptz,
    snoozed_until timestamptz,
    next_due_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE ops.incidents IS
'One row per incident occurrence. At most one not-resolved row per incident_key; a resolved key that fires again is a new row.';
COMMENT ON COLUMN ops.incidents.incident_key IS 'Dedup key, e.g. ''GET /projects::slo_violation''.';
COMMENT ON COLUMN ops.incidents.route IS
'Route for canary share and per-route webhooks; filled from the part of incident_key before ''::'' when not given.';
COMMENT ON COLUMN ops.incidents.escalation_level IS '0 when opened; raised by one per escalation, capped by max_esc_level.';
COMMENT ON COLUMN ops.incidents.next_due_at IS
'When the next escalation is due (NULL: none). Derived by trigger on every write; never set it by hand, it is recomputed.';
COMMENT ON COLUMN ops.incidents.last_escalated_at IS 'Time of the last escalation; the next is not due before this + snooze_min.';
COMMENT ON COLUMN ops.incidents.snoozed_until IS 'An explicit snooze (ops.snooze_incident): nothing is due before it.';

-- the tick's claim: ORDER BY next_due_at LIMIT n over due rows only
CREATE INDEX incidents_due ON ops.incidents (next_due_at) WHERE next_due_at IS NOT NULL;
CREATE UNIQUE INDEX incidents_one_active_per_key ON ops.incidents (incident_key) WHERE status <> 'resolved';
-- ack timeout: acknowledged incidents, oldest ack first
CREATE INDEX incidents_acknowledged ON ops.incidents (acknowledged_at) WHERE status = 'acknowledged';
CREATE INDEX incidents_last_seen ON ops.incidents (last_seen);

CREATE FUNCTION ops.next_due(p_incident ops.incidents) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN p_incident.acknowledged_at IS NOT NULL
          OR p_incident.status <> 'open'
          OR p_incident.escalation_level >= ops.setting('max_esc_level')::int
        THEN NULL
        ELSE GREATEST(
            p_incident.first_seen + pg_catalog.make_interval(mins => s.ack_minutes * (p_incident.escalation_level + 1)),
            p_incident.last_escalated_at + pg_catalog.make_interval(mins => ops.setting('snooze_min')::int),
            p_incident.snoozed_until)
    END
    FROM ops.sla s
    WHERE s.severity = p_incident.severity
$$;
COMMENT ON FUNCTION ops.next_due(ops.incidents) IS
'When this incident''s next escalation is due (SPEC §4): NULL when acknowledged, not open or at max_esc_level; else the latest of '
'first_seen + ack_min(severity) * (level + 1), last escalation + snooze_min, snoozed_until.';

-- Keeps a row consistent however it was written: derived route, ack/resolve
-- fields that agree with status, and next_due_at.
CREATE FUNCTION ops._incidents_before_write() RETURNS trigger
LANGUAGE plpgsql AS $$
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
    NEW.next_due_at := ops.next_due(NEW);
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION ops._incidents_before_write() IS
'Internal trigger: derives route, keeps ack/resolve fields consistent with status, recomputes next_due_at.';

CREATE TRIGGER incidents_before_write BEFORE INSERT OR UPDATE ON ops.incidents
FOR EACH ROW EXECUTE FUNCTION ops._incidents_before_write();

CREATE TRIGGER incidents_audit_insert AFTER INSERT ON ops.incidents
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('id');
-- a refresh of last_seen alone (an alert firing again) is not worth an audit row
CREATE TRIGGER incidents_audit_update AFTER UPDATE ON ops.incidents
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('id', 'next_due_at', 'last_seen');
CREATE TRIGGER incidents_audit_delete AFTER DELETE ON ops.incidents
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('id');

CREATE TABLE ops.escalation_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id uuid NOT NULL REFERENCES ops.incidents (id),
    incident_key text NOT NULL,
    route text,
    severity text NOT NULL,
    escalation_level integer NOT NULL,
    escalated_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    unique_hash text NOT NULL UNIQUE,
    tick_id bigint
);
CREATE INDEX escalation_events_created_at ON ops.escalation_events (created_at);
CREATE INDEX escalation_events_incident ON ops.escalation_events (incident_id, escalation_level);
COMMENT ON TABLE ops.escalation_events IS
'One row per escalation, append-only. unique_hash = sha256(incident id || '':'' || level): one event per occurrence and level, ever.';
COMMENT ON COLUMN ops.escalation_events.escalated_at IS 'The tick''s clock (p_now) when it escalated.';
COMMENT ON COLUMN ops.escalation_events.created_at IS
'When the row was written (transaction time); the runbook''s audit query filters on it.';

CREATE TRIGGER escalation_events_append_only BEFORE UPDATE OR DELETE ON ops.escalation_events
FOR EACH ROW EXECUTE FUNCTION ops._forbid_change();
CREATE TRIGGER escalation_events_no_truncate BEFORE TRUNCATE ON ops.escalation_events
FOR EACH STATEMENT EXECUTE FUNCTION ops._forbid_change();

CREATE FUNCTION ops.escalation_hash(p_incident_id uuid, p_level integer) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(p_incident_id::text || ':' || p_level, 'UTF8')), 'hex')
$$;
COMMENT ON FUNCTION ops.escalation_hash(uuid, integer) IS
'The idempotency key of one escalation: hex sha256 of the incident occurrence and the new level.';
