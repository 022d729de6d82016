-- What the dispatcher is handed for each contact method: the claim renders every channel, mints the
-- answers a page carries (only their hashes kept) or a verification code, cancels a page nobody
-- needs any more, and a finished page keeps its provider's id and never comes back from cancelled.
-- Page rows are written here as the tick writes them: one per notification rule, dedup key
-- sha256(unique_hash || ':rule:' || rule id), due at escalated_at + delay_min, no address in the row.
BEGIN;
SELECT plan(40);

SELECT ops.set_setting('app_base_url', 'https://ops.example.com/', 'alice');
SELECT ops.set_setting('smtp_host', 'smtp.example.com', 'alice');
SELECT ops.set_setting('smtp_from', 'pager@example.com', 'alice');
SELECT ops.add_principal('bob', 'human', ARRAY['ops_responder'], 'alice');
CREATE TEMP TABLE t AS
SELECT (ops.trigger_incident('GET /a<b>&c', 'critical', 'GET /a', 'Checkout "down" <now>', p_now => '2026-03-02 12:00Z')).id AS inc;
SELECT ops.escalation_tick('2026-03-02 13:00Z');
CREATE TEMP TABLE cm AS
WITH ins AS (
    INSERT INTO ops.contact_methods (principal, kind, address, created_by, secret, verified_at) VALUES
    ('bob', 'email', 'bob@mail.example.com', 'bob', NULL, '2026-03-01Z'),
    ('bob', 'sms', '+14155550142', 'bob', NULL, '2026-03-01Z'),
    ('bob', 'voice', '+14155550143', 'bob', NULL, '2026-03-01Z'),
    ('bob', 'slack_dm', 'U024BE7LH', 'bob', NULL, '2026-03-01Z'),
    ('bob', 'webhook', 'https://hooks.example.com/bob', 'bob', 'whsec-bob', '2026-03-01Z'),
    ('bob', 'email', 'bob.new@mail.example.com', 'bob', NULL, NULL),
    ('bob', 'sms', '+14155550199', 'bob', NULL, '2026-03-01Z')
    RETURNING id, kind, address
)

SELECT * FROM ins;

-- a page as the tick queues it: one outbox row per rule of the paged principal
CREATE FUNCTION pg_temp.page(p_address text, p_delay int) RETURNS bigint LANGUAGE sql AS $$
    WITH r AS (
        INSERT INTO ops.notification_rules (principal, contact_method, delay_min, created_by)
        SELECT 'bob', cm.id, p_delay, 'bob' FROM cm WHERE cm.address = p_address
        RETURNING id, contact_method
    )
    INSERT INTO ops.notification_outbox (dedup_key, event_id, incident_id, route, channel, payload, next_attempt_at,
                                         principal, contact_method)
    SELECT encode(sha256(convert_to(e.unique_hash || ':rule:' || r.id, 'UTF8')), 'hex'), e.id, e.incident_id, e.route,
           (SELECT kind FROM cm WHERE cm.id = r.contact_method), o.payload,
           e.escalated_at + make_interval(mins => p_delay), 'bob', r.contact_method
    FROM r, ops.escalation_events AS e
    INNER JOIN ops.notification_outbox AS o ON o.event_id = e.id AND o.contact_method IS NULL
    WHERE e.incident_id = (SELECT inc FROM t)
    RETURNING id
$$;
CREATE TEMP TABLE pages AS
SELECT
    a.address,
    pg_temp.page(a.address, 0) AS outbox_id
FROM (VALUES ('bob@mail.example.com'), ('+14155550142'), ('+14155550143'), ('U024BE7LH'),
             ('https://hooks.example.com/bob'), ('+14155550199')) AS a (address);
INSERT INTO ops.notification_outbox (dedup_key, channel, payload, next_attempt_at, principal, contact_method)
SELECT
    'verify:' || id || ':1' AS dedup_key,
    'email' AS channel,
    '{"type": "verify"}'::jsonb AS payload,
    '2026-03-02 13:00Z'::timestamptz AS due,
    'bob' AS principal,
    id AS contact_method
FROM cm WHERE address = 'bob.new@mail.example.com';
-- removed after its page was queued
UPDATE ops.contact_methods SET removed_at = '2026-03-02 12:59Z', removed_by = 'bob' WHERE address = '+14155550199';

SELECT is_empty($$SELECT 1 FROM ops.notification_outbox AS o, cm
                  WHERE strpos(o::text, cm.address) > 0 OR strpos(o::text, 'whsec-bob') > 0$$,
                'no outbox row holds an address or a secret');

CREATE TEMP TABLE c AS
SELECT
    c.*,
    p.address
FROM ops.claim_notifications('w1', 100, '2026-03-02 13:00Z') AS c
LEFT JOIN pages AS p ON c.id = p.outbox_id;
CREATE FUNCTION pg_temp.msg(p_address text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT message FROM c WHERE address = p_address
$$;
CREATE FUNCTION pg_temp.hashed(p_token text) RETURNS text LANGUAGE sql AS $$
    SELECT encode(sha256(convert_to(p_token, 'UTF8')), 'hex')
$$;

SELECT set_eq($$SELECT channel FROM c$$, ARRAY['email', 'sms', 'voice', 'slack_dm', 'webhook', 'email'],
              'five pages and one verification code are claimed, each with its channel; the channel post has no webhook');
SELECT results_eq($$SELECT status, cancelled_at FROM ops.notification_outbox
                    WHERE id = (SELECT outbox_id FROM pages WHERE address = '+14155550199')$$,
                  $$VALUES ('cancelled', '2026-03-02 13:00Z'::timestamptz)$$,
                  'a page to a contact method removed meanwhile is cancelled, not claimed');

-- email
SELECT results_eq($$SELECT webhook_url, message ->> 'to', message ->> 'from' FROM c WHERE address = 'bob@mail.example.com'$$,
                  $$VALUES ('smtp://smtp.example.com:587', 'bob@mail.example.com', 'pager@example.com')$$,
                  'an e-mail goes through smtp_host:smtp_port to the method''s address, from smtp_from');
SELECT is(pg_temp.msg('bob@mail.example.com') ->> 'subject',
          '[CRITICAL] GET /a<b>&c escalated to level 1: Checkout "down" <now>',
          'its subject is the summary line: severity, key, level and the incident''s summary');
SELECT matches(pg_temp.msg('bob@mail.example.com') ->> 'text',
               E'Severity: critical\nLevel: 1\nRoute: GET /a\n.*\n'
               || 'Acknowledge or resolve: https://ops\.example\.com/p/[A-Za-z0-9_-]{43}\n',
               'its plain-text part names severity, level and route and carries the /p/<token> link');
SELECT ok(strpos(pg_temp.msg('bob@mail.example.com') ->> 'html', 'GET /a&lt;b&gt;&amp;c') > 0
          AND strpos(pg_temp.msg('bob@mail.example.com') ->> 'html', 'Checkout &quot;down&quot; &lt;now&gt;') > 0
          AND strpos(pg_temp.msg('bob@mail.example.com') ->> 'html', '<b>') = 0,
          'its HTML part escapes the key and the summary');
SELECT results_eq(
    $$SELECT channel, principal, incident_id, outbox_id, expires_at, used_at FROM ops.page_tokens
      WHERE token_hash = pg_temp.hashed(substring(pg_temp.msg('bob@mail.example.com') ->> 'text' FROM '/p/([A-Za-z0-9_-]{43})'))$$,
    $$SELECT 'link', 'bob', inc, (SELECT outbox_id FROM pages WHERE address = 'bob@mail.example.com'),
             '2026-03-03 13:00Z'::timestamptz, NULL::timestamptz FROM t$$,
    'the e-mail''s link token is stored hashed: a link answer for bob on this incident, valid 24 hours, unused');
SELECT ok(pg_temp.msg('bob@mail.example.com') ->> 'html' LIKE
          '%<a href="https://ops.example.com/p/'
          || substring(pg_temp.msg('bob@mail.example.com') ->> 'text' FROM '/p/([A-Za-z0-9_-]{43})') || '">%',
          'the HTML part links the same token');

-- sms
SELECT is(pg_temp.msg('+14155550142') ->> 'to', '+14155550142', 'an SMS goes to the method''s number');
SELECT is(pg_temp.msg('+14155550142') ->> 'status_callback', 'https://ops.example.com/twilio/status',
          'Twilio is asked to report its delivery to /twilio/status');
SELECT matches(pg_temp.msg('+14155550142') ->> 'body',
               E'^\\[CRITICAL\\] GET /a<b>&c escalated to level 1: .*\nReply 4 ([0-9]{6}) to acknowledge, 6 \\1 to resolve\\.\n'
               || 'https://ops\.example\.com/p/[A-Za-z0-9_-]{43}$',
               'an SMS: the summary, "Reply 4 <code> to acknowledge, 6 <code> to resolve" and the link');
SELECT results_eq(
    $$SELECT channel, short_code FROM ops.page_tokens
      WHERE token_hash = pg_temp.hashed(substring(pg_temp.msg('+14155550142') ->> 'body' FROM '/p/([A-Za-z0-9_-]{43})'))$$,
    $$VALUES ('sms', substring(pg_temp.msg('+14155550142') ->> 'body' FROM 'Reply 4 ([0-9]{6})'))$$,
    'the SMS token carries the short code the text tells to reply with');

-- voice
SELECT is(pg_temp.msg('+14155550143') ->> 'to', '+14155550143', 'a call goes to the method''s number');
SELECT matches(pg_temp.msg('+14155550143') ->> 'twiml',
               '<Gather numDigits="1" method="POST" action="https://ops\.example\.com/twilio/voice\?t=[A-Za-z0-9_-]{43}">'
               || '<Say>opsguard page\. \[CRITICAL\] GET /a&lt;b&gt;&amp;c escalated to level 1: .*\. '
               || 'Press 4 to acknowledge, 6 to resolve\.</Say></Gather>',
               'a call reads the summary (XML-escaped) and gathers one key: 4 acknowledges, 6 resolves');
SELECT is((SELECT channel FROM ops.page_tokens
           WHERE token_hash = pg_temp.hashed(substring(pg_temp.msg('+14155550143') ->> 'twiml' FROM '\?t=([A-Za-z0-9_-]{43})'))),
          'voice', 'the gather action carries a voice token');

-- slack_dm
SELECT is(pg_temp.msg('U024BE7LH') ->> 'channel', 'U024BE7LH', 'a Slack DM is posted to the user''s id as channel');
SELECT results_eq(
    $$SELECT b ->> 'action_id', b #>> '{text,text}', (SELECT channel FROM ops.page_tokens WHERE token_hash = pg_temp.hashed(b ->> 'value'))
      FROM jsonb_array_elements(pg_temp.msg('U024BE7LH') #> '{blocks,1,elements}') AS b$$,
    $$VALUES ('ack', 'Acknowledge', 'slack_button'), ('resolve', 'Resolve', 'slack_button')$$,
    'a Slack DM has the buttons Acknowledge (ack) and Resolve (resolve), each with its own slack_button token');
SELECT ok(pg_temp.msg('U024BE7LH') ->> 'text' LIKE '%GET /a&lt;b&gt;&amp;c%', 'the DM''s text is Slack-escaped');

-- webhook
SELECT is((SELECT webhook_url FROM c WHERE address = 'https://hooks.example.com/bob'), 'https://hooks.example.com/bob',
          'a webhook page goes to the method''s URL');
SELECT is(pg_temp.msg('https://hooks.example.com/bob') - 'body', '{"secret": "whsec-bob"}',
          'with the method''s secret for the dispatcher to sign with');
SELECT results_eq(
    $$SELECT b ->> 'event', b ->> 'principal', b ->> 'level', b #>> '{incident,id}', b #>> '{incident,key}', b #>> '{incident,severity}'
      FROM (SELECT pg_temp.msg('https://hooks.example.com/bob') -> 'body' AS b) AS x$$,
    $$SELECT 'incident.paged', 'bob', '1', inc::text, 'GET /a<b>&c', 'critical' FROM t$$,
    'its body: event incident.paged, the incident, the level and the principal');

-- verification code
SELECT is((SELECT message ->> 'to' FROM c WHERE address IS NULL), 'bob.new@mail.example.com',
          'a verification code goes to the new address');
SELECT results_eq(
    $$SELECT code_hash = pg_temp.hashed(substring((SELECT message ->> 'text' FROM c WHERE address IS NULL) FROM '([0-9]{6})')),
             code_expires_at, code_attempts
      FROM ops.contact_methods WHERE address = 'bob.new@mail.example.com'$$,
    $$VALUES (true, '2026-03-02 13:15Z'::timestamptz, 0)$$,
    'the code is minted at the claim: its sha256 stored, valid 15 minutes, no attempts yet');
SELECT is((SELECT count(*)::int FROM ops.audit_log WHERE table_name = 'contact_methods'
           AND changes::text ~ (SELECT '"' || substring(message ->> 'text' FROM '([0-9]{6})') || '"' FROM c WHERE address IS NULL)),
          0, 'the code is in no audit row');

-- still wanted right before the send
SELECT set_eq($$SELECT ops.notification_still_wanted((SELECT array_agg(id) FROM c))$$, $$SELECT id FROM c$$,
              'before anything changes every claimed message is still wanted');
SELECT ops.ack_incident((SELECT inc FROM t), 'bob', p_now => '2026-03-02 13:00:05Z');
SELECT set_eq($$SELECT ops.notification_still_wanted((SELECT array_agg(id) FROM c))$$,
              $$SELECT id FROM c WHERE address IS NULL$$,
              'once the incident is acknowledged only the verification code is still wanted: its pages are not');

-- finish
UPDATE ops.notification_outbox SET status = 'cancelled', cancelled_at = '2026-03-02 13:00:05Z'
WHERE id = (SELECT id FROM c WHERE address = '+14155550143');
SELECT is(ops.finish_notifications('w1', (SELECT jsonb_agg(jsonb_build_object(
              'id', id, 'claim', claim_id,
              'outcome', CASE address WHEN 'bob@mail.example.com' THEN 'cancelled' WHEN 'U024BE7LH' THEN 'failed' ELSE 'sent' END,
              'provider_id', CASE address WHEN '+14155550142' THEN 'SM0123' WHEN '+14155550143' THEN 'CA0456' END))
          FROM c), '2026-03-02 13:00:06Z') - 'logged',
          '{"sent": 1, "retrying": 0, "dead": 0, "released": 0, "cancelled": 4, "stale": 1}',
          'after the ack, finish counts the code sent and the pages cancelled (sent or dropped), and retries no failed DM');
SELECT results_eq(
    $$SELECT c.address, o.status, o.cancelled_at, o.sent_at, o.provider_id, o.attempts
      FROM c INNER JOIN ops.notification_outbox AS o ON c.id = o.id WHERE c.address IN ('bob@mail.example.com', '+14155550142', '+14155550143')
      ORDER BY c.address$$,
    $$VALUES ('+14155550142', 'cancelled', '2026-03-02 13:00:05Z'::timestamptz, '2026-03-02 13:00:06Z'::timestamptz,
              'SM0123', 1),
             ('+14155550143', 'cancelled', '2026-03-02 13:00:05Z', '2026-03-02 13:00:06Z', 'CA0456', 1),
             ('bob@mail.example.com', 'cancelled', '2026-03-02 13:00:05Z', NULL, NULL, 1)$$,
    'pages cancelled by the ack while they were sent stay cancelled with their time and SID; '
    || 'the e-mail reported cancelled was claimed once and never sent');
SELECT is((SELECT count(*)::int FROM ops.notification_attempts WHERE outbox_id = (SELECT id FROM c WHERE address = 'bob@mail.example.com')),
          0, 'a cancelled page leaves no delivery attempt');
SELECT is(ops.finish_notifications('w1', (SELECT jsonb_agg(jsonb_build_object('id', id, 'claim', claim_id + 1000, 'outcome', 'sent'))
                                          FROM c WHERE address = 'bob@mail.example.com'), '2026-03-02 13:01Z') ->> 'stale', '1',
          'a report of sent for a cancelled page under no claim of it is stale');
SELECT is((SELECT status FROM ops.notification_outbox WHERE id = (SELECT id FROM c WHERE address = 'bob@mail.example.com')),
          'cancelled', 'and the page stays cancelled');
SELECT is(ops.finish_notifications('w1', (SELECT jsonb_agg(jsonb_build_object('id', id, 'claim', 1, 'outcome', 'cancelled'))
                                          FROM c WHERE address = 'bob@mail.example.com'), '2026-03-02 13:01Z') ->> 'cancelled', '1',
          'a page already cancelled (when the incident was acknowledged) and reported cancelled counts as cancelled');
SELECT throws_ok($$SELECT ops.finish_notifications('w1', '[{"id": 1, "claim": 1, "outcome": "delivered"}]')$$, '22023', NULL,
                 'an unknown outcome is refused');

-- a later rule of an acknowledged incident is cancelled when it falls due, never claimed
SELECT pg_temp.page('bob@mail.example.com', 5);
SELECT is_empty($$SELECT * FROM ops.claim_notifications('w1', 100, '2026-03-02 13:05Z')$$,
                'nothing of the acknowledged incident is claimed at minute 5, not even the failed DM''s retry');
SELECT is((SELECT status FROM ops.notification_outbox WHERE next_attempt_at = '2026-03-02 13:05Z'), 'cancelled',
          'its 5-minute page is cancelled');

-- settings of the SMTP server
SELECT is((ops.set_setting('smtp_host', '192.0.2.25', 'alice')).value, '"192.0.2.25"', 'smtp_host takes an IP address');
SELECT throws_ok($$SELECT ops.set_setting('smtp_host', 'smtp://smtp.example.com:25', 'alice')$$, '22023', NULL,
                 'smtp_host is a host, not a URL');
SELECT throws_ok($$SELECT ops.set_setting('smtp_from', 'opsguard at example', 'alice')$$, '22023', NULL,
                 'smtp_from must be an e-mail address');
SELECT throws_ok($$SELECT ops.set_setting('smtp_port', '70000', 'alice')$$, '22003', NULL, 'smtp_port is 1-65535');

SELECT * FROM finish();
ROLLBACK;
