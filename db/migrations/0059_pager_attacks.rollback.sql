-- 0059 undone: verification codes limited per contact method only, SMS replies from any live number
-- of the principal, short-code misses not counted, loopback webhooks added by anyone who manages the principal
CREATE OR REPLACE FUNCTION ops._add_contact_method(
    p_principal text, p_kind text, p_address text, p_actor text, p_label text, OUT r_id uuid, OUT r_secret text
) RETURNS record
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_prev text;
    v_constraint text;
BEGIN
    PERFORM ops._may_manage(p_principal, p_actor);
    PERFORM ops._check_contact_address(p_kind, p_address);
    IF p_label IS NOT NULL AND pg_catalog.length(p_label) NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'a label has 1 to 100 characters' USING ERRCODE = '22023', HINT = 'e.g. ''work phone''.';
    END IF;
    IF EXISTS (SELECT 1 FROM ops.contact_methods AS c WHERE c.principal = p_principal AND c.kind = p_kind
               AND c.address = p_address AND c.removed_at IS NULL) THEN
        RAISE EXCEPTION '% already has this % contact method', p_principal, p_kind
            USING ERRCODE = '23505', HINT = 'List them: GET /ops/me/contact-methods; remove one before adding it again.';
    END IF;
    IF p_kind = 'webhook' THEN
        -- 244 random bits, as page tokens are made
        r_secret := pg_catalog.rtrim(pg_catalog.translate(pg_catalog.encode(pg_catalog.decode(pg_catalog.replace(
            pg_catalog.gen_random_uuid()::text || pg_catalog.gen_random_uuid()::text, '-', ''), 'hex'), 'base64'),
            '+/', '-_'), '=');
    END IF;
    v_prev := ops._act_as(p_actor);
    BEGIN
        INSERT INTO ops.contact_methods (principal, kind, address, label, secret, verified_at, created_by)
        VALUES (p_principal, p_kind, p_address, p_label, r_secret,
                CASE WHEN p_kind IN ('slack_dm', 'webhook') THEN pg_catalog.now() END, p_actor)
        RETURNING id INTO r_id;
    EXCEPTION WHEN check_violation THEN
        GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
        IF v_constraint <> 'contact_methods_address_format' THEN
            RAISE;
        END IF;
        PERFORM ops._contact_address_refused(p_kind, p_address);
    END;
    PERFORM ops._act_as(v_prev);
    IF p_kind IN ('email', 'sms', 'voice') THEN
        PERFORM ops._queue_verification(r_id, p_principal, p_kind);
    END IF;
END;
$$;
COMMENT ON FUNCTION ops._add_contact_method(text, text, text, text, text) IS
'Internal: adds a contact method (ops.add_contact_method), returning its id and, for a webhook, the signing secret.';

CREATE OR REPLACE FUNCTION ops.resend_verification(p_id uuid, p_actor text, p_now timestamptz DEFAULT pg_catalog.now())
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_row ops.contact_methods := ops._managed_method(p_id, p_actor);
    v_prev text;
BEGIN
    IF v_row.verified_at IS NOT NULL OR v_row.kind NOT IN ('email', 'sms', 'voice') THEN
        RAISE EXCEPTION 'contact method % needs no code: it is verified', p_id USING ERRCODE = '55000';
    END IF;
    -- a code a minute at most: nobody can make opsguard flood a number or an inbox
    IF EXISTS (SELECT 1 FROM ops.notification_outbox AS o
               WHERE o.contact_method = p_id AND o.event_id IS NULL AND o.created_at > p_now - INTERVAL '1 minute') THEN
        RAISE EXCEPTION 'a code was sent to this contact method less than a minute ago' USING ERRCODE = '55000',
            HINT = 'Wait a minute for it to arrive, then ask again.';
    END IF;
    v_prev := ops._act_as(p_actor);
    -- the old code stops working at once; the claim of the new message mints the next one
    UPDATE ops.contact_methods SET code_hash = NULL, code_expires_at = NULL WHERE id = p_id;
    PERFORM ops._act_as(v_prev);
    PERFORM ops._queue_verification(p_id, v_row.principal, v_row.kind);
END;
$$;
COMMENT ON FUNCTION ops.resend_verification(uuid, text, timestamptz) IS
'Sends a new verification code to an unverified email, sms or voice contact method (at most one a minute); the '
'previous code stops working. 55000 when verified or too soon; not yours: P0002.';

CREATE OR REPLACE FUNCTION ops.page_sms_reply(p_from text, p_body text, p_now timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
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

CREATE OR REPLACE FUNCTION ops.api_twilio_sms(p_from text, p_body text) RETURNS jsonb
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

DROP FUNCTION ops._sms_reply_missed(text, timestamptz);
DROP FUNCTION ops._sms_reply_locked(text, timestamptz);
DROP FUNCTION ops._verification_throttle(text, text);
DROP TABLE ops.sms_reply_misses;
DROP INDEX ops.notification_outbox_verification;
DROP INDEX ops.contact_methods_address;
