-- ops.escalation_tick: escalation by the clock, idempotency, and the seeds' tests
-- (clock skew ±120 s, restart replays once only, snooze, pause cron), canary routes and their
-- buckets, and a bounded tick that takes the most overdue first.
-- 2026-03-02 is a Monday; a critical incident opened at 12:00 is due at 12:05.
BEGIN;
SELECT plan(57);

CREATE TEMP TABLE t AS
SELECT (ops.trigger_incident('GET /a::slo_violation', 'critical', p_now => '2026-03-02 12:00Z')).id AS a;

-- clock skew ±120 s around the due time
SELECT is((ops.escalation_tick('2026-03-02 12:03Z')) ->> 'escalationsCount', '0',
          'a clock 120 s early escalates nothing');
SELECT is(ops.escalation_tick('2026-03-02 12:07Z') - 'escalationTickMs' - 'tickId',
          '{"ok": true, "due": 1, "state": "ran", "dryRun": false, "paused": false, "disabled": false,
            "reopened": 0, "queueLagMs": 120000, "dryRunCount": 0, "wouldEscalate": [],
            "escalationsCount": 1, "skippedIdempotent": 0}'::jsonb,
          'a clock 120 s late escalates once and reports 120 s of queue lag');
SELECT is((ops.escalation_tick('2026-03-02 12:03Z')) ->> 'escalationsCount', '0',
          'a tick whose clock runs behind afterwards escalates nothing again');
SELECT is((ops.escalation_tick('2026-03-02 12:07Z')) ->> 'escalationsCount', '0',
          'the same tick time again escalates nothing again');
SELECT results_eq(
    $$SELECT escalation_level, last_escalated_at, next_due_at FROM ops.incidents WHERE id = (SELECT a FROM t)$$,
    $$VALUES (1, '2026-03-02 12:07Z'::timestamptz, '2026-03-02 12:37Z'::timestamptz)$$,
    'level 1; the next is due after the 30-minute snooze, not at first_seen + 10 min');
SELECT results_eq(
    $$SELECT incident_key, escalation_level, escalated_at, unique_hash FROM ops.escalation_events$$,
    $$SELECT 'GET /a::slo_violation', 1, '2026-03-02 12:07Z'::timestamptz, ops.escalation_hash(a, 1) FROM t$$,
    'one escalation_events row keyed by a hash of the occurrence and the new level');
SELECT results_eq(
    $$SELECT dedup_key, status, payload ->> 'text', payload ->> 'dedup_key' FROM ops.notification_outbox$$,
    $$SELECT ops.escalation_hash(a, 1), 'pending', '[CRITICAL] GET /a::slo_violation escalated to level 1',
             ops.escalation_hash(a, 1) FROM t$$,
    'one notification queued, its dedup key the event''s hash');
SELECT results_eq(
    $$SELECT state, escalations_count, skipped_idempotent, queue_lag_ms FROM ops.tick_log ORDER BY id$$,
    $$VALUES ('ran', 0, 0, 0::bigint), ('ran', 1, 0, 120000), ('ran', 0, 0, 0), ('ran', 0, 0, 0)$$,
    'every tick writes a tick-log row with the seeds'' counters');

-- snooze window honoured
SELECT is((ops.escalation_tick('2026-03-02 12:36Z')) ->> 'escalationsCount', '0', 'inside the snooze: nothing');
SELECT is((ops.escalation_tick('2026-03-02 12:37Z')) ->> 'escalationsCount', '1', 'at its end: level 2');

-- an event that already exists is skipped, sends nothing, and does not leave the incident stuck
UPDATE incidents SET escalation_level = 1, last_escalated_at = NULL WHERE id = (SELECT a FROM t);
SELECT is(ops.escalation_tick('2026-03-02 12:40Z') -> 'skippedIdempotent', '1',
          'reaching a level again after a hand-lowered level counts skipped_idempotent');
SELECT is((SELECT count(*)::int FROM ops.notification_outbox), 2,
          'a level reached again after a hand-lowered level queues no second notification');
SELECT is((SELECT count(*)::int FROM ops.escalation_events), 2,
          'a level reached again after a hand-lowered level records no second escalation event');
SELECT is((SELECT escalation_level FROM ops.incidents WHERE id = (SELECT a FROM t)), 2,
          'a level reached again after a hand-lowered level still moves the incident on to the next level');
SELECT is((SELECT skipped_idempotent FROM ops.tick_log ORDER BY id DESC LIMIT 1), 1, 'the tick log counts it');

-- max level cap
UPDATE incidents SET escalation_level = 6, last_escalated_at = NULL WHERE id = (SELECT a FROM t);
SELECT is((ops.escalation_tick('2026-03-02 13:00Z')) ->> 'escalationsCount', '1', 'level 6 escalates to 7');
SELECT is((SELECT next_due_at FROM ops.incidents WHERE id = (SELECT a FROM t)), NULL, 'at max_esc_level nothing is due');
SELECT is((ops.escalation_tick('2026-03-09 13:00Z')) ->> 'due', '0', 'a week later still nothing beyond level 7');

-- dry run: reports, changes nothing
CREATE TEMP TABLE b AS
SELECT (ops.trigger_incident('GET /b::slo_violation', 'critical', p_now => '2026-03-02 12:00Z')).id AS b;
SELECT ops.set_setting('dry_run', 'true', 'alice');
SELECT is(ops.escalation_tick('2026-03-02 14:00Z') #> '{wouldEscalate,0}',
          jsonb_build_object('id', (SELECT b FROM b), 'incidentKey', 'GET /b::slo_violation', 'fromLevel', 0,
                             'toLevel', 1, 'why', 'dry_run'),
          'dry run reports what it would escalate');
SELECT results_eq(
    $$SELECT escalation_level, last_escalated_at FROM ops.incidents WHERE id = (SELECT b FROM b)$$,
    $$VALUES (0, NULL::timestamptz)$$, 'dry run changes no incident');
SELECT is((SELECT count(*)::int FROM ops.escalation_events WHERE incident_id = (SELECT b FROM b)), 0,
          'dry run records no event');
SELECT is((SELECT count(*)::int FROM ops.notification_outbox WHERE incident_id = (SELECT b FROM b)), 0,
          'dry run queues nothing');
SELECT results_eq($$SELECT state, dry_run, dry_run_count FROM ops.tick_log ORDER BY id DESC LIMIT 1$$,
                  $$VALUES ('dry_run', true, 1)$$, 'the tick log says it was a dry run');
SELECT ops.set_setting('dry_run', 'false', 'alice');

-- disabled worker and flag off: nothing but a log line
SELECT ops.set_setting('escalation_enabled', 'false', 'alice');
SELECT is((ops.escalation_tick('2026-03-02 14:00Z')) ->> 'state', 'disabled', 'escalation_enabled off: disabled');
SELECT ops.set_setting('escalation_enabled', 'true', 'alice');
SELECT ops.set_setting('escalation_v1', 'false', 'alice');
SELECT is((ops.escalation_tick('2026-03-02 14:00Z')) ->> 'state', 'flag_off', 'escalation_v1 off: flag_off');
SELECT ops.set_setting('escalation_v1', 'true', 'alice');
SELECT results_eq($$SELECT state, disabled, due_count FROM ops.tick_log ORDER BY id DESC LIMIT 2$$,
                  $$VALUES ('flag_off', true, 0), ('disabled', true, 0)$$, 'both logged as disabled, nothing looked at');
SELECT is((SELECT escalation_level FROM ops.incidents WHERE id = (SELECT b FROM b)), 0, 'and nothing escalated');

-- pause cron: weekdays 14:00-14:59 UTC
SELECT ops.set_setting('pause_cron', '* 14 * * mon-fri', 'alice');
SELECT is((ops.escalation_tick('2026-03-02 14:30Z')) ->> 'state', 'paused', 'a tick inside the window is paused');
SELECT is((SELECT escalation_level FROM ops.incidents WHERE id = (SELECT b FROM b)), 0, 'a paused tick escalates nothing');
SELECT is((SELECT paused FROM ops.tick_log ORDER BY id DESC LIMIT 1), TRUE, 'the tick log says paused');
SELECT is((ops.escalation_tick('2026-03-02 15:00Z')) ->> 'escalationsCount', '1', 'after the window it escalates');
SELECT ops.set_setting('pause_cron', '', 'alice');

-- tick_batch_max bounds one tick; the rest wait for the next
UPDATE incidents SET status = 'resolved';  -- each section below starts with no active incident
SELECT ops.trigger_incident('GET /c' || g || '::slo_violation', 'warning', p_now => '2026-03-02 12:00Z')
FROM generate_series(1, 3) AS g;
SELECT ops.set_setting('tick_batch_max', '2', 'alice');
SELECT is((ops.escalation_tick('2026-03-02 16:00Z')) ->> 'escalationsCount', '2', 'a batch of 2 escalates 2');
SELECT is((ops.escalation_tick('2026-03-02 16:00Z')) ->> 'escalationsCount', '1', 'the next tick takes the rest');
SELECT ops.set_setting('tick_batch_max', '10000', 'alice');

-- restart replays once only: a tick dies after writing its events, then runs again
UPDATE incidents SET status = 'resolved';
CREATE TEMP TABLE d AS
SELECT (ops.trigger_incident('GET /d' || g || '::error_rate_critical', 'critical', p_now => '2026-03-02 17:00Z')).id AS d
FROM generate_series(1, 5) AS g;
CREATE FUNCTION pg_temp.crash() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'simulated crash after the events were written' USING ERRCODE = 'XX000';
END;
$$;
CREATE TRIGGER crash AFTER INSERT ON ops.notification_outbox FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.crash();
SELECT throws_ok($$SELECT ops.escalation_tick('2026-03-02 17:10Z')$$, 'XX000', NULL, 'the tick dies halfway');
SELECT is((SELECT count(*)::int FROM ops.escalation_events WHERE incident_id IN (SELECT d FROM d)), 0,
          'a tick that dies leaves no event behind');
SELECT is((SELECT max(escalation_level) FROM ops.incidents WHERE id IN (SELECT d FROM d)), 0,
          'a tick that dies leaves no incident half-escalated');
DROP TRIGGER crash ON ops.notification_outbox;
SELECT is((ops.escalation_tick('2026-03-02 17:10Z')) ->> 'escalationsCount', '5', 'the re-run escalates each once');
SELECT is((ops.escalation_tick('2026-03-02 17:10Z')) ->> 'escalationsCount', '0', 'and a third run nothing');
SELECT is((SELECT count(*)::int FROM ops.notification_outbox WHERE incident_id IN (SELECT d FROM d)), 5,
          'one notification each');

-- canary: only routes in the stable share escalate for real
UPDATE incidents SET status = 'resolved';
CREATE TEMP TABLE cn AS
SELECT
    (ops.trigger_incident('GET /canary/' || g || '::slo_violation', 'critical', p_now => '2026-03-02 18:00Z')).id AS id,
    ops.route_bucket('GET /canary/' || g) AS bucket
FROM generate_series(1, 40) AS g;
SELECT ops.set_setting('canary_pct', '30', 'alice');
SELECT is((ops.escalation_tick('2026-03-02 18:10Z')) ->> 'escalationsCount',
          (SELECT count(*)::text FROM cn WHERE bucket < 30), 'canary 30%: routes in buckets 0-29 escalate');
SELECT is((SELECT count(*)::int FROM cn INNER JOIN ops.incidents AS i ON cn.id = i.id WHERE i.escalation_level = 1 AND cn.bucket >= 30), 0,
          'routes outside the share are treated as dry run');
SELECT is((SELECT dry_run_count FROM ops.tick_log ORDER BY id DESC LIMIT 1),
          (SELECT count(*)::int FROM cn WHERE bucket >= 30), 'and counted as such');
SELECT is(ops.route_bucket('GET /projects'), (('x' || left(md5('GET /projects'), 8))::bit(32)::bigint % 100)::int,
          'a route''s bucket is md5-based: the same on every server');

-- ops.route_bucket against answers computed outside the database, from the documented formula
-- (the first 32 bits of md5(route), unsigned, mod 100), with Python's hashlib:
--     int(hashlib.md5(route.encode("utf-8")).hexdigest()[:8], 16) % 100
-- The hex beside each row is those 32 bits. Several have the top bit set, so a signed reading
-- of them gives other buckets; the GET /r/N routes sit at the canary boundaries.
SELECT is(current_setting('server_encoding'), 'UTF8', 'set-up: the database is UTF-8 (md5 hashes the UTF-8 bytes)');

CREATE TEMP TABLE known (route text, bucket int);
INSERT INTO known VALUES
    ('', 93),                       -- d41d8cd9
    ('GET /projects', 77),          -- 1a7bd43d
    ('get /projects', 76),          -- 282e5000
    ('GET /projects/', 85),         -- 4995a8f5
    (' GET /projects', 87),         -- c55fb617
    ('POST /ops/incidents', 33),    -- 052a4935
    ('GET /healthz', 78),           -- 0dcb5692
    ('GET /a', 97),                 -- e26ec815
    ('GET /b', 89),                 -- 71a7d6b9
    ('PUT /café', 36),              -- bb7cb5f4
    ('DELETE /v2/users/{id}', 7),   -- c20c362f
    ('GET /search?q=x', 88),        -- 6b58bbec
    ('GET /canary/3', 21),          -- cfb9c769
    ('GET /r/158', 0),              -- 9fb5d250
    ('GET /r/68', 1),               -- c15d895d
    ('GET /r/8', 9),                -- 5299c59d
    ('GET /r/120', 10),             -- fd1eb592
    ('GET /r/40', 29),              -- 34ffcf19
    ('GET /r/35', 30),              -- 105a6e4a
    ('GET /r/162', 49),             -- 3a792a71
    ('GET /r/1', 50),               -- 2370f332
    ('GET /r/0', 98),               -- faed3756
    ('GET /r/18', 99);              -- 57c78df7

SELECT is((SELECT count(*)::int FROM known), 23, 'set-up: 23 known answers');
SELECT results_eq($$SELECT route, ops.route_bucket(route) FROM known ORDER BY route$$,
                  $$SELECT route, bucket FROM known ORDER BY route$$,
                  'route_bucket matches every independently computed bucket');
SELECT is(ops.route_bucket(NULL), 93, 'a NULL route falls in the empty route''s bucket');

-- route_in_canary: bucket < pct, so pct 10 takes buckets 0-9, pct 0 none, pct 100 all
SELECT results_eq(
    $$SELECT route FROM known WHERE ops.route_in_canary(route, 10) ORDER BY route$$,
    $$VALUES ('DELETE /v2/users/{id}'), ('GET /r/158'), ('GET /r/68'), ('GET /r/8')$$,
    'canary 10 %: the routes in buckets 0-9 (7, 0, 1 and 9), not GET /r/120 in bucket 10');
SELECT results_eq(
    $$SELECT route FROM known WHERE ops.route_in_canary(route, 30) AND NOT ops.route_in_canary(route, 10) ORDER BY route$$,
    $$VALUES ('GET /canary/3'), ('GET /r/120'), ('GET /r/40')$$,
    'raising it to 30 % adds buckets 10-29 (21, 10, 29), not GET /r/35 in bucket 30');
SELECT is((SELECT count(*)::int FROM known WHERE ops.route_in_canary(route, 0)), 0, 'canary 0 %: no route');
SELECT is((SELECT count(*)::int FROM known WHERE ops.route_in_canary(route, 100)), 23, 'canary 100 %: every route');

SELECT throws_ok($$SELECT ops.escalation_tick(NULL)$$, '22004', NULL, 'a NULL time: 22004');

-- the section below starts with no active incident and the whole canary share
UPDATE incidents SET status = 'resolved' WHERE status <> 'resolved';
SELECT ops.set_setting('canary_pct', '100', 'alice');

-- tick_batch_max: the most overdue go first, whatever the order of first_seen or of the rows.
-- Created in the order y, z, x; first_seen order y, x, z; due order x (12:05), z (12:15), y (12:20)
CREATE TEMP TABLE batch AS
SELECT (ops.trigger_incident('GET /batch/y::slo_violation', 'warning', p_now => '2026-03-03 11:50Z')).id AS y;
INSERT INTO batch SELECT (ops.trigger_incident('GET /batch/z::slo_violation', 'critical', p_now => '2026-03-03 12:10Z')).id;
INSERT INTO batch SELECT (ops.trigger_incident('GET /batch/x::slo_violation', 'critical', p_now => '2026-03-03 12:00Z')).id;
SELECT results_eq(
    $$SELECT incident_key, next_due_at FROM ops.incidents WHERE status = 'open' ORDER BY next_due_at$$,
    $$VALUES ('GET /batch/x::slo_violation', '2026-03-03 12:05Z'::timestamptz),
             ('GET /batch/z::slo_violation', '2026-03-03 12:15Z'::timestamptz),
             ('GET /batch/y::slo_violation', '2026-03-03 12:20Z'::timestamptz)$$,
    'set-up: three incidents due at 12:05, 12:15 and 12:20');
SELECT ops.set_setting('tick_batch_max', '2', 'alice');
SELECT is((ops.escalation_tick('2026-03-03 13:00Z')) - 'escalationTickMs' - 'tickId',
          '{"ok": true, "due": 2, "state": "ran", "dryRun": false, "paused": false, "disabled": false,
            "reopened": 0, "queueLagMs": 3300000, "dryRunCount": 0, "wouldEscalate": [],
            "escalationsCount": 2, "skippedIdempotent": 0}'::jsonb,
          'a batch of 2 takes two; its queue lag is the most overdue one''s (55 min)');
SELECT results_eq(
    $$SELECT incident_key FROM ops.escalation_events WHERE incident_key LIKE 'GET /batch/%' ORDER BY incident_key$$,
    $$VALUES ('GET /batch/x::slo_violation'), ('GET /batch/z::slo_violation')$$,
    'the two most overdue (due 12:05 and 12:15) went first');
SELECT is((SELECT escalation_level FROM ops.incidents WHERE incident_key = 'GET /batch/y::slo_violation'), 0,
          'under tick_batch_max the least overdue incident waits');
SELECT ops.set_setting('tick_batch_max', '1', 'alice');
SELECT ops.escalation_tick('2026-03-03 13:01Z');
SELECT is((SELECT incident_key FROM ops.escalation_events ORDER BY id DESC LIMIT 1), 'GET /batch/y::slo_violation',
          'the next tick takes it: now the most overdue (x and z are snoozed until 13:30)');

SELECT * FROM finish();
ROLLBACK;
