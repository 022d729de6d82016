-- depends: 0053_notification_rules
-- Answering a page from where it reached the person: the link of an e-mail or SMS (/p/<token>), an
-- SMS reply with the short code, a key press in a voice call, a Slack button. Each answer acts
-- through ops._transition as the paged principal (audited "via <channel>"), once: the token is
-- marked used even when someone else acknowledged first. A token that is unknown, malformed or
-- revoked is one answer (P0002), so a guess learns nothing; a used or expired one is OG410 (the
-- API's 410 Gone); a resolved incident is 55000 (409); a principal without the permission 42501.

-- how a page was answered, which its channel does not say: an SMS's token answers by reply or by its link
ALTER TABLE ops.page_tokens ADD COLUMN used_via text CHECK (used_via IN ('link', 'sms', 'voice', 'slack_button')),
ADD CONSTRAINT page_tokens_used_via CHECK ((used_at IS NULL) = (used_via IS NULL));
COMMENT ON COLUMN ops.page_tokens.used_via IS
'Where the answer came from (link, sms, voice, slack_button), as the audit note "via ..." says; set with used_at.';

-- the sha256 a token is stored under; NULL for what cannot be a token (43 base64url characters)
CREATE FUNCTION ops._page_token_hash(p_token text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = ops, pg_temp
RETURN CASE WHEN p_token ~ '^[A-Za-z0-9_-]{43}$'
    THEN pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(p_token, 'UTF8')), 'hex') END;
COMMENT ON FUNCTION ops._page_token_hash(text) IS
'Internal: the token_hash of a page token, NULL when the text is not shaped like one.';
REVOKE ALL ON FUNCTION ops._page_token_hash(text) FROM public;

-- one refusal for every token that cannot be answered, whatever the reason
CREATE FUNCTION ops._page_token_unknown() RETURNS void
LANGUAGE plpgsql
SET search_path = ops, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'no such page'
        USING ERRCODE = 'P0002', DETAIL = 'The link or code is wrong, or its contact method was removed.',
              HINT = 'Acknowledge in Slack (/incident-ack) or with a signed POST /ops/incidents/<id>/ack.';
END;
$$;
COMMENT ON FUNCTION ops._page_token_unknown() IS 'Internal: raises P0002 for a page token that is unknown, malformed or revoked.';
REVOKE ALL ON FUNCTION ops._page_token_unknown() FROM public;

-- the one path every answer takes once its principal is known: permission, state, act, say what happened
CREATE FUNCTION ops._page_transition(p_incident uuid, p_principal text, p_action text, p_via text, p_now timestamptz)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_to text := CASE p_action WHEN 'acknowledge' THEN 'acknowledged' WHEN 'resolve' THEN 'resolved' END;
    v_perm text := CASE p_action WHEN 'acknowledge' THEN 'incidents.ack' ELSE 'incidents.resolve' END;
    v_row ops.incidents;
    v_already boolean;
BEGIN
    IF v_to IS NULL THEN
        RAISE EXCEPTION 'unknown action "%"', p_action USING ERRCODE = '22023', HINT = 'acknowledge or resolve';
    END IF;
    IF NOT ops.has_permission(p_principal, v_perm) THEN
        RAISE EXCEPTION '% may not %', p_principal, v_perm
            USING ERRCODE = '42501', HINT = 'An admin grants a role that carries it: SELECT ops.grant_role(principal, role, actor);';
    END IF;
    v_row := ops._lock_incident(p_incident);
    IF v_row.status = 'resolved' THEN
        RAISE EXCEPTION 'incident % is resolved', v_row.incident_key
            USING ERRCODE = '55000', DETAIL = pg_catalog.format('resolved by %s at %s', v_row.resolved_by, v_row.resolved_at),
                  HINT = 'Nothing is left to do; if it fires again, a new incident opens and pages again.';
    END IF;
    v_already := v_row.status = v_to;
    v_row := ops._transition(v_row.id, v_to, p_principal, 'via ' || p_via, p_now);
    RETURN pg_catalog.jsonb_build_object(
        'ok', true, 'action', p_action, 'via', p_via, 'principal', p_principal, 'changed', NOT v_already,
        'message', CASE WHEN v_already THEN 'Already ' || v_to ELSE pg_catalog.initcap(v_to) END || ' by '
                   || CASE v_to WHEN 'resolved' THEN v_row.resolved_by ELSE v_row.acknowledged_by END || ' at '
                   || pg_catalog.to_char(CASE v_to WHEN 'resolved' THEN v_row.resolved_at ELSE v_row.acknowledged_at END
                                         AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"') || '.',
        'incident', ops.incident_json(v_row));
END;
$$;
COMMENT ON FUNCTION ops._page_transition(uuid, text, text, text, timestamptz) IS
'Internal: acknowledge or resolve an incident as p_principal from a page (note "via <p_via>"): 42501 without the '
'permission, 55000 once resolved; answers whether it changed anything and who did it.';
REVOKE ALL ON FUNCTION ops._page_transition(uuid, text, text, text, timestamptz) FROM public;

-- a token answers only where it was sent: a link from an e-mail or SMS, a reply to the SMS that
-- carried the short code, a key press in its call, a button of its Slack message
CREATE FUNCTION ops._page_act(p_token ops.page_tokens, p_action text, p_via text, p_now timestamptz) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_answer jsonb;
BEGIN
    IF p_token.id IS NULL OR p_token.revoked_at IS NOT NULL OR (CASE p_via
            WHEN 'link' THEN p_token.channel IN ('link', 'sms')
            WHEN 'sms' THEN p_token.short_code IS NOT NULL
            ELSE p_token.channel = p_via END) IS NOT TRUE THEN
        PERFORM ops._page_token_unknown();
    END IF;
    IF p_token.used_at IS NOT NULL THEN
        RAISE EXCEPTION 'this page was already answered'
            USING ERRCODE = 'OG410', DETAIL = pg_catalog.format('%s at %s', p_token.used_action, p_token.used_at),
                  HINT = 'Each page answers once; the incident''s status shows what happened since.';
    END IF;
    IF p_token.expires_at <= p_now THEN
        RAISE EXCEPTION 'this page expired'
            USING ERRCODE = 'OG410', DETAIL = pg_catalog.format('valid until %s', p_token.expires_at),
                  HINT = 'A page answers for 24 hours; acknowledge in Slack or with a signed POST /ops/incidents/<id>/ack.';
    END IF;
    v_answer := ops._page_transition(p_token.incident_id, p_token.principal, p_action, p_via, p_now);
    UPDATE ops.page_tokens SET used_at = p_now, used_action = p_action, used_via = p_via WHERE id = p_token.id;
    RETURN v_answer;
END;
$$;
COMMENT ON FUNCTION ops._page_act(ops.page_tokens, text, text, timestamptz) IS
'Internal: answer one locked page token over p_via (link, sms, voice, slack_button): P0002 unless the token was sent '
'for that channel and is not revoked, OG410 once used or expired; then ops._page_transition, and the token is used.';
REVOKE ALL ON FUNCTION ops._page_act(ops.page_tokens, text, text, timestamptz) FROM public;

CREATE FUNCTION ops.page_action(p_token text, p_action text, p_via text, p_now timestamptz DEFAULT pg_catalog.now())
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_token ops.page_tokens;
BEGIN
    IF p_via IS NULL OR p_via NOT IN ('link', 'sms', 'voice', 'slack_button') THEN
        RAISE EXCEPTION 'unknown channel "%"', p_via USING ERRCODE = '22023', HINT = 'link, sms, voice or slack_button';
    END IF;
    SELECT * INTO v_token FROM ops.page_tokens WHERE token_hash = ops._page_token_hash(p_token) FOR UPDATE;
    RETURN ops._page_act(v_token, p_action, p_via, p_now);
END;
$$;
COMMENT ON FUNCTION ops.page_action(text, text, text, timestamptz) IS
'Answers a page: acknowledge or resolve its incident as the principal it was sent to, audited "via <p_via>", once. '
'Unknown, malformed or revoked token: P0002; used or expired: OG410; resolved incident: 55000; the principal lacks '
'incidents.ack (incidents.resolve): 42501. Acknowledging what someone else acknowledged first uses the token too '
'and says so ("Already acknowledged by ...").';
REVOKE ALL ON FUNCTION ops.page_action(text, text, text, timestamptz) FROM public;
-- the token is the credential: whoever holds one may answer it, in psql too
GRANT EXECUTE ON FUNCTION ops.page_action(text, text, text, timestamptz) TO opsguard_operator;

-- what GET /p/<token> shows; reading a link (a mail scanner does) changes nothing
CREATE FUNCTION ops.page_view(p_token text, p_now timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_view jsonb;
BEGIN
    SELECT pg_catalog.jsonb_build_object(
        'ok', true, 'principal', t.principal, 'expiresAt', t.expires_at, 'usedAt', t.used_at, 'usedAction', t.used_action,
        'usable', t.used_at IS NULL AND t.expires_at > p_now AND i.status <> 'resolved',
        'reason', CASE WHEN t.used_at IS NOT NULL THEN 'used' WHEN t.expires_at <= p_now THEN 'expired'
                       WHEN i.status = 'resolved' THEN 'resolved' END,
        'incident', ops.incident_json(i))
    INTO v_view
    FROM ops.page_tokens AS t INNER JOIN ops.incidents AS i ON t.incident_id = i.id
    WHERE t.token_hash = ops._page_token_hash(p_token) AND t.revoked_at IS NULL AND t.channel IN ('link', 'sms');
    IF v_view IS NULL THEN
        PERFORM ops._page_token_unknown();
    END IF;
    RETURN v_view;
END;
$$;
COMMENT ON FUNCTION ops.page_view(text, timestamptz) IS
'The page a link token shows: the incident, whom it was sent to, and whether it can still be answered (usable; '
'reason used, expired or resolved when not). Changes nothing. Unknown, malformed or revoked: P0002.';
REVOKE ALL ON FUNCTION ops.page_view(text, timestamptz) FROM public;
GRANT EXECUTE ON FUNCTION ops.page_view(text, timestamptz) TO opsguard_operator;

CREATE FUNCTION ops.api_page_get(p_token text) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
    SELECT ops.page_view(p_token, pg_catalog.now())
$$;
COMMENT ON FUNCTION ops.api_page_get(text) IS 'GET /p/<token>: ops.page_view now.';
REVOKE ALL ON FUNCTION ops.api_page_get(text) FROM public;
GRANT EXECUTE ON FUNCTION ops.api_page_get(text) TO opsguard_api;

CREATE FUNCTION ops.api_page_act(p_token text, p_action text) RETURNS jsonb
LANGUAGE sql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
    SELECT ops.page_action(p_token, p_action, 'link', pg_catalog.now())
$$;
COMMENT ON FUNCTION ops.api_page_act(text, text) IS 'POST /p/<token>: ops.page_action over the link, now.';
REVOKE ALL ON FUNCTION ops.api_page_act(text, text) FROM public;
GRANT EXECUTE ON FUNCTION ops.api_page_act(text, text) TO opsguard_api;

-- why an answer from a chat or a phone was refused, in the words the API uses for the same SQLSTATE
CREATE FUNCTION ops._page_refusal(p_sqlstate text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = ops, pg_temp
RETURN CASE p_sqlstate WHEN 'P0002' THEN 'not_found' WHEN 'OG410' THEN 'gone' WHEN '55000' THEN 'conflict'
    WHEN '42501' THEN 'forbidden' ELSE 'invalid_input' END;
COMMENT ON FUNCTION ops._page_refusal(text) IS
'Internal: the error code (not_found, gone, conflict, forbidden, invalid_input) of a refused answer''s SQLSTATE, '
'for answers that reach a person as a message rather than an HTTP status (Slack, Twilio).';
REVOKE ALL ON FUNCTION ops._page_refusal(text) FROM public;

-- the buttons of a page in Slack: the channel post carries the incident id (whoever presses acts as
-- their linked principal), a direct message a slack_button token each (it acts as the paged principal)
CREATE FUNCTION ops.slack_page_blocks(p_payload jsonb, p_ack_value text, p_resolve_value text) RETURNS jsonb
LANGUAGE sql IMMUTABLE SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
    SELECT CASE WHEN p_ack_value IS NULL OR p_resolve_value IS NULL THEN '[]'::jsonb ELSE pg_catalog.jsonb_build_array(
        pg_catalog.jsonb_build_object(
            'type', 'actions', 'block_id', 'opsguard_page:' || coalesce(p_payload ->> 'incident_id', ''),
            'elements', pg_catalog.jsonb_build_array(
                pg_catalog.jsonb_build_object(
                    'type', 'button', 'action_id', 'ack', 'style', 'primary', 'value', p_ack_value,
                    'text', pg_catalog.jsonb_build_object('type', 'plain_text', 'text', 'Acknowledge')),
                pg_catalog.jsonb_build_object(
                    'type', 'button', 'action_id', 'resolve', 'style', 'danger', 'value', p_resolve_value,
                    'text', pg_catalog.jsonb_build_object('type', 'plain_text', 'text', 'Resolve'))))) END
$$;
COMMENT ON FUNCTION ops.slack_page_blocks(jsonb, text, text) IS
'The Block Kit actions block of a page (a one-element array to append to its blocks): buttons Acknowledge '
'(action_id ack) and Resolve (resolve) carrying the given values; none when a value is NULL. POST '
'/chat/slack/interactions answers them.';
REVOKE ALL ON FUNCTION ops.slack_page_blocks(jsonb, text, text) FROM public;
GRANT EXECUTE ON FUNCTION ops.slack_page_blocks(jsonb, text, text) TO opsguard_operator;

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
                    || coalesce(' · paged ' || ops.slack_escape(m.principals), '')))))
            -- a channel post's buttons name the incident: whoever presses acts as their linked principal
            || ops.slack_page_blocks(p_payload, p_payload ->> 'incident_id', p_payload ->> 'incident_id'),
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
'the only markup. The last block holds the Acknowledge and Resolve buttons (ops.slack_page_blocks), valued with '
'the incident id.';

-- the Slack message that replaces the one whose button was pressed: who did what, and when
CREATE FUNCTION ops._slack_page_reply(p_answer jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = ops, pg_temp
AS $$
    SELECT pg_catalog.jsonb_build_object(
        'replace_original', true, 'text', r.text,
        'blocks', pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
            'type', 'section', 'text', pg_catalog.jsonb_build_object('type', 'mrkdwn', 'text', r.text))))
    FROM (SELECT pg_catalog.format('%s `%s`: %s', CASE p_answer #>> '{incident,status}' WHEN 'resolved'
                                                      THEN ':white_check_mark:' ELSE ':eyes:' END,
                                   ops.slack_escape(p_answer #>> '{incident,incidentKey}'),
                                   ops.slack_escape(p_answer ->> 'message')) AS text) AS r
$$;
COMMENT ON FUNCTION ops._slack_page_reply(jsonb) IS
'Internal: the replace_original message posted to a pressed button''s response_url, from an answer of '
'ops._page_transition ("Acknowledged by bob at ...").';
REVOKE ALL ON FUNCTION ops._slack_page_reply(jsonb) FROM public;

CREATE FUNCTION ops.api_slack_interaction(
    p_workspace text, p_user text, p_action_id text, p_value text, p_response_url text, p_replay_key text
) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_principal text;
    v_action text := CASE p_action_id WHEN 'ack' THEN 'acknowledge' WHEN 'resolve' THEN 'resolve' END;
    v_token ops.page_tokens;
    v_answer jsonb;
    v_state text;
    v_message text;
BEGIN
    IF p_replay_key IS NULL OR v_action IS NULL OR p_response_url IS NULL THEN
        RAISE EXCEPTION 'a button press needs its signature, an action_id ack or resolve, and a response_url'
            USING ERRCODE = '22023';
    END IF;
    SELECT c.principal INTO v_principal
    FROM ops.chat_identities AS c INNER JOIN ops.principals AS p ON c.principal = p.name
    WHERE c.provider = 'slack' AND c.workspace = p_workspace AND c.external_user = p_user AND NOT p.disabled;
    IF v_principal IS NULL THEN
        RETURN ops._slack_reply(false, 'unlinked_user', pg_catalog.format(
            'Link your Slack user %s (team %s) to an opsguard principal first; an admin runs: '
            'SELECT ops.link_chat_identity(''slack'', %s, %s, ''&lt;principal&gt;'', ''&lt;admin&gt;'');',
            ops.slack_escape(p_user), ops.slack_escape(p_workspace),
            ops.slack_escape(pg_catalog.quote_literal(p_workspace)), ops.slack_escape(pg_catalog.quote_literal(p_user))),
            '{"replace_original": false}');
    END IF;
    -- a refused press rolls back with its replay key too: a rejected request changes nothing
    BEGIN
        DELETE FROM ops.api_replay WHERE expires_at < pg_catalog.now();
        INSERT INTO ops.api_replay (replay_key, expires_at) VALUES (p_replay_key, pg_catalog.now() + INTERVAL '10 minutes')
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'this Slack request was already received' USING ERRCODE = '28000',
                HINT = 'Slack signs every request afresh; a repeated signature is a replay.';
        END IF;
        IF ops._page_token_hash(p_value) IS NULL THEN
            v_answer := ops._page_transition(p_value::uuid, v_principal, v_action, 'slack_button', pg_catalog.now());
        ELSE
            SELECT * INTO v_token FROM ops.page_tokens WHERE token_hash = ops._page_token_hash(p_value) FOR UPDATE;
            IF v_token.principal <> v_principal THEN
                RAISE EXCEPTION 'this page was sent to %, not to %', v_token.principal, v_principal USING ERRCODE = '42501';
            END IF;
            v_answer := ops._page_act(v_token, v_action, 'slack_button', pg_catalog.now());
        END IF;
    EXCEPTION WHEN SQLSTATE 'P0002' OR SQLSTATE 'OG410' OR SQLSTATE '55000' OR SQLSTATE '42501' OR SQLSTATE '22P02' THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
        RETURN ops._slack_reply(false, ops._page_refusal(v_state), ops.slack_escape(v_message) || '.',
                                '{"replace_original": false}');
    END;
    -- the message is replaced by the dispatcher (outbox, retried), not inside this request
    INSERT INTO ops.notification_outbox (dedup_key, incident_id, route, channel, payload, webhook_url)
    VALUES ('slack_reply:' || pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(p_replay_key, 'UTF8')), 'hex'),
            (v_answer #>> '{incident,id}')::uuid, v_answer #>> '{incident,route}', 'slack_reply',
            ops._slack_page_reply(v_answer), p_response_url);
    RETURN ops._slack_reply(true, NULL, ops._slack_page_reply(v_answer) ->> 'text',
                            pg_catalog.jsonb_build_object('replace_original', false, 'incident', v_answer -> 'incident'));
END;
$$;
COMMENT ON FUNCTION ops.api_slack_interaction(text, text, text, text, text, text) IS
'POST /chat/slack/interactions (signature verified, response_url checked): a pressed Acknowledge (ack) or Resolve '
'button. The Slack user acts as its linked principal; a value that is an incident id (a channel post) acts on that '
'incident, a page token (a direct message) only for the principal it was sent to, once. Audited "via slack_button". '
'Queues a slack_reply outbox message to response_url that replaces the message with who did what. Unlinked user or '
'a refusal: ok false, ephemeral text, nothing changed. A replayed signature: 28000.';
REVOKE ALL ON FUNCTION ops.api_slack_interaction(text, text, text, text, text, text) FROM public;
GRANT EXECUTE ON FUNCTION ops.api_slack_interaction(text, text, text, text, text, text) TO opsguard_api;

-- an SMS reply "4 123456" / "6 123456": the code picks the page, the number it comes from the principal
CREATE FUNCTION ops.page_sms_reply(p_from text, p_body text, p_now timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_reply text[] := pg_catalog.regexp_match(coalesce(p_body, ''), '^\s*([46])\s+([0-9]{6})\s*$');
    v_token ops.page_tokens;
BEGIN
    IF v_reply IS NULL THEN
        RAISE EXCEPTION 'reply 4 and the code to acknowledge, 6 and the code to resolve'
            USING ERRCODE = '22023', HINT = 'For example: 4 123456';
    END IF;
    -- an unused page first; a used one only to say it was used
    SELECT t.* INTO v_token
    FROM ops.page_tokens AS t
    WHERE t.short_code = v_reply[2] AND t.revoked_at IS NULL
      AND EXISTS (SELECT 1 FROM ops.contact_methods AS c
                  WHERE c.principal = t.principal AND c.kind = 'sms' AND c.address = p_from AND c.removed_at IS NULL)
    ORDER BY t.used_at IS NULL DESC, t.created_at DESC
    LIMIT 1
    FOR UPDATE OF t;
    RETURN ops._page_act(v_token, CASE v_reply[1] WHEN '4' THEN 'acknowledge' ELSE 'resolve' END, 'sms', p_now);
END;
$$;
COMMENT ON FUNCTION ops.page_sms_reply(text, text, timestamptz) IS
'Answers a page by SMS reply: p_body "4 <code>" acknowledges, "6 <code>" resolves, as the principal that owns a live '
'sms contact method with the number p_from, with the code an SMS page carried (ops.page_action''s rules and errors; '
'another body: 22023).';
REVOKE ALL ON FUNCTION ops.page_sms_reply(text, text, timestamptz) FROM public;
GRANT EXECUTE ON FUNCTION ops.page_sms_reply(text, text, timestamptz) TO opsguard_operator;

-- text inside TwiML (XML): element content and attribute values alike
CREATE FUNCTION ops._twiml_text(p_text text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = ops, pg_temp
RETURN pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
    p_text, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'), '''', '&apos;');
COMMENT ON FUNCTION ops._twiml_text(text) IS 'Internal: text escaped for TwiML (XML) content and attribute values.';
REVOKE ALL ON FUNCTION ops._twiml_text(text) FROM public;

CREATE FUNCTION ops.api_twilio_sms(p_from text, p_body text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_answer jsonb;
    v_state text;
    v_text text;
BEGIN
    BEGIN
        v_answer := ops.page_sms_reply(p_from, p_body, pg_catalog.now());
        v_text := pg_catalog.format('%s: %s', v_answer #>> '{incident,incidentKey}', v_answer ->> 'message');
    EXCEPTION WHEN SQLSTATE 'P0002' OR SQLSTATE 'OG410' OR SQLSTATE '55000' OR SQLSTATE '42501' OR SQLSTATE '22023' THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_text = MESSAGE_TEXT;
        v_text := v_text || '.';
    END;
    -- answered in the SMS itself: Twilio sends a <Message> only with a 2xx, so a refusal is one too
    RETURN pg_catalog.jsonb_build_object(
        'ok', v_state IS NULL, 'error', CASE WHEN v_state IS NOT NULL THEN ops._page_refusal(v_state) END, 'text', v_text,
        'twiml', '<?xml version="1.0" encoding="UTF-8"?><Response><Message>' || ops._twiml_text(v_text)
                 || '</Message></Response>');
END;
$$;
COMMENT ON FUNCTION ops.api_twilio_sms(text, text) IS
'POST /twilio/sms (X-Twilio-Signature verified): ops.page_sms_reply from the number p_from; answers the TwiML '
'<Message> that tells the sender what happened or why not (ok false and error for scripts).';
REVOKE ALL ON FUNCTION ops.api_twilio_sms(text, text) FROM public;
GRANT EXECUTE ON FUNCTION ops.api_twilio_sms(text, text) TO opsguard_api;

CREATE FUNCTION ops.api_twilio_voice(p_token text, p_digits text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_action text := CASE p_digits WHEN '4' THEN 'acknowledge' WHEN '6' THEN 'resolve' END;
    v_answer jsonb;
    v_state text;
    v_text text;
    v_base text := pg_catalog.rtrim(ops.setting('app_base_url') #>> '{}', '/');
BEGIN
    IF v_action IS NULL THEN
        -- any other key, or none: the options again, answered to the same URL
        RETURN pg_catalog.jsonb_build_object('ok', false, 'error', 'invalid_input', 'twiml',
            '<?xml version="1.0" encoding="UTF-8"?><Response><Gather numDigits="1" action="'
            || ops._twiml_text(v_base || '/twilio/voice?t=' || coalesce(p_token, '')) || '">'
            || '<Say>Press 4 to acknowledge, 6 to resolve.</Say></Gather><Say>Goodbye.</Say></Response>');
    END IF;
    BEGIN
        v_answer := ops.page_action(p_token, v_action, 'voice', pg_catalog.now());
        v_text := v_answer ->> 'message';
    EXCEPTION WHEN SQLSTATE 'P0002' OR SQLSTATE 'OG410' OR SQLSTATE '55000' OR SQLSTATE '42501' THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_text = MESSAGE_TEXT;
        v_text := v_text || '.';
    END;
    RETURN pg_catalog.jsonb_build_object(
        'ok', v_state IS NULL, 'error', CASE WHEN v_state IS NOT NULL THEN ops._page_refusal(v_state) END, 'text', v_text,
        'twiml', '<?xml version="1.0" encoding="UTF-8"?><Response><Say>' || ops._twiml_text(v_text)
                 || '</Say><Hangup/></Response>');
END;
$$;
COMMENT ON FUNCTION ops.api_twilio_voice(text, text) IS
'POST /twilio/voice?t=<token> (X-Twilio-Signature verified): Digits 4 acknowledges, 6 resolves (ops.page_action over '
'voice); the TwiML says what happened, or offers the keys again for any other input.';
REVOKE ALL ON FUNCTION ops.api_twilio_voice(text, text) FROM public;
GRANT EXECUTE ON FUNCTION ops.api_twilio_voice(text, text) TO opsguard_api;

CREATE FUNCTION ops.api_twilio_status(p_sid text, p_status text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    IF p_sid !~ '^[A-Z]{2}[0-9A-Za-z]{8,64}$' OR p_status !~ '^[a-z-]{1,40}$' THEN
        RAISE EXCEPTION 'a status callback names a MessageSid or CallSid and its status'
            USING ERRCODE = '22023', DETAIL = pg_catalog.format('sid %s, status %s', pg_catalog.left(p_sid, 80),
                                                                 pg_catalog.left(p_status, 40));
    END IF;
    -- callbacks may arrive out of order: once delivered, a late "sent" does not take it back
    UPDATE ops.notification_outbox
    SET delivered_at = CASE WHEN p_status IN ('delivered', 'completed') THEN coalesce(delivered_at, pg_catalog.now())
                            ELSE delivered_at END,
        delivery_status = CASE WHEN delivered_at IS NOT NULL AND p_status IN ('queued', 'sending', 'sent', 'initiated', 'ringing')
                               THEN delivery_status ELSE p_status END
    WHERE provider_id = p_sid
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'no message was sent as %', p_sid USING ERRCODE = 'P0002';
    END IF;
    RETURN pg_catalog.jsonb_build_object('ok', true, 'id', v_id, 'deliveryStatus', p_status);
END;
$$;
COMMENT ON FUNCTION ops.api_twilio_status(text, text) IS
'POST /twilio/status (X-Twilio-Signature verified): records the provider''s status of the outbox message sent as '
'p_sid (delivery_status; delivered_at at delivered, or completed for a call). Unknown sid: P0002.';
REVOKE ALL ON FUNCTION ops.api_twilio_status(text, text) FROM public;
GRANT EXECUTE ON FUNCTION ops.api_twilio_status(text, text) TO opsguard_api;

-- Twilio signs the URL it was given: app_base_url plus the path; the API checks it before acting
CREATE FUNCTION ops.api_public_base_url() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
    SELECT nullif(pg_catalog.rtrim(ops.setting('app_base_url') #>> '{}', '/'), '')
$$;
COMMENT ON FUNCTION ops.api_public_base_url() IS
'The setting app_base_url without its trailing slash, NULL when empty: the public URL Twilio''s webhook signatures cover.';
REVOKE ALL ON FUNCTION ops.api_public_base_url() FROM public;
GRANT EXECUTE ON FUNCTION ops.api_public_base_url() TO opsguard_api;
