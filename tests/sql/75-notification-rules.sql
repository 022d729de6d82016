-- Contact methods and notification rules (docs/notifications.md): clear errors for bad addresses
-- and callers, verification by a 6-digit code whose wrong tries count, a page fanning out to one
-- message per usable rule at the page time plus its delay, cancelled when the incident is
-- acknowledged or resolved by any path, and ops.page_log telling how it went.
-- An incident opened at 12:00 is due at 12:05 (2026-03-02).
BEGIN;
SELECT plan(65);

DO $$
BEGIN
    PERFORM ops.add_principal(p, 'human', '{ops_responder}', 'admin') FROM unnest(ARRAY['bob', 'carol', 'dave']) AS p;
    PERFORM ops.add_principal('ada', 'human', '{ops_admin}', 'admin');
    PERFORM ops.link_chat_identity('slack', 'T1', u, p, 'admin') FROM (VALUES ('bob', 'UBOB'), ('carol', 'UCAROL')) AS x (p, u);
    PERFORM ops.create_policy('pay', 'admin');
    PERFORM ops.add_policy_step('pay', 1, '[{"principal": "bob"}, {"principal": "carol"}]', 'admin');
    PERFORM ops.set_route_policy('GET /pay', 'pay', 'admin');
END
$$;

-- adding: every bad input is a clear 22023 and stores nothing
SELECT throws_ok($$SELECT ops.add_contact_method('bob', 'email', 'bob at example.com', 'bob')$$, '22023',
                 '"bob at example.com" is not an e-mail address', 'an address without @ is refused by name');
SELECT throws_ok($$SELECT ops.add_contact_method('bob', 'email', E'b@example.com\r\nBcc: x@example.com', 'bob')$$,
                 '22023', NULL, 'an e-mail address with a line break is refused');
SELECT throws_ok($$SELECT ops.add_contact_method('bob', 'sms', '0041 79 555 01 42', 'bob')$$, '22023',
                 '"0041 79 555 01 42" is not an E.164 number', 'an SMS number must be E.164');
SELECT throws_ok($$SELECT ops.add_contact_method('bob', 'voice', '+1234', 'bob')$$, '22023', NULL,
                 'a voice number needs 8 to 15 digits');
SELECT throws_ok($$SELECT ops.add_contact_method('bob', 'slack_dm', '@bob', 'bob')$$, '22023',
                 '"@bob" is not a Slack user id', 'a Slack DM needs a user id');
SELECT throws_ok($$SELECT ops.add_contact_method('bob', 'webhook', 'http://hooks.example.com/x', 'bob')$$, '22023',
                 NULL, 'a webhook over plain http to another host is refused');
SELECT throws_ok($$SELECT ops.add_contact_method('bob', 'pager', 'x', 'bob')$$, '22023', NULL,
                 'an unknown kind is refused');
SELECT throws_ok($$SELECT ops.add_contact_method('bob', 'email', 'bob@example.com', 'bob', repeat('x', 101))$$,
                 '22023', NULL, 'a label longer than 100 characters is refused');
SELECT throws_ok($$SELECT ops.add_contact_method('bob', 'email', 'bob@example.com', 'carol')$$, '42501', NULL,
                 'carol may not add a contact method for bob');
SELECT is((SELECT count(*) FROM ops.contact_methods), 0::bigint, 'the refused calls stored nothing');

CREATE TEMP TABLE m AS
SELECT
    x.k,
    ops.add_contact_method('bob', x.kind, x.address, x.actor, x.label) AS id
FROM (VALUES
    ('email', 'email', 'bob@example.com', 'bob', 'work'),
    ('sms', 'sms', '+14155550142', 'bob', NULL),
    ('slack_dm', 'slack_dm', 'U024BE7LH', 'bob', NULL),
    ('admin_voice', 'voice', '+14155550199', 'ada', NULL)
) AS x (k, kind, address, actor, label);
CREATE TEMP TABLE hook AS SELECT * FROM ops.add_webhook_contact_method('bob', 'https://hooks.example.com/bob', 'bob');

SELECT is((SELECT count(*) FROM m WHERE id IS NOT NULL), 4::bigint, 'bob adds his own methods; an admin may add one');
SELECT throws_ok($$SELECT ops.add_contact_method('bob', 'email', 'bob@example.com', 'bob')$$, '23505', NULL,
                 'the same live address twice is refused');
SELECT results_eq(
    $$SELECT c.kind, c.verified_at IS NOT NULL FROM ops.contact_methods AS c ORDER BY c.kind$$,
    $$VALUES ('email', false), ('slack_dm', true), ('sms', false), ('voice', false), ('webhook', true)$$,
    'email, sms and voice start unverified; slack_dm and webhook are verified at once');
SELECT results_eq(
    $$SELECT o.channel, o.principal, o.payload, o.event_id IS NULL AND o.incident_id IS NULL,
             o.dedup_key LIKE 'verify:' || o.contact_method || ':%'
      FROM ops.notification_outbox AS o ORDER BY o.channel$$,
    $$VALUES ('email', 'bob', '{"type": "verify"}'::jsonb, true, true), ('sms', 'bob', '{"type": "verify"}', true, true),
             ('voice', 'bob', '{"type": "verify"}', true, true)$$,
    'each unverified method is sent a verification message through itself, with no address in it');
SELECT ok((SELECT h.secret ~ '^[A-Za-z0-9_-]{43}$' AND h.secret = c.secret
           FROM hook AS h INNER JOIN ops.contact_methods AS c ON h.id = c.id),
          'a webhook gets a random 43-character secret, returned once by ops.add_webhook_contact_method');

-- verifying: the claim of the verification message stores the hash of a code; simulated here
UPDATE ops.contact_methods SET code_hash = encode(sha256('123456'), 'hex'), code_expires_at = '2026-03-02 12:15Z'
WHERE id = (SELECT id FROM m WHERE k = 'email');
SELECT throws_ok($$SELECT ops.verify_contact_method((SELECT id FROM m WHERE k = 'email'), '12345x', 'bob', '2026-03-02 12:01Z')$$,
                 '22023', NULL, 'a code that is not 6 digits is refused without counting');
SELECT throws_ok($$SELECT ops.verify_contact_method((SELECT id FROM m WHERE k = 'email'), '123456', 'carol', '2026-03-02 12:01Z')$$,
                 'P0002', NULL, 'another principal''s method is not found');
SELECT is(ops.verify_contact_method((SELECT id FROM m WHERE k = 'email'), '000000', 'bob', '2026-03-02 12:01Z'), FALSE,
          'a wrong code answers false');
SELECT is((SELECT code_attempts FROM ops.contact_methods WHERE id = (SELECT id FROM m WHERE k = 'email')), 1,
          'the wrong try is counted');
SELECT throws_ok($$SELECT ops.verify_contact_method((SELECT id FROM m WHERE k = 'email'), '123456', 'bob', '2026-03-02 12:15Z')$$,
                 '55000', 'the code has expired', 'a code is good for 15 minutes only');
SELECT is(ops.verify_contact_method((SELECT id FROM m WHERE k = 'email'), '123456', 'bob', '2026-03-02 12:02Z'), TRUE,
          'the right code verifies the method');
SELECT is((SELECT (verified_at, code_hash, code_attempts)::text FROM ops.contact_methods WHERE id = (SELECT id FROM m WHERE k = 'email')),
          '("2026-03-02 12:02:00+00",,0)', 'verified at p_now; the code is forgotten');

UPDATE ops.contact_methods SET code_hash = encode(sha256('654321'), 'hex'), code_expires_at = '2026-03-02 12:15Z'
WHERE id = (SELECT id FROM m WHERE k = 'sms');
SELECT is(array_agg(ops.verify_contact_method((SELECT id FROM m WHERE k = 'sms'), c, 'bob', '2026-03-02 12:01Z') ORDER BY c),
          ARRAY[FALSE, FALSE, FALSE, FALSE, FALSE], 'five wrong codes answer false')
FROM unnest(ARRAY['111111', '222222', '333333', '444444', '555555']) AS c;
SELECT throws_ok($$SELECT ops.verify_contact_method((SELECT id FROM m WHERE k = 'sms'), '654321', 'bob', '2026-03-02 12:01Z')$$,
                 '55000', '5 wrong codes: this code no longer works', 'after 5 wrong codes even the right one is refused');
SELECT throws_ok($$SELECT ops.resend_verification((SELECT id FROM m WHERE k = 'sms'), 'bob', now())$$, '55000', NULL,
                 'a new code is not sent within a minute of the last');
UPDATE ops.notification_outbox SET created_at = created_at - interval '61 seconds'
WHERE contact_method = (SELECT id FROM m WHERE k = 'sms');
SELECT lives_ok($$SELECT ops.resend_verification((SELECT id FROM m WHERE k = 'sms'), 'bob', now())$$,
                'a new code may be asked for a minute later');
SELECT is((SELECT (count(*), count(*) FILTER (WHERE c.code_hash IS NOT NULL))::text
           FROM ops.notification_outbox AS o, ops.contact_methods AS c
           WHERE o.contact_method = c.id AND c.id = (SELECT id FROM m WHERE k = 'sms')),
          '(2,0)', 'the resend queued a second message and the old code stopped working');

-- rules
SELECT throws_ok($$SELECT ops.add_notification_rule('carol', (SELECT id FROM m WHERE k = 'email'), 0, 'carol')$$,
                 'P0002', NULL, 'a rule on another principal''s method is refused');
SELECT throws_ok($$SELECT ops.add_notification_rule('bob', (SELECT id FROM m WHERE k = 'email'), 1441, 'bob')$$,
                 '22023', NULL, 'a delay over a day is refused');
SELECT throws_ok($$SELECT ops.add_notification_rule('bob', (SELECT id FROM m WHERE k = 'email'), -1, 'bob')$$,
                 '22023', NULL, 'a negative delay is refused');
CREATE TEMP TABLE r AS
SELECT
    x.k,
    ops.add_notification_rule('bob', (SELECT m.id FROM m WHERE m.k = x.method), x.delay_min, 'bob') AS id
FROM (VALUES ('email0', 'email', 0), ('email5', 'email', 5), ('dm0', 'slack_dm', 0), ('sms1', 'sms', 1)) AS x (k, method, delay_min)
UNION ALL
SELECT
    'hook2' AS k,
    ops.add_notification_rule('bob', (SELECT hook.id FROM hook), 2, 'bob') AS id;
SELECT throws_ok($$SELECT ops.add_notification_rule('bob', (SELECT id FROM m WHERE k = 'email'), 5, 'bob')$$,
                 '23505', NULL, 'the same method and delay twice is refused');

SELECT ok(EXISTS (SELECT 1 FROM ops.config_problems() WHERE setting = 'principals[carol]'
                  AND problem LIKE 'principal carol has no notification rules%'),
          'config_problems: carol can be paged and has no notification rules');
SELECT ok(NOT EXISTS (SELECT 1 FROM ops.config_problems() WHERE setting = 'principals[bob]'),
          'config_problems: bob has usable rules');
SELECT ok(EXISTS (SELECT 1 FROM ops.config_problems()
                  WHERE setting = 'notification_rules[' || (SELECT id FROM r WHERE k = 'sms1') || ']'
                  AND problem LIKE '%to be verified%'),
          'config_problems: the rule on the unverified SMS number waits for its verification');

-- the page fans out: one message per usable rule (the unverified SMS has none), due at 12:05 + delay
CREATE TEMP TABLE t AS
SELECT (ops.trigger_incident('GET /pay::slo_violation', 'critical', p_now => '2026-03-02 12:00Z')).id AS a;
SELECT is((ops.escalation_tick('2026-03-02 12:05Z')) -> 'escalationsCount', '1'::jsonb, 'level 1 at 12:05');
SELECT results_eq(
    $$SELECT o.channel, o.principal, o.due_at, o.dedup_key, o.webhook_url, o.status
      FROM ops.notification_outbox AS o WHERE o.contact_method IS NOT NULL AND o.event_id IS NOT NULL
      ORDER BY o.due_at, o.channel$$,
    $$SELECT c, 'bob', '2026-03-02 12:05Z'::timestamptz + make_interval(mins => d),
             encode(sha256(convert_to(ops.escalation_hash(t.a, 1) || ':rule:' || (SELECT id FROM r WHERE k = rk), 'UTF8')), 'hex'),
             NULL::text, 'pending'
      FROM t, (VALUES ('email', 0, 'email0'), ('slack_dm', 0, 'dm0'), ('webhook', 2, 'hook2'), ('email', 5, 'email5'))
              AS x (c, d, rk)
      ORDER BY 3, 1$$,
    'one page per usable rule: its kind, bob, escalated_at + delay, its own dedup key, no webhook URL');
SELECT ok((SELECT bool_and(next_attempt_at = due_at) FROM ops.notification_outbox WHERE contact_method IS NOT NULL
           AND event_id IS NOT NULL), 'each page is first tried when due');
SELECT is((SELECT ops._page_payload(o) - 'dedup_key' FROM ops.notification_outbox AS o WHERE o.channel = 'slack_dm'),
          (SELECT payload - 'dedup_key' FROM ops.notification_outbox WHERE channel = 'slack'),
          'a page is rendered from the channel post''s payload');
SELECT ok(NOT EXISTS (SELECT 1 FROM ops.notification_outbox
                      WHERE payload::text ~ 'bob@example.com|U024BE7LH|hooks.example.com/bob'),
          'no address is copied into the outbox');
SELECT is((SELECT payload -> 'mentions' FROM ops.notification_outbox WHERE channel = 'slack'), '["<@UCAROL>"]'::jsonb,
          'the channel post mentions only carol, whom no rule reaches');
SELECT is((SELECT payload -> 'principals' FROM ops.notification_outbox WHERE channel = 'slack'), '["bob", "carol"]'::jsonb,
          'the channel post still names both paged principals');
SELECT is((ops.escalation_tick('2026-03-02 12:05Z')) -> 'escalationsCount', '0'::jsonb, 'a second tick pages nothing twice');
SELECT is((SELECT count(*) FROM ops.notification_outbox WHERE event_id IS NOT NULL), 5::bigint,
          'still one channel post and four pages');

-- rules at 0 and 5 minutes, acknowledged at minute 3: the first was sent, the second is cancelled
SELECT ops.set_setting('slack_webhook_url', 'http://127.0.0.1:9000/hook', 'ada');
SELECT ops.set_setting('smtp_host', 'smtp.example.com', 'ada');  -- e-mail pages wait while no SMTP server is set
CREATE TEMP TABLE claimed AS SELECT * FROM ops.claim_notifications('w1', 10, '2026-03-02 12:06Z');
SELECT ok((SELECT count(*) FROM claimed WHERE id IN (SELECT id FROM ops.notification_outbox WHERE channel = 'email')) = 1,
          'at 12:06 the dispatcher claims the email due at 12:05, not the one due at 12:10');
SELECT ops.finish_notifications('w1', (SELECT jsonb_agg(jsonb_build_object('id', id, 'claim', claim_id, 'outcome', 'sent'))
                                       FROM claimed), '2026-03-02 12:06Z');
SELECT ops.ack_incident((SELECT a FROM t), 'bob', NULL, '2026-03-02 12:08Z');
SELECT results_eq(
    $$SELECT o.channel, o.due_at, o.status, o.cancelled_at FROM ops.notification_outbox AS o
      WHERE o.contact_method IS NOT NULL AND o.event_id IS NOT NULL ORDER BY o.due_at, o.channel$$,
    $$VALUES ('email', '2026-03-02 12:05Z'::timestamptz, 'sent', NULL::timestamptz),
             ('slack_dm', '2026-03-02 12:05Z', 'sent', NULL),
             ('webhook', '2026-03-02 12:07Z', 'cancelled', '2026-03-02 12:08Z'),
             ('email', '2026-03-02 12:10Z', 'cancelled', '2026-03-02 12:08Z')$$,
    'acknowledged at 12:08: the pages sent stay sent, those still to come are cancelled at the ack');
SELECT is(
    (SELECT count(*) FROM ops.claim_notifications('w1', 10, '2026-03-02 12:30Z') AS c
     WHERE c.id IN (SELECT id FROM ops.notification_outbox WHERE status = 'cancelled')), 0::bigint,
    'a cancelled page is never claimed');

-- the record
GRANT SELECT ON t TO opsguard_operator;
SET LOCAL ROLE opsguard_operator;
SELECT results_eq(
    $$SELECT incident_key, level, principal, kind, address, status, acted_at, via FROM ops.page_log
      WHERE incident_id = (SELECT a FROM t) ORDER BY due_at, kind$$,
    $$VALUES ('GET /pay::slo_violation', 1, 'bob', 'email', 'b…@example.com', 'sent', '2026-03-02 12:08Z'::timestamptz, 'other'),
             ('GET /pay::slo_violation', 1, 'bob', 'slack_dm', 'U…LH', 'sent', '2026-03-02 12:08Z', 'other'),
             ('GET /pay::slo_violation', 1, 'bob', 'webhook', (SELECT ops.contact_address_redacted('webhook', 'https://hooks.example.com/bob')),
              'cancelled', '2026-03-02 12:08Z', 'other'),
             ('GET /pay::slo_violation', 1, 'bob', 'email', 'b…@example.com', 'cancelled', '2026-03-02 12:08Z', 'other')$$,
    'an operator reads page_log: each page, its redacted address, its fate, and when bob answered');
SELECT throws_ok($$SELECT address FROM ops.contact_methods$$, '42501', NULL, 'an operator cannot read the addresses themselves');
RESET ROLE;

-- every path that acknowledges or resolves cancels what is still to come (a fresh incident each time)
CREATE FUNCTION pg_temp.paged(p_key text) RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid := (ops.trigger_incident('GET /pay::' || p_key, 'critical', p_now => '2026-03-02 13:00Z')).id;
BEGIN
    PERFORM ops.escalation_tick('2026-03-02 13:05Z');
    RETURN v_id;
END;
$$;
CREATE FUNCTION pg_temp.left_pending(p_id uuid) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM ops.notification_outbox WHERE incident_id = p_id AND contact_method IS NOT NULL
    AND status IN ('pending', 'sending')
$$;
CREATE TEMP TABLE paths AS SELECT pg_temp.paged('psql') AS psql;
GRANT SELECT ON paths TO opsguard_operator;
SELECT is(pg_temp.left_pending((SELECT psql FROM paths)), 4::bigint, 'a fresh page has four pages to come');
-- a page claimed by a dispatcher but not yet sent is cancelled too
UPDATE ops.notification_outbox SET status = 'sending', lease_until = '2026-03-02 13:10Z', claim_id = 1
WHERE incident_id = (SELECT psql FROM paths) AND channel = 'slack_dm';
SET LOCAL ROLE opsguard_operator;
UPDATE ops.incidents SET acknowledged_at = '2026-03-02 13:06Z' WHERE id = (SELECT psql FROM paths);
RESET ROLE;
SELECT is((SELECT string_agg(DISTINCT status || ' ' || cancelled_at, ',') FROM ops.notification_outbox
           WHERE incident_id = (SELECT psql FROM paths) AND contact_method IS NOT NULL),
          'cancelled 2026-03-02 13:06:00+00', 'an operator''s UPDATE in psql cancels every page still to come, claimed or not');
SELECT ops.finish_notifications('w9', jsonb_build_array(jsonb_build_object(
    'id', (SELECT id FROM ops.notification_outbox WHERE incident_id = (SELECT psql FROM paths) AND channel = 'slack_dm'),
    'claim', 1, 'outcome', 'sent')), '2026-03-02 13:07Z');
SELECT is((SELECT status FROM ops.notification_outbox WHERE incident_id = (SELECT psql FROM paths) AND channel = 'slack_dm'),
          'cancelled', 'a cancelled page stays cancelled whatever its dispatcher reports afterwards');

SELECT pg_temp.paged('slack');
SELECT is(ops.api_slack_command('T1', 'UBOB', '/incident-ack', 'GET /pay::slack', 'slack-k1') ->> 'ok', 'true',
          'bob acks from a Slack command');
SELECT is(pg_temp.left_pending((SELECT id FROM ops.incidents WHERE incident_key = 'GET /pay::slack')), 0::bigint,
          'a Slack command''s ack cancels the pages');

SELECT pg_temp.paged('api');
SELECT is(ops.api_set_incident_status('ops-bot', 'bob', NULL, (SELECT id::text FROM ops.incidents WHERE incident_key = 'GET /pay::api'),
                                      'resolved', NULL) ->> 'ok', 'true', 'bob resolves through the API');
SELECT is(pg_temp.left_pending((SELECT id FROM ops.incidents WHERE incident_key = 'GET /pay::api')), 0::bigint,
          'a resolve through the API cancels the pages');

SELECT pg_temp.paged('intake');
SELECT ops._intake_transition('GET /pay::intake', 'resolved', 'alertmanager', '2026-03-02 13:07Z');
SELECT is((SELECT string_agg(DISTINCT o.status || ' ' || o.cancelled_at, ',') FROM ops.notification_outbox AS o
           INNER JOIN ops.incidents AS i ON o.incident_id = i.id
           WHERE i.incident_key = 'GET /pay::intake' AND o.contact_method IS NOT NULL),
          'cancelled 2026-03-02 13:07:00+00', 'an intake resolve cancels the pages at its time');

-- removing a method: its rules go, its unsent pages are cancelled, its unused answers revoked
CREATE TEMP TABLE rm AS SELECT pg_temp.paged('remove') AS i;
CREATE TEMP TABLE tok AS
SELECT (ops._mint_page_token(o.id, o.incident_id, 'bob', 'link', '2026-03-02 13:05Z')).r_token
FROM ops.notification_outbox AS o
WHERE o.incident_id = (SELECT i FROM rm) AND o.channel = 'email' AND o.due_at = '2026-03-02 13:05Z';
SELECT throws_ok($$SELECT ops.remove_contact_method((SELECT id FROM m WHERE k = 'email'), 'carol')$$, 'P0002', NULL,
                 'carol cannot remove bob''s method');
SELECT lives_ok($$SELECT ops.remove_contact_method((SELECT id FROM m WHERE k = 'email'), 'bob', '2026-03-02 13:06Z')$$,
                'bob removes his e-mail');
SELECT is((SELECT count(*) FROM ops.notification_rules WHERE contact_method = (SELECT id FROM m WHERE k = 'email')),
          0::bigint, 'its rules are gone');
SELECT is((SELECT string_agg(DISTINCT status, ',') FROM ops.notification_outbox
           WHERE incident_id = (SELECT i FROM rm) AND channel = 'email'), 'cancelled', 'its pages still to come are cancelled');
SELECT is((SELECT revoked_at FROM ops.page_tokens WHERE incident_id = (SELECT i FROM rm)), '2026-03-02 13:06Z'::timestamptz,
          'its unused page token is revoked');
SELECT is(pg_temp.left_pending((SELECT i FROM rm)), 2::bigint, 'the pages to bob''s other methods stay');
SELECT throws_ok($$SELECT ops.remove_contact_method((SELECT id FROM m WHERE k = 'email'), 'bob')$$, 'P0002', NULL,
                 'a removed method cannot be removed again');
SELECT throws_ok($$SELECT ops.remove_notification_rule((SELECT id FROM r WHERE k = 'dm0'), 'carol')$$, 'P0002', NULL,
                 'carol cannot remove bob''s rule');
SELECT lives_ok($$SELECT ops.remove_notification_rule((SELECT id FROM r WHERE k = 'dm0'), 'bob')$$, 'bob removes a rule');

SELECT * FROM finish();
ROLLBACK;
