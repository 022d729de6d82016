-- The pager's limits hold against someone working around them (docs/notifications.md): a
-- verification code goes to an address at most once a minute and 10 times a day, however the
-- method is re-added or whoever adds it; an SMS reply speaks only from a verified number of the
-- paged principal; 5 wrong short codes from a number lock its replies for an hour.
BEGIN;
SELECT plan(23);

DO $$
BEGIN
    PERFORM ops.add_principal(p, 'human', '{ops_responder}', 'admin') FROM unnest(ARRAY['bob', 'carol', 'mallory']) AS p;
END
$$;
CREATE TEMP TABLE m (k text PRIMARY KEY, id uuid);
CREATE FUNCTION pg_temp.codes(p_address text) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM ops.notification_outbox AS o JOIN ops.contact_methods AS c ON o.contact_method = c.id
    WHERE o.event_id IS NULL AND c.address = p_address
$$;
-- a minute passes for the codes already queued
CREATE FUNCTION pg_temp.a_minute_later() RETURNS void LANGUAGE sql AS $$
    UPDATE ops.notification_outbox SET created_at = created_at - interval '2 minutes' WHERE event_id IS NULL
$$;

-- verification codes: removing and adding again is no way around one a minute
INSERT INTO m (k, id) VALUES ('first', ops.add_contact_method('mallory', 'sms', '+14155550142', 'mallory'));
SELECT ops.remove_contact_method((SELECT id FROM m WHERE k = 'first'), 'mallory');
SELECT throws_ok($$SELECT ops.add_contact_method('mallory', 'sms', '+14155550142', 'mallory')$$, '55000',
                 'a code was sent to this address less than a minute ago',
                 'adding a number again within a minute of its last code is refused');
SELECT throws_ok($$SELECT ops.add_contact_method('carol', 'sms', '+14155550142', 'carol')$$, '55000', NULL,
                 'so is another principal adding the same number');
SELECT is(pg_temp.codes('+14155550142'), 1::bigint, 'the refused adds sent no code');
SELECT is((SELECT count(*) FROM ops.contact_methods WHERE address = '+14155550142' AND removed_at IS NULL), 0::bigint,
          'and stored no method');
SELECT pg_temp.a_minute_later();
SELECT lives_ok($$SELECT ops.add_contact_method('carol', 'sms', '+14155550142', 'carol')$$,
                'a minute later the number may be added');
SELECT throws_ok($$SELECT ops.resend_verification((SELECT id FROM ops.contact_methods WHERE principal = 'carol'),
                                                  'carol', now())$$, '55000', NULL,
                 'a resend is counted against the address too');
SELECT throws_ok($$SELECT ops.resend_verification((SELECT id FROM ops.contact_methods WHERE principal = 'carol'),
                                                  'carol', now() + interval '1 year')$$, '55000', NULL,
                 'also when the caller says it is a year later: the limit runs on the server''s clock');

-- ten a day: 5 guesses per code would otherwise go on for ever
DO $$
DECLARE
    v_id uuid;
BEGIN
    FOR i IN 1..10 LOOP
        PERFORM pg_temp.a_minute_later();
        v_id := ops.add_contact_method('mallory', 'email', 'victim@example.com', 'mallory');
        PERFORM ops.remove_contact_method(v_id, 'mallory');
    END LOOP;
    PERFORM pg_temp.a_minute_later();
END
$$;
SELECT throws_ok($$SELECT ops.add_contact_method('mallory', 'email', 'victim@example.com', 'mallory')$$, '55000',
                 '10 codes were sent to this address in the last 24 hours', 'the 11th code of a day is refused');
SELECT is(pg_temp.codes('victim@example.com'), 10::bigint, 'ten codes went out, no more');
SELECT lives_ok($$SELECT ops.add_contact_method('mallory', 'email', 'mallory@example.com', 'mallory')$$,
                'another address is not held back by it');

-- webhooks: plain http reaches this host only, so only an admin may aim one there
SELECT ops.add_principal('ada', 'human', '{ops_admin}', 'admin');
SELECT throws_ok($$SELECT ops.add_webhook_contact_method('carol', 'http://127.0.0.1:8008/reinitialize', 'carol')$$,
                 '42501', 'only an admin may add a webhook to a loopback host',
                 'a principal cannot point its own webhook at a loopback host');
SELECT throws_ok($$SELECT ops.add_contact_method('carol', 'webhook', 'http://localhost:2379/v3/kv/put', 'carol')$$,
                 '42501', NULL, 'nor at localhost');
SELECT lives_ok($$SELECT ops.add_webhook_contact_method('carol', 'https://pager.example.com/carol', 'carol')$$,
                'an https webhook it may add');
SELECT lives_ok($$SELECT ops.add_webhook_contact_method('carol', 'http://127.0.0.1:9000/hook', 'ada')$$,
                'an admin may add a loopback one for it (a local stand-in)');

-- SMS replies: only from a verified number of the paged principal
INSERT INTO m (k, id) VALUES ('bob', ops.add_contact_method('bob', 'sms', '+14155550100', 'bob'));
UPDATE ops.contact_methods SET verified_at = now() WHERE id = (SELECT id FROM m WHERE k = 'bob');
SELECT pg_temp.a_minute_later();
INSERT INTO m (k, id) VALUES ('unverified', ops.add_contact_method('bob', 'sms', '+14155550199', 'bob'));
INSERT INTO ops.incidents (incident_key, severity, route, summary) VALUES ('db-down', 'critical', 'db', 'db is down');
CREATE TEMP TABLE code AS
SELECT r_short_code AS c FROM ops._mint_page_token(NULL, (ops._incident_by_ref('db-down')).id, 'bob', 'sms', now(), TRUE);
SELECT throws_ok($$SELECT ops.page_sms_reply('+14155550199', '4 ' || (SELECT c FROM code))$$, 'P0002', NULL,
                 'the right code from an unverified number of the principal answers nothing');

-- short codes: 5 wrong ones from a number, and it is not heard for an hour
SELECT is((SELECT array_agg(ops.api_twilio_sms('+14155550100', '4 ' || g) ->> 'error')
           FROM (SELECT lpad(((c::int + n) % 1000000)::text, 6, '0') AS g FROM code, generate_series(1, 5) AS n) AS x),
          ARRAY['not_found', 'not_found', 'not_found', 'not_found', 'not_found'], 'five wrong codes answer no page');
SELECT is(ops.api_twilio_sms('+14155550100', '4 ' || (SELECT c FROM code)) ->> 'text',
          '5 wrong codes came from this number in the last hour.', 'then even the right code is refused');
SELECT is((SELECT (status, used_at)::text FROM ops.incidents, ops.page_tokens), '(open,)',
          'and nothing was acknowledged');
SELECT is(ops.api_twilio_sms('+14155550142', '4 000000') ->> 'error', 'not_found',
          'another number is not locked by it');
SELECT is(ops.page_sms_reply('+14155550100', '4 ' || (SELECT c FROM code), now() + interval '61 minutes') #>> '{incident,status}',
          'acknowledged', 'an hour later the right code answers');

-- a principal disabled after being paged: its link no longer speaks for it
INSERT INTO ops.incidents (incident_key, severity, route, summary) VALUES ('disk-full', 'warning', 'disk', 'disk is full');
CREATE TEMP TABLE link AS
SELECT r_token AS t FROM ops._mint_page_token(NULL, (ops._incident_by_ref('disk-full')).id, 'bob', 'link', now());
UPDATE ops.principals SET disabled = TRUE WHERE name = 'bob';
SELECT throws_ok($$SELECT ops.page_action((SELECT t FROM link), 'acknowledge', 'link')$$, '42501', NULL,
                 'a disabled principal''s page token acknowledges nothing');
SELECT is((SELECT (i.status, t.used_at)::text FROM ops.incidents AS i, ops.page_tokens AS t
           WHERE i.incident_key = 'disk-full' AND t.incident_id = i.id), '(open,)', 'and stays unused');

SELECT ok(NOT has_table_privilege('opsguard_operator', 'ops.sms_reply_misses', 'SELECT'),
          'operators cannot read which numbers guessed');

SELECT * FROM finish();
ROLLBACK;
