-- 0052 undone: no contact methods, notification rules or page tokens; the outbox as before
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
        -- each row becomes jsonb once, not once for the key and again whole, with its secrets
        -- redacted before the diff (a changed webhook shows as two different hashes),
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

CREATE OR REPLACE FUNCTION ops._audit_redacted(p_table text, p_row jsonb) RETURNS jsonb
LANGUAGE sql STABLE
RETURN CASE
    WHEN p_table = 'settings' AND p_row ->> 'kind' = 'webhook' AND pg_catalog.jsonb_typeof(p_row -> 'value') = 'string'
        THEN pg_catalog.jsonb_set(p_row, '{value}', pg_catalog.to_jsonb(ops._audit_secret(p_row ->> 'value')))
    WHEN p_table = 'route_webhooks' AND pg_catalog.jsonb_typeof(p_row -> 'webhook_url') = 'string'
        THEN pg_catalog.jsonb_set(p_row, '{webhook_url}', pg_catalog.to_jsonb(ops._audit_secret(p_row ->> 'webhook_url')))
    WHEN p_table = 'escalation_policy_steps' AND pg_catalog.jsonb_typeof(p_row -> 'targets') = 'array'
        THEN pg_catalog.jsonb_set(p_row, '{targets}', coalesce((
            SELECT pg_catalog.jsonb_agg(CASE WHEN pg_catalog.jsonb_typeof(t.e -> 'webhook') = 'string'
                                             THEN pg_catalog.jsonb_set(t.e, '{webhook}',
                                                      pg_catalog.to_jsonb(ops._audit_secret(t.e ->> 'webhook')))
                                             ELSE t.e END ORDER BY t.n)
            FROM pg_catalog.jsonb_array_elements(p_row -> 'targets') WITH ORDINALITY AS t (e, n)), '[]'))  -- noqa: RF03
    ELSE p_row
END;
COMMENT ON FUNCTION ops._audit_redacted(text, jsonb) IS
'Internal: an audited row as the audit log keeps it, webhook URLs (settings of kind webhook, route_webhooks, '
'policy step targets) shown by ops._audit_secret.';

DROP FUNCTION ops._mint_page_token(bigint, uuid, text, text, timestamptz, boolean);
DROP FUNCTION ops.contact_address_redacted(text, text);
ALTER TABLE ops.permissions DISABLE TRIGGER permissions_audit_delete;
ALTER TABLE ops.role_permissions DISABLE TRIGGER role_permissions_audit_delete;
DELETE FROM ops.permissions WHERE name = 'principals.write';
ALTER TABLE ops.permissions ENABLE TRIGGER permissions_audit_delete;
ALTER TABLE ops.role_permissions ENABLE TRIGGER role_permissions_audit_delete;
DROP TABLE ops.page_tokens;
DROP INDEX ops.notification_outbox_provider_id;
DROP INDEX ops.notification_outbox_incident_page;
ALTER TABLE ops.notification_outbox
DROP CONSTRAINT notification_outbox_cancelled,
DROP CONSTRAINT notification_outbox_purpose,
DROP CONSTRAINT notification_outbox_channel_check,
DROP CONSTRAINT notification_outbox_status_check,
ADD CONSTRAINT notification_outbox_status_check CHECK (status IN ('pending', 'sending', 'sent', 'dead')),
ALTER COLUMN incident_id SET NOT NULL,
ALTER COLUMN event_id SET NOT NULL,
DROP COLUMN provider_id,
DROP COLUMN delivery_status,
DROP COLUMN delivered_at,
DROP COLUMN cancelled_at,
DROP COLUMN contact_method,
DROP COLUMN principal;
COMMENT ON COLUMN ops.notification_outbox.status IS
'pending (waiting for next_attempt_at), sending (claimed, lease_until), sent, dead (gave up after notify_max_attempts).';
COMMENT ON COLUMN ops.notification_outbox.channel IS NULL;
DROP TABLE ops.notification_rules;
DROP TABLE ops.contact_methods;
