-- depends: 0052_contact_methods
-- Reaching people, the behaviour: a principal adds and verifies contact methods and sets
-- notification rules; a page fans out to one outbox message per usable rule (a live, verified
-- method) at the page time plus the rule's delay; acknowledging or resolving the incident, by any
-- path, cancels what was not yet sent; ops.page_log tells how each page went.

-- who may manage a principal's methods and rules: the principal itself, or a holder of principals.write
CREATE FUNCTION ops._may_manage(p_principal text, p_actor text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = ops, pg_temp
AS $$
BEGIN
    PERFORM ops._require_actor(p_actor);
    IF p_actor = p_principal AND EXISTS (SELECT 1 FROM ops.principals WHERE name = p_principal AND NOT disabled) THEN
        RETURN;
    END IF;
    IF NOT ops.has_permission(p_actor, 'principals.write') THEN
        RAISE EXCEPTION '% may not manage the contact methods of %', pg_catalog.left(p_actor, 100),
                        pg_catalog.left(p_principal, 100)
            USING ERRCODE = '42501',
                  HINT = 'A principal manages its own; principals.write (ops_admin) manages anyone''s.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ops.principals WHERE name = p_principal AND NOT disabled) THEN
        RAISE EXCEPTION 'not an enabled principal: "%"', pg_catalog.left(p_principal, 100)
            USING ERRCODE = '23503', HINT = 'SELECT name FROM ops.principals WHERE NOT disabled;';
    END IF;
END;
$$;
COMMENT ON FUNCTION ops._may_manage(text, text) IS
'Internal: raises 42501 unless p_actor is the enabled principal p_principal itself or holds principals.write.';
REVOKE ALL ON FUNCTION ops._may_manage(text, text) FROM public;

-- what the table's CHECK (contact_methods_address_format, the one definition of a well-formed
-- address) cannot say: an unknown kind, a missing address, a webhook to plain http off loopback
CREATE FUNCTION ops._check_contact_address(p_kind text, p_address text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = ops, pg_temp
AS $$
BEGIN
    IF p_kind IS NULL OR p_kind NOT IN ('email', 'sms', 'voice', 'slack_dm', 'webhook') THEN
        RAISE EXCEPTION 'unknown contact method kind "%"', pg_catalog.left(p_kind, 40)
            USING ERRCODE = '22023', HINT = 'One of email, sms, voice, slack_dm, webhook.';
    END IF;
    IF p_address IS NULL THEN
        RAISE EXCEPTION 'a contact method needs an address' USING ERRCODE = '22004';
    END IF;
    IF p_kind = 'webhook' THEN
        PERFORM ops.validate_url(p_address, 'webhook');
    END IF;
END;
$$;
COMMENT ON FUNCTION ops._check_contact_address(text, text) IS
'Internal: raises 22023 for an unknown contact method kind or a webhook ops.validate_url(url, ''webhook'') refuses; '
'the address''s format is the table''s CHECK, which ops._add_contact_method reports by kind.';
REVOKE ALL ON FUNCTION ops._check_contact_address(text, text) FROM public;

-- the table's CHECK refused an address: say what a good one of that kind looks like
CREATE FUNCTION ops._contact_address_refused(p_kind text, p_address text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = ops, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION '"%" is not %', pg_catalog.left(p_address, 80), CASE p_kind
        WHEN 'email' THEN 'an e-mail address' WHEN 'slack_dm' THEN 'a Slack user id'
        WHEN 'webhook' THEN 'a webhook URL of at most 2048 characters' ELSE 'an E.164 number' END
        USING ERRCODE = '22023', HINT = CASE p_kind
            WHEN 'email' THEN 'e.g. bob@example.com: no spaces, no display name, a dotted host, at most 254 characters.'
            WHEN 'slack_dm' THEN 'A member id as Slack shows it in the profile: U024BE7LH (not @name).'
            WHEN 'webhook' THEN 'https://host/path, or http to a loopback host.'
            ELSE '+, the country code and the number, 8 to 15 digits, no spaces: e.g. +14155550142.' END;
END;
$$;
COMMENT ON FUNCTION ops._contact_address_refused(text, text) IS
'Internal: raises 22023 saying what an address of kind p_kind must look like (after the table''s CHECK refused it).';
REVOKE ALL ON FUNCTION ops._contact_address_refused(text, text) FROM public;

-- a verification code goes out through the method itself; the claim mints the code
CREATE FUNCTION ops._queue_verification(p_id uuid, p_principal text, p_kind text) RETURNS void
LANGUAGE sql
SET search_path = ops, pg_temp
AS $$
    INSERT INTO ops.notification_outbox (dedup_key, channel, principal, contact_method, payload)
    VALUES ('verify:' || p_id || ':' || (EXTRACT(epoch FROM pg_catalog.clock_timestamp()) * 1000000)::bigint,
            p_kind, p_principal, p_id, '{"type": "verify"}');
$$;
COMMENT ON FUNCTION ops._queue_verification(uuid, text, text) IS
'Internal: queues a verification message to contact method p_id (the claim mints its 6-digit code).';
REVOKE ALL ON FUNCTION ops._queue_verification(uuid, text, text) FROM public;

CREATE FUNCTION ops._add_contact_method(
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
REVOKE ALL ON FUNCTION ops._add_contact_method(text, text, text, text, text) FROM public;

CREATE FUNCTION ops.add_contact_method(
    p_principal text, p_kind text, p_address text, p_actor text, p_label text DEFAULT NULL
) RETURNS uuid
LANGUAGE sql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
    SELECT (ops._add_contact_method(p_principal, p_kind, p_address, p_actor, p_label)).r_id;
$$;
COMMENT ON FUNCTION ops.add_contact_method(text, text, text, text, text) IS
'Adds a way to reach p_principal (by p_actor: the principal itself or a holder of principals.write): email, sms, '
'voice (E.164), slack_dm (a Slack user id) or webhook (https, or http to loopback). email, sms and voice start '
'unverified and are sent a 6-digit code: ops.verify_contact_method. A webhook''s signing secret is shown only by '
'ops.add_webhook_contact_method. Bad address: 22023; not allowed: 42501; the same live address twice: 23505.';
REVOKE ALL ON FUNCTION ops.add_contact_method(text, text, text, text, text) FROM public;
GRANT EXECUTE ON FUNCTION ops.add_contact_method(text, text, text, text, text) TO opsguard_operator;

CREATE FUNCTION ops.add_webhook_contact_method(
    p_principal text, p_address text, p_actor text, p_label text DEFAULT NULL, OUT id uuid, OUT secret text
) RETURNS record
LANGUAGE sql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
    SELECT a.r_id, a.r_secret FROM ops._add_contact_method(p_principal, 'webhook', p_address, p_actor, p_label) AS a;
$$;
COMMENT ON FUNCTION ops.add_webhook_contact_method(text, text, text, text) IS
'Adds a webhook contact method and returns its id and signing secret, shown this once: pages are signed with it '
'(the v1 scheme of the API). Errors as ops.add_contact_method.';
REVOKE ALL ON FUNCTION ops.add_webhook_contact_method(text, text, text, text) FROM public;
GRANT EXECUTE ON FUNCTION ops.add_webhook_contact_method(text, text, text, text) TO opsguard_operator;

-- a live method of anyone, locked, for a caller allowed to manage it; another's method is "not found"
CREATE FUNCTION ops._managed_method(p_id uuid, p_actor text) RETURNS ops.contact_methods
LANGUAGE plpgsql
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_row ops.contact_methods;
BEGIN
    PERFORM ops._require_actor(p_actor);
    SELECT * INTO v_row FROM ops.contact_methods WHERE id = p_id AND removed_at IS NULL FOR UPDATE;
    IF NOT FOUND OR (v_row.principal <> p_actor AND NOT ops.has_permission(p_actor, 'principals.write')) THEN
        RAISE EXCEPTION 'no contact method %', p_id
            USING ERRCODE = 'P0002', HINT = 'List yours: GET /ops/me/contact-methods.';
    END IF;
    PERFORM ops._may_manage(v_row.principal, p_actor);
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops._managed_method(uuid, text) IS
'Internal: the live contact method p_id, locked, when p_actor may manage it; P0002 otherwise (another principal''s '
'method is not shown to exist).';
REVOKE ALL ON FUNCTION ops._managed_method(uuid, text) FROM public;

CREATE FUNCTION ops.verify_contact_method(
    p_id uuid, p_code text, p_actor text, p_now timestamptz DEFAULT pg_catalog.now()
) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_row ops.contact_methods := ops._managed_method(p_id, p_actor);
    v_ok boolean;
    v_prev text;
BEGIN
    IF v_row.verified_at IS NOT NULL THEN
        RETURN true;
    END IF;
    IF p_code IS NULL OR p_code !~ '^[0-9]{6}$' THEN
        RAISE EXCEPTION 'a verification code is 6 digits' USING ERRCODE = '22023';
    END IF;
    IF v_row.code_hash IS NULL OR v_row.code_attempts >= 5 OR v_row.code_expires_at <= p_now THEN
        RAISE EXCEPTION '%', CASE WHEN v_row.code_hash IS NULL THEN 'no code was sent yet'
                                  WHEN v_row.code_attempts >= 5 THEN '5 wrong codes: this code no longer works'
                                  ELSE 'the code has expired' END
            USING ERRCODE = '55000',
                  HINT = 'Ask for a new code: ops.resend_verification(id, actor), POST /ops/me/contact-methods/<id>/resend.';
    END IF;
    -- only hashes are compared: the code is never stored, and equal-length hex strings compare alike
    v_ok := pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(p_code, 'UTF8')), 'hex') = v_row.code_hash;
    v_prev := ops._act_as(p_actor);
    -- a wrong code is a return value, not an error: a raised error would roll the count back and allow
    -- endless guesses
    UPDATE ops.contact_methods
    SET verified_at = CASE WHEN v_ok THEN p_now END,
        code_hash = CASE WHEN NOT v_ok THEN code_hash END,
        code_expires_at = CASE WHEN NOT v_ok THEN code_expires_at END,
        code_attempts = CASE WHEN v_ok THEN 0 ELSE code_attempts + 1 END
    WHERE id = p_id;
    PERFORM ops._act_as(v_prev);
    RETURN v_ok;
END;
$$;
COMMENT ON FUNCTION ops.verify_contact_method(uuid, text, text, timestamptz) IS
'Verifies a contact method with the 6-digit code sent through it: true when verified (also when it already was), '
'false for a wrong code, which counts (code_attempts). 55000 when no code was sent, after 5 wrong codes or after '
'the code''s 15 minutes: ask for a new one with ops.resend_verification. Not yours or removed: P0002.';
REVOKE ALL ON FUNCTION ops.verify_contact_method(uuid, text, text, timestamptz) FROM public;
GRANT EXECUTE ON FUNCTION ops.verify_contact_method(uuid, text, text, timestamptz) TO opsguard_operator;

CREATE FUNCTION ops.resend_verification(p_id uuid, p_actor text, p_now timestamptz DEFAULT pg_catalog.now())
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
REVOKE ALL ON FUNCTION ops.resend_verification(uuid, text, timestamptz) FROM public;
GRANT EXECUTE ON FUNCTION ops.resend_verification(uuid, text, timestamptz) TO opsguard_operator;

CREATE FUNCTION ops.remove_contact_method(p_id uuid, p_actor text, p_now timestamptz DEFAULT pg_catalog.now())
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_row ops.contact_methods := ops._managed_method(p_id, p_actor);
    v_prev text := ops._act_as(p_actor);
BEGIN
    DELETE FROM ops.notification_rules WHERE contact_method = p_id;
    UPDATE ops.contact_methods SET removed_at = p_now, removed_by = p_actor, code_hash = NULL, code_expires_at = NULL
    WHERE id = p_id;
    UPDATE ops.notification_outbox SET status = 'cancelled', cancelled_at = p_now
    WHERE contact_method = p_id AND status IN ('pending', 'sending');
    UPDATE ops.page_tokens AS t SET revoked_at = p_now
    FROM ops.notification_outbox AS o
    WHERE t.outbox_id = o.id AND o.contact_method = v_row.id AND t.used_at IS NULL AND t.revoked_at IS NULL;
    PERFORM ops._act_as(v_prev);
END;
$$;
COMMENT ON FUNCTION ops.remove_contact_method(uuid, text, timestamptz) IS
'Removes a contact method (kept, removed_at, for ops.page_log): its rules are deleted, its unsent messages '
'cancelled, the unused answers of its pages revoked. Not yours or already removed: P0002.';
REVOKE ALL ON FUNCTION ops.remove_contact_method(uuid, text, timestamptz) FROM public;
GRANT EXECUTE ON FUNCTION ops.remove_contact_method(uuid, text, timestamptz) TO opsguard_operator;

CREATE FUNCTION ops.add_notification_rule(p_principal text, p_contact_method uuid, p_delay_min int, p_actor text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_row ops.contact_methods := ops._managed_method(p_contact_method, p_actor);
    v_id bigint;
    v_prev text;
BEGIN
    IF v_row.principal <> p_principal THEN
        RAISE EXCEPTION 'contact method % is not one of %''s', p_contact_method, pg_catalog.left(p_principal, 100)
            USING ERRCODE = 'P0002', HINT = 'A rule notifies one of the principal''s own contact methods.';
    END IF;
    IF p_delay_min IS NULL OR p_delay_min NOT BETWEEN 0 AND 1440 THEN
        RAISE EXCEPTION 'a rule''s delay is 0 to 1440 minutes, not %', coalesce(p_delay_min::text, 'NULL')
            USING ERRCODE = '22023', HINT = '0 notifies when paged, 5 five minutes later unless acknowledged by then.';
    END IF;
    IF EXISTS (SELECT 1 FROM ops.notification_rules WHERE contact_method = p_contact_method AND delay_min = p_delay_min) THEN
        RAISE EXCEPTION 'there is a rule for this contact method at % minutes already', p_delay_min
            USING ERRCODE = '23505', HINT = 'List them: GET /ops/me/notification-rules.';
    END IF;
    v_prev := ops._act_as(p_actor);
    INSERT INTO ops.notification_rules (principal, contact_method, delay_min, created_by)
    VALUES (p_principal, p_contact_method, p_delay_min, p_actor)
    RETURNING id INTO v_id;
    PERFORM ops._act_as(v_prev);
    RETURN v_id;
END;
$$;
COMMENT ON FUNCTION ops.add_notification_rule(text, uuid, int, text) IS
'When p_principal is paged, notify contact method p_contact_method after p_delay_min minutes (0-1440) unless the '
'incident is acknowledged or resolved by then. A rule on an unverified method pages once it is verified '
'(ops.config_problems says so meanwhile). Bad delay: 22023; not the principal''s method: P0002; a duplicate: 23505.';
REVOKE ALL ON FUNCTION ops.add_notification_rule(text, uuid, int, text) FROM public;
GRANT EXECUTE ON FUNCTION ops.add_notification_rule(text, uuid, int, text) TO opsguard_operator;

CREATE FUNCTION ops.remove_notification_rule(p_id bigint, p_actor text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_method uuid := (SELECT r.contact_method FROM ops.notification_rules AS r WHERE r.id = p_id);
    v_prev text;
BEGIN
    IF v_method IS NULL THEN
        RAISE EXCEPTION 'no notification rule %', p_id USING ERRCODE = 'P0002';
    END IF;
    PERFORM ops._managed_method(v_method, p_actor);
    v_prev := ops._act_as(p_actor);
    DELETE FROM ops.notification_rules WHERE id = p_id;
    PERFORM ops._act_as(v_prev);
END;
$$;
COMMENT ON FUNCTION ops.remove_notification_rule(bigint, text) IS
'Deletes a notification rule (messages it already queued stay). Not yours: P0002.';
REVOKE ALL ON FUNCTION ops.remove_notification_rule(bigint, text) FROM public;
GRANT EXECUTE ON FUNCTION ops.remove_notification_rule(bigint, text) TO opsguard_operator;

-- next_attempt_at moves with each attempt; the record keeps when a page was meant to go out
ALTER TABLE ops.notification_outbox ADD COLUMN due_at timestamptz;
COMMENT ON COLUMN ops.notification_outbox.due_at IS
'A page to a contact method: when its rule made it due (the page time plus the rule''s delay); NULL for other messages.';

-- the one definition of a usable rule: its method is live and verified (an unverified one is never paged)
CREATE VIEW ops.usable_notification_rules AS
SELECT
    r.id,
    r.principal,
    r.contact_method,
    c.kind,
    r.delay_min
FROM ops.notification_rules AS r
INNER JOIN ops.contact_methods AS c ON r.contact_method = c.id
WHERE c.removed_at IS NULL AND c.verified_at IS NOT NULL;
COMMENT ON VIEW ops.usable_notification_rules IS
'The notification rules a page follows: those whose contact method is live (not removed) and verified. A principal '
'without one is reached by the Slack channel mention only.';

-- the Slack channel post mentions only those no rule reaches (events record the same targets)
CREATE OR REPLACE FUNCTION ops._step_targets(p_policy text, p_step int, p_at timestamptz, OUT r_targets jsonb, OUT r_webhooks text[])
RETURNS record
LANGUAGE sql STABLE SET search_path = ops, pg_temp AS $$
    WITH t AS (
        SELECT e.target, e.n
        FROM ops.escalation_policy_steps AS s
        CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(s.targets) WITH ORDINALITY AS e (target, n)
        WHERE s.policy = p_policy AND s.step = p_step
    ),
    named AS (
        SELECT t.target ->> 'principal' AS principal, t.n * 1000 AS pos
        FROM t WHERE t.target ? 'principal'
        UNION ALL
        SELECT o.principal, t.n * 1000 + o.k
        FROM t
        INNER JOIN ops.schedules AS sc ON t.target ->> 'schedule' = sc.name
        CROSS JOIN LATERAL ops._on_call_or_nobody(sc.name, p_at) WITH ORDINALITY AS o (principal, k)
    ),
    who AS (
        SELECT n.principal, min(n.pos) AS pos
        FROM named AS n
        INNER JOIN ops.principals AS p ON n.principal = p.name AND NOT p.disabled
        GROUP BY n.principal
    ),
    hooks AS (
        SELECT t.target ->> 'webhook' AS url, t.n FROM t WHERE t.target ? 'webhook'
    ),
    dest AS (
        SELECT 0 AS n, pg_catalog.jsonb_build_object('type', 'route') AS d
        WHERE EXISTS (SELECT 1 FROM who) OR NOT EXISTS (SELECT 1 FROM hooks)
        UNION ALL
        SELECT h.n, pg_catalog.jsonb_build_object(
            'type', 'webhook', 'url', ops._redact_url(h.url, h.url),
            'sha256', pg_catalog.left(pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(h.url, 'UTF8')), 'hex'), 16))
        FROM hooks AS h
    )
    SELECT pg_catalog.jsonb_build_object(
               'policy', p_policy,
               'step', p_step,
               'principals', coalesce((SELECT pg_catalog.jsonb_agg(w.principal ORDER BY w.pos) FROM who AS w), '[]'),
               'destinations', (SELECT pg_catalog.jsonb_agg(d.d ORDER BY d.n) FROM dest AS d),
               -- Slack user ids only: anything else in a mention could become another markup
               'mentions', coalesce((
                   SELECT pg_catalog.jsonb_agg('<@' || c.external_user || '>' ORDER BY w.pos, c.external_user)
                   FROM who AS w
                   INNER JOIN ops.chat_identities AS c ON w.principal = c.principal
                   WHERE c.provider = 'slack' AND c.external_user ~ '^[A-Z0-9]{1,40}$'
                     -- whoever has a usable notification rule is reached by it, not by a channel mention
                     AND NOT EXISTS (SELECT 1 FROM ops.usable_notification_rules AS u WHERE u.principal = w.principal)),
                   '[]')),
           ARRAY(SELECT h.url FROM hooks AS h ORDER BY h.n)
$$;

-- a page fans out to the rules of each principal it names, in the same statement as the channel post
CREATE OR REPLACE FUNCTION ops._tick_due(
    p_now timestamptz, p_tick_id bigint, p_settings jsonb, p_dry boolean,
    OUT r_due integer, OUT r_live integer, OUT r_events integer, OUT r_lag bigint, OUT r_would jsonb
)
LANGUAGE plpgsql
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_base text := nullif(pg_catalog.rtrim(p_settings ->> 'app_base_url', '/'), '');
BEGIN
    WITH paged AS MATERIALIZED (
        SELECT * FROM ops._tick_claim(p_now, (p_settings -> 'max_esc_level')::int, (p_settings -> 'tick_batch_max')::int,
                                      p_dry, (p_settings -> 'canary_pct')::int, nullif(p_settings ->> 'default_policy', ''))
    ),
    events AS (
        INSERT INTO ops.escalation_events
            (incident_id, incident_key, route, severity, escalation_level, escalated_at, unique_hash, tick_id, targets)
        SELECT p.id, p.incident_key, p.route, p.severity, p.new_level, p_now, p.hash, p_tick_id, p.targets
        FROM paged AS p
        WHERE p.live
        ON CONFLICT (unique_hash) DO NOTHING
        -- the payload once per event: the channel post and every page of it carry the same
        RETURNING id, incident_id, route, unique_hash, targets, ops._tick_payload(unique_hash, incident_id, incident_key,
                  route, severity, escalation_level, escalated_at, targets, v_base) AS payload, escalated_at
    ),
    raised AS (
        -- an event that already exists (the level was lowered by hand and reached again) still
        -- moves the incident on, so it is not due forever; it only sends nothing twice
        UPDATE ops.incidents AS i
        SET escalation_level = p.new_level, last_escalated_at = p_now
        FROM paged AS p
        WHERE p.live AND i.id = p.id
        RETURNING i.id
    ),
    queued AS (
        -- one message per destination: the route one keeps dedup_key = unique_hash (and without a
        -- policy the payload of before), each webhook target gets sha256(unique_hash:url)
        INSERT INTO ops.notification_outbox (dedup_key, event_id, incident_id, route, payload, webhook_url)
        SELECT e.dedup_key, e.id, e.incident_id, e.route,
               e.payload || pg_catalog.jsonb_build_object('dedup_key', e.dedup_key), e.url
        FROM (
            SELECT e1.*, e1.unique_hash AS dedup_key, NULL::text AS url
            FROM events AS e1
            WHERE e1.targets IS NULL OR e1.targets -> 'destinations' @> '[{"type": "route"}]'
            UNION ALL
            SELECT e2.*,
                   pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(e2.unique_hash || ':' || w.url, 'UTF8')),
                                     'hex'),
                   w.url
            FROM events AS e2
            INNER JOIN paged AS p ON e2.incident_id = p.id
            CROSS JOIN LATERAL pg_catalog.unnest(p.webhooks) AS w (url)
            WHERE e2.targets IS NOT NULL AND p.webhooks <> '{}'
        ) AS e
        RETURNING 1
    ),
    pages AS (
        -- a message per usable rule of each principal paged, due after its delay; never the address
        INSERT INTO ops.notification_outbox
            (dedup_key, event_id, incident_id, route, channel, principal, contact_method, payload, due_at, next_attempt_at)
        SELECT k.dedup_key, e.id, e.incident_id, e.route, u.kind, u.principal, u.contact_method, e.payload, k.due, k.due
        FROM events AS e CROSS JOIN LATERAL pg_catalog.jsonb_array_elements_text(e.targets -> 'principals') AS p (principal)
        INNER JOIN ops.usable_notification_rules AS u ON p.principal = u.principal
        CROSS JOIN LATERAL (SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
            e.unique_hash || ':rule:' || u.id, 'UTF8')), 'hex') AS dedup_key,
            e.escalated_at + pg_catalog.make_interval(mins => u.delay_min) AS due) AS k
        RETURNING 1
    )
    SELECT count(*),
           count(*) FILTER (WHERE p.live),
           (SELECT count(*) FROM events),
           coalesce(max(floor(EXTRACT(epoch FROM p_now - p.next_due_at) * 1000)), 0),
           coalesce((SELECT pg_catalog.jsonb_agg(w) FROM (
               SELECT pg_catalog.jsonb_build_object('id', p2.id, 'incidentKey', p2.incident_key,
                   'fromLevel', p2.escalation_level, 'toLevel', p2.new_level,
                   'why', CASE WHEN p_dry THEN 'dry_run' ELSE 'canary' END)
                   || CASE WHEN p2.targets IS NOT NULL
                           THEN pg_catalog.jsonb_build_object('wouldPage', p2.targets -> 'principals')
                           ELSE '{}' END AS w
               FROM paged AS p2 WHERE NOT p2.live ORDER BY p2.next_due_at LIMIT 100) AS x), '[]')
    INTO r_due, r_live, r_events, r_lag, r_would
    FROM paged AS p;
END;
$$;

-- whom a policy step or a schedule can page, and how: the principals paging-gap warnings are about
CREATE FUNCTION ops._pageable_principals() RETURNS TABLE (principal text, via text)
LANGUAGE sql STABLE
SET search_path = ops, pg_temp
AS $$
    SELECT w.principal, pg_catalog.string_agg(DISTINCT w.via, ', ') AS via
    FROM (
        SELECT e.target ->> 'principal' AS principal,
               pg_catalog.format('policy %s step %s', s.policy, s.step) AS via
        FROM ops.escalation_policy_steps AS s
        CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(s.targets) AS e (target)
        WHERE e.target ? 'principal'
        UNION ALL
        SELECT u.principal, pg_catalog.format('schedule %s', r.schedule)
        FROM ops.schedule_rotations AS r
        CROSS JOIN LATERAL pg_catalog.unnest(r.participants) AS u (principal)
        UNION ALL
        SELECT o.principal, pg_catalog.format('schedule %s override', o.schedule)
        FROM ops.schedule_overrides AS o
        WHERE o.ends_at > pg_catalog.now()
    ) AS w
    INNER JOIN ops.principals AS p ON w.principal = p.name AND NOT p.disabled
    GROUP BY w.principal
$$;
COMMENT ON FUNCTION ops._pageable_principals() IS
'Internal: the enabled principals a policy step names or a schedule can put on call (rotations, current and future '
'overrides), each with where from; for the paging-gap rows of ops.config_problems.';
REVOKE ALL ON FUNCTION ops._pageable_principals() FROM public;

-- a pageable principal without a usable rule, and a rule waiting for its method's verification, are paging gaps
CREATE OR REPLACE FUNCTION ops.config_problems(p_dispatch_timeout_s float8 DEFAULT NULL)
RETURNS TABLE (setting text, problem text, blocking boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_row record;
    v_lease int := ops.setting('notify_lease_s')::int;
BEGIN
    -- a dispatcher starts a message only while its lease outlasts the HTTP timeout
    IF p_dispatch_timeout_s IS NOT NULL AND v_lease < p_dispatch_timeout_s + 2 THEN
        setting := 'notify_lease_s';
        problem := pg_catalog.format('%s s is too short for a dispatcher HTTP timeout of %s s: make it at least %s',
                                     v_lease, p_dispatch_timeout_s, ceil(p_dispatch_timeout_s + 2));
        blocking := true;
        RETURN NEXT;
    END IF;
    -- timestamps render in the session's zone (to_jsonb, psql): opsguard shows UTC only
    IF pg_catalog.current_setting('TimeZone') NOT IN ('UTC', 'Etc/UTC', 'Etc/UCT', 'UCT', 'Universal', 'Zulu') THEN
        setting := 'TimeZone';
        problem := pg_catalog.format('the time zone is %s, not UTC: SELECT ops.use_utc(); then reconnect',
                                     pg_catalog.current_setting('TimeZone'));
        blocking := true;
        RETURN NEXT;
    END IF;
    FOR v_row IN
        SELECT s.key AS name, s.value #>> '{}' AS url, s.kind
        FROM ops.settings AS s WHERE s.kind IN ('url', 'webhook') AND s.value #>> '{}' <> ''
        UNION ALL
        SELECT pg_catalog.format('route_webhooks[%s]', w.route), w.webhook_url, 'webhook'
        FROM ops.route_webhooks AS w
        ORDER BY 1
    LOOP
        BEGIN
            PERFORM ops.validate_url(v_row.url, v_row.kind);
        EXCEPTION WHEN invalid_parameter_value THEN
            setting := v_row.name;
            problem := CASE v_row.kind WHEN 'webhook' THEN ops._redact_url(SQLERRM, v_row.url) ELSE SQLERRM END;
            blocking := true;
            RETURN NEXT;
        END;
    END LOOP;
    RETURN QUERY
    SELECT x.setting, x.problem, false
    FROM (
        -- a default policy written around set_setting: ticks treat it as none
        SELECT s.key AS setting,
               ops._setting_problem(s.kind, s.value, s.min_value, s.max_value)
               || ': routes without their own policy page as if there were none' AS problem
        FROM ops.settings AS s
        WHERE s.kind = 'policy' AND ops._setting_problem(s.kind, s.value, s.min_value, s.max_value) IS NOT NULL
        UNION ALL
        SELECT pg_catalog.format('escalation_policies[%s]', ep.name),
               'has no steps: the routes that use it page as if they had no policy; add one with ops.add_policy_step'
        FROM ops.escalation_policies AS ep
        WHERE NOT EXISTS (SELECT 1 FROM ops.escalation_policy_steps AS s WHERE s.policy = ep.name)
          AND (EXISTS (SELECT 1 FROM ops.route_policies AS r WHERE r.policy = ep.name)
               OR ep.name = ops.setting('default_policy') #>> '{}')
        UNION ALL
        SELECT pg_catalog.format('escalation_policy_steps[%s/%s]', s.policy, s.step),
               pg_catalog.format('target %s names schedule %s, which does not exist: it pages no one; replace the step '
                                 'with ops.add_policy_step', e.n, e.target -> 'schedule')
        FROM ops.escalation_policy_steps AS s
        CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(s.targets) WITH ORDINALITY AS e (target, n)
        WHERE e.target ? 'schedule'
          AND NOT EXISTS (SELECT 1 FROM ops.schedules AS sc WHERE sc.name = e.target ->> 'schedule')
        UNION ALL
        -- a disabled principal still takes their turns: ops.on_call names them, and the tick pages no one for
        -- the schedule in those turns
        SELECT pg_catalog.format('principals[%s]', d.principal),
               pg_catalog.format('%s is disabled but on call in %s: those turns page no one; replace the rotation '
                                 '(ops.remove_rotation, ops.add_rotation) or the override (ops.remove_override)',
                                 d.principal, d.via)
        FROM (
            SELECT w.principal, pg_catalog.string_agg(DISTINCT w.via, ', ') AS via
            FROM (
                SELECT u.principal, pg_catalog.format('schedule %s rotation %s', r.schedule, r.name) AS via
                FROM ops.schedule_rotations AS r
                CROSS JOIN LATERAL pg_catalog.unnest(r.participants) AS u (principal)
                UNION ALL
                SELECT o.principal, pg_catalog.format('schedule %s override %s', o.schedule, o.id)
                FROM ops.schedule_overrides AS o
                WHERE o.ends_at > pg_catalog.now()
            ) AS w
            INNER JOIN ops.principals AS p ON w.principal = p.name AND p.disabled
            GROUP BY w.principal
        ) AS d
        UNION ALL
        SELECT pg_catalog.format('principals[%s]', g.principal),
               pg_catalog.format('%s can be paged (%s) but has no linked Slack user: paged and recorded, mentioned by '
                                 'no one; SELECT ops.link_chat_identity(''slack'', <team id>, <user id>, %L, <actor>)',
                                 g.principal, g.via, g.principal)
        FROM ops._pageable_principals() AS g
        WHERE NOT EXISTS (SELECT 1 FROM ops.chat_identities AS c WHERE c.principal = g.principal AND c.provider = 'slack')
          AND NOT EXISTS (SELECT 1 FROM ops.usable_notification_rules AS u WHERE u.principal = g.principal)
        UNION ALL
        SELECT pg_catalog.format('principals[%s]', g.principal),
               pg_catalog.format('principal %s has no notification rules: can be paged (%s) but only a Slack channel '
                                 'mention tells them; add a contact method and a rule (ops.add_contact_method, '
                                 'ops.add_notification_rule, or POST /ops/me/contact-methods)', g.principal, g.via)
        FROM ops._pageable_principals() AS g
        WHERE NOT EXISTS (SELECT 1 FROM ops.usable_notification_rules AS u WHERE u.principal = g.principal)
        UNION ALL
        SELECT pg_catalog.format('notification_rules[%s]', r.id),
               pg_catalog.format('rule %s of %s (after %s min) waits for its %s contact method to be verified: it '
                                 'notifies no one until then (ops.verify_contact_method)', r.id, r.principal,
                                 r.delay_min, c.kind)
        FROM ops.notification_rules AS r
        INNER JOIN ops.contact_methods AS c ON r.contact_method = c.id
        WHERE c.verified_at IS NULL AND c.removed_at IS NULL
    ) AS x
    ORDER BY 1;
END;
$$;
COMMENT ON FUNCTION ops.config_problems(double precision) IS
'What is wrong with the configuration, one row per setting (empty: all is well): SELECT * FROM ops.config_problems(); '
'Checks URLs and webhooks, the time zone (UTC), and for a dispatcher its lease (blocking: the API and the dispatcher '
'refuse to start while such rows exist; a dispatcher passes its HTTP timeout). Rows with blocking false are paging '
'gaps that start-up and /healthz only warn about: a principal a policy or schedule can page with no notification '
'rules (principal X has no notification rules), and with no linked Slack user either; a rule whose contact method '
'is not verified yet; a step naming a schedule that no longer exists, a disabled principal still on call in a '
'schedule, a default_policy naming no policy, a policy in use without steps.';
COMMENT ON FUNCTION ops._tick_due(timestamptz, bigint, jsonb, boolean) IS
'Internal tick step: escalates what ops._tick_claim claims (p_settings as ops._tick_settings returns them) under tick '
'p_tick_id: events, levels and outbox messages for live rows (the channel posts, and one page per usable notification '
'rule of each principal paged, due at the event plus the rule''s delay); returns due, live, new events, the queue lag '
'in ms and wouldEscalate (dry-run and canary rows, first 100).';

-- a trigger, not ops._transition: an operator's UPDATE in psql, a Slack command, an intake resolve and the API all
-- acknowledge or resolve by writing the row, and each must stop the pages still to come
CREATE FUNCTION ops._incidents_cancel_pages() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
BEGIN
    UPDATE ops.notification_outbox
    SET status = 'cancelled',
        cancelled_at = coalesce(CASE NEW.status WHEN 'resolved' THEN NEW.resolved_at ELSE NEW.acknowledged_at END,
                                pg_catalog.now())
    WHERE incident_id = NEW.id AND contact_method IS NOT NULL AND status IN ('pending', 'sending');
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ops._incidents_cancel_pages() IS
'Trigger: an incident acknowledged or resolved cancels its pages to contact methods not yet sent (pending, or '
'claimed by a dispatcher that has not sent them), at the time of the acknowledgement or resolution.';
REVOKE ALL ON FUNCTION ops._incidents_cancel_pages() FROM public;
CREATE TRIGGER incidents_cancel_pages AFTER UPDATE ON ops.incidents
FOR EACH ROW WHEN (new.status IN ('acknowledged', 'resolved') AND old.status IS DISTINCT FROM new.status)
EXECUTE FUNCTION ops._incidents_cancel_pages();

-- each page to a contact method, and how its principal answered: "was she actually reached?"
-- the columns in the order a reader asks: which page, to whom and where, when, and the answer
CREATE VIEW ops.page_log AS
SELECT  -- noqa: ST06
    o.incident_id,
    i.incident_key,
    e.escalation_level AS level,
    o.principal,
    c.kind,
    ops.contact_address_redacted(c.kind, c.address) AS address,
    o.created_at AS queued_at,
    o.due_at,
    o.sent_at,
    o.delivered_at,
    o.cancelled_at,
    o.status,
    coalesce(
        t.used_at, CASE WHEN i.acknowledged_by = o.principal THEN i.acknowledged_at END,
        CASE WHEN i.resolved_by = o.principal THEN i.resolved_at END
    ) AS acted_at,
    coalesce(
        t.channel, CASE WHEN i.acknowledged_by = o.principal OR i.resolved_by = o.principal THEN 'other' END
    ) AS via,
    o.id AS outbox_id
FROM ops.notification_outbox AS o
INNER JOIN ops.escalation_events AS e ON o.event_id = e.id
INNER JOIN ops.incidents AS i ON o.incident_id = i.id
INNER JOIN ops.contact_methods AS c ON o.contact_method = c.id
LEFT JOIN LATERAL (
    SELECT
        pt.used_at,
        pt.channel
    FROM ops.page_tokens AS pt
    WHERE pt.incident_id = o.incident_id AND pt.principal = o.principal AND pt.used_at IS NOT NULL
    ORDER BY pt.used_at
    LIMIT 1
) AS t ON TRUE;
COMMENT ON VIEW ops.page_log IS
'Every page to a contact method: incident, level, principal, kind, the address redacted, when it was queued, due, '
'sent, delivered (the provider''s callback) or cancelled, and when and how the principal answered the incident (via '
'link, sms, voice or slack_button from a page; other: acknowledged or resolved some other way, e.g. the API or psql).';
-- operators read how pages went, never the addresses themselves (the view reads them as its owner);
-- the view's caller runs the redaction, which for a webhook needs the internal ops._audit_secret: the
-- same body, run as its owner
CREATE OR REPLACE FUNCTION ops.contact_address_redacted(p_kind text, p_address text) RETURNS text
LANGUAGE sql IMMUTABLE SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
SELECT CASE p_kind
    WHEN 'email' THEN pg_catalog.left(p_address, 1) || '…@' || pg_catalog.split_part(p_address, '@', 2)
    WHEN 'sms' THEN '+…' || pg_catalog.right(p_address, 2)
    WHEN 'voice' THEN '+…' || pg_catalog.right(p_address, 2)
    WHEN 'slack_dm' THEN pg_catalog.left(p_address, 1) || '…' || pg_catalog.right(p_address, 2)
    WHEN 'webhook' THEN ops._audit_secret(p_address)
END
$$;
GRANT SELECT ON ops.page_log TO opsguard_operator;
GRANT SELECT ON ops.usable_notification_rules TO opsguard_operator;

-- the /ops/me endpoints: any signed principal manages its own methods and rules (or, with
-- actors.delegate, those of the actor it names); they share the replay check with every signed write
CREATE FUNCTION ops._api_replay(p_replay_key text) RETURNS void
LANGUAGE plpgsql
SET search_path = ops, pg_temp
AS $$
BEGIN
    IF p_replay_key IS NOT NULL THEN
        DELETE FROM ops.api_replay WHERE expires_at < pg_catalog.now();
        INSERT INTO ops.api_replay (replay_key, expires_at) VALUES (p_replay_key, pg_catalog.now() + interval '10 minutes')
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'this signed request was already used' USING ERRCODE = '28000',
                HINT = 'Sign each request with a fresh X-Timestamp.';
        END IF;
    END IF;
END;
$$;
COMMENT ON FUNCTION ops._api_replay(text) IS
'Internal: refuses (28000) a signed write whose signature was seen in the last 10 minutes, and remembers this one.';
REVOKE ALL ON FUNCTION ops._api_replay(text) FROM public;

CREATE OR REPLACE FUNCTION ops._api_begin(p_principal text, p_actor text, p_permission text, p_replay_key text)
RETURNS text
LANGUAGE plpgsql
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_actor text;
BEGIN
    PERFORM ops._api_replay(p_replay_key);
    v_actor := ops.authorize(p_principal, p_permission, nullif(p_actor, ''));
    PERFORM ops._act_as(v_actor);
    RETURN v_actor;
END;
$$;

CREATE FUNCTION ops._api_me_actor(p_principal text, p_actor text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_who text := coalesce(nullif(p_actor, ''), p_principal);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ops.principals WHERE name = p_principal AND NOT disabled) THEN
        RAISE EXCEPTION 'unknown principal %', p_principal USING ERRCODE = '42501';
    END IF;
    IF v_who <> p_principal AND NOT ops.has_permission(p_principal, 'actors.delegate') THEN
        RAISE EXCEPTION '% may not act for others', p_principal USING ERRCODE = '42501',
            HINT = 'Only principals with actors.delegate (ops_admin) may send X-Ops-Actor.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ops.principals WHERE name = v_who AND NOT disabled) THEN
        RAISE EXCEPTION 'unknown actor %', v_who USING ERRCODE = '42501',
            DETAIL = 'no such principal, or disabled',
            HINT = pg_catalog.format('X-Ops-Actor must name an enabled principal; an operator adds one '
                   'in psql: SELECT ops.add_principal(%L, %L, ARRAY[%L], %L); (README, Acting for a person)',
                   v_who, 'human', 'ops_responder', 'your-name');
    END IF;
    RETURN v_who;
END;
$$;
COMMENT ON FUNCTION ops._api_me_actor(text, text) IS
'Internal: whom a /me call is about: the signer, or the enabled actor a signer with actors.delegate names; 42501 otherwise.';
REVOKE ALL ON FUNCTION ops._api_me_actor(text, text) FROM public;

CREATE OR REPLACE FUNCTION ops.api_me(p_principal text, p_actor text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_who text := ops._api_me_actor(p_principal, p_actor);
BEGIN
    RETURN pg_catalog.jsonb_build_object(
        'ok', true,
        'principal', p_principal,
        'actor', v_who,
        'roles', coalesce((SELECT pg_catalog.jsonb_agg(role ORDER BY role) FROM ops.principal_roles WHERE principal = v_who), '[]'),
        'permissions', coalesce((SELECT pg_catalog.jsonb_agg(name ORDER BY name) FROM ops.permissions
                                 WHERE ops.has_permission(v_who, name)), '[]'));
END;
$$;

-- a contact method as its owner sees it: the address in full, never the secret or the code
CREATE FUNCTION ops._contact_method_json(p_row ops.contact_methods) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ops, pg_temp
AS $$
    SELECT pg_catalog.jsonb_build_object(
        'id', p_row.id, 'kind', p_row.kind, 'address', p_row.address, 'label', p_row.label,
        'verified', p_row.verified_at IS NOT NULL, 'verifiedAt', p_row.verified_at, 'createdAt', p_row.created_at,
        'triesLeft', CASE WHEN p_row.verified_at IS NULL THEN GREATEST(5 - p_row.code_attempts, 0) END)
$$;
COMMENT ON FUNCTION ops._contact_method_json(ops.contact_methods) IS
'Internal: a contact method for its owner (the API): id, kind, address, label, verified, verifiedAt, createdAt, '
'triesLeft (wrong codes still allowed while unverified).';
REVOKE ALL ON FUNCTION ops._contact_method_json(ops.contact_methods) FROM public;

CREATE FUNCTION ops.api_my_contact_methods(p_principal text, p_actor text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_who text := ops._api_me_actor(p_principal, p_actor);
BEGIN
    RETURN pg_catalog.jsonb_build_object('ok', true, 'principal', v_who, 'contactMethods', coalesce(
        (SELECT pg_catalog.jsonb_agg(ops._contact_method_json(c) ORDER BY c.created_at, c.id)
         FROM ops.contact_methods AS c WHERE c.principal = v_who AND c.removed_at IS NULL), '[]'));
END;
$$;
COMMENT ON FUNCTION ops.api_my_contact_methods(text, text) IS
'GET /ops/me/contact-methods: {"ok": true, "principal", "contactMethods": [...]}, the caller''s live methods with '
'their full addresses.';

CREATE FUNCTION ops.api_add_contact_method(p_principal text, p_actor text, p_replay_key text, p_body jsonb)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_who text;
    v_new record;
BEGIN
    PERFORM ops._api_replay(p_replay_key);
    v_who := ops._api_me_actor(p_principal, p_actor);
    IF p_body IS NULL OR pg_catalog.jsonb_typeof(p_body -> 'kind') IS DISTINCT FROM 'string'
       OR pg_catalog.jsonb_typeof(p_body -> 'address') IS DISTINCT FROM 'string'
       OR pg_catalog.jsonb_typeof(coalesce(p_body -> 'label', '""')) <> 'string' THEN
        RAISE EXCEPTION 'the body needs "kind" and "address" as strings ("label" optional)' USING ERRCODE = '22023',
            HINT = '{"kind": "sms", "address": "+14155550142", "label": "mobile"}';
    END IF;
    v_new := ops._add_contact_method(v_who, p_body ->> 'kind', p_body ->> 'address', v_who, p_body ->> 'label');
    RETURN pg_catalog.jsonb_build_object('ok', true, 'contactMethod',
               ops._contact_method_json((SELECT c FROM ops.contact_methods AS c WHERE c.id = v_new.r_id)))
           || CASE WHEN v_new.r_secret IS NOT NULL THEN pg_catalog.jsonb_build_object('secret', v_new.r_secret)
                   ELSE '{}' END;
END;
$$;
COMMENT ON FUNCTION ops.api_add_contact_method(text, text, text, jsonb) IS
'POST /ops/me/contact-methods {"kind", "address", "label"?}: {"ok": true, "contactMethod": {...}} and, for a webhook, '
'"secret" (shown this once). Bad input: 22023; the same live address twice: 23505.';

CREATE FUNCTION ops.api_verify_contact_method(
    p_principal text, p_actor text, p_replay_key text, p_id text, p_body jsonb
) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_who text;
    v_ok boolean;
    v_row ops.contact_methods;
BEGIN
    PERFORM ops._api_replay(p_replay_key);
    v_who := ops._api_me_actor(p_principal, p_actor);
    IF p_body IS NULL OR pg_catalog.jsonb_typeof(p_body -> 'code') IS DISTINCT FROM 'string' THEN
        RAISE EXCEPTION 'the body needs "code", the 6 digits sent to the contact method, as a string'
            USING ERRCODE = '22023', HINT = '{"code": "123456"}';
    END IF;
    v_ok := ops.verify_contact_method(p_id::uuid, p_body ->> 'code', v_who);
    SELECT * INTO v_row FROM ops.contact_methods WHERE id = p_id::uuid;
    IF v_ok THEN
        RETURN pg_catalog.jsonb_build_object('ok', true, 'contactMethod', ops._contact_method_json(v_row));
    END IF;
    -- answered, not raised: the wrong try must stay counted
    RETURN pg_catalog.jsonb_build_object('ok', false, 'error', 'wrong_code',
        'message', 'that is not the code sent to this contact method',
        'triesLeft', GREATEST(5 - v_row.code_attempts, 0),
        'hint', 'After 5 wrong codes ask for a new one: POST /ops/me/contact-methods/<id>/resend.');
END;
$$;
COMMENT ON FUNCTION ops.api_verify_contact_method(text, text, text, text, jsonb) IS
'POST /ops/me/contact-methods/<id>/verify {"code"}: {"ok": true, "contactMethod": {...}}, or {"ok": false, "error": '
'"wrong_code", "triesLeft"} (counted). After 5 wrong codes, an expired code or none sent: 55000. Not yours: P0002.';

CREATE FUNCTION ops.api_resend_verification(p_principal text, p_actor text, p_replay_key text, p_id text)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
BEGIN
    PERFORM ops._api_replay(p_replay_key);
    PERFORM ops.resend_verification(p_id::uuid, ops._api_me_actor(p_principal, p_actor));
    RETURN pg_catalog.jsonb_build_object('ok', true, 'queued', true);
END;
$$;
COMMENT ON FUNCTION ops.api_resend_verification(text, text, text, text) IS
'POST /ops/me/contact-methods/<id>/resend: {"ok": true, "queued": true}; a new code is on its way. Verified or a code '
'sent less than a minute ago: 55000. Not yours: P0002.';

CREATE FUNCTION ops.api_remove_contact_method(p_principal text, p_actor text, p_replay_key text, p_id text)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
BEGIN
    PERFORM ops._api_replay(p_replay_key);
    PERFORM ops.remove_contact_method(p_id::uuid, ops._api_me_actor(p_principal, p_actor));
    RETURN pg_catalog.jsonb_build_object('ok', true, 'removed', p_id::uuid);
END;
$$;
COMMENT ON FUNCTION ops.api_remove_contact_method(text, text, text, text) IS
'DELETE /ops/me/contact-methods/<id>: {"ok": true, "removed": id}; its rules go and its unsent pages are cancelled. '
'Not yours: P0002.';

CREATE FUNCTION ops.api_my_notification_rules(p_principal text, p_actor text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_who text := ops._api_me_actor(p_principal, p_actor);
BEGIN
    RETURN pg_catalog.jsonb_build_object('ok', true, 'principal', v_who, 'rules', coalesce(
        (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
             'id', r.id, 'contactMethod', r.contact_method, 'kind', c.kind, 'delayMin', r.delay_min,
             'usable', c.verified_at IS NOT NULL) ORDER BY r.delay_min, r.id)
         FROM ops.notification_rules AS r INNER JOIN ops.contact_methods AS c ON r.contact_method = c.id
         WHERE r.principal = v_who), '[]'));
END;
$$;
COMMENT ON FUNCTION ops.api_my_notification_rules(text, text) IS
'GET /ops/me/notification-rules: {"ok": true, "principal", "rules": [{"id", "contactMethod", "kind", "delayMin", '
'"usable"}]}, by delay; usable is false while the method waits for its verification.';

CREATE FUNCTION ops.api_add_notification_rule(p_principal text, p_actor text, p_replay_key text, p_body jsonb)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_who text;
    v_id bigint;
BEGIN
    PERFORM ops._api_replay(p_replay_key);
    v_who := ops._api_me_actor(p_principal, p_actor);
    IF p_body IS NULL OR pg_catalog.jsonb_typeof(p_body -> 'contactMethod') IS DISTINCT FROM 'string'
       OR pg_catalog.jsonb_typeof(p_body -> 'delayMin') IS DISTINCT FROM 'number'
       OR (p_body ->> 'delayMin') !~ '^[0-9]{1,4}$' THEN
        RAISE EXCEPTION 'the body needs "contactMethod" (an id) and "delayMin" (whole minutes, 0 to 1440)'
            USING ERRCODE = '22023', HINT = '{"contactMethod": "<id from GET /ops/me/contact-methods>", "delayMin": 5}';
    END IF;
    v_id := ops.add_notification_rule(v_who, (p_body ->> 'contactMethod')::uuid, (p_body ->> 'delayMin')::int, v_who);
    RETURN pg_catalog.jsonb_build_object('ok', true, 'rule', pg_catalog.jsonb_build_object(
        'id', v_id, 'contactMethod', (p_body ->> 'contactMethod')::uuid, 'delayMin', (p_body ->> 'delayMin')::int,
        'usable', EXISTS (SELECT 1 FROM ops.usable_notification_rules AS u WHERE u.id = v_id)));
END;
$$;
COMMENT ON FUNCTION ops.api_add_notification_rule(text, text, text, jsonb) IS
'POST /ops/me/notification-rules {"contactMethod", "delayMin"}: {"ok": true, "rule": {...}}. Bad input: 22023; '
'not your method: P0002; a duplicate: 23505.';

CREATE FUNCTION ops.api_remove_notification_rule(p_principal text, p_actor text, p_replay_key text, p_id text)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
BEGIN
    PERFORM ops._api_replay(p_replay_key);
    IF p_id !~ '^[0-9]{1,18}$' THEN
        RAISE EXCEPTION 'a rule id is a number, not "%"', pg_catalog.left(p_id, 40) USING ERRCODE = '22023';
    END IF;
    PERFORM ops.remove_notification_rule(p_id::bigint, ops._api_me_actor(p_principal, p_actor));
    RETURN pg_catalog.jsonb_build_object('ok', true, 'removed', p_id::bigint);
END;
$$;
COMMENT ON FUNCTION ops.api_remove_notification_rule(text, text, text, text) IS
'DELETE /ops/me/notification-rules/<id>: {"ok": true, "removed": id}. Not yours: P0002.';

-- the API role calls the endpoints' functions, nobody else does
REVOKE ALL ON FUNCTION ops.api_my_contact_methods(text, text) FROM public;
GRANT EXECUTE ON FUNCTION ops.api_my_contact_methods(text, text) TO opsguard_api;
REVOKE ALL ON FUNCTION ops.api_add_contact_method(text, text, text, jsonb) FROM public;
GRANT EXECUTE ON FUNCTION ops.api_add_contact_method(text, text, text, jsonb) TO opsguard_api;
REVOKE ALL ON FUNCTION ops.api_verify_contact_method(text, text, text, text, jsonb) FROM public;
GRANT EXECUTE ON FUNCTION ops.api_verify_contact_method(text, text, text, text, jsonb) TO opsguard_api;
REVOKE ALL ON FUNCTION ops.api_resend_verification(text, text, text, text) FROM public;
GRANT EXECUTE ON FUNCTION ops.api_resend_verification(text, text, text, text) TO opsguard_api;
REVOKE ALL ON FUNCTION ops.api_remove_contact_method(text, text, text, text) FROM public;
GRANT EXECUTE ON FUNCTION ops.api_remove_contact_method(text, text, text, text) TO opsguard_api;
REVOKE ALL ON FUNCTION ops.api_my_notification_rules(text, text) FROM public;
GRANT EXECUTE ON FUNCTION ops.api_my_notification_rules(text, text) TO opsguard_api;
REVOKE ALL ON FUNCTION ops.api_add_notification_rule(text, text, text, jsonb) FROM public;
GRANT EXECUTE ON FUNCTION ops.api_add_notification_rule(text, text, text, jsonb) TO opsguard_api;
REVOKE ALL ON FUNCTION ops.api_remove_notification_rule(text, text, text, text) FROM public;
GRANT EXECUTE ON FUNCTION ops.api_remove_notification_rule(text, text, text, text) TO opsguard_api;
