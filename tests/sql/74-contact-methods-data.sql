-- The data behind reaching people: what a contact method's address may be, that a rule points only
-- at its owner's method, that the audit log and operators never see an address or a secret, and that
-- a page token is random, hashed and bound to one incident and principal.
BEGIN;
SELECT plan(19);

SELECT ops.add_principal('bob', 'human', ARRAY['ops_responder'], 'alice');
SELECT ops.add_principal('carol', 'human', ARRAY['ops_responder'], 'alice');
CREATE TEMP TABLE cm AS
WITH ins AS (
    INSERT INTO ops.contact_methods (principal, kind, address, created_by, secret) VALUES
    ('bob', 'email', 'bob.smith+pager@mail.example.com', 'bob', NULL),
    ('bob', 'sms', '+14155550142', 'bob', NULL),
    ('bob', 'webhook', 'https://hooks.example.com/p/abc', 'bob', 's3cret-webhook-key'),
    ('carol', 'slack_dm', 'U024BE7LH', 'carol', NULL)
    RETURNING id, principal, kind
)

SELECT * FROM ins;

CREATE FUNCTION pg_temp.add(p_kind text, p_address text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ops.contact_methods (principal, kind, address, created_by, secret)
    VALUES ('bob', p_kind, p_address, 'bob', CASE WHEN p_kind = 'webhook' THEN 'k' END);
    RETURN 'stored';
EXCEPTION WHEN check_violation THEN
    RETURN 'refused';
END;
$$;
SELECT is(pg_temp.add('email', 'no-at-sign.example.com'), 'refused', 'an e-mail address needs an @ and a host');
SELECT is(pg_temp.add('email', 'a b@example.com'), 'refused', 'an e-mail address has no spaces');
SELECT is(pg_temp.add('email', E'x@example.com\nBcc: all@example.com'), 'refused', 'an e-mail address has no line breaks');
SELECT is(pg_temp.add('sms', '4155550142'), 'refused', 'an SMS number is E.164: it starts with +');
SELECT is(pg_temp.add('voice', '+1415555'), 'refused', 'a voice number has 8 to 15 digits');
SELECT is(pg_temp.add('voice', '+1415555014'), 'stored', 'eight to fifteen digits after + are a number');
SELECT is(pg_temp.add('slack_dm', '<!channel>'), 'refused', 'a Slack DM goes to a user id, nothing else');
SELECT is(pg_temp.add('webhook', 'ftp://example.com/x'), 'refused', 'a webhook is an http(s) URL');

SELECT throws_ok(
    $$INSERT INTO ops.notification_rules (principal, contact_method, delay_min, created_by)
      SELECT 'carol', id, 0, 'carol' FROM cm WHERE kind = 'email'$$,
    '23503', NULL, 'a rule cannot point at another principal''s contact method');
SELECT throws_ok(
    $$INSERT INTO ops.contact_methods (principal, kind, address, created_by)
      VALUES ('bob', 'sms', '+14155550142', 'bob')$$,
    '23505', NULL, 'the same live address twice for one principal is refused');

SELECT is(
    (SELECT changes ->> 'address' FROM ops.audit_log
     WHERE table_name = 'contact_methods' AND row_key = (SELECT id::text FROM cm WHERE kind = 'email')),
    'b…@mail.example.com', 'the audit log shows an e-mail address redacted');
SELECT is(
    (SELECT changes ->> 'address' FROM ops.audit_log
     WHERE table_name = 'contact_methods' AND row_key = (SELECT id::text FROM cm WHERE kind = 'sms')),
    '+…42', 'the audit log shows a number by its last two digits');
SELECT ok(
    NOT EXISTS (SELECT 1 FROM ops.audit_log WHERE table_name = 'contact_methods'
                AND (changes::text LIKE '%s3cret-webhook-key%' OR changes::text LIKE '%/p/abc%'
                     OR changes::text LIKE '%14155550142%' OR changes ? 'code_hash')),
    'no address, webhook path, secret or code hash is in the audit log');
SELECT ok(NOT has_table_privilege('opsguard_operator', 'ops.contact_methods', 'SELECT'),
          'operators cannot read contact addresses');
SELECT ok(NOT has_function_privilege('opsguard_api', 'ops._mint_page_token(bigint, uuid, text, text, timestamptz, boolean)',
                                     'EXECUTE'),
          'the API cannot mint page tokens');

INSERT INTO ops.incidents (incident_key, severity, route, summary) VALUES ('db-down', 'critical', 'db', 'db is down');
CREATE TEMP TABLE t AS
SELECT
    m.*,
    gen.n
FROM pg_catalog.generate_series(1, 200) AS gen (n)
CROSS JOIN LATERAL ops._mint_page_token(NULL, (ops._incident_by_ref('db-down')).id, 'bob', 'sms',
                                        '2026-03-02 12:00:00Z', gen.n = 1) AS m;
SELECT ok((SELECT bool_and(r_token ~ '^[A-Za-z0-9_-]{43}$') FROM t),
          'a token is 43 base64url characters (244 random bits)');
SELECT is((SELECT count(DISTINCT r_token) FROM t), 200::bigint, '200 tokens minted are 200 different tokens');
SELECT ok(NOT EXISTS (SELECT 1 FROM ops.page_tokens AS p INNER JOIN t ON p.token_hash = t.r_token)
          AND (SELECT count(*) FROM ops.page_tokens AS p INNER JOIN t
               ON p.token_hash = pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(t.r_token, 'UTF8')), 'hex')) = 200,
          'only the sha256 of each token is stored');
SELECT is((SELECT format('%s %s %s', r_short_code ~ '^[0-9]{6}$', p.expires_at - p.created_at = interval '24 hours', p.channel)
           FROM t INNER JOIN ops.page_tokens AS p ON t.r_short_code = p.short_code WHERE t.n = 1),
          't t sms', 'an SMS token carries a 6-digit code and lives 24 hours');

SELECT * FROM finish();
ROLLBACK;
