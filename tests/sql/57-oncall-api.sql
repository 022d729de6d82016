-- Who is on call over the API and Slack, and the calendar feed (docs/oncall.md): ops.api_oncall with a
-- moved clock and its permission; feed tokens issued, rotated, removed, audited, stored as SHA-256
-- only; ops.api_schedule_feed refusing every bad token and an unknown schedule with one error and
-- listing exactly the shifts ops.on_call_shifts computes; the Slack command /oncall.
BEGIN;
SELECT plan(54);

SELECT ops.add_principal('alice', 'human', ARRAY['ops_responder'], 'admin');
SELECT ops.add_principal('bob', 'human', ARRAY['ops_viewer'], 'admin');
SELECT ops.add_principal('carol', 'human', ARRAY['ops_responder'], 'admin');
SELECT ops.add_principal('pipeline', 'service', ARRAY['ci'], 'admin');

-- the permission
SELECT set_eq($$SELECT role FROM ops.role_permissions WHERE permission = 'oncall.read'$$,
              ARRAY['ops_admin', 'ops_responder', 'ops_viewer'],
              'oncall.read: admins, responders and viewers (pipelines have no use for names of people)');

-- primary (Berlin): alice and bob take turns daily at 09:00 local, from Monday 30 November;
-- carol covers Tuesday 12:00-14:00 UTC, and bob stays on two hours after his Tuesday shift
SELECT ops.create_schedule('primary', 'Europe/Berlin', 'admin');
SELECT ops.add_rotation('primary', 'daily', '1 day', '2026-11-30 09:00 Europe/Berlin', ARRAY['alice', 'bob'], 'admin');
SELECT ops.add_override('primary', 'carol', '2026-12-01 12:00Z', '2026-12-01 14:00Z', 'admin', 'swap: carol covers bob');
SELECT ops.add_override('primary', 'bob', '2026-12-02 08:00Z', '2026-12-02 10:00Z', 'admin', 'bob stays for a handover');
-- daytime (New York): alice on weekdays 09:00-17:00 local only
SELECT ops.create_schedule('daytime', 'America/New_York', 'admin');
SELECT ops.add_rotation('daytime', 'business-hours', '1 week', '2026-11-30 09:00 America/New_York', ARRAY['alice'],
                        'admin', ARRAY[1, 2, 3, 4, 5], '09:00', '17:00');

SELECT is(ops.api_oncall('ops-bot', NULL, 'primary', '2026-11-30 10:00Z'),
          '{"ok": true, "at": "2026-11-30T10:00:00+00:00", "onCall": [{"schedule": "primary", "timeZone": "Europe/Berlin",
            "principal": "alice", "until": "2026-12-01T08:00:00+00:00"}]}'::jsonb,
          'Monday: alice, until the 09:00 Berlin handoff');
SELECT is(ops.api_oncall('ops-bot', NULL, 'primary', '2026-12-01 10:00Z') -> 'onCall' -> 0,
          '{"schedule": "primary", "timeZone": "Europe/Berlin", "principal": "bob", "until": "2026-12-01T12:00:00+00:00"}',
          'the clock moved a day: bob, until the override takes over');
SELECT is(ops.api_oncall('ops-bot', NULL, 'primary', '2026-12-01 12:30Z') #>> '{onCall,0,principal}', 'carol',
          'during the override: carol');
SELECT is(ops.api_oncall('ops-bot', NULL, 'primary', '2026-12-01 12:30Z') #>> '{onCall,0,until}',
          '2026-12-01T14:00:00+00:00', 'during the override api_oncall says carol is on call until it ends');
SELECT is(ops.api_oncall('ops-bot', NULL, 'primary', '2026-12-01 15:00Z') #>> '{onCall,0,until}',
          '2026-12-02T10:00:00+00:00',
          'bob again: until the end of his override right after his shift, not the handoff between them');
SELECT is(ops.api_oncall('ops-bot', NULL, 'primary', '2026-12-01 08:00Z') #>> '{onCall,0,principal}', 'bob',
          'at the handoff instant the next person is on call');

SELECT is(ops.api_oncall('ops-bot', NULL, 'daytime', '2026-12-05 15:00Z') -> 'onCall',
          '[{"schedule": "daytime", "timeZone": "America/New_York", "principal": null,
             "until": "2026-12-07T14:00:00+00:00"}]',
          'Saturday in a business-hours schedule: nobody, until Monday 09:00 New York');
SELECT is(ops.api_oncall('ops-bot', NULL, 'daytime', '2026-12-07 15:00Z') #>> '{onCall,0,until}',
          '2026-12-07T22:00:00+00:00', 'Monday: alice until 17:00 New York');
SELECT is(ops.api_oncall('ops-bot', 'bob', NULL, '2026-12-07 15:00Z') -> 'onCall',
          '[{"schedule": "daytime", "timeZone": "America/New_York", "principal": "alice", "until": "2026-12-07T22:00:00+00:00"},
            {"schedule": "primary", "timeZone": "Europe/Berlin", "principal": "bob", "until": "2026-12-08T08:00:00+00:00"}]',
          'no schedule named: every schedule, by name; a viewer may ask');
-- psql asks the same function the API answers from, and the view is that function at now()
SELECT results_eq($$SELECT u.principal, u.until FROM ops.on_call_until('primary', '2026-12-01 15:00Z') AS u$$,
          $$VALUES ('bob'::text, '2026-12-02 10:00Z'::timestamptz)$$,
          'ops.on_call_until in psql: bob until the end of the override right after his shift, as the API says');
-- the view reads now(): a schedule laid out around it, alice on until her override right after her shift
SELECT ops.create_schedule('sliding', 'UTC', 'admin');
SELECT ops.add_rotation('sliding', 'daily', '1 day', date_trunc('hour', now()) - interval '1 hour',
                        ARRAY['alice', 'carol'], 'admin');
SELECT ops.add_override('sliding', 'alice', date_trunc('hour', now()) + interval '23 hours',
                        date_trunc('hour', now()) + interval '25 hours', 'admin', 'alice stays two hours');
SELECT results_eq($$SELECT principal, until FROM ops.on_call_now WHERE schedule = 'sliding'$$,
                  $$VALUES ('alice'::text, date_trunc('hour', now()) + interval '25 hours')$$,
                  'ops.on_call_now: alice until the end of the override after her shift, as the API says');
SELECT set_eq($$SELECT schedule, principal, until FROM ops.on_call_now$$,
              $$SELECT schedule, principal, until FROM ops.on_call_until(NULL, now())$$,
              'ops.on_call_now is ops.on_call_until at now(), every schedule');
SELECT throws_ok($$SELECT * FROM ops.on_call_until('nope', '2026-12-01 10:00Z')$$, 'P0002', NULL,
                 'ops.on_call_until: an unknown schedule is P0002, as in ops.on_call');
SELECT ops.add_rotation('primary', 'solo', '1 day', '2026-11-30 09:00 Europe/Berlin', ARRAY['carol'], 'admin');
SELECT is(ops.api_oncall('ops-bot', NULL, 'primary', '2026-12-10 10:00Z') #>> '{onCall,0}',
          '{"until": null, "schedule": "primary", "timeZone": "Europe/Berlin", "principal": "carol"}',
          'a layer of one person on top: carol, until null (no change within 28 days)');
SELECT ops.remove_rotation('primary', 'solo', 'admin');

SELECT throws_ok($$SELECT ops.api_oncall('ops-bot', NULL, 'nope', '2026-12-01 10:00Z')$$, 'P0002',
                 'no schedule "nope"', 'an unknown schedule: P0002 (404)');
SELECT throws_ok($$SELECT ops.api_oncall('pipeline', NULL, 'primary', '2026-12-01 10:00Z')$$, '42501', NULL,
                 'a signer without oncall.read is refused (403)');
SELECT throws_ok($$SELECT ops.api_oncall('ops-bot', 'pipeline', NULL, '2026-12-01 10:00Z')$$, '42501', NULL,
                 'an actor without oncall.read is refused (403), though its signer has it');
SELECT throws_ok($$SELECT ops.api_oncall('nobody', NULL, NULL, '2026-12-01 10:00Z')$$, '42501', NULL,
                 'an unknown principal asking api_oncall is refused (403)');
SELECT throws_ok($$SELECT ops.api_oncall('ops-bot', NULL, 'primary', NULL)$$, '22004', 'api_oncall needs a time',
                 'no time: 22004');
SELECT throws_ok($$SELECT ops.api_oncall('pipeline', NULL, 'nope', '2026-12-01 10:00Z')$$, '42501', NULL,
                 'without the permission, an unknown schedule is not even named');

-- feed tokens
CREATE TEMP TABLE audit_before AS SELECT count(*) AS n FROM ops.audit_log;
SELECT throws_ok($$SELECT ops.schedule_feed_token('nope', 'alice')$$, 'P0002', 'no schedule "nope"',
                 'a token for an unknown schedule: P0002');
SELECT throws_ok($$SELECT ops.schedule_feed_token('primary', ' ')$$, '22004', NULL, 'an actor is required');
SELECT throws_ok($$SELECT ops.remove_schedule_feed('primary', 'alice')$$, 'P0002', 'schedule "primary" has no calendar feed',
                 'removing a feed that is not there: P0002');
SELECT ok((SELECT count(*) FROM ops.schedule_feeds) = 0 AND (SELECT count(*) FROM ops.audit_log) = (SELECT n FROM audit_before),
          'refused calendar-feed calls (unknown schedule, blank actor, no feed to remove) wrote no feed and no audit row');

CREATE TEMP TABLE tok AS
SELECT
    1 AS n,
    ops.schedule_feed_token('primary', 'alice') AS t;
SELECT matches((SELECT t FROM tok WHERE n = 1), '^ogf_[0-9a-f]{64}$', 'the token: ogf_ and 64 hex digits');
SELECT is((SELECT token_sha256 FROM ops.schedule_feeds WHERE schedule = 'primary'),
          sha256(convert_to((SELECT t FROM tok WHERE n = 1), 'UTF8')), 'only its SHA-256 is stored');
SELECT is((SELECT (actor, action, row_key) FROM ops.audit_log WHERE table_name = 'schedule_feeds'),
          row('alice'::text, 'INSERT'::text, 'primary'::text), 'issuing it is audited with the actor');
SELECT is((ops.api_schedule_feed('primary', (SELECT t FROM tok WHERE n = 1), '2026-12-01 10:00Z')) ->> 'timeZone', 'Europe/Berlin',
          'the token opens its schedule''s feed');

-- the feed lists exactly the shifts of on_call_shifts over [the day - 7 days, the day + 8 weeks)
SELECT results_eq(
    $$SELECT s ->> 'principal', (s ->> 'startsAt')::timestamptz, (s ->> 'endsAt')::timestamptz, s ->> 'source'
      FROM jsonb_array_elements(ops.api_schedule_feed('primary', (SELECT t FROM tok WHERE n = 1), '2026-12-01 10:00Z') -> 'shifts') AS s$$,
    $$SELECT principal, starts_at, ends_at, source
      FROM ops.on_call_shifts('primary', '2026-11-24 00:00Z', '2027-01-26 00:00Z') ORDER BY starts_at, principal$$,
    'the feed lists the shifts of ops.on_call_shifts over the window, in order');
SELECT is((ops.api_schedule_feed('primary', (SELECT t FROM tok WHERE n = 1), '2026-12-01 10:00Z')) #>> '{shifts,1,summary}',
          'bob on call (primary)', 'each with its summary');
SELECT is((SELECT jsonb_agg(s -> 'uid') FROM jsonb_array_elements(
               ops.api_schedule_feed('primary', (SELECT t FROM tok WHERE n = 1), '2026-12-01 00:00Z') -> 'shifts') AS s),
          (SELECT jsonb_agg(s -> 'uid') FROM jsonb_array_elements(
               ops.api_schedule_feed('primary', (SELECT t FROM tok WHERE n = 1), '2026-12-01 23:59:59Z') -> 'shifts') AS s),
          'UIDs are the same for every fetch that day (a subscriber updates, never duplicates)');
SELECT is((SELECT count(DISTINCT s ->> 'uid')::int FROM jsonb_array_elements(
               ops.api_schedule_feed('primary', (SELECT t FROM tok WHERE n = 1), '2026-12-01 10:00Z') -> 'shifts') AS s),
          jsonb_array_length(ops.api_schedule_feed('primary', (SELECT t FROM tok WHERE n = 1), '2026-12-01 10:00Z') -> 'shifts'),
          'a calendar feed''s UIDs are one per shift');
SELECT is((SELECT s ->> 'uid' FROM jsonb_array_elements(
               ops.api_schedule_feed('primary', (SELECT t FROM tok WHERE n = 1), '2026-12-01 10:00Z') -> 'shifts') AS s
           WHERE s ->> 'startsAt' = '2026-12-02T10:00:00+00:00'),
          (SELECT s ->> 'uid' FROM jsonb_array_elements(
               ops.api_schedule_feed('primary', (SELECT t FROM tok WHERE n = 1), '2026-12-09 10:00Z') -> 'shifts') AS s
           WHERE s ->> 'startsAt' = '2026-12-02T10:00:00+00:00'),
          'a shift keeps its UID a week later');

SELECT throws_ok(format('SELECT ops.api_schedule_feed(%L, %L)', 'primary', 'ogf_' || repeat('0', 64)), 'P0002',
                 'no calendar feed for this schedule and token', 'a wrong token is refused');
SELECT throws_ok($$SELECT ops.api_schedule_feed('primary', NULL)$$, 'P0002',
                 'no calendar feed for this schedule and token', 'no token: the same');
SELECT throws_ok(format('SELECT ops.api_schedule_feed(%L, %L)', 'nope', (SELECT t FROM tok WHERE n = 1)), 'P0002',
                 'no calendar feed for this schedule and token', 'an unknown schedule: the same, whatever the token');
SELECT throws_ok(format('SELECT ops.api_schedule_feed(%L, %L)', 'daytime', (SELECT t FROM tok WHERE n = 1)), 'P0002',
                 'no calendar feed for this schedule and token', 'a good token for another schedule: the same');
SELECT throws_ok($$SELECT ops.api_schedule_feed('daytime', '')$$, 'P0002',
                 'no calendar feed for this schedule and token', 'an empty token for a schedule without a feed: the same');

INSERT INTO tok (n, t)
SELECT
    2 AS n,
    ops.schedule_feed_token('primary', 'bob') AS t;
SELECT is((SELECT count(DISTINCT t)::int FROM tok), 2, 'rotating gives a new token');
SELECT throws_ok(format('SELECT ops.api_schedule_feed(%L, %L)', 'primary', (SELECT t FROM tok WHERE n = 1)), 'P0002',
                 'no calendar feed for this schedule and token', 'the rotated-away token is refused at once, the same way');
SELECT is((SELECT (actor, action, changes ? 'token_sha256', changes -> 'rotated_by' ->> 1)
           FROM ops.audit_log WHERE table_name = 'schedule_feeds' AND action = 'UPDATE'),
          row('bob'::text, 'UPDATE'::text, TRUE, 'bob'::text), 'rotating is audited: who, and that the hash changed');
SELECT is_empty($$SELECT 1 FROM ops.audit_log, tok WHERE ops.audit_log.changes::text LIKE '%' || tok.t || '%'$$,
                'no token is in the audit log, only hashes');
SELECT is(jsonb_typeof(ops.api_schedule_feed('primary', (SELECT t FROM tok WHERE n = 2), '2026-12-01 10:00Z') -> 'shifts'),
          'array', 'the new token works');

SELECT is((ops.remove_schedule_feed('primary', 'carol')).rotated_by, 'bob', 'removing the feed');
SELECT throws_ok(format('SELECT ops.api_schedule_feed(%L, %L)', 'primary', (SELECT t FROM tok WHERE n = 2)), 'P0002',
                 'no calendar feed for this schedule and token',
                 'removing the calendar feed turns its token off, the same way as a wrong token (P0002)');
SELECT is((SELECT actor FROM ops.audit_log WHERE table_name = 'schedule_feeds' AND action = 'DELETE'), 'carol',
          'removing a calendar feed is audited');

-- Slack: /oncall [schedule], for the linked principal, answered for now
SELECT ops.link_chat_identity('slack', 'T1', 'UALICE', 'alice', 'admin');
SELECT ops.link_chat_identity('slack', 'T1', 'UPIPE', 'pipeline', 'admin');
SELECT ops.create_schedule('now', 'UTC', 'admin');
SELECT ops.add_rotation('now', 'daily', '1 day', now() - interval '1 hour', ARRAY['carol', 'bob'], 'admin');
SET LOCAL ROLE opsguard_api;
SELECT is(ops.api_slack_command('T1', 'UALICE', '/oncall', ' now ', 'k1') - 'text',
          jsonb_build_object('ok', TRUE, 'response_type', 'ephemeral', 'onCall', jsonb_build_array(jsonb_build_object(
              'schedule', 'now', 'timeZone', 'UTC', 'principal', 'carol', 'until', date_trunc('second', now()) + interval '23 hours'))),
          '/oncall now: who is on call in that schedule, until when');
SELECT matches(ops.api_slack_command('T1', 'UALICE', '/oncall', '', 'k2') ->> 'text',
               E'^On call now:\n• \\*daytime\\*: .*\n'
               || E'• \\*now\\*: carol until <!date\\^[0-9]+\\^\\{date_short_pretty\\} \\{time\\}\\|[^>]+ UTC>\n'
               || E'• \\*primary\\*: ',
               '/oncall: every schedule, a line each');
SELECT is(ops.api_slack_command('T1', 'UALICE', '/oncall', 'nope', 'k3') - 'text',
          '{"ok": false, "error": "not_found", "response_type": "ephemeral"}', '/oncall nope: not found');
SELECT is(ops.api_slack_command('T1', 'UPIPE', '/oncall', '', 'k4') ->> 'text',
          'pipeline may not see who is on call (the permission oncall.read is missing).', 'a pipeline may not');
RESET ROLE;
SELECT is(ops._slack_oncall('primary', '2026-12-01 10:00Z') ->> 'text',
          E'On call now:\n• *primary*: bob until <!date^1796126400^{date_short_pretty} {time}|Tue 01 Dec 13:00 Europe/Berlin>',
          'the line: who, and until when in the reader''s zone, the schedule''s as fallback');

-- who may call what
SELECT ok(has_function_privilege('opsguard_api', 'ops.api_oncall(text, text, text, timestamptz)', 'EXECUTE')
          AND has_function_privilege('opsguard_api', 'ops.api_schedule_feed(text, text, timestamptz)', 'EXECUTE'),
          'the API role calls the two endpoints');
SELECT ok(has_function_privilege('opsguard_operator', 'ops.schedule_feed_token(text, text)', 'EXECUTE')
          AND NOT has_function_privilege('opsguard_operator', 'ops.api_schedule_feed(text, text, timestamptz)', 'EXECUTE')
          AND NOT has_table_privilege('opsguard_operator', 'ops.schedule_feeds', 'INSERT, UPDATE, DELETE'),
          'operators issue tokens through the verb only');

SELECT * FROM finish();
ROLLBACK;
