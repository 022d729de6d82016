-- depends: 0057_shared_rate_limits
-- Closing ways around the pager's limits:
-- * verification codes: one a minute and ten a day to an ADDRESS, not to a contact method; removing
--   a method and adding it again (or adding someone else's number to a second principal) queued a
--   fresh code and 5 fresh guesses at once, so anyone could flood a number or inbox with codes, or
--   guess a code 5 tries at a time as fast as they could re-add it;
-- * an SMS reply answers only from a VERIFIED number of the paged principal: an unverified one was
--   never shown to be theirs;
-- * short codes (6 digits) are guessed 5 times an hour at most per number: a sender who can make
--   an SMS appear to come from a victim's number could otherwise try all million codes;
-- * a webhook to a loopback host (plain http) is added by admins only: it aims the dispatcher's POSTs
--   at whatever listens on the host opsguard runs on.

-- the methods of one address, and their verification messages without reading every page in the outbox
CREATE INDEX contact_methods_address ON ops.contact_methods (kind, address);
CREATE INDEX notification_outbox_verification ON ops.notification_outbox (contact_method, created_at)
WHERE event_id IS NULL AND contact_method IS NOT NULL;

-- the messages carry the server's time, so the limit does too: a caller's p_now (an operator's, in
-- psql) could otherwise be a year ahead and find no code sent at all
CREATE FUNCTION ops._verification_throttle(p_kind text, p_address text) RETURNS void
LANGUAGE plpgsql
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_last timestamptz;
    v_today bigint;
    v_now timestamptz := pg_catalog.now();
BEGIN
    SELECT pg_catalog.max(o.created_at), pg_catalog.count(*) INTO v_last, v_today
    FROM ops.contact_methods AS c
    INNER JOIN ops.notification_outbox AS o
        ON o.contact_method = c.id AND o.event_id IS NULL AND o.created_at > v_now - INTERVAL '1 day'
    WHERE c.kind = p_kind AND c.address = p_address;
    IF v_last > v_now - INTERVAL '1 minute' THEN
        RAISE EXCEPTION 'a code was sent to this address less than a minute ago' USING ERRCODE = '55000',
            HINT = 'Wait a minute for it to arrive, then ask again.';
    END IF;
    IF v_today >= 10 THEN
        RAISE EXCEPTION '10 codes were sent to this address in the last 24 hours' USING ERRCODE = '55000',
            HINT = 'Use one of the codes already sent, or try again tomorrow.';
    END IF;
END;
$$;
COMMENT ON FUNCTION ops._verification_throttle(text, text) IS
'Internal: 55000 when a verification code went to this kind and address (any principal''s method, removed ones too) '
'less than a minute ago, or 10 did in the last 24 hours.';
REVOKE ALL ON FUNCTION ops._verification_throttle(text, text) FROM public;

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
    -- plain http reaches only this host, where unauthenticated admin APIs listen (Patroni's REST API
    -- reinitializes a replica on any POST); a principal managing itself may not aim the dispatcher there
    IF p_kind = 'webhook' AND p_address ~* '^http:' AND NOT ops.has_permission(p_actor, 'principals.write') THEN
        RAISE EXCEPTION 'only an admin may add a webhook to a loopback host' USING ERRCODE = '42501',
            HINT = 'Use an https URL, or ask a holder of principals.write to add it.';
    END IF;
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
        PERFORM ops._verification_throttle(p_kind, p_address);
        PERFORM ops._queue_verification(r_id, p_principal, p_kind);
    END IF;
END;
$$;

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
    -- nobody can make opsguard flood a number or an inbox, whichever method of whom asks, and at
    -- whatever p_now: the limit counts by the server's clock, as the queued messages are stamped
    PERFORM ops._verification_throttle(v_row.kind, v_row.address);
    v_prev := ops._act_as(p_actor);
    -- the old code stops working at once; the claim of the new message mints the next one
    UPDATE ops.contact_methods SET code_hash = NULL, code_expires_at = NULL WHERE id = p_id;
    PERFORM ops._act_as(v_prev);
    PERFORM ops._queue_verification(p_id, v_row.principal, v_row.kind);
END;
$$;
COMMENT ON FUNCTION ops.resend_verification(uuid, text, timestamptz) IS
'Sends a new verification code to an unverified email, sms or voice contact method (at most one a minute and 10 a '
'day to an address); the '
'previous code stops working. 55000 when verified or too soon; not yours: P0002.';

-- a wrong short code from a number; the number itself is an address, kept out of readable rows
CREATE TABLE ops.sms_reply_misses (
    number_hash text NOT NULL CHECK (number_hash ~ '^[0-9a-f]{64}$'),
    missed_at timestamptz NOT NULL
);
CREATE INDEX sms_reply_misses_number ON ops.sms_reply_misses (number_hash, missed_at);
COMMENT ON TABLE ops.sms_reply_misses IS
'SMS replies whose short code answered no page, by the sha256 of the number they came from: 5 within an hour '
'and that number''s replies are refused until the hour has passed. Rows older than an hour are deleted.';
-- nobody reads it but the functions below (the default privileges grant operators SELECT)
REVOKE ALL ON ops.sms_reply_misses FROM opsguard_operator;

CREATE FUNCTION ops._sms_reply_locked(p_from text, p_now timestamptz) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = ops, pg_temp
AS $$
    SELECT pg_catalog.count(*) >= 5 FROM ops.sms_reply_misses AS m
    WHERE m.number_hash = pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(coalesce(p_from, ''), 'UTF8')), 'hex')
      AND m.missed_at > p_now - INTERVAL '1 hour'
$$;
COMMENT ON FUNCTION ops._sms_reply_locked(text, timestamptz) IS
'Internal: true when 5 SMS replies from p_from named a wrong short code in the hour before p_now.';
REVOKE ALL ON FUNCTION ops._sms_reply_locked(text, timestamptz) FROM public;

CREATE FUNCTION ops._sms_reply_missed(p_from text, p_now timestamptz) RETURNS void
LANGUAGE sql
SET search_path = ops, pg_temp
AS $$
    DELETE FROM ops.sms_reply_misses WHERE missed_at <= p_now - INTERVAL '1 hour';
    INSERT INTO ops.sms_reply_misses (number_hash, missed_at)
    VALUES (pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(coalesce(p_from, ''), 'UTF8')), 'hex'), p_now);
$$;
COMMENT ON FUNCTION ops._sms_reply_missed(text, timestamptz) IS
'Internal: counts a wrong short code from p_from at p_now (ops._sms_reply_locked), forgetting misses over an hour old.';
REVOKE ALL ON FUNCTION ops._sms_reply_missed(text, timestamptz) FROM public;

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
    IF ops._sms_reply_locked(p_from, p_now) THEN
        RAISE EXCEPTION '5 wrong codes came from this number in the last hour' USING ERRCODE = '55000',
            HINT = 'Answer with the link in the SMS, in Slack, or with a signed POST /ops/incidents/<id>/ack.';
    END IF;
    -- an unused page first; a used one only to say it was used. Only a verified number speaks for its
    -- owner: an unverified one was never shown to be theirs
    SELECT t.* INTO v_token
    FROM ops.page_tokens AS t
    WHERE t.short_code = v_reply[2] AND t.revoked_at IS NULL
      AND EXISTS (SELECT 1 FROM ops.contact_methods AS c
                  WHERE c.principal = t.principal AND c.kind = 'sms' AND c.address = p_from AND c.removed_at IS NULL
                    AND c.verified_at IS NOT NULL)
    ORDER BY t.used_at IS NULL DESC, t.created_at DESC
    LIMIT 1
    FOR UPDATE OF t;
    RETURN ops._page_act(v_token, CASE v_reply[1] WHEN '4' THEN 'acknowledge' ELSE 'resolve' END, 'sms', p_now);
END;
$$;
COMMENT ON FUNCTION ops.page_sms_reply(text, text, timestamptz) IS
'Answers a page by SMS reply: p_body "4 <code>" acknowledges, "6 <code>" resolves, as the principal that owns a live, '
'verified sms contact method with the number p_from, with the code an SMS page carried (ops.page_action''s rules and '
'errors; another body: 22023; after 5 wrong codes from p_from within an hour, counted by POST /twilio/sms: 55000).';

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
    -- outside the block that rolled the reply back: a wrong code counts, or guesses would be free
    IF v_state = 'P0002' THEN
        PERFORM ops._sms_reply_missed(p_from, pg_catalog.now());
    END IF;
    -- answered in the SMS itself: Twilio sends a <Message> only with a 2xx, so a refusal is one too
    RETURN pg_catalog.jsonb_build_object(
        'ok', v_state IS NULL, 'error', CASE WHEN v_state IS NOT NULL THEN ops._page_refusal(v_state) END, 'text', v_text,
        'twiml', '<?xml version="1.0" encoding="UTF-8"?><Response><Message>' || ops._twiml_text(v_text)
                 || '</Message></Response>');
END;
$$;
COMMENT ON FUNCTION ops.api_twilio_sms(text, text) IS
'POST /twilio/sms (X-Twilio-Signature verified): ops.page_sms_reply from the number p_from; answers the TwiML '
'<Message> that tells the sender what happened or why not (ok false and error for scripts). A code that answers no '
'page counts against the number (5 an hour).';
