-- 0034 undone: no oncall.read, no feed tokens, no on-call endpoints; /oncall unknown to Slack
-- again (ops.api_slack_command as 0015 left it)
DROP FUNCTION ops.api_schedule_feed(text, text, timestamptz);
DROP FUNCTION ops.api_oncall(text, text, text, timestamptz);
-- the view as 0032 made it, then the function it used
CREATE OR REPLACE VIEW ops.on_call_now AS
SELECT
    s.name AS schedule,
    CASE WHEN f.starts_at = pg_catalog.now() THEN f.principal END AS principal,
    CASE
        WHEN f.starts_at > pg_catalog.now() THEN f.starts_at
        WHEN f.ends_at < pg_catalog.now() + interval '28 days' THEN f.ends_at
    END AS until
FROM ops.schedules AS s
LEFT JOIN LATERAL (
    SELECT
        sh.principal,
        sh.starts_at,
        sh.ends_at
    FROM ops.on_call_shifts(s.name, pg_catalog.now(), pg_catalog.now() + interval '28 days') AS sh
    ORDER BY sh.starts_at, sh.principal
    LIMIT 1
) AS f ON TRUE;
COMMENT ON VIEW ops.on_call_now IS
'Every schedule: who is on call now and until when (the end of their current shift; NULL when it does not end within '
'28 days). Nobody on call: principal NULL, until when someone starts (NULL if nobody within 28 days).';
DROP FUNCTION ops.on_call_until(text, timestamptz);
DROP FUNCTION ops.remove_schedule_feed(text, text);
DROP FUNCTION ops.schedule_feed_token(text, text);
DROP TABLE ops.schedule_feeds;
-- its role grants go with it (ON DELETE CASCADE); unaudited, as 0034 added it
ALTER TABLE ops.permissions DISABLE TRIGGER permissions_audit_delete;
ALTER TABLE ops.role_permissions DISABLE TRIGGER role_permissions_audit_delete;
DELETE FROM ops.permissions WHERE name = 'oncall.read';
ALTER TABLE ops.permissions ENABLE TRIGGER permissions_audit_delete;
ALTER TABLE ops.role_permissions ENABLE TRIGGER role_permissions_audit_delete;

CREATE OR REPLACE FUNCTION ops.api_slack_command(
    p_workspace text, p_user text, p_command text, p_text text, p_replay_key text
) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_principal text;
    v_arg text := pg_catalog.btrim(coalesce(p_text, ''));
    v_to text;
    v_perm text;
    v_row ops.incidents;
    v_list text;
    v_count int;
BEGIN
    IF p_replay_key IS NULL THEN
        RAISE EXCEPTION 'a Slack command needs its signature as replay key' USING ERRCODE = '22004';
    END IF;
    DELETE FROM ops.api_replay WHERE expires_at < pg_catalog.now();
    INSERT INTO ops.api_replay (replay_key, expires_at) VALUES (p_replay_key, pg_catalog.now() + interval '10 minutes')
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'this Slack request was already received' USING ERRCODE = '28000',
            HINT = 'Slack signs every request afresh; a repeated signature is a replay.';
    END IF;

    SELECT c.principal INTO v_principal
    FROM ops.chat_identities AS c INNER JOIN ops.principals AS p ON c.principal = p.name
    WHERE c.provider = 'slack' AND c.workspace = p_workspace AND c.external_user = p_user AND NOT p.disabled;
    IF v_principal IS NULL THEN
        RETURN ops._slack_reply(false, 'unlinked_user', pg_catalog.format(
            'Your Slack user %s (team %s) is not linked to an opsguard principal. Ask an admin to run: '
            'SELECT ops.link_chat_identity(''slack'', ''%s'', ''%s'', ''<principal>'', ''<admin>'');',
            p_user, p_workspace, p_workspace, p_user));
    END IF;

    CASE p_command
    WHEN '/incident-ack', '/incident-resolve' THEN
        v_to := CASE p_command WHEN '/incident-ack' THEN 'acknowledged' ELSE 'resolved' END;
        v_perm := CASE p_command WHEN '/incident-ack' THEN 'incidents.ack' ELSE 'incidents.resolve' END;
        IF NOT ops.has_permission(v_principal, v_perm) THEN
            RETURN ops._slack_reply(false, 'forbidden',
                pg_catalog.format('%s may not %s (the permission %s is missing).', v_principal,
                                  CASE v_to WHEN 'acknowledged' THEN 'acknowledge' ELSE 'resolve' END || ' incidents', v_perm));
        END IF;
        IF v_arg = '' THEN
            RETURN ops._slack_reply(false, 'invalid_input',
                pg_catalog.format('Usage: %s <incident id or key>, e.g. %s GET /projects::slo_violation', p_command, p_command));
        END IF;
        v_row := ops._incident_by_ref(v_arg);
        IF v_row.id IS NULL THEN
            RETURN ops._slack_reply(false, 'not_found', pg_catalog.format(
                'No incident matches `%s`: give an incident id, or the key of one that is not resolved. /incident-list shows them.',
                ops.slack_escape(v_arg)));
        END IF;
        IF v_row.status = v_to THEN
            RETURN ops._slack_reply(true, NULL, pg_catalog.format('`%s` was already %s by %s.',
                ops.slack_escape(v_row.incident_key), v_to,
                CASE v_to WHEN 'acknowledged' THEN v_row.acknowledged_by ELSE v_row.resolved_by END),
                pg_catalog.jsonb_build_object('incident', ops.incident_json(v_row)));
        END IF;
        IF v_row.status = 'resolved' AND v_to = 'acknowledged' THEN
            RETURN ops._slack_reply(false, 'conflict', pg_catalog.format(
                '`%s` is already resolved (by %s).', ops.slack_escape(v_row.incident_key), v_row.resolved_by));
        END IF;
        v_row := ops._transition(v_row.id, v_to, v_principal, 'via Slack ' || p_command, pg_catalog.now());
        RETURN ops._slack_reply(true, NULL, pg_catalog.format('%s `%s` (%s, level %s) as %s.',
            CASE v_to WHEN 'acknowledged' THEN 'Acknowledged' ELSE 'Resolved' END,
            ops.slack_escape(v_row.incident_key), v_row.severity, v_row.escalation_level, v_principal),
            pg_catalog.jsonb_build_object('incident', ops.incident_json(v_row)));
    WHEN '/incident-list' THEN
        IF NOT ops.has_permission(v_principal, 'incidents.read') THEN
            RETURN ops._slack_reply(false, 'forbidden',
                pg_catalog.format('%s may not read incidents (the permission incidents.read is missing).', v_principal));
        END IF;
        SELECT pg_catalog.string_agg(pg_catalog.format('• `%s` %s, level %s, %s%s — %s',
                   ops.slack_escape(i.incident_key), i.severity, i.escalation_level, i.status,
                   coalesce(' by ' || i.acknowledged_by, ''), i.id), E'\n' ORDER BY i.rn),
               pg_catalog.max(i.total)
        INTO v_list, v_count
        FROM (
            SELECT x.*, pg_catalog.row_number() OVER w AS rn, count(*) OVER () AS total
            FROM ops.incidents AS x
            WHERE x.status <> 'resolved' AND (v_arg = '' OR x.incident_key ILIKE '%' || v_arg || '%')
            WINDOW w AS (ORDER BY x.severity = 'critical' DESC, x.escalation_level DESC, x.first_seen)
        ) AS i
        WHERE i.rn <= 20;
        RETURN ops._slack_reply(true, NULL, CASE
            WHEN v_list IS NULL THEN 'No open or acknowledged incidents' || CASE WHEN v_arg = '' THEN '.'
                ELSE pg_catalog.format(' match `%s`.', ops.slack_escape(v_arg)) END
            ELSE pg_catalog.format(E'%s open or acknowledged incident(s)%s:\n%s', v_count,
                                   CASE WHEN v_count > 20 THEN ', the first 20' ELSE '' END, v_list) END,
            pg_catalog.jsonb_build_object('count', coalesce(v_count, 0)));
    ELSE
        RETURN ops._slack_reply(false, 'unknown_command', pg_catalog.format(
            'opsguard does not know %s. It answers /incident-ack, /incident-resolve and /incident-list.', p_command));
    END CASE;
END;
$$;
COMMENT ON FUNCTION ops.api_slack_command(text, text, text, text, text) IS
'POST /chat/slack/commands (signature already verified): maps the Slack user to a principal, authorizes, acts, and '
'answers Slack''s ephemeral JSON. A replayed signature: 28000.';
DROP FUNCTION ops._slack_oncall(text, timestamptz);
