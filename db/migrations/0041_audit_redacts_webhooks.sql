-- depends: 0040_alertmanager_details
-- The audit log kept every webhook URL it saw in full: the global slack_webhook_url setting, each
-- route's webhook and each webhook target of a policy step. A Slack incoming webhook's path is its
-- secret (whoever has it posts to the channel, as opsguard), and auditors, who may read the audit
-- log and nothing else, could read them there (not in settings, route_webhooks or
-- escalation_policy_steps, which they may not read). The audit rows now hold a webhook as the
-- escalation events do: its scheme and host, then its sha256 (first 16 hex), e.g.
-- "https://hooks.slack.com/… sha256:3f2a…": enough to see that it changed, and to which host, and
-- to match it against a URL one holds, never the URL. Rows written before 0041 keep what they
-- hold (audit_log is append-only); rotate a webhook whose URL must be assumed seen.

-- one place that says which audited values are secrets
CREATE FUNCTION ops._audit_secret(p_url text) RETURNS text
LANGUAGE sql STABLE
RETURN CASE WHEN p_url IS NULL OR p_url = '' THEN p_url
            ELSE coalesce(pg_catalog.substring(p_url, '^[A-Za-z]+://[^/?#]*') || '/…', '…') || ' sha256:'
                 || pg_catalog.left(pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(p_url, 'UTF8')), 'hex'), 16)
       END;
COMMENT ON FUNCTION ops._audit_secret(text) IS
'Internal: how the audit log shows a webhook URL: scheme and host, then the first 16 hex of its sha256.';

CREATE FUNCTION ops._audit_redacted(p_table text, p_row jsonb) RETURNS jsonb
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
REVOKE ALL ON FUNCTION ops._audit_secret(text), ops._audit_redacted(text, jsonb) FROM public;

CREATE OR REPLACE FUNCTION ops._audit_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET enable_nestloop = off
SET jit = off
SET search_path = ops, pg_temp
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
