-- the audit trigger as 0002 defined it
CREATE OR REPLACE FUNCTION ops._audit_changes() RETURNS trigger
LANGUAGE plpgsql
SET enable_nestloop = off
AS $$
DECLARE
    v_key text := TG_ARGV[0];
    v_noise text[] := TG_ARGV[1:];
    v_note text := nullif(pg_catalog.current_setting('opsguard.note', true), '');
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ops.audit_log (actor, action, table_name, row_key, changes, note)
        SELECT ops.current_actor(), 'INSERT', TG_TABLE_NAME, n.j ->> v_key, n.j, v_note
        FROM (SELECT to_jsonb(r) AS j FROM new_rows r) n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO ops.audit_log (actor, action, table_name, row_key, changes, note)
        SELECT ops.current_actor(), 'DELETE', TG_TABLE_NAME, o.j ->> v_key, o.j, v_note
        FROM (SELECT to_jsonb(r) AS j FROM old_rows r) o;
    ELSE
        WITH pairs AS MATERIALIZED (
            SELECT n.row_key, n.j AS new_row, o.j AS old_row
            FROM (SELECT to_jsonb(r) ->> v_key AS row_key, to_jsonb(r) AS j FROM new_rows r) AS n
            JOIN (SELECT to_jsonb(r) ->> v_key AS row_key, to_jsonb(r) AS j FROM old_rows r) AS o USING (row_key)
        ),
        d AS MATERIALIZED (
            SELECT p.row_key,
                   (SELECT jsonb_object_agg(c.key, jsonb_build_array(p.old_row -> c.key, c.value))
                    FROM jsonb_each(p.new_row) AS c
                    WHERE c.value IS DISTINCT FROM p.old_row -> c.key AND c.key <> 'updated_at') AS diff
            FROM pairs AS p
        )
        INSERT INTO ops.audit_log (actor, action, table_name, row_key, changes, note)
        SELECT ops.current_actor(), 'UPDATE', TG_TABLE_NAME, d.row_key, d.diff, v_note
        FROM d
        WHERE d.diff - v_noise <> '{}';
    END IF;
    RETURN NULL;
END;
$$;

-- next_due as 0005 defined it
CREATE OR REPLACE FUNCTION ops.next_due(p_incident ops.incidents) RETURNS timestamptz
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

COMMENT ON COLUMN ops.notification_outbox.incident_id IS NULL;
ALTER TABLE ops.notification_outbox
ADD CONSTRAINT notification_outbox_incident_id_fkey FOREIGN KEY (incident_id) REFERENCES ops.incidents (id);
