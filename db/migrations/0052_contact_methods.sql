-- depends: 0051_bodies_without_history
-- Reaching people, the data: how each principal wants to be reached (contact methods), when
-- (notification rules), and the single-use answers a page carries (page tokens). The outbox learns
-- which principal and contact method a message is for, and that a page can be cancelled (the
-- incident was acknowledged or resolved before it was due) and delivered (a provider's callback).
--
-- Secrets stay out of readable rows: an address is read by its owner and admins only (operators
-- and auditors see ops.contact_address_redacted); the outbox names the contact method, never its
-- address (the dispatcher reads the address when it sends); verification codes and page tokens are
-- minted when a message is claimed and only their sha256 is stored.

CREATE TABLE ops.contact_methods (
    id uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    principal text NOT NULL REFERENCES ops.principals (name) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('email', 'sms', 'voice', 'slack_dm', 'webhook')),
    address text NOT NULL,
    label text CHECK (pg_catalog.length(label) BETWEEN 1 AND 100),
    secret text,
    verified_at timestamptz,
    code_hash text,
    code_expires_at timestamptz,
    code_attempts int NOT NULL DEFAULT 0 CHECK (code_attempts >= 0),
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by text NOT NULL,
    removed_at timestamptz,
    removed_by text,
    CONSTRAINT contact_methods_address_format CHECK (CASE kind
        -- a local part of the characters RFC 5322 allows unquoted, and a dotted host name
        WHEN 'email' THEN address ~ ('^[A-Za-z0-9.!#$%&''*+/=?^_`{|}~-]{1,64}@'
                                     || '[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$')
                          AND pg_catalog.length(address) <= 254
        WHEN 'sms' THEN address ~ '^\+[1-9][0-9]{7,14}$'
        WHEN 'voice' THEN address ~ '^\+[1-9][0-9]{7,14}$'
        WHEN 'slack_dm' THEN address ~ '^[UW][A-Z0-9]{2,40}$'
        WHEN 'webhook' THEN address ~ '^https?://' AND pg_catalog.length(address) <= 2048
    END),
    -- a webhook signs with its own secret; nothing else has one
    CONSTRAINT contact_methods_secret CHECK ((kind = 'webhook') = (secret IS NOT NULL)),
    CONSTRAINT contact_methods_removed CHECK ((removed_at IS NULL) = (removed_by IS NULL)),
    -- rules name a method together with its principal: a rule can only point at its owner's method
    CONSTRAINT contact_methods_id_principal UNIQUE (id, principal)
);
COMMENT ON TABLE ops.contact_methods IS
'How a principal can be reached: an e-mail address, an SMS or voice number (E.164), a Slack user (slack_dm) or '
'a webhook. email, sms and voice are paged only once verified (verified_at). Addresses are read by their owner '
'and admins only; everyone else sees ops.contact_address_redacted(kind, address). Removed methods are kept '
'(removed_at) so that ops.page_log still says how a past page went out.';
COMMENT ON COLUMN ops.contact_methods.address IS
'email: an address; sms, voice: + and 8-15 digits; slack_dm: a Slack user id (U... or W...); webhook: an https URL, '
'or http to a loopback host.';
COMMENT ON COLUMN ops.contact_methods.secret IS 'webhook only: the key its messages are signed with (shown once, when added).';
COMMENT ON COLUMN ops.contact_methods.verified_at IS
'When the owner entered the code sent through the method; slack_dm and webhook are verified when added.';
COMMENT ON COLUMN ops.contact_methods.code_hash IS
'sha256 (hex) of the verification code last sent; the code itself is minted when the message is claimed and never stored.';
COMMENT ON COLUMN ops.contact_methods.code_attempts IS 'Wrong codes entered since the last one was sent; at 5 a new code is needed.';
-- one live method per address and kind for a principal; a removed one may be added again
CREATE UNIQUE INDEX contact_methods_live_address ON ops.contact_methods (principal, kind, address)
WHERE removed_at IS NULL;

CREATE TABLE ops.notification_rules (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    principal text NOT NULL,
    contact_method uuid NOT NULL,
    delay_min int NOT NULL CHECK (delay_min BETWEEN 0 AND 1440),
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by text NOT NULL,
    FOREIGN KEY (contact_method, principal) REFERENCES ops.contact_methods (id, principal) ON DELETE CASCADE,
    UNIQUE (contact_method, delay_min)
);
COMMENT ON TABLE ops.notification_rules IS
'When a principal is paged, notify this contact method after delay_min minutes unless the incident was acknowledged '
'or resolved by then. A principal without a usable rule (a live, verified method) gets the Slack mention instead.';
CREATE INDEX notification_rules_principal ON ops.notification_rules (principal);

CREATE TABLE ops.page_tokens (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    incident_id uuid NOT NULL REFERENCES ops.incidents (id),
    principal text NOT NULL REFERENCES ops.principals (name) ON DELETE CASCADE,
    outbox_id bigint,
    channel text NOT NULL CHECK (channel IN ('link', 'sms', 'voice', 'slack_button')),
    short_code text CHECK (short_code ~ '^[0-9]{4,8}$'),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    used_action text CHECK (used_action IN ('acknowledge', 'resolve')),
    revoked_at timestamptz,
    CONSTRAINT page_tokens_used CHECK ((used_at IS NULL) = (used_action IS NULL)),
    CONSTRAINT page_tokens_expiry CHECK (expires_at > created_at)
);
COMMENT ON TABLE ops.page_tokens IS
'The answers a page carries: each acknowledges or resolves one incident as one principal, once, until expires_at. '
'Minted when its message is claimed; the token (>= 128 random bits) travels only in the message, and only its '
'sha256 is kept. An SMS also carries short_code, answered from the number it was sent to.';
COMMENT ON COLUMN ops.page_tokens.channel IS
'Where its answer comes from: link (GET/POST /p/<token> from an e-mail or SMS), sms (a reply with short_code), '
'voice (a key press in the call), slack_button (a Block Kit button of a direct message).';
COMMENT ON COLUMN ops.page_tokens.outbox_id IS 'The message that carried it (notification_outbox.id).';
COMMENT ON COLUMN ops.page_tokens.revoked_at IS 'Set when the contact method is removed or the principal disabled: refused since.';
CREATE INDEX page_tokens_incident ON ops.page_tokens (incident_id);
-- an SMS reply names its code; the number it comes from picks the principal
CREATE INDEX page_tokens_short_code ON ops.page_tokens (short_code) WHERE short_code IS NOT NULL AND used_at IS NULL;

-- principal and contact_method carry no foreign keys: the tick copies them from ops.notification_rules,
-- which holds both keys, and a check per row was a quarter of a tick that fans out 30k pages
ALTER TABLE ops.notification_outbox
ADD COLUMN principal text,
ADD COLUMN contact_method uuid,
ADD COLUMN cancelled_at timestamptz,
ADD COLUMN delivered_at timestamptz,
ADD COLUMN delivery_status text CHECK (pg_catalog.length(delivery_status) <= 40),
ADD COLUMN provider_id text CHECK (pg_catalog.length(provider_id) <= 200),
ALTER COLUMN event_id DROP NOT NULL,
ALTER COLUMN incident_id DROP NOT NULL,
DROP CONSTRAINT notification_outbox_status_check,
ADD CONSTRAINT notification_outbox_status_check CHECK (status IN ('pending', 'sending', 'sent', 'dead', 'cancelled')),
ADD CONSTRAINT notification_outbox_channel_check
CHECK (channel IN ('slack', 'email', 'sms', 'voice', 'slack_dm', 'webhook', 'slack_reply')),
-- a page names its event; a verification code (a contact method, no incident) and a Slack reply
-- (an incident, no event) are the only messages without one
ADD CONSTRAINT notification_outbox_purpose CHECK (
    (event_id IS NOT NULL AND incident_id IS NOT NULL)
    OR (event_id IS NULL AND incident_id IS NULL AND contact_method IS NOT NULL)
    OR (event_id IS NULL AND incident_id IS NOT NULL AND channel = 'slack_reply')
),
ADD CONSTRAINT notification_outbox_cancelled CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL));
ALTER TABLE ops.page_tokens ADD FOREIGN KEY (outbox_id) REFERENCES ops.notification_outbox (id) ON DELETE SET NULL;
COMMENT ON COLUMN ops.notification_outbox.channel IS
'slack: a channel post to the route''s or a policy step''s webhook; email, sms, voice, slack_dm, webhook: a page to '
'contact_method (its kind); slack_reply: replaces a Slack message through its response_url (webhook_url).';
COMMENT ON COLUMN ops.notification_outbox.principal IS 'Whom a page to a contact method is for.';
COMMENT ON COLUMN ops.notification_outbox.contact_method IS
'The contact method a page or a verification code goes to; its address is read when the message is sent.';
COMMENT ON COLUMN ops.notification_outbox.cancelled_at IS
'When the incident was acknowledged or resolved before this page was sent (status cancelled: it is never sent).';
COMMENT ON COLUMN ops.notification_outbox.delivered_at IS 'When the provider reported the message delivered (Twilio''s status callback).';
COMMENT ON COLUMN ops.notification_outbox.delivery_status IS 'The provider''s last reported status (delivered, failed, undelivered, ...).';
COMMENT ON COLUMN ops.notification_outbox.provider_id IS 'The provider''s id of the sent message (a Twilio SID), to match its callbacks.';
CREATE INDEX notification_outbox_incident_page ON ops.notification_outbox (incident_id)
WHERE contact_method IS NOT NULL AND status IN ('pending', 'sending');
CREATE UNIQUE INDEX notification_outbox_provider_id ON ops.notification_outbox (provider_id) WHERE provider_id IS NOT NULL;

COMMENT ON COLUMN ops.notification_outbox.status IS
'pending (waiting for next_attempt_at), sending (claimed, lease_until), sent, dead (gave up after '
'notify_max_attempts), cancelled (a page the incident no longer needs: never sent).';

-- how an address shows to those who may not read it: enough to tell two apart, not to reach anyone
CREATE FUNCTION ops.contact_address_redacted(p_kind text, p_address text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = ops, pg_temp
RETURN CASE p_kind
    WHEN 'email' THEN pg_catalog.left(p_address, 1) || '…@' || pg_catalog.split_part(p_address, '@', 2)
    WHEN 'sms' THEN '+…' || pg_catalog.right(p_address, 2)
    WHEN 'voice' THEN '+…' || pg_catalog.right(p_address, 2)
    WHEN 'slack_dm' THEN pg_catalog.left(p_address, 1) || '…' || pg_catalog.right(p_address, 2)
    WHEN 'webhook' THEN ops._audit_secret(p_address)
END;
COMMENT ON FUNCTION ops.contact_address_redacted(text, text) IS
'A contact address as everyone but its owner and admins sees it: b…@example.com, +…42, U…7Q, or a webhook''s '
'scheme and host with its sha256.';
REVOKE ALL ON FUNCTION ops.contact_address_redacted(text, text) FROM public;
-- operators may redact an address they were given, as the views do; the audit trigger redacts as its owner
GRANT EXECUTE ON FUNCTION ops.contact_address_redacted(text, text) TO opsguard_operator, opsguard_audit_writer;

-- the one place page tokens are made: by the claim that sends their message
CREATE FUNCTION ops._mint_page_token(
    p_outbox_id bigint, p_incident uuid, p_principal text, p_channel text, p_now timestamptz,
    p_short_code boolean DEFAULT FALSE, OUT r_token text, OUT r_short_code text
) RETURNS record
LANGUAGE plpgsql
SET search_path = ops, pg_temp
AS $$
BEGIN
    -- two version-4 UUIDs hold 244 random bits from the server's strong random source; base64url
    -- keeps an SMS link short (43 characters)
    r_token := pg_catalog.rtrim(pg_catalog.translate(pg_catalog.encode(pg_catalog.decode(pg_catalog.replace(
        pg_catalog.gen_random_uuid()::text || pg_catalog.gen_random_uuid()::text, '-', ''), 'hex'), 'base64'),
        '+/', '-_'), '=');
    IF p_short_code THEN
        -- the first 32 bits of a UUID are random; 6 digits, answered only from the paged number
        r_short_code := pg_catalog.lpad(((('x' || pg_catalog.left(pg_catalog.gen_random_uuid()::text, 8))::bit(32)::bigint)
                                         % 1000000)::text, 6, '0');
    END IF;
    INSERT INTO ops.page_tokens (token_hash, incident_id, principal, outbox_id, channel, short_code, created_at, expires_at)
    VALUES (pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(r_token, 'UTF8')), 'hex'), p_incident, p_principal,
            p_outbox_id, p_channel, r_short_code, p_now, p_now + INTERVAL '24 hours');
END;
$$;
COMMENT ON FUNCTION ops._mint_page_token(bigint, uuid, text, text, timestamptz, boolean) IS
'Internal: a new page token for one incident and principal, carried by outbox message p_outbox_id over p_channel '
'(link, sms, voice, slack_button); valid 24 hours. Returns the token (only its sha256 is stored) and, with '
'p_short_code, a 6-digit code for SMS replies.';
REVOKE ALL ON FUNCTION ops._mint_page_token(bigint, uuid, text, text, timestamptz, boolean) FROM public;

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
    WHEN p_table = 'contact_methods'
        THEN (p_row - 'secret' - 'code_hash')
             || pg_catalog.jsonb_build_object('address', ops.contact_address_redacted(p_row ->> 'kind', p_row ->> 'address'))
    ELSE p_row
END;
COMMENT ON FUNCTION ops._audit_redacted(text, jsonb) IS
'Internal: an audited row as the audit log keeps it, webhook URLs (settings of kind webhook, route_webhooks, '
'policy step targets) shown by ops._audit_secret, contact addresses by ops.contact_address_redacted, and a contact '
'method''s secret and code hash left out.';

-- audited like every configuration table; the actor is the caller of ops.add_contact_method & co.
CREATE TRIGGER contact_methods_audit_insert AFTER INSERT ON ops.contact_methods
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('id');
CREATE TRIGGER contact_methods_audit_update AFTER UPDATE ON ops.contact_methods
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('id');
CREATE TRIGGER contact_methods_audit_delete AFTER DELETE ON ops.contact_methods
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('id');
CREATE TRIGGER notification_rules_audit_insert AFTER INSERT ON ops.notification_rules
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('id');
CREATE TRIGGER notification_rules_audit_update AFTER UPDATE ON ops.notification_rules
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('id');
CREATE TRIGGER notification_rules_audit_delete AFTER DELETE ON ops.notification_rules
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('id');

-- operators read rules and tokens (hashes only) like every table (0019's default privileges);
-- contact_methods holds addresses and secrets, so they read it through ops.page_log, redacted
REVOKE SELECT ON ops.contact_methods FROM opsguard_operator;

-- part of the install, not an operator's change: the audit log of a fresh install stays empty
ALTER TABLE ops.permissions DISABLE TRIGGER permissions_audit_insert;
ALTER TABLE ops.role_permissions DISABLE TRIGGER role_permissions_audit_insert;
INSERT INTO ops.permissions (name, description) VALUES
('principals.write', 'Manage any principal''s contact methods and notification rules (each principal manages its own)');
INSERT INTO ops.role_permissions (role, permission) VALUES ('ops_admin', 'principals.write');
ALTER TABLE ops.permissions ENABLE TRIGGER permissions_audit_insert;
ALTER TABLE ops.role_permissions ENABLE TRIGGER role_permissions_audit_insert;

-- contact_methods is redacted like the other tables holding secrets
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
    v_redact boolean := TG_TABLE_NAME IN ('settings', 'route_webhooks', 'escalation_policy_steps', 'contact_methods');
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
