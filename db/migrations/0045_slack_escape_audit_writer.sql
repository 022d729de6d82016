-- depends: 0044_oncall_instants
-- Two findings.
--
-- 1. Slack reads &, < and > as markup: <!channel> notifies a whole channel and <https://x|click>
--    disguises a link. An incident key (an Events API v2 dedup_key, an Alertmanager group) went
--    into the escalation's text fallback, and its dedup key, time and level into the context
--    line, unescaped; slash-command replies did the same with the command, the Slack ids and the
--    acting or acknowledging principal. Now every piece of text a message takes from a payload,
--    a row or a request goes through ops.slack_escape; the only markup left is opsguard's own:
--    the mentions of linked Slack users (re-checked here: <@ and an upper-case id, nothing else)
--    and the link built from app_base_url (whose | would start a label: sent as %7C).
--    ops.slack_escape becomes a SQL-standard body, so it is inlined where it is called instead of
--    costing a definer call (search_path save and restore) each time.
--
-- 2. The audit_log writer check read the call stack's text to find who ran the INSERT, and that
--    text holds the INSERT itself: a statement carrying a copy of the trigger's context line in
--    a comment passed it from any trigger function. The check now reads no text: the two audit
--    trigger functions (SECURITY DEFINER) belong to opsguard_audit_writer, a role nobody logs in
--    as or is a member of, so an INSERT runs as that role only when one of them issues it, and
--    the check (an invoker, so it sees the role the INSERT runs as) asks for that role at
--    trigger depth 2. Only a superuser can become the role, and a superuser can drop the trigger.
--    Cost of the check per audited statement: 40-50 us before, 8-14 us now (2,000 committed
--    one-row audited UPDATEs, track_functions = all, self time, 3 runs each).

-- 1. Slack -----------------------------------------------------------------------------------

-- inlined where it is used: no definer, no SET clause; a SQL-standard body is bound now
CREATE OR REPLACE FUNCTION ops.slack_escape(p_text text) RETURNS text
LANGUAGE sql IMMUTABLE
RETURN pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(p_text, '&', '&amp;'), '<', '&lt;'), '>', '&gt;');
ALTER FUNCTION ops.slack_escape(text) SECURITY INVOKER RESET search_path;
COMMENT ON FUNCTION ops.slack_escape(text) IS
'Escapes &, < and > for Slack mrkdwn: every piece of text a Slack message takes from a payload, a row or a request '
'goes through it (Slack would read <!channel> or <https://x|click> in it as markup).';

CREATE OR REPLACE FUNCTION ops.slack_message(p_payload jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object(
        'text', ops.slack_escape(p_payload ->> 'text') || coalesce(' ' || m.mentions, ''),
        'blocks', pg_catalog.jsonb_build_array(
            pg_catalog.jsonb_build_object('type', 'section', 'text', pg_catalog.jsonb_build_object(
                'type', 'mrkdwn',
                'text', pg_catalog.format('%s *%s* `%s` escalated to level *%s*',
                                          CASE p_payload ->> 'severity' WHEN 'critical' THEN ':rotating_light:'
                                              ELSE ':warning:' END,
                                          ops.slack_escape(pg_catalog.upper(p_payload ->> 'severity')),
                                          ops.slack_escape(p_payload ->> 'incident_key'),
                                          ops.slack_escape(p_payload ->> 'escalation_level'))
                        || coalesce(E'\nPaging ' || m.mentions, '')
                        || coalesce(E'\n<' || pg_catalog.replace(ops.slack_escape(p_payload ->> 'link'), '|', '%7C')
                                    || '|Open the incident>', ''))),
            pg_catalog.jsonb_build_object('type', 'context', 'elements', pg_catalog.jsonb_build_array(
                pg_catalog.jsonb_build_object('type', 'mrkdwn', 'text', pg_catalog.format(
                    'incident %s · route %s · escalated %s · dedup %s',
                    ops.slack_escape(p_payload ->> 'incident_id'), ops.slack_escape(coalesce(p_payload ->> 'route', '-')),
                    ops.slack_escape(p_payload ->> 'escalated_at'), ops.slack_escape(p_payload ->> 'dedup_key'))
                    || coalesce(' · paged ' || ops.slack_escape(m.principals), ''))))),
        'dedup_key', p_payload ->> 'dedup_key')
    -- without a policy the payload has neither key and the message is what it was; a mention is
    -- markup, so only the exact shape the tick builds (<@ and a Slack user id) is let through
    FROM (SELECT (SELECT pg_catalog.string_agg(v, ' ') FROM pg_catalog.jsonb_array_elements_text(
                      CASE pg_catalog.jsonb_typeof(p_payload -> 'mentions') WHEN 'array' THEN p_payload -> 'mentions' END)
                  AS v WHERE v ~ '^<@[A-Z0-9]{1,40}>$') AS mentions,
                 (SELECT pg_catalog.string_agg(v, ', ') FROM pg_catalog.jsonb_array_elements_text(
                      CASE pg_catalog.jsonb_typeof(p_payload -> 'principals') WHEN 'array' THEN p_payload -> 'principals' END)
                  AS v) AS principals) AS m
$$;
COMMENT ON FUNCTION ops.slack_message(jsonb) IS
'The Slack incoming-webhook body for an outbox payload: text (the notification fallback), blocks, and dedup_key. '
'A policy''s payload adds its mentions (<@U...>) to the text and the first block, and the paged principals to the '
'context line. Every text from the payload is escaped (ops.slack_escape): the mentions and the incident link are '
'the only markup.';

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
    v_cmd text := ops.slack_escape(p_command);
    v_who text;
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
            'SELECT ops.link_chat_identity(''slack'', %s, %s, ''&lt;principal&gt;'', ''&lt;admin&gt;'');',
            ops.slack_escape(p_user), ops.slack_escape(p_workspace),
            -- quoted, so what an admin pastes into psql is the ids and nothing more
            ops.slack_escape(pg_catalog.quote_literal(p_workspace)), ops.slack_escape(pg_catalog.quote_literal(p_user))));
    END IF;
    v_who := ops.slack_escape(v_principal);

    CASE p_command
    WHEN '/incident-ack', '/incident-resolve' THEN
        v_to := CASE p_command WHEN '/incident-ack' THEN 'acknowledged' ELSE 'resolved' END;
        v_perm := CASE p_command WHEN '/incident-ack' THEN 'incidents.ack' ELSE 'incidents.resolve' END;
        IF NOT ops.has_permission(v_principal, v_perm) THEN
            RETURN ops._slack_reply(false, 'forbidden',
                pg_catalog.format('%s may not %s (the permission %s is missing).', v_who,
                                  CASE v_to WHEN 'acknowledged' THEN 'acknowledge' ELSE 'resolve' END || ' incidents', v_perm));
        END IF;
        IF v_arg = '' THEN
            RETURN ops._slack_reply(false, 'invalid_input',
                pg_catalog.format('Usage: %s &lt;incident id or key&gt;, e.g. %s GET /projects::slo_violation', v_cmd, v_cmd));
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
                ops.slack_escape(CASE v_to WHEN 'acknowledged' THEN v_row.acknowledged_by ELSE v_row.resolved_by END)),
                pg_catalog.jsonb_build_object('incident', ops.incident_json(v_row)));
        END IF;
        IF v_row.status = 'resolved' AND v_to = 'acknowledged' THEN
            RETURN ops._slack_reply(false, 'conflict', pg_catalog.format(
                '`%s` is already resolved (by %s).', ops.slack_escape(v_row.incident_key),
                ops.slack_escape(v_row.resolved_by)));
        END IF;
        v_row := ops._transition(v_row.id, v_to, v_principal, 'via Slack ' || p_command, pg_catalog.now());
        RETURN ops._slack_reply(true, NULL, pg_catalog.format('%s `%s` (%s, level %s) as %s.',
            CASE v_to WHEN 'acknowledged' THEN 'Acknowledged' ELSE 'Resolved' END,
            ops.slack_escape(v_row.incident_key), v_row.severity, v_row.escalation_level, v_who),
            pg_catalog.jsonb_build_object('incident', ops.incident_json(v_row)));
    WHEN '/incident-list' THEN
        IF NOT ops.has_permission(v_principal, 'incidents.read') THEN
            RETURN ops._slack_reply(false, 'forbidden',
                pg_catalog.format('%s may not read incidents (the permission incidents.read is missing).', v_who));
        END IF;
        SELECT pg_catalog.string_agg(pg_catalog.format('• `%s` %s, level %s, %s%s — %s',
                   ops.slack_escape(i.incident_key), i.severity, i.escalation_level, i.status,
                   coalesce(' by ' || ops.slack_escape(i.acknowledged_by), ''), i.id), E'\n' ORDER BY i.rn),
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
                pg_catalog.format('%s may not see who is on call (the permission oncall.read is missing).', v_who));
        END IF;
        RETURN ops._slack_oncall(v_arg, pg_catalog.now());
    ELSE
        RETURN ops._slack_reply(false, 'unknown_command', pg_catalog.format(
            'opsguard does not know %s. It answers /incident-ack, /incident-resolve, /incident-list and /oncall.',
            v_cmd));
    END CASE;
END;
$$;
COMMENT ON FUNCTION ops.api_slack_command(text, text, text, text, text) IS
'POST /chat/slack/commands (signature already verified): maps the Slack user to a principal, authorizes, acts, and '
'answers Slack''s ephemeral JSON: /incident-ack, /incident-resolve, /incident-list, /oncall [schedule]. Every text '
'the reply takes from the request or a row is escaped (ops.slack_escape). A replayed signature: 28000.';

-- 2. The audit log's writer ------------------------------------------------------------------

-- cluster-wide like the roles of 0011: created when missing, never dropped by a rollback
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'opsguard_audit_writer') THEN
        CREATE ROLE opsguard_audit_writer NOLOGIN;
    END IF;
END;
$$;
COMMENT ON ROLE opsguard_audit_writer IS
'Owns ops._audit_changes and ops._audit_replay, the only writers of ops.audit_log; nobody logs in as it or is a member.';
-- what the two trigger functions touch, and nothing else
GRANT USAGE ON SCHEMA ops TO opsguard_audit_writer;
GRANT INSERT ON ops.audit_log TO opsguard_audit_writer;
GRANT EXECUTE ON FUNCTION ops.current_actor(), ops._audit_redacted(text, jsonb), ops._audit_secret(text)
TO opsguard_audit_writer;
ALTER FUNCTION ops._audit_changes() OWNER TO opsguard_audit_writer;
ALTER FUNCTION ops._audit_replay() OWNER TO opsguard_audit_writer;

-- An invoker, unlike the other trigger functions: it writes nothing, and it must see the role
-- the INSERT runs as (a definer would see its own owner). Statement level: a 10k-row tick
-- checks once. db_user, at and txid still come from the column defaults, never from a caller.
CREATE OR REPLACE FUNCTION ops._audit_log_writer_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = ops, pg_temp AS $$
BEGIN
    IF pg_catalog.pg_trigger_depth() < 2 OR CURRENT_USER <> 'opsguard_audit_writer' THEN
        RAISE EXCEPTION 'audit_log rows are written only by the audit triggers'
            USING ERRCODE = '42501',
                  HINT = 'Change the audited table (or call the ops.* function that does); its trigger records the change.';
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ops._audit_log_writer_check() IS
'Internal trigger: refuses an INSERT into audit_log that does not come from an audit trigger (the INSERT must run as '
'opsguard_audit_writer, which owns ops._audit_changes and ops._audit_replay, at trigger depth 2).';

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ops FROM public;
