-- depends: 0054_page_answers
-- The senders of pages: e-mail over SMTP, SMS and voice through Twilio, Slack direct messages,
-- signed webhooks. A claimed message to a contact method comes back rendered for its channel, with
-- its answer tokens (or a verification code) minted as it is claimed; a finished one keeps its
-- provider's id (for delivery callbacks); a cancelled one stays cancelled. The SMTP server is three
-- settings; credentials stay in the dispatcher's environment.

ALTER TABLE ops.settings DROP CONSTRAINT settings_kind_check,
ADD CONSTRAINT settings_kind_check
CHECK (kind IN ('boolean', 'integer', 'cron', 'url', 'webhook', 'policy', 'host', 'email'));
COMMENT ON COLUMN ops.settings.kind IS
'How a value is validated: boolean, integer (min_value..max_value), cron (5 fields, empty = none), url, webhook '
'(https or loopback http), policy (an escalation policy name, empty = none), host (a host name or IP address, '
'empty = none), email (an e-mail address).';

INSERT INTO ops.settings (key, value, default_value, kind, min_value, max_value, description) VALUES
('smtp_host', '""', '""', 'host', NULL, NULL,
 'SMTP server e-mail pages go through (STARTTLS when it offers it). Empty: none; make run starts a local one.'),
('smtp_port', '587', '587', 'integer', 1, 65535, 'Port of smtp_host (587: submission with STARTTLS).'),
('smtp_from', '"opsguard@localhost"', '"opsguard@localhost"', 'email', NULL, NULL,
 'The From address of e-mail pages and verification codes.');

-- one check for the text kinds that are neither a URL nor a cron line, used by set_setting and by
-- the check of stored values alike
CREATE FUNCTION ops._check_setting_text(p_kind text, p_value text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = ops, pg_temp
AS $$
BEGIN
    IF p_kind = 'host' AND p_value !~ '^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$' THEN
        RAISE EXCEPTION '"%" is not a host name or IP address', p_value
            USING ERRCODE = '22023', HINT = 'A name such as smtp.example.com, or an address such as 192.0.2.25; no scheme or port.';
    END IF;
    IF p_kind = 'email' AND (pg_catalog.length(p_value) > 254 OR p_value !~ ('^[A-Za-z0-9.!#$%&''*+/=?^_`{|}~-]{1,64}@'
        || '[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$')) THEN
        RAISE EXCEPTION '"%" is not an e-mail address', p_value
            USING ERRCODE = '22023', HINT = 'Example: opsguard@example.com';
    END IF;
    RETURN p_value;
END;
$$;
COMMENT ON FUNCTION ops._check_setting_text(text, text) IS
'Internal: returns p_value when it is a valid setting of kind host (a host name or IP address) or email, else raises 22023.';
REVOKE ALL ON FUNCTION ops._check_setting_text(text, text) FROM public;

-- the new kinds host and email are checked by ops._check_setting_text
CREATE OR REPLACE FUNCTION ops.set_setting(p_key text, p_value text, p_actor text) RETURNS ops.settings
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    AS $_$
DECLARE
    v_def ops.settings;
    v_value jsonb;
    v_int bigint;
    v_prev text;
BEGIN
    IF p_key IS NULL OR p_value IS NULL OR coalesce(pg_catalog.btrim(p_actor), '') = '' THEN
        RAISE EXCEPTION 'set_setting needs a key, a value and an actor'
            USING ERRCODE = '22004', HINT = 'Example: SELECT ops.set_setting(''dry_run'', ''true'', ''alice'');';
    END IF;
    SELECT * INTO v_def FROM ops.settings WHERE key = p_key FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown setting "%"', p_key
            USING ERRCODE = '22023',
                  HINT = 'Known settings: ' || (SELECT pg_catalog.string_agg(key, ', ' ORDER BY key) FROM ops.settings);
    END IF;
    CASE v_def.kind
    WHEN 'boolean' THEN
        IF pg_catalog.lower(pg_catalog.btrim(p_value)) NOT IN ('true', 'false', 'on', 'off', 't', 'f', 'yes', 'no', '1', '0') THEN
            RAISE EXCEPTION 'setting % takes true or false, not "%"', p_key, p_value
                USING ERRCODE = '22023', HINT = 'true/false, on/off, yes/no or 1/0.';
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value)::boolean);
    WHEN 'integer' THEN
        IF p_value !~ '^\s*-?[0-9]{1,12}\s*$' THEN
            RAISE EXCEPTION 'setting % takes a whole number, not "%"', p_key, p_value
                USING ERRCODE = '22023', HINT = pg_catalog.format('A whole number from %s to %s: %s',
                                                                  v_def.min_value, v_def.max_value, v_def.description);
        END IF;
        v_int := p_value::bigint;
        IF v_int < v_def.min_value OR v_int > v_def.max_value THEN
            RAISE EXCEPTION 'setting % must be between % and %, not %', p_key, v_def.min_value, v_def.max_value, v_int
                USING ERRCODE = '22003', HINT = v_def.description;
        END IF;
        v_value := pg_catalog.to_jsonb(v_int);
    WHEN 'cron' THEN
        -- parsed in full, never matched against the clock: hour 99 is refused at any minute
        IF pg_catalog.btrim(p_value) <> '' THEN
            PERFORM ops._cron_sets(p_value);
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value));
    WHEN 'host', 'email' THEN
        IF pg_catalog.btrim(p_value) <> '' THEN
            PERFORM ops._check_setting_text(v_def.kind, pg_catalog.btrim(p_value));
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value));
    WHEN 'policy' THEN
        IF pg_catalog.btrim(p_value) <> ''
           AND NOT EXISTS (SELECT 1 FROM ops.escalation_policies WHERE name = pg_catalog.btrim(p_value)) THEN
            RAISE EXCEPTION 'setting % names no escalation policy: "%"', p_key, p_value
                USING ERRCODE = '22023',
                      HINT = coalesce('Policies: ' || (SELECT pg_catalog.string_agg(name, ', ' ORDER BY name)
                                                       FROM ops.escalation_policies) || '; ', '')
                             || 'create one with ops.create_policy, or pass an empty value for none.';
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value));
    ELSE
        IF pg_catalog.btrim(p_value) <> '' THEN
            PERFORM ops.validate_url(pg_catalog.btrim(p_value), v_def.kind);
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value));
    END CASE;

    v_prev := ops._act_as(p_actor);
    UPDATE ops.settings SET value = v_value, updated_at = pg_catalog.now(), updated_by = p_actor
    WHERE key = p_key
    RETURNING * INTO v_def;
    PERFORM ops._act_as(v_prev);
    -- dispatchers wait on LISTEN: a webhook set or a pause lifted has messages to send at once
    IF p_key IN ('slack_webhook_url', 'notify_paused') THEN
        PERFORM pg_catalog.pg_notify('ops_outbox', 'settings');
    END IF;
    RETURN v_def;
END;
$_$;

CREATE OR REPLACE FUNCTION ops._setting_problem(p_kind text, p_value jsonb, p_min integer, p_max integer) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'ops', 'pg_temp'
    AS $$
BEGIN
    IF p_value IS NULL THEN
        RETURN 'no value';
    END IF;
    CASE p_kind
    WHEN 'boolean' THEN
        IF pg_catalog.jsonb_typeof(p_value) <> 'boolean' THEN
            RETURN pg_catalog.format('%s is not true or false', p_value);
        END IF;
    WHEN 'integer' THEN
        IF pg_catalog.jsonb_typeof(p_value) <> 'number' OR p_value::numeric <> pg_catalog.trunc(p_value::numeric) THEN
            RETURN pg_catalog.format('%s is not a whole number', p_value);
        END IF;
        IF p_value::numeric < p_min OR p_value::numeric > p_max THEN
            RETURN pg_catalog.format('%s is outside %s-%s', p_value, p_min, p_max);
        END IF;
    WHEN 'cron', 'url', 'webhook', 'host', 'email' THEN
        IF pg_catalog.jsonb_typeof(p_value) <> 'string' THEN
            RETURN pg_catalog.format('%s is not a string', p_value);
        END IF;
        IF pg_catalog.btrim(p_value #>> '{}') <> '' THEN
            BEGIN
                IF p_kind = 'cron' THEN
                    PERFORM ops._cron_sets(p_value #>> '{}');
                ELSIF p_kind IN ('host', 'email') THEN
                    PERFORM ops._check_setting_text(p_kind, p_value #>> '{}');
                ELSE
                    PERFORM ops.validate_url(p_value #>> '{}', p_kind);
                END IF;
            EXCEPTION WHEN invalid_parameter_value THEN
                -- a webhook path is its secret
                RETURN CASE p_kind WHEN 'webhook' THEN ops._redact_url(SQLERRM, p_value #>> '{}') ELSE SQLERRM END;
            END;
        END IF;
    WHEN 'policy' THEN
        IF pg_catalog.jsonb_typeof(p_value) <> 'string' THEN
            RETURN pg_catalog.format('%s is not a string', p_value);
        END IF;
        IF p_value #>> '{}' <> '' AND NOT EXISTS (SELECT 1 FROM ops.escalation_policies WHERE name = p_value #>> '{}') THEN
            RETURN pg_catalog.format('no escalation policy is named %s', p_value);
        END IF;
    ELSE
        RETURN pg_catalog.format('unknown kind %s', p_kind);
    END CASE;
    RETURN NULL;
END;
$$;

-- text from a payload or an incident goes into HTML and TwiML (XML) escaped, like Slack text through ops.slack_escape
CREATE FUNCTION ops.html_escape(p_text text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = ops, pg_temp
RETURN pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
    p_text, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'), '''', '&#39;');
COMMENT ON FUNCTION ops.html_escape(text) IS
'Escapes &, <, >, " and '' for HTML and XML (an e-mail''s HTML part, a call''s TwiML).';
REVOKE ALL ON FUNCTION ops.html_escape(text) FROM public;
GRANT EXECUTE ON FUNCTION ops.html_escape(text) TO opsguard_operator;

-- the one line every page leads with: what escalated, how far, and the incident's own summary;
-- one line, whatever a sender put in a key or summary: it is an e-mail's Subject header (a line
-- break there would start a header of the sender's choosing) and the first line of an SMS
CREATE FUNCTION ops.page_summary(p_payload jsonb) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = ops, pg_temp
RETURN pg_catalog.regexp_replace(
    pg_catalog.format('[%s] %s escalated to level %s', pg_catalog.upper(p_payload ->> 'severity'),
                      p_payload ->> 'incident_key', p_payload ->> 'escalation_level')
    || coalesce(': ' || pg_catalog.left(nullif(p_payload ->> 'summary', ''), 200), ''),
    '[[:cntrl:]]+', ' ', 'g');
COMMENT ON FUNCTION ops.page_summary(jsonb) IS
'The first line of every page: [SEVERITY] key escalated to level N, and the incident summary (first 200 characters), '
'on one line (control characters, line breaks included, become a space).';
REVOKE ALL ON FUNCTION ops.page_summary(jsonb) FROM public;
GRANT EXECUTE ON FUNCTION ops.page_summary(jsonb) TO opsguard_operator;

CREATE FUNCTION ops.page_email(p_payload jsonb, p_link text) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = ops, pg_temp
RETURN pg_catalog.jsonb_build_object(
    'subject', ops.page_summary(p_payload),
    'text', ops.page_summary(p_payload) || E'\n\n'
            || pg_catalog.format(E'Severity: %s\nLevel: %s\nRoute: %s\nIncident: %s\n',
                                 p_payload ->> 'severity', p_payload ->> 'escalation_level',
                                 coalesce(p_payload ->> 'route', '-'), p_payload ->> 'incident_id')
            || coalesce(E'\nAcknowledge or resolve: ' || p_link || E'\n', ''),
    'html', '<!doctype html><html><body><p><strong>' || ops.html_escape(ops.page_summary(p_payload)) || '</strong></p>'
            || pg_catalog.format('<table><tr><td>Severity</td><td>%s</td></tr><tr><td>Level</td><td>%s</td></tr>'
                                 '<tr><td>Route</td><td>%s</td></tr><tr><td>Incident</td><td>%s</td></tr></table>',
                                 ops.html_escape(p_payload ->> 'severity'), ops.html_escape(p_payload ->> 'escalation_level'),
                                 ops.html_escape(coalesce(p_payload ->> 'route', '-')), ops.html_escape(p_payload ->> 'incident_id'))
            || coalesce('<p><a href="' || ops.html_escape(p_link) || '">Acknowledge or resolve</a></p>', '')
            || '</body></html>');
COMMENT ON FUNCTION ops.page_email(jsonb, text) IS
'An e-mail page for an outbox payload: subject, a plain-text and an HTML part (escaped) with summary, severity, level, '
'route and p_link, the /p/<token> page that acknowledges or resolves (none when p_link is NULL).';

CREATE FUNCTION ops.page_sms(p_payload jsonb, p_link text, p_code text) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = ops, pg_temp
RETURN pg_catalog.jsonb_build_object('body',
    ops.page_summary(p_payload)
    || pg_catalog.format(E'\nReply 4 %s to acknowledge, 6 %s to resolve.', p_code, p_code)
    || coalesce(E'\n' || p_link, ''));
COMMENT ON FUNCTION ops.page_sms(jsonb, text, text) IS
'An SMS page: the summary, "Reply 4 <code> to acknowledge, 6 <code> to resolve", and the /p/<token> link.';

CREATE FUNCTION ops.page_voice(p_payload jsonb, p_action text) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = ops, pg_temp
RETURN pg_catalog.jsonb_build_object('twiml',
    '<?xml version="1.0" encoding="UTF-8"?><Response>'
    || '<Gather numDigits="1" method="POST" action="' || ops.html_escape(p_action) || '">'
    || '<Say>opsguard page. ' || ops.html_escape(ops.page_summary(p_payload))
    || '. Press 4 to acknowledge, 6 to resolve.</Say></Gather>'
    || '<Say>No key was pressed. Goodbye.</Say></Response>');
COMMENT ON FUNCTION ops.page_voice(jsonb, text) IS
'A voice page as TwiML: reads the summary and gathers one key, posted to p_action (/twilio/voice?t=<token>): '
'4 acknowledges, 6 resolves.';

CREATE FUNCTION ops.page_slack_dm(p_payload jsonb, p_ack_token text, p_resolve_token text) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = ops, pg_temp
RETURN pg_catalog.jsonb_build_object(
    'text', ops.slack_escape(ops.page_summary(p_payload)),
    'blocks', pg_catalog.jsonb_build_array(
        pg_catalog.jsonb_build_object('type', 'section', 'text', pg_catalog.jsonb_build_object(
            'type', 'mrkdwn', 'text', ops.slack_escape(ops.page_summary(p_payload))
                                      || coalesce(E'\n<' || pg_catalog.replace(ops.slack_escape(p_payload ->> 'link'), '|', '%7C')
                                                  || '|Open the incident>', ''))),
        pg_catalog.jsonb_build_object('type', 'actions', 'block_id', 'page', 'elements', pg_catalog.jsonb_build_array(
            pg_catalog.jsonb_build_object('type', 'button', 'action_id', 'ack', 'style', 'primary', 'value', p_ack_token,
                                          'text', pg_catalog.jsonb_build_object('type', 'plain_text', 'text', 'Acknowledge')),
            pg_catalog.jsonb_build_object('type', 'button', 'action_id', 'resolve', 'style', 'danger', 'value', p_resolve_token,
                                          'text', pg_catalog.jsonb_build_object('type', 'plain_text', 'text', 'Resolve'))))));
COMMENT ON FUNCTION ops.page_slack_dm(jsonb, text, text) IS
'A Slack direct-message page: text (escaped) and Block Kit blocks with the buttons Acknowledge (action_id ack) and '
'Resolve (action_id resolve), each carrying its slack_button token as value.';

CREATE FUNCTION ops.page_webhook(p_payload jsonb, p_principal text) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = ops, pg_temp
RETURN pg_catalog.jsonb_build_object(
    'event', 'incident.paged',
    'incident', pg_catalog.jsonb_build_object(
        'id', p_payload -> 'incident_id', 'key', p_payload -> 'incident_key', 'route', p_payload -> 'route',
        'severity', p_payload -> 'severity', 'summary', p_payload -> 'summary', 'link', p_payload -> 'link',
        'escalated_at', p_payload -> 'escalated_at'),
    'level', p_payload -> 'escalation_level',
    'principal', p_principal);
COMMENT ON FUNCTION ops.page_webhook(jsonb, text) IS
'The JSON body of a webhook page: {"event": "incident.paged", "incident": {...}, "level", "principal"}; the '
'dispatcher signs it with the method''s secret.';

CREATE FUNCTION ops.verification_message(p_kind text, p_code text) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = ops, pg_temp
RETURN CASE p_kind
    WHEN 'email' THEN pg_catalog.jsonb_build_object(
        'subject', 'Your opsguard verification code',
        'text', pg_catalog.format(E'Your opsguard verification code is %s. It expires in 15 minutes.\n', p_code),
        'html', pg_catalog.format('<p>Your opsguard verification code is <strong>%s</strong>. It expires in 15 minutes.</p>',
                                  p_code))
    WHEN 'sms' THEN pg_catalog.jsonb_build_object(
        'body', pg_catalog.format('Your opsguard verification code is %s. It expires in 15 minutes.', p_code))
    WHEN 'voice' THEN pg_catalog.jsonb_build_object(
        'twiml', '<?xml version="1.0" encoding="UTF-8"?><Response>'
                 || pg_catalog.repeat(pg_catalog.format('<Say>Your opsguard verification code is %s.</Say><Pause length="1"/>',
                                                        pg_catalog.array_to_string(pg_catalog.regexp_split_to_array(p_code, ''), ' ')), 2)
                 || '</Response>')
END;
COMMENT ON FUNCTION ops.verification_message(text, text) IS
'The message that carries a contact method''s verification code: e-mail (subject, text, html), sms (body) or voice '
'(TwiML reading the digits twice).';
REVOKE ALL ON FUNCTION ops.page_email(jsonb, text), ops.page_sms(jsonb, text, text), ops.page_voice(jsonb, text),
ops.page_slack_dm(jsonb, text, text), ops.page_webhook(jsonb, text), ops.verification_message(text, text) FROM public;
-- pure renderers: an operator may preview what a page says
GRANT EXECUTE ON FUNCTION ops.page_email(jsonb, text), ops.page_sms(jsonb, text, text), ops.page_voice(jsonb, text),
ops.page_slack_dm(jsonb, text, text), ops.page_webhook(jsonb, text), ops.verification_message(text, text)
TO opsguard_operator;

-- a verification code, minted as its message is claimed: only its sha256 is kept, and a new one
-- replaces the last (15 minutes, 5 tries)
CREATE FUNCTION ops._mint_verification_code(p_contact_method uuid, p_now timestamptz) RETURNS text
LANGUAGE plpgsql
SET search_path = ops, pg_temp
AS $$
DECLARE
    -- the first 32 bits of a version-4 UUID are random
    v_code text := pg_catalog.lpad(((('x' || pg_catalog.left(pg_catalog.gen_random_uuid()::text, 8))::bit(32)::bigint)
                                    % 1000000)::text, 6, '0');
BEGIN
    UPDATE ops.contact_methods
    SET code_hash = pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(v_code, 'UTF8')), 'hex'),
        code_expires_at = p_now + INTERVAL '15 minutes', code_attempts = 0
    WHERE id = p_contact_method;
    RETURN v_code;
END;
$$;
COMMENT ON FUNCTION ops._mint_verification_code(uuid, timestamptz) IS
'Internal: a new 6-digit verification code for a contact method (its sha256 stored in code_hash, valid 15 minutes, '
'attempts reset); the code itself travels only in the claimed message.';
REVOKE ALL ON FUNCTION ops._mint_verification_code(uuid, timestamptz) FROM public;

-- what a claimed message to a contact method says, with the tokens its answers need minted now
CREATE FUNCTION ops._contact_message(
    p_outbox ops.notification_outbox, p_method ops.contact_methods, p_payload jsonb, p_now timestamptz
) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_base text := nullif(pg_catalog.rtrim(ops.setting('app_base_url') #>> '{}', '/'), '');
    v_link record;
    v_button record;
    -- an e-mail names its sender too (smtp_from); the other channels' senders are the dispatcher's
    v_to jsonb := pg_catalog.jsonb_build_object('to', p_method.address)
                  || CASE WHEN p_method.kind = 'email' THEN pg_catalog.jsonb_build_object('from', ops.setting('smtp_from') #>> '{}')
                          -- Twilio reports delivery there (it matches provider_id)
                          WHEN v_base IS NOT NULL THEN pg_catalog.jsonb_build_object('status_callback', v_base || '/twilio/status')
                          ELSE '{}' END;
BEGIN
    IF p_payload ->> 'type' = 'verify' THEN
        RETURN ops.verification_message(p_method.kind, ops._mint_verification_code(p_method.id, p_now)) || v_to;
    END IF;
    CASE p_method.kind
    WHEN 'email', 'sms' THEN
        SELECT * INTO v_link FROM ops._mint_page_token(p_outbox.id, p_outbox.incident_id, p_outbox.principal,
            CASE p_method.kind WHEN 'sms' THEN 'sms' ELSE 'link' END, p_now, p_method.kind = 'sms');
        RETURN CASE p_method.kind
            WHEN 'email' THEN ops.page_email(p_payload, v_base || '/p/' || v_link.r_token)
            ELSE ops.page_sms(p_payload, v_base || '/p/' || v_link.r_token, v_link.r_short_code)
        END || v_to;
    WHEN 'voice' THEN
        SELECT * INTO v_link FROM ops._mint_page_token(p_outbox.id, p_outbox.incident_id, p_outbox.principal, 'voice', p_now);
        RETURN ops.page_voice(p_payload, coalesce(v_base, '') || '/twilio/voice?t=' || v_link.r_token) || v_to;
    WHEN 'slack_dm' THEN
        SELECT * INTO v_link FROM ops._mint_page_token(p_outbox.id, p_outbox.incident_id, p_outbox.principal, 'slack_button', p_now);
        SELECT * INTO v_button FROM ops._mint_page_token(p_outbox.id, p_outbox.incident_id, p_outbox.principal, 'slack_button', p_now);
        RETURN ops.page_slack_dm(p_payload, v_link.r_token, v_button.r_token)
               || pg_catalog.jsonb_build_object('channel', p_method.address);
    ELSE
        RETURN pg_catalog.jsonb_build_object('body', ops.page_webhook(p_payload, p_outbox.principal), 'secret', p_method.secret);
    END CASE;
END;
$$;
COMMENT ON FUNCTION ops._contact_message(ops.notification_outbox, ops.contact_methods, jsonb, timestamptz) IS
'Internal: the message a claimed outbox row sends to its contact method, by kind: email {to, from, subject, text, html}, '
'sms {to, body, status_callback}, voice {to, twiml, status_callback}, slack_dm {channel, text, blocks}, '
'webhook {body, secret}. A page mints its '
'answer tokens (ops._mint_page_token), a verification message its code (ops._mint_verification_code).';
REVOKE ALL ON FUNCTION ops._contact_message(ops.notification_outbox, ops.contact_methods, jsonb, timestamptz) FROM public;

-- the rule for "is this page still wanted": its method is not removed and its incident is neither
-- acknowledged nor resolved; the claim and the check right before a send both ask it
CREATE FUNCTION ops._page_wanted(p_contact_method uuid, p_incident uuid) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = ops, pg_temp
RETURN p_contact_method IS NULL
       OR (NOT EXISTS (SELECT 1 FROM ops.contact_methods AS m WHERE m.id = p_contact_method AND m.removed_at IS NOT NULL)  -- noqa: RF03
           AND NOT EXISTS (SELECT 1 FROM ops.incidents AS i WHERE i.id = p_incident AND i.status <> 'open'));  -- noqa: RF03
COMMENT ON FUNCTION ops._page_wanted(uuid, uuid) IS
'Internal: false for a message to a contact method that was removed, or a page whose incident was acknowledged or '
'resolved: such a message is cancelled, never sent.';
REVOKE ALL ON FUNCTION ops._page_wanted(uuid, uuid) FROM public;

-- the claim returns each message's channel and, for a contact method, the message rendered for it:
-- a new result column is a new signature
DROP FUNCTION ops.claim_notifications(text, integer, timestamptz);
CREATE FUNCTION ops.claim_notifications(p_worker text, p_limit integer DEFAULT 100, p_now timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE (
    id bigint, claim_id bigint, dedup_key text, attempt integer, channel text, webhook_url text, message jsonb,
    lease_until timestamptz, lease_s integer
)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_global text := nullif(ops.setting('slack_webhook_url') #>> '{}', '');
    v_smtp text := nullif(ops.setting('smtp_host') #>> '{}', '');
    v_lease_s int := ops.setting('notify_lease_s')::int;
    v_max int := ops.setting('notify_max_attempts')::int;
    v_claim bigint;
    v_ids bigint[];
BEGIN
    IF coalesce(pg_catalog.btrim(p_worker), '') = '' OR p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000
       OR p_now IS NULL THEN
        RAISE EXCEPTION 'claim_notifications needs a worker name, a limit of 1 to 1000 and a time'
            USING ERRCODE = '22023', HINT = 'SELECT * FROM ops.claim_notifications(''host:pid'', 100);';
    END IF;

    WITH lost AS (
        SELECT o.id, o.claimed_by, o.attempts
        FROM ops.notification_outbox AS o
        WHERE o.status = 'sending' AND o.lease_until <= p_now
        FOR UPDATE SKIP LOCKED
    ),
    back AS (
        UPDATE ops.notification_outbox AS o
        SET status = CASE WHEN l.attempts >= v_max THEN 'dead' ELSE 'pending' END,
            next_attempt_at = p_now,
            last_error = pg_catalog.format('lease expired: dispatcher %s stopped before reporting', l.claimed_by),
            claimed_by = NULL, claim_id = NULL, lease_until = NULL
        FROM lost AS l
        WHERE o.id = l.id
        RETURNING o.id
    )
    INSERT INTO ops.notification_attempts (outbox_id, attempt, worker, outcome, error, finished_at)
    SELECT l.id, l.attempts, l.claimed_by, 'lost', 'lease expired before the dispatcher reported', p_now
    FROM lost AS l INNER JOIN back AS b ON l.id = b.id;

    IF ops.setting('notify_paused')::boolean THEN
        RETURN;
    END IF;
    PERFORM ops._cancel_unwanted_pages(p_now);
    v_claim := pg_catalog.nextval('ops.notification_claim_seq');
    WITH due AS (
        SELECT o.id
        FROM ops.notification_outbox AS o
        LEFT JOIN ops.route_webhooks AS w ON o.route = w.route
        WHERE o.status = 'pending' AND o.next_attempt_at <= p_now
          -- a contact method is reached by its address (an e-mail through smtp_host); a channel post
          -- needs a webhook to go to
          AND ((o.contact_method IS NOT NULL AND (o.channel <> 'email' OR v_smtp IS NOT NULL)) OR o.webhook_url IS NOT NULL
               OR (o.channel = 'slack' AND (w.webhook_url IS NOT NULL OR v_global IS NOT NULL)))
        ORDER BY o.next_attempt_at, o.id
        LIMIT p_limit
        FOR UPDATE OF o SKIP LOCKED
    ),
    claimed AS (
        UPDATE ops.notification_outbox AS o
        SET status = 'sending', attempts = o.attempts + 1, claimed_by = p_worker, claim_id = v_claim,
            lease_until = p_now + pg_catalog.make_interval(secs => v_lease_s)
        FROM due AS d
        WHERE o.id = d.id
        RETURNING o.id
    )
    SELECT pg_catalog.array_agg(c.id) INTO v_ids FROM claimed AS c;

    RETURN QUERY
    SELECT o.id, o.claim_id, o.dedup_key, o.attempts, o.channel,
           -- the webhook of a policy step first (the row itself), else the route webhook, else the global one
           CASE WHEN o.contact_method IS NOT NULL
                    THEN CASE m.kind WHEN 'webhook' THEN m.address
                                     WHEN 'email' THEN pg_catalog.format('smtp://%s:%s', v_smtp, ops.setting('smtp_port')) END
                WHEN o.channel = 'slack' THEN coalesce(o.webhook_url, w.webhook_url, v_global)
                ELSE o.webhook_url END,
           CASE WHEN o.contact_method IS NOT NULL
                    THEN ops._contact_message(o, m, o.payload || pg_catalog.jsonb_build_object('summary', i.summary), p_now)
                WHEN o.channel = 'slack' THEN ops.slack_message(o.payload)
                ELSE o.payload END,
           o.lease_until, v_lease_s
    FROM ops.notification_outbox AS o
    LEFT JOIN ops.route_webhooks AS w ON o.route = w.route
    LEFT JOIN ops.contact_methods AS m ON o.contact_method = m.id
    LEFT JOIN ops.incidents AS i ON o.incident_id = i.id
    WHERE o.id = ANY(v_ids)
    ORDER BY o.next_attempt_at, o.id;
END;
$$;
COMMENT ON FUNCTION ops.claim_notifications(text, integer, timestamptz) IS
'Dispatchers only: claims due messages (status sending, lease notify_lease_s) with their channel, where each goes now '
'and what it says: a channel post (slack) to the message''s own policy webhook, else the route''s, else '
'slack_webhook_url, with the Slack body; a message to a contact method rendered for its kind (ops._contact_message, '
'minting its answer tokens or verification code; webhook_url is a webhook method''s address, or smtp://smtp_host:smtp_port '
'for an e-mail, which waits while smtp_host is empty); a slack_reply to its '
'response_url. Pages no longer wanted are cancelled first (ops._cancel_unwanted_pages). Expired leases first go back '
'to pending. Paused (notify_paused): claims nothing.';
REVOKE ALL ON FUNCTION ops.claim_notifications(text, integer, timestamptz) FROM public;
-- the dispatcher's one way to take work; it renders addresses and secrets, so only the dispatcher
GRANT EXECUTE ON FUNCTION ops.claim_notifications(text, integer, timestamptz) TO opsguard_dispatcher;

CREATE FUNCTION ops._cancel_unwanted_pages(p_now timestamptz) RETURNS integer
LANGUAGE sql
SET search_path = ops, pg_temp
AS $$
    WITH unwanted AS (
        SELECT o.id
        FROM ops.notification_outbox AS o
        WHERE o.status = 'pending' AND o.next_attempt_at <= p_now AND o.contact_method IS NOT NULL
          AND NOT ops._page_wanted(o.contact_method, o.incident_id)
        FOR UPDATE SKIP LOCKED
    ),
    done AS (
        UPDATE ops.notification_outbox AS o SET status = 'cancelled', cancelled_at = p_now
        FROM unwanted AS u WHERE o.id = u.id
        RETURNING 1
    )
    SELECT pg_catalog.count(*)::int FROM done;
$$;
COMMENT ON FUNCTION ops._cancel_unwanted_pages(timestamptz) IS
'Internal, a step of the claim: due messages to a removed contact method, or pages of an incident acknowledged or '
'resolved meanwhile, become cancelled instead of being claimed.';
REVOKE ALL ON FUNCTION ops._cancel_unwanted_pages(timestamptz) FROM public;

-- the provider's id is kept (Twilio's status callbacks name it), a cancelled message stays
-- cancelled whatever a dispatcher reports, and a dispatcher reports "cancelled" for a claimed page
-- it found no longer wanted right before sending it
CREATE OR REPLACE FUNCTION ops.finish_notifications(p_worker text, p_results jsonb, p_now timestamptz DEFAULT pg_catalog.now())
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_max int := ops.setting('notify_max_attempts')::int;
    v_base float8 := ops.setting('notify_backoff_ms')::float8;
    v_cap float8 := ops.setting('notify_backoff_max_ms')::float8;
    v_result jsonb;
BEGIN
    IF coalesce(pg_catalog.btrim(p_worker), '') = '' OR pg_catalog.jsonb_typeof(p_results) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'finish_notifications needs a worker name and an array of results'
            USING ERRCODE = '22023', HINT = '[{"id": 1, "claim": 7, "outcome": "sent", "status": 200, "ms": 12.5}]';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(p_results) AS e
               WHERE e ->> 'outcome' IS NULL OR e ->> 'outcome' NOT IN ('sent', 'failed', 'skipped', 'cancelled')
                  OR e ->> 'id' IS NULL OR e ->> 'claim' IS NULL) THEN
        RAISE EXCEPTION 'each result needs id, claim and an outcome of sent, failed, skipped or cancelled'
            USING ERRCODE = '22023';
    END IF;

    WITH r AS (
        SELECT x.*
        FROM pg_catalog.jsonb_to_recordset(p_results) AS x (
            id bigint, claim bigint, outcome text, status integer, error text, retry_after_s float8, ms numeric,
            provider_id text
        )
    ),
    upd AS (
        UPDATE ops.notification_outbox AS o
        SET status = CASE
                WHEN r.outcome IN ('sent', 'cancelled') THEN r.outcome
                WHEN r.outcome = 'skipped' OR o.attempts < v_max THEN 'pending'
                ELSE 'dead' END,
            attempts = o.attempts - (r.outcome IN ('skipped', 'cancelled'))::int,
            sent_at = CASE WHEN r.outcome = 'sent' THEN p_now END,
            cancelled_at = CASE WHEN r.outcome = 'cancelled' THEN p_now END,
            provider_id = CASE WHEN r.outcome = 'sent' THEN left(r.provider_id, 200) ELSE o.provider_id END,
            next_attempt_at = CASE
                WHEN r.outcome = 'failed' THEN p_now + pg_catalog.make_interval(secs => greatest(
                    -- exponential, capped, with "equal jitter": half fixed, half random
                    least(v_cap, v_base * 2 ^ (o.attempts - 1)) * (0.5 + random() * 0.5) / 1000,
                    coalesce(r.retry_after_s, 0)))
                ELSE p_now END,
            last_error = CASE WHEN r.outcome = 'failed' THEN left(r.error, 500) ELSE o.last_error END,
            last_http_status = coalesce(r.status, CASE WHEN r.outcome IN ('skipped', 'cancelled') THEN o.last_http_status END),
            claimed_by = NULL, claim_id = NULL, lease_until = NULL
        FROM r
        WHERE o.id = r.id
          AND ((o.status = 'sending' AND o.claim_id = r.claim) OR (r.outcome = 'sent' AND o.status = 'pending'))
        RETURNING o.id, o.status, o.attempts
    ),
    -- cancelled while it was being sent: it stays cancelled, and keeps when it went out and the
    -- provider's id, so a delivery callback still finds it
    late AS (
        UPDATE ops.notification_outbox AS o
        SET sent_at = p_now, provider_id = left(r.provider_id, 200), claimed_by = NULL, claim_id = NULL, lease_until = NULL
        FROM r
        WHERE o.id = r.id AND o.status = 'cancelled' AND o.claim_id = r.claim AND r.outcome = 'sent'
        RETURNING o.id
    ),
    logged AS (
        INSERT INTO ops.notification_attempts (outbox_id, attempt, worker, outcome, http_status, error, elapsed_ms, finished_at)
        SELECT r.id, coalesce(u.attempts, (SELECT o.attempts FROM ops.notification_outbox AS o WHERE o.id = r.id)), p_worker,
               r.outcome, r.status, left(r.error, 500), r.ms, p_now
        FROM r
        LEFT JOIN upd AS u ON r.id = u.id
        WHERE r.outcome IN ('sent', 'failed') AND EXISTS (SELECT 1 FROM ops.notification_outbox AS o WHERE o.id = r.id)
        RETURNING 1
    )
    SELECT pg_catalog.jsonb_build_object(
        'sent', count(*) FILTER (WHERE u.status = 'sent'),
        'retrying', count(*) FILTER (WHERE u.status = 'pending' AND r.outcome = 'failed'),
        'dead', count(*) FILTER (WHERE u.status = 'dead'),
        'released', count(*) FILTER (WHERE r.outcome = 'skipped' AND u.id IS NOT NULL),
        -- a page cancelled before the dispatcher's last check is reported cancelled: no surprise
        'cancelled', count(*) FILTER (WHERE u.status = 'cancelled' OR l.id IS NOT NULL OR (u.id IS NULL AND r.outcome = 'cancelled')),
        'stale', count(*) FILTER (WHERE u.id IS NULL AND l.id IS NULL AND r.outcome <> 'cancelled'),
        'logged', (SELECT count(*) FROM logged))
    INTO v_result
    FROM r LEFT JOIN upd AS u ON r.id = u.id LEFT JOIN late AS l ON r.id = l.id;
    RETURN v_result;
END;
$$;
COMMENT ON FUNCTION ops.finish_notifications(text, jsonb, timestamptz) IS
'Dispatchers only: records a batch''s outcomes. sent: with the provider''s id (provider_id: a Twilio SID, an SMTP '
'Message-ID, a Slack ts); failed: retried after notify_backoff_ms * 2^(attempt-1) (capped, jittered, at least '
'Retry-After), dead after notify_max_attempts; cancelled: a page found no longer wanted right before its send. A '
'cancelled message stays cancelled whatever is reported. Returns {"sent", "retrying", "dead", "released", '
'"cancelled", "stale", "logged"}.';

CREATE FUNCTION ops.notification_still_wanted(p_ids bigint[]) RETURNS SETOF bigint
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
    SELECT o.id
    FROM ops.notification_outbox AS o
    WHERE o.id = ANY(p_ids) AND o.status = 'sending' AND ops._page_wanted(o.contact_method, o.incident_id);
$$;
COMMENT ON FUNCTION ops.notification_still_wanted(bigint[]) IS
'Dispatchers only: of the claimed messages p_ids, those still to be sent. Asked right before sending: a page whose '
'incident was acknowledged or resolved (or whose contact method was removed) since the claim is left out, and the '
'dispatcher reports it cancelled.';
REVOKE ALL ON FUNCTION ops.notification_still_wanted(bigint[]) FROM public;
GRANT EXECUTE ON FUNCTION ops.notification_still_wanted(bigint[]) TO opsguard_dispatcher;
