-- Heartbeats (docs/intake.md): a dead man switch. Set up and validated by ops.set_heartbeat (audited);
-- a ping (ops.api_heartbeat_ping, a key of kind heartbeat) moves due_at on and resolves
-- heartbeat::<name>; the tick opens that incident once per silence, counts it on a dry run,
-- opens it while escalation is paused, and never for a heartbeat that is not due.
-- 2026-03-02 is a Monday; the watchdog is set up at 12:00 and expects a ping every 5 minutes.
BEGIN;
SELECT plan(47);

CREATE TEMP TABLE k AS
SELECT
    ops.create_integration_key('am-watchdog', 'heartbeat', 'alice') AS hb,
    ops.create_integration_key('hb-billing', 'heartbeat', 'alice', 'billing') AS billing,
    ops.create_integration_key('am-prod', 'alertmanager', 'alice') AS am;

-- set up and validated
SELECT is((SELECT (ping_interval, route, severity, due_at, created_by)
           FROM ops.set_heartbeat('watchdog', '5 minutes', 'alice', 'platform', p_now => '2026-03-02 12:00Z')),
          row('5 minutes'::interval, 'platform'::text, 'critical'::text, '2026-03-02 12:05Z'::timestamptz,
              'alice'::text),
          'a new heartbeat: route, severity critical by default, due one interval after it was set up');
SELECT is((SELECT count(*)::int FROM ops.audit_log
           WHERE table_name = 'heartbeats' AND action = 'INSERT' AND actor = 'alice' AND row_key = 'watchdog'), 1,
          'setting a heartbeat up is audited with the actor');
SELECT throws_ok($$SELECT ops.set_heartbeat('no spaces', '5 minutes', 'alice')$$, '22023',
                 'invalid heartbeat name "no spaces"', 'names are checked');
SELECT throws_ok($$SELECT ops.set_heartbeat('hb', '30 seconds', 'alice')$$, '22003',
                 'heartbeat interval 00:00:30 is out of range', 'an interval under 1 minute is refused');
SELECT throws_ok($$SELECT ops.set_heartbeat('hb', '8 days', 'alice')$$, '22003',
                 'heartbeat interval 8 days is out of range', 'an interval over 7 days is refused');
SELECT throws_ok($$SELECT ops.set_heartbeat('hb', NULL, 'alice')$$, '22004', NULL, 'an interval is required');
SELECT throws_ok($$SELECT ops.set_heartbeat('hb', '5 minutes', 'alice', p_severity => 'page')$$, '22023',
                 'unknown severity "page"', 'the severity is one of ops.sla');
SELECT throws_ok($$SELECT ops.set_heartbeat('hb', '5 minutes', 'alice', ' ')$$, '22023', NULL,
                 'a blank route is refused');
SELECT throws_ok($$SELECT ops.set_heartbeat('hb', '5 minutes', ' ')$$, '22004', NULL, 'an actor is required');
SELECT is((SELECT count(*)::int FROM ops.heartbeats WHERE name = 'hb'), 0, 'a refused heartbeat is not stored');

SELECT is((ops.set_heartbeat('watchdog', '5 minutes', 'bob', 'platform', 'warning', '2026-03-02 12:01Z')).due_at,
          '2026-03-02 12:05Z'::timestamptz, 'changing the severity alone leaves due_at as it was');
SELECT is((SELECT changes FROM ops.audit_log WHERE table_name = 'heartbeats' AND action = 'UPDATE' AND actor = 'bob'),
          '{"severity": ["critical", "warning"], "updated_by": ["alice", "bob"]}'::jsonb,
          'changing a heartbeat is audited with what changed');
SELECT ops.set_heartbeat('watchdog', '5 minutes', 'bob', 'platform', 'critical', '2026-03-02 12:01Z');

-- the tick: not due, due, due again
SELECT ok(NOT ops.escalation_tick('2026-03-02 12:04Z') ? 'heartbeatsMissed',
          'not due yet: the summary has no heartbeatsMissed');
SELECT is((SELECT count(*)::int FROM ops.incidents WHERE incident_key = 'heartbeat::watchdog'), 0,
          'a heartbeat not yet due opens no incident');
SELECT is(ops.escalation_tick('2026-03-02 12:06Z') -> 'heartbeatsMissed', '1'::jsonb,
          'no ping for the interval: the tick counts one missed heartbeat');
SELECT results_eq(
    $$SELECT status, severity, route, first_seen, details #>> '{heartbeat,dueAt}' FROM ops.incidents
      WHERE incident_key = 'heartbeat::watchdog'$$,
    $$VALUES ('open', 'critical', 'platform', '2026-03-02 12:06Z'::timestamptz, '2026-03-02T12:05:00+00:00')$$,
    'a missed heartbeat opens heartbeat::watchdog with the severity and route of the heartbeat');
SELECT is((SELECT (missed_at, due_at) FROM ops.heartbeats WHERE name = 'watchdog'),
          row('2026-03-02 12:05Z'::timestamptz, '2026-03-02 12:11Z'::timestamptz),
          'the silence is noted, and looked at again one interval on');
SELECT ok(NOT ops.escalation_tick('2026-03-02 12:07Z') ? 'heartbeatsMissed', 'the next tick finds nothing due');
SELECT is(ops.escalation_tick('2026-03-02 12:12Z') -> 'heartbeatsMissed', '1'::jsonb,
          'still silent one interval later: counted again');
SELECT results_eq(
    $$SELECT count(*)::int, max(last_seen) FROM ops.incidents WHERE incident_key = 'heartbeat::watchdog'$$,
    $$VALUES (1, '2026-03-02 12:12Z'::timestamptz)$$,
    'a heartbeat missed again refreshes the one open incident rather than opening another');
SELECT is((SELECT count(*)::int FROM ops.audit_log WHERE table_name = 'incidents' AND action = 'INSERT'
             AND row_key IN (SELECT id::text FROM ops.incidents WHERE incident_key = 'heartbeat::watchdog')
             AND actor = 'opsguard:tick'), 1,
          'the opening is audited with the tick as actor');

-- a ping resolves
SELECT is(ops.api_heartbeat_ping((SELECT hb FROM k), 'watchdog', '2026-03-02 12:13Z') #>> '{resolved,status}',
          'resolved', 'a ping resolves the open heartbeat incident');
SELECT results_eq(
    $$SELECT status, resolved_by, resolved_at FROM ops.incidents WHERE incident_key = 'heartbeat::watchdog'$$,
    $$VALUES ('resolved', 'am-watchdog', '2026-03-02 12:13Z'::timestamptz)$$,
    'a ping resolves the heartbeat incident with the key name as actor');
SELECT is((SELECT (last_ping_at, last_ping_by, due_at, missed_at) FROM ops.heartbeats WHERE name = 'watchdog'),
          row('2026-03-02 12:13Z'::timestamptz, 'am-watchdog'::text, '2026-03-02 12:18Z'::timestamptz,
              NULL::timestamptz),
          'the ping is recorded and the heartbeat is due one interval later');
SELECT is(ops.api_heartbeat_ping((SELECT hb FROM k), 'watchdog', '2026-03-02 12:14Z') -> 'resolved', 'null'::jsonb,
          'a ping with nothing open resolves nothing');
SELECT is((SELECT count(*)::int FROM ops.audit_log WHERE table_name = 'heartbeats' AND action = 'UPDATE'), 2,
          'pings and ticks write no audit rows of their own (only the two changes by bob are there)');
SELECT ok(NOT ops.escalation_tick('2026-03-02 12:18Z') ? 'heartbeatsMissed', 'pinged in time: nothing missed');
SELECT is(ops.escalation_tick('2026-03-02 12:19:30Z') -> 'heartbeatsMissed', '1'::jsonb, 'the next silence is missed');
SELECT results_eq(
    $$SELECT status, first_seen FROM ops.incidents WHERE incident_key = 'heartbeat::watchdog' ORDER BY first_seen$$,
    $$VALUES ('resolved', '2026-03-02 12:06Z'::timestamptz), ('open', '2026-03-02 12:19:30Z')$$,
    'a silence after a resolved miss opens a new occurrence of the heartbeat incident');

-- keys
SELECT throws_ok(format('SELECT ops.api_heartbeat_ping(%L, %L)', (SELECT am FROM k), 'watchdog'),
                 '28000', 'invalid integration key', 'a key of another kind is refused');
SELECT throws_ok(format('SELECT ops.api_heartbeat_ping(%L, %L)', (SELECT billing FROM k), 'watchdog'),
                 'P0002', 'no heartbeat "watchdog" for this key',
                 'a key bound to a route pings only heartbeats of that route (answered as unknown)');
SELECT throws_ok(format('SELECT ops.api_heartbeat_ping(%L, %L)', (SELECT hb FROM k), 'nope'),
                 'P0002', 'no heartbeat "nope" for this key', 'an unknown heartbeat is not found');
SELECT is((SELECT status FROM ops.incidents WHERE incident_key = 'heartbeat::watchdog' AND status <> 'resolved'),
          'open', 'refused pings resolve nothing');

-- dry run: counted, nothing changed
SELECT ops.set_heartbeat('nightly-backup', '1 day', 'alice', p_severity => 'warning', p_now => '2026-03-02 12:00Z');
SELECT ops.set_setting('dry_run', 'true', 'alice');
SELECT is(ops.escalation_tick('2026-03-03 12:01Z') -> 'heartbeatsMissed', '2'::jsonb,
          'a dry run counts the missed heartbeats');
SELECT results_eq(
    $$SELECT (SELECT count(*)::int FROM ops.incidents WHERE incident_key = 'heartbeat::nightly-backup'),
             (SELECT due_at FROM ops.heartbeats WHERE name = 'nightly-backup')$$,
    $$VALUES (0, '2026-03-03 12:00Z'::timestamptz)$$,
    'a dry run changes nothing for a missed heartbeat: no incident, due_at as it was');
SELECT ops.set_setting('dry_run', 'false', 'alice');

-- paused: escalation waits, intake does not
SELECT ops.set_setting('pause_cron', '* 12 * * mon-fri', 'alice');
SELECT is(ops.escalation_tick('2026-03-03 12:02Z') - 'escalationTickMs' - 'tickId' - 'wouldEscalate' - 'due'
          - 'queueLagMs' - 'escalationsCount' - 'skippedIdempotent' - 'dryRunCount' - 'reopened',
          '{"ok": true, "state": "paused", "dryRun": false, "paused": true, "disabled": false,
            "heartbeatsMissed": 2}'::jsonb,
          'while paused the tick still opens missed heartbeats');
SELECT is((SELECT (severity, route) FROM ops.incidents WHERE incident_key = 'heartbeat::nightly-backup'),
          row('warning'::text, 'heartbeat'::text),
          'a missed warning heartbeat without a route of its own opens a warning incident routed to its key prefix');
SELECT ops.set_setting('pause_cron', '', 'alice');

-- removed
SELECT is((ops.remove_heartbeat('nightly-backup', 'carol')).name, 'nightly-backup', 'a heartbeat can be removed');
SELECT is((SELECT actor FROM ops.audit_log WHERE table_name = 'heartbeats' AND action = 'DELETE'), 'carol',
          'removing a heartbeat is audited');
SELECT throws_ok(format('SELECT ops.api_heartbeat_ping(%L, %L)', (SELECT hb FROM k), 'nightly-backup'),
                 'P0002', NULL, 'a removed heartbeat''s pings are not found (P0002)');
SELECT throws_ok($$SELECT ops.remove_heartbeat('nightly-backup', 'carol')$$, 'P0002', 'no heartbeat "nightly-backup"',
                 'removing it again: P0002, not an empty row');
SELECT is((SELECT count(*)::int FROM ops.audit_log WHERE table_name = 'heartbeats' AND action = 'DELETE'), 1,
          'removing a heartbeat twice writes no second audit row');

-- edges: set again on another route; due exactly at the tick's time; pings that arrive out of order
SELECT ops.set_heartbeat('edge', '5 minutes', 'alice', 'one', p_now => '2026-03-05 10:00Z');
SELECT is((ops.set_heartbeat('edge', '5 minutes', 'alice', 'two', p_now => '2026-03-05 10:00Z')).route, 'two',
          'a heartbeat set again with another route moves to that route');
SELECT ops.escalation_tick('2026-03-05 10:04:59.999999Z');
SELECT is((SELECT count(*)::int FROM ops.incidents WHERE incident_key = 'heartbeat::edge'), 0,
          'a microsecond before it is due, the tick leaves it alone');
SELECT ops.escalation_tick('2026-03-05 10:05Z');
SELECT results_eq(
    $$SELECT status, route, first_seen FROM ops.incidents WHERE incident_key = 'heartbeat::edge'$$,
    $$VALUES ('open', 'two', '2026-03-05 10:05Z'::timestamptz)$$,
    'due exactly at the tick''s time: missed at that tick, on its new route');
SELECT ops.api_heartbeat_ping((SELECT hb FROM k), 'edge', '2026-03-05 10:30Z');
SELECT is((ops.api_heartbeat_ping((SELECT hb FROM k), 'edge', '2026-03-05 10:20Z') -> 'heartbeat') - 'name' - 'intervalSeconds',
          '{"lastPingAt": "2026-03-05T10:30:00+00:00", "dueAt": "2026-03-05T10:35:00+00:00"}'::jsonb,
          'a ping that arrives after a later one (sent 10:20, after 10:30) answers the later one');
SELECT is((SELECT (last_ping_at, due_at) FROM ops.heartbeats WHERE name = 'edge'),
          row('2026-03-05 10:30Z'::timestamptz, '2026-03-05 10:35Z'::timestamptz),
          'a late ping never moves the last ping, or when the heartbeat is due, back');

SELECT * FROM finish();
ROLLBACK;
