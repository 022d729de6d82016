-- depends: 0052_contact_methods
-- Answering a page from where it reached the person: the link of an e-mail or SMS (/p/<token>), an
-- SMS reply with the short code, a key press in a voice call, a Slack button. Each answer acts
-- through ops._transition as the paged principal (audited "via <channel>"), once: the token is
-- marked used even when someone else acknowledged first. A token that is unknown, malformed or
-- revoked is one answer (P0002), so a guess learns nothing; a used or expired one is OG410 (the
-- API's 410 Gone); a resolved incident is 55000 (409); a principal without the permission 42501.

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
    UPDATE ops.page_tokens SET used_at = p_now, used_action = p_action WHERE id = p_token.id;
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
