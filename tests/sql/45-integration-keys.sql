-- Integration keys (docs/intake.md): a token shown once, stored as SHA-256, bound to a kind and
-- optionally a route, audited, revocable; a missing, unknown, revoked or wrong-kind key is
-- one and the same 28000. The intake verbs dedup like ops.trigger_incident. A key with a route
-- acts on that route only, for every kind and action (docs/intake.md); a key without one is global.
BEGIN;
SELECT plan(35);

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

-- heartbeat keys: a key with a route pings only heartbeats of that route, answered as an unknown
-- heartbeat otherwise; a key without a route is global and pings every heartbeat
CREATE TEMP TABLE hk AS
SELECT
    ops.create_integration_key('hb-a', 'heartbeat', 'alice', 'route-a') AS a,
    ops.create_integration_key('hb-any', 'heartbeat', 'alice') AS anyroute;
SELECT ops.set_heartbeat(name, '5 minutes', 'alice', route, p_now => '2026-12-01 10:00+00')
FROM (VALUES ('beat-a', 'route-a'), ('beat-b', 'route-b'), ('beat-none', NULL)) AS h (name, route);
SELECT ops.escalation_tick('2026-12-01 10:06+00');  -- all three missed: heartbeat::<name> is open for each
CREATE TEMP TABLE hb_before AS
SELECT
    md5(string_agg(h::text, ',' ORDER BY name)) AS beats,
    (SELECT md5(string_agg(i::text, ',' ORDER BY id)) FROM ops.incidents AS i) AS incidents
FROM ops.heartbeats AS h;
SELECT throws_ok(format('SELECT ops.api_heartbeat_ping(%L, %L, %L)', (SELECT a FROM hk), b, '2026-12-01 10:07+00'),
                 'P0002', format('no heartbeat "%s" for this key', b), descr)
FROM (VALUES ('beat-b', 'a key bound to route-a does not ping a heartbeat of route-b'),
             ('beat-none', 'a key bound to route-a does not ping a heartbeat without a route'),
             ('nope', 'a ping of an unknown heartbeat is refused as one of another route is')) AS c (b, descr);
SELECT is((SELECT md5(string_agg(h::text, ',' ORDER BY name)) FROM ops.heartbeats AS h), (SELECT beats FROM hb_before),
          'the refused pings moved no heartbeat');
SELECT is((SELECT md5(string_agg(i::text, ',' ORDER BY id)) FROM ops.incidents AS i), (SELECT incidents FROM hb_before),
          'the refused heartbeat pings resolved no incident');
SELECT is(ops.api_heartbeat_ping((SELECT a FROM hk), 'beat-a', '2026-12-01 10:07+00') #>> '{resolved,status}', 'resolved',
          'the key bound to route-a pings its heartbeat and resolves its incident');
SELECT results_eq($$SELECT ops.api_heartbeat_ping((SELECT anyroute FROM hk), b, '2026-12-01 10:08+00') #>> '{resolved,resolvedBy}'
                    FROM unnest(ARRAY['beat-b', 'beat-none']) AS b$$,
                  ARRAY['hb-any', 'hb-any'], 'a key without a route is global: it pings (and resolves) any heartbeat');

-- events_v2 incidents are events_v2:<key name>:<dedup_key>: no key name may be another's plus ':',
-- else key pd with dedup_key x:1 would act on the incident key pd:x opened with dedup_key 1
SELECT ops.create_integration_key('pd-x', 'events_v2', 'alice', 'route-a');
SELECT throws_ok($$SELECT ops.create_integration_key('pd-x:y', 'events_v2', 'alice', 'route-b')$$, '23505',
                 'integration key name "pd-x:y" would share incident keys with another events_v2 key',
                 'an events_v2 key named after another plus : is refused');
SELECT ops.create_integration_key('q:r', 'events_v2', 'alice');
SELECT throws_ok($$SELECT ops.create_integration_key('q', 'events_v2', 'alice')$$, '23505',
                 'integration key name "q" would share incident keys with another events_v2 key',
                 'an events_v2 key named as another''s name up to a : (q beside q:r) is refused too');
SELECT lives_ok($$SELECT ops.create_integration_key('pd-x:am', 'alertmanager', 'alice')$$,
                'another kind never shares events_v2 incident keys: its name is free');

SELECT * FROM finish();
ROLLBACK;
