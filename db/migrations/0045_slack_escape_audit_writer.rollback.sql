-- 0045 undone: the Slack text and the audit_log writer check as 0033, 0034 and 0038 left them.
-- The role opsguard_audit_writer stays (roles are cluster-wide); it loses what 0045 gave it.

CREATE OR REPLACE FUNCTION ops.slack_escape(p_text text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(p_text, '&', '&amp;'), '<', '&lt;'), '>', '&gt;')
$$;
ALTER FUNCTION ops.slack_escape(text) SECURITY DEFINER SET search_path = ops, pg_temp;
COMMENT ON FUNCTION ops.slack_escape(text) IS 'Escapes &, < and > for Slack mrkdwn.';

CREATE OR REPLACE FUNCTION ops.slack_message(p_payload jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object(
        'text', (p_payload ->> 'text') || coalesce(' ' || m.mentions, ''),
        'blocks', pg_catalog.jsonb_build_array(
            pg_catalog.jsonb_build_object('type', 'section', 'text', pg_catalog.jsonb_build_object(
                'type', 'mrkdwn',
                'text', pg_catalog.format('%s *%s* `%s` escalated to level *%s*',
                                          CASE p_payload ->> 'severity' WHEN 'critical' THEN ':rotating_light:'
                                              ELSE ':warning:' END,
                                          pg_catalog.upper(p_payload ->> 'severity'),
                                          ops.slack_escape(p_payload ->> 'incident_key'),
                                          p_payload ->> 'escalation_level')
                        || coalesce(E'\nPaging ' || m.mentions, '')
                        || coalesce(E'\n<' || (p_payload ->> 'link') || '|Open the incident>', ''))),
            pg_catalog.jsonb_build_object('type', 'context', 'elements', pg_catalog.jsonb_build_array(
                pg_catalog.jsonb_build_object('type', 'mrkdwn', 'text', pg_catalog.format(
                    'incident %s · route %s · escalated %s · dedup %s',
                    p_payload ->> 'incident_id', ops.slack_escape(coalesce(p_payload ->> 'route', '-')),
                    p_payload ->> 'escalated_at', p_payload ->> 'dedup_key')
                    || coalesce(' · paged ' || ops.slack_escape(m.principals), ''))))),
        'dedup_key', p_payload ->> 'dedup_key')
    -- without a policy the payload has neither key and the message is what it was
    FROM (SELECT (SELECT pg_catalog.string_agg(v, ' ') FROM pg_catalog.jsonb_array_elements_text(
                      CASE pg_catalog.jsonb_typeof(p_payload -> 'mentions') WHEN 'array' THEN p_payload -> 'mentions' END)
                  AS v) AS mentions,
                 (SELECT pg_catalog.string_agg(v, ', ') FROM pg_catalog.jsonb_array_elements_text(
                      CASE pg_catalog.jsonb_typeof(p_payload -> 'principals') WHEN 'array' THEN p_payload -> 'principals' END)
                  AS v) AS principals) AS m
$$;
COMMENT ON FUNCTION ops.slack_message(jsonb) IS
'The Slack incoming-webhook body for an outbox payload: text (the notification fallback), blocks, and dedup_key. '
'A policy''s payload adds its mentions (<@U...>) to the text and the first block, and the paged principals to the '
'context line.';

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
    WHEN '/oncall' THEN
        IF NOT ops.has_permission(v_principal, 'oncall.read') THEN
            RETURN ops._slack_reply(false, 'forbidden',
                pg_catalog.format('%s may not see who is on call (the permission oncall.read is missing).', v_principal));
        END IF;
        RETURN ops._slack_oncall(v_arg, pg_catalog.now());
    ELSE
        RETURN ops._slack_reply(false, 'unknown_command', pg_catalog.format(
            'opsguard does not know %s. It answers /incident-ack, /incident-resolve, /incident-list and /oncall.',
            p_command));
    END CASE;
END;
$$;
COMMENT ON FUNCTION ops.api_slack_command(text, text, text, text, text) IS
'POST /chat/slack/commands (signature already verified): maps the Slack user to a principal, authorizes, acts, and '
'answers Slack''s ephemeral JSON: /incident-ack, /incident-resolve, /incident-list, /oncall [schedule]. A replayed '
'signature: 28000.';

ALTER FUNCTION ops._audit_changes() OWNER TO CURRENT_USER;
ALTER FUNCTION ops._audit_replay() OWNER TO CURRENT_USER;
REVOKE EXECUTE ON FUNCTION ops.current_actor(), ops._audit_redacted(text, jsonb), ops._audit_secret(text)
FROM opsguard_audit_writer;
REVOKE INSERT ON ops.audit_log FROM opsguard_audit_writer;
REVOKE USAGE ON SCHEMA ops FROM opsguard_audit_writer;

CREATE OR REPLACE FUNCTION ops._audit_log_writer_check() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_stack text;
    v_caller text;
    v_line text;
BEGIN
    GET DIAGNOSTICS v_stack = PG_CONTEXT;
    -- the stack reads: this function; SQL statement "<the INSERT, maybe several lines>"; the
    -- function that ran it. The first quote-newline-function after our own line ends the INSERT.
    v_stack := pg_catalog.substr(v_stack, pg_catalog.strpos(v_stack, E'\n') + 1);
    -- LEAST skips a NULL: the earlier of the two kinds of function line, NULL when neither is there
    v_caller := pg_catalog.split_part(pg_catalog.substr(v_stack, 2 + LEAST(
        nullif(pg_catalog.strpos(v_stack, E'"\nPL/pgSQL function '), 0),
        nullif(pg_catalog.strpos(v_stack, E'"\nSQL function '), 0))), E'\n', 1);
    -- the caller line must read: PL/pgSQL function [ops.]_audit_(changes|replay)() line <digits> at SQL statement
    v_line := pg_catalog.split_part(pg_catalog.split_part(v_caller, ' line ', 2), ' at SQL statement', 1);
    IF pg_catalog.pg_trigger_depth() < 2
       OR v_caller IS NULL
       OR v_line = '' OR pg_catalog.btrim(v_line, '0123456789') <> ''
       OR v_caller NOT IN (
           'PL/pgSQL function _audit_changes() line ' || v_line || ' at SQL statement',
           'PL/pgSQL function ops._audit_changes() line ' || v_line || ' at SQL statement',
           'PL/pgSQL function _audit_replay() line ' || v_line || ' at SQL statement',
           'PL/pgSQL function ops._audit_replay() line ' || v_line || ' at SQL statement') THEN
        RAISE EXCEPTION 'audit_log rows are written only by the audit triggers'
            USING ERRCODE = '42501',
                  HINT = 'Change the audited table (or call the ops.* function that does); its trigger records the change.';
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ops._audit_log_writer_check() IS
'Internal trigger: refuses an INSERT into audit_log that does not come from an audit trigger.';

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ops FROM public;
