-- Integration keys (SPEC 10): a token shown once, stored as SHA-256, bound to a kind and
-- optionally a route, audited, revocable; a missing, unknown, revoked or wrong-kind key is
-- one and the same 28000. The intake verbs dedup like ops.trigger_incident.
BEGIN;
SELECT plan(25);

CREATE TEMP TABLE k AS
SELECT
    ops.create_integration_key('am-prod', 'alertmanager', 'alice') AS am,
    ops.create_integration_key('pd', 'events_v2', 'alice', 'checkout') AS pd;

SELECT matches((SELECT am FROM k), '^ogk_[0-9a-f]{64}$', 'the token: ogk_ and 64 hex digits');
SELECT isnt((SELECT am FROM k), (SELECT pd FROM k), 'each key gets its own token');
SELECT is((SELECT token_sha256 FROM ops.integration_keys WHERE name = 'am-prod'),
          sha256(convert_to((SELECT am FROM k), 'UTF8')), 'only the SHA-256 of the token is stored');
SELECT is_empty($$SELECT 1 FROM ops.integration_keys i, k
                  WHERE position(convert_to(k.am, 'UTF8') IN i.token_sha256) > 0
                     OR (SELECT count(*) FROM ops.audit_log WHERE changes::text LIKE '%' || k.am || '%') > 0$$,
                'the token itself is stored nowhere, not in the audit log either');
SELECT is((SELECT (route, created_by) FROM ops.integration_keys WHERE name = 'pd'), row('checkout'::text, 'alice'::text),
          'a key keeps its route and who made it');
SELECT is((SELECT count(*)::int FROM ops.audit_log
           WHERE table_name = 'integration_keys' AND action = 'INSERT' AND actor = 'alice'), 2,
          'making a key is audited with the actor');

SELECT is((ops._integration_key((SELECT am FROM k), 'alertmanager')).name, 'am-prod', 'the token finds its key');
SELECT throws_ok(format('SELECT ops._integration_key(%L, %L)', (SELECT am FROM k), 'events_v2'),
                 '28000', 'invalid integration key', 'a key of another kind is refused');
SELECT throws_ok($$SELECT ops._integration_key('ogk_' || repeat('0', 64), 'alertmanager')$$,
                 '28000', 'invalid integration key', 'an unknown key is refused the same way');
SELECT throws_ok($$SELECT ops._integration_key(NULL, 'alertmanager')$$,
                 '28000', 'invalid integration key', 'a missing key is refused the same way');
SELECT throws_ok($$SELECT ops._integration_key(repeat('x', 10000), 'alertmanager')$$,
                 '28000', 'invalid integration key', 'a huge key is refused the same way');

SELECT is((ops.revoke_integration_key('am-prod', 'bob')).revoked_by, 'bob', 'revoking records who');
SELECT throws_ok(format('SELECT ops._integration_key(%L, %L)', (SELECT am FROM k), 'alertmanager'),
                 '28000', 'invalid integration key', 'a revoked key is refused at once');
SELECT is((ops.revoke_integration_key('am-prod', 'carol')).revoked_by, 'bob', 'revoking again changes nothing');
SELECT is((SELECT count(*)::int FROM ops.audit_log WHERE table_name = 'integration_keys' AND action = 'UPDATE'), 1,
          'the revocation is audited once');

SELECT throws_ok($$SELECT ops.create_integration_key('am-prod', 'alertmanager', 'alice')$$, '23505',
                 'integration key "am-prod" exists', 'names are never reused, revoked ones included');
SELECT throws_ok($$SELECT ops.create_integration_key('x', 'webhook', 'alice')$$, '22023',
                 'unknown integration key kind "webhook"', 'kinds are alertmanager, events_v2, heartbeat');
SELECT throws_ok($$SELECT ops.create_integration_key('no spaces', 'heartbeat', 'alice')$$, '22023',
                 'invalid integration key name "no spaces"', 'names are checked');
SELECT throws_ok($$SELECT ops.create_integration_key('hb', 'heartbeat', ' ')$$, '22004', NULL,
                 'an actor is required');
SELECT throws_ok($$SELECT ops.revoke_integration_key('nope', 'alice')$$, 'P0002', 'no integration key "nope"',
                 'revoking an unknown key says so');

-- the intake verbs
SELECT is((ops._intake_trigger('am:g1', 'warning', 'checkout', 'disk', '{"labels": {"a": "1"}}', 'am-prod',
                               '2026-12-01 10:00+00')).details, '{"labels": {"a": "1"}}'::jsonb,
          'an intake trigger keeps the sender details');
SELECT lives_ok($$SELECT ops._intake_trigger('am:g1', 'critical', 'checkout', 'disk', '{"labels": {"a": "2"}}',
                                               'am-prod', '2026-12-01 10:05+00')$$, 'the group fires again');
SELECT is((SELECT (count(*)::int, max(last_seen), max(severity), max(details::text))
           FROM ops.incidents WHERE incident_key = 'am:g1'),
          row(1, '2026-12-01 10:05+00'::timestamptz, 'critical'::text, '{"labels": {"a": "2"}}'::text),
          'a repeat refreshes the one incident: last_seen, severity up, the latest details');
SELECT is((ops._intake_transition('am:g1', 'resolved', 'am-prod', '2026-12-01 10:10+00')).status, 'resolved',
          'resolving by key');
SELECT ok(ops._intake_transition('am:g1', 'resolved', 'am-prod', '2026-12-01 10:11+00') IS NULL,
          'resolving a key with nothing open changes nothing');

SELECT * FROM finish();
ROLLBACK;
