-- depends: 0017_health_retention
-- The tick's per-row costs, made cheaper with the same results (measured side by side on
-- the bench's 10k-due tick, medians of 5-8 alternating runs in one process):
--   the audit trigger: each row becomes jsonb once instead of twice, materialized, and the
--     actor is read once per statement: the tick went from 1,260-1,475 to ~860 ms, while a
--     one-row update (an ack) stays at ~0.37 ms;
--   next_due: plpgsql with cached plans instead of a SQL function with a FROM clause (which
--     cannot be inlined and is set up again for every row the trigger computes): a further
--     ~150 ms;
--   the outbox's foreign key to incidents: redundant (a message's event references the same
--     incident, and events are append-only), and checked row by row: ~40 ms.

CREATE OR REPLACE FUNCTION ops._audit_changes() RETURNS trigger
LANGUAGE plpgsql
SET enable_nestloop = off
SET jit = off
AS $$
DECLARE
    v_key text := TG_ARGV[0];
    v_noise text[] := TG_ARGV[1:];
    v_note text := nullif(pg_catalog.current_setting('opsguard.note', true), '');
    v_actor text := ops.current_actor();
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ops.audit_log (actor, action, table_name, row_key, changes, note)
        SELECT v_actor, 'INSERT', TG_TABLE_NAME, n.j ->> v_key, n.j, v_note
        FROM (SELECT to_jsonb(r) AS j FROM new_rows AS r) AS n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO ops.audit_log (actor, action, table_name, row_key, changes, note)
        SELECT v_actor, 'DELETE', TG_TABLE_NAME, o.j ->> v_key, o.j, v_note
        FROM (SELECT to_jsonb(r) AS j FROM old_rows AS r) AS o;
    ELSE
        -- each row becomes jsonb once (0002 built it twice, once for the key and once whole),
        -- materialized, so the diff below does not rebuild it for every column it compares;
        -- static SQL keeps its cached plan, which one-row updates (an ack) depend on
        WITH n AS MATERIALIZED (
            SELECT to_jsonb(r) AS j FROM new_rows AS r
        ),
        o AS MATERIALIZED (
            SELECT to_jsonb(r) AS j FROM old_rows AS r
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
COMMENT ON FUNCTION ops._audit_changes() IS
'Internal statement trigger: writes one audit_log row per changed row, with the actor. Args: key column, then noise columns.';

-- Same formula as 0005 (SPEC §4). Settings are read with plain subqueries: plpgsql keeps
-- their plans, where a call of ops.setting() from here would be set up for every row.
CREATE OR REPLACE FUNCTION ops.next_due(p_incident ops.incidents) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_ack_minutes int;
BEGIN
    IF p_incident.acknowledged_at IS NOT NULL
       OR p_incident.status <> 'open'
       OR p_incident.escalation_level >= (SELECT s.value FROM ops.settings AS s WHERE s.key = 'max_esc_level')::int THEN
        RETURN NULL;
    END IF;
    SELECT sla.ack_minutes INTO v_ack_minutes FROM ops.sla WHERE sla.severity = p_incident.severity;
    IF v_ack_minutes IS NULL THEN
        RETURN NULL;  -- a severity without an SLA row never escalates
    END IF;
    RETURN GREATEST(
        p_incident.first_seen + pg_catalog.make_interval(mins => v_ack_minutes * (p_incident.escalation_level + 1)),
        p_incident.last_escalated_at
            + pg_catalog.make_interval(mins => (SELECT s.value FROM ops.settings AS s WHERE s.key = 'snooze_min')::int),
        p_incident.snoozed_until);
END;
$$;

ALTER TABLE ops.notification_outbox DROP CONSTRAINT notification_outbox_incident_id_fkey;
COMMENT ON COLUMN ops.notification_outbox.incident_id IS
'The escalated incident: the same as its event''s incident_id (escalation_events enforces that it exists).';

-- nothing in ops is for everyone (see 0011)
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ops FROM public;
