-- Attacks on schedules by an outsider, each pinned where it broke: a first handoff at an
-- infinite time (it made ops.on_call of the schedule fail, and with it ops.on_call_now for every
-- schedule and page_targets), a participants array without bound, an override reason of a megabyte.
BEGIN;
SELECT plan(46);

SELECT ops.add_principal(p, 'human', ARRAY['ops_responder'], 'admin') FROM unnest(ARRAY['alice', 'bob']) AS p;
SELECT ops.create_schedule('primary', 'Europe/London', 'admin');
SELECT ops.add_rotation('primary', 'daily', '1 day', '2026-11-30 09:00 Europe/London', ARRAY['alice', 'bob'], 'admin');

SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 day', '-infinity', ARRAY['alice'], 'admin')$$, '22023',
                 NULL, 'a first handoff at -infinity is refused (stored, it broke on_call and on_call_now)');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 day', 'infinity', ARRAY['alice'], 'admin')$$, '22023',
                 NULL, 'a first handoff at infinity is refused (a layer that would never apply)');
SELECT is((SELECT count(*) FROM ops.schedule_rotations WHERE schedule = 'primary'), 1::bigint,
          'refused rotations stored nothing');
SELECT is((SELECT array_agg(w.w) FROM ops.on_call('primary', '2026-12-01 12:00Z') AS w (w)), '{bob}'::text[],
          'on_call still answers for the schedule');
SELECT is((SELECT principal FROM ops.on_call_now WHERE schedule = 'primary'),
          (SELECT min(w.w) FROM ops.on_call('primary', now()) AS w (w)), 'on_call_now still answers');

SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 day', now(), array_fill('alice'::text, ARRAY[100000]),
                                           'admin')$$,
                 '22023', NULL, '100,000 participants are refused');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 day', now(), array_fill('alice'::text, ARRAY[201]),
                                           'admin')$$,
                 '22023', NULL, '201 participants are refused');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 day', now(), ARRAY['alice'], 'admin',
                                           array_fill(1, ARRAY[100000]))$$,
                 '22023', NULL, '100,000 weekdays are refused');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 day', now(), ARRAY['alice'], 'admin',
                                           ARRAY[1, 2, 3, 4, 5, 6, 7, 1])$$,
                 '22023', NULL, 'eight weekdays (a repeat) are refused');
SELECT is(pg_catalog.cardinality((ops.add_rotation('primary', 'weighted', '1 day', now(),
                                                    array_fill('alice'::text, ARRAY[200]), 'admin')).participants),
          200, '200 participants (repeats allowed: a weighted turn order) are accepted');

SELECT throws_ok($$SELECT ops.add_override('primary', 'bob', '2027-01-01Z', '2027-01-02Z', 'admin', repeat('x', 1000000))$$,
                 '22023', NULL, 'a reason of a megabyte is refused');
SELECT throws_ok($$SELECT ops.add_override('primary', 'bob', '2027-01-01Z', '2027-01-02Z', 'admin', repeat('x', 1001))$$,
                 '22023', NULL, 'a reason of 1001 characters is refused');
SELECT is((SELECT count(*) FROM ops.schedule_overrides), 0::bigint, 'refused overrides stored nothing');
SELECT is(pg_catalog.length((ops.add_override('primary', 'bob', '2027-01-01Z', '2027-01-02Z', 'admin',
                                               repeat('x', 1000))).reason),
          1000, 'a reason of 1000 characters is accepted');
SELECT is((SELECT pg_catalog.length(note) FROM ops.audit_log WHERE table_name = 'schedule_overrides'
           ORDER BY id DESC LIMIT 1), 1000, 'and is the audit note');

-- an hourly rotation across a clock change of two or three hours backwards (Antarctica/Troll falls back from +02
-- to +00 every October; Antarctica/Casey went from +11 to +08 in March 2010): ops.on_call named the next person
-- for the first hour(s) after the repeated local hours began, where ops.on_call_shifts (and the documented rule: a
-- repeated local time hands off at its second reading) kept the current one on
SELECT ops.create_schedule('troll', 'Antarctica/Troll', 'admin');
SELECT ops.add_rotation('troll', 'hourly', '1 hour', '2026-10-24 20:00 Antarctica/Troll', ARRAY['alice', 'bob'], 'admin');
SELECT ops.create_schedule('casey', 'Antarctica/Casey', 'admin');
SELECT ops.add_rotation('casey', 'hourly', '1 hour', '2010-03-04 18:00 Antarctica/Casey', ARRAY['alice', 'bob'], 'admin');
-- Troll: local 00:00 (+02) is 22:00Z and local 01:00 happens twice, so its handoff is at 01:00Z: the 00:00
-- turn lasts three hours
SELECT is((SELECT array_agg(w.w) FROM ops.on_call('troll', '2026-10-25 00:30Z') AS w (w)), '{alice}'::text[],
          'Troll, the October night: the 00:00 local turn holds until the second 01:00 (01:00Z)');
SELECT is((SELECT array_agg(w.w) FROM ops.on_call('troll', '2026-10-25 01:00Z') AS w (w)), '{bob}'::text[],
          'Troll: the next turn starts at the second 01:00 local');
SELECT is((SELECT count(*) FROM pg_catalog.generate_series(timestamptz '2026-10-24 18:00Z', '2026-10-25 05:59Z',
                                                            interval '1 minute') AS m (t)
           WHERE (SELECT min(w.w) FROM ops.on_call('troll', m.t) AS w (w)) IS DISTINCT FROM
                 (SELECT min(sh.principal) FROM ops.on_call_shifts('troll', '2026-10-24 18:00Z', '2026-10-25 06:00Z') AS sh
                  WHERE sh.starts_at <= m.t AND m.t < sh.ends_at)), 0::bigint,
          'Troll: on_call agrees with on_call_shifts minute by minute across the two-hour fallback');
SELECT is((SELECT count(*) FROM pg_catalog.generate_series(timestamptz '2010-03-04 12:00Z', '2010-03-04 23:59Z',
                                                            interval '1 minute') AS m (t)
           WHERE (SELECT min(w.w) FROM ops.on_call('casey', m.t) AS w (w)) IS DISTINCT FROM
                 (SELECT min(sh.principal) FROM ops.on_call_shifts('casey', '2010-03-04 12:00Z', '2010-03-05 00:00Z') AS sh
                  WHERE sh.starts_at <= m.t AND m.t < sh.ends_at)), 0::bigint,
          'Casey 2010: on_call agrees with on_call_shifts minute by minute across a three-hour change backwards');

-- policy steps: a webhook of a megabyte was stored (in the step, its audit row, every page), and an unknown name of a
-- megabyte came back whole in the error message
SELECT ops.create_policy('payments', 'admin');
SELECT throws_ok($$SELECT ops.add_policy_step('payments', 1, jsonb_build_array(jsonb_build_object(
                     'webhook', 'https://hooks.slack.com/' || repeat('a', 1000000))), 'admin')$$,
                 '22023', NULL, 'a webhook target of a megabyte is refused');
SELECT throws_ok($$SELECT ops.add_policy_step('payments', 1, jsonb_build_array(jsonb_build_object(
                     'webhook', 'https://hooks.slack.com/' || repeat('a', 2049 - 24))), 'admin')$$,
                 '22023', NULL, 'a webhook target of 2049 characters is refused');
SELECT is((SELECT count(*) FROM ops.escalation_policy_steps), 0::bigint, 'refused steps stored nothing');
SELECT is((ops.add_policy_step('payments', 1, jsonb_build_array(jsonb_build_object(
              'webhook', 'https://hooks.slack.com/' || repeat('a', 2048 - 24))), 'admin')).step,
          1, 'a webhook target of 2048 characters is accepted');
SELECT throws_ok($$SELECT ops.add_policy_step('payments', 1, jsonb_build_array(jsonb_build_object(
                     'schedule', repeat('s', 1000000))), 'admin')$$,
                 '23503', 'target 1 of the step names unknown schedule "' || repeat('s', 100) || '"',
                 'an unknown schedule name of a megabyte is quoted to 100 characters');
SELECT throws_ok($$SELECT ops.add_policy_step('payments', 1, jsonb_build_array(jsonb_build_object(
                     'principal', repeat('p', 1000000))), 'admin')$$,
                 '23503', 'target 1 of the step names unknown principal "' || repeat('p', 100) || '"',
                 'an unknown principal name of a megabyte is quoted to 100 characters');

-- a disabled principal keeps their turns: ops.on_call names them and a schedule target pages no one in those turns;
-- it went unseen, as ops.config_problems named only principals without a Slack user (enabled ones)
SELECT ops.add_principal('dana', 'human', ARRAY['ops_responder'], 'admin');
SELECT ops.create_schedule('gap', 'UTC', 'admin');
SELECT ops.add_rotation('gap', 'weekly', '1 week', '2026-11-30 09:00Z', ARRAY['dana'], 'admin');
UPDATE ops.principals SET disabled = TRUE WHERE name = 'dana';
SELECT is((SELECT count(*) FROM ops.config_problems()
           WHERE setting = 'principals[dana]' AND NOT blocking AND problem LIKE 'dana is disabled but on call in schedule gap%'),
          1::bigint, 'config_problems warns (not blocking) of a disabled principal still on call in a schedule');

-- The instants of docs/oncall.md, where an independent model of its rules disagreed (0044).
SELECT ops.add_principal('carol', 'human', ARRAY['ops_responder'], 'admin');
-- a first handoff given as an instant is that instant, also in the first reading of a repeated hour (New York's
-- first 01:30 of 1 November; Troll's first 02:30, two hours before the second; Casey's first 00:30, three): it was
-- moved to the second reading, and nobody was on call in between
SELECT ops.create_schedule(s, z, 'admin')
FROM (VALUES ('ny-first', 'America/New_York'), ('troll-first', 'Antarctica/Troll'),
             ('casey-first', 'Antarctica/Casey')) AS x (s, z);
SELECT is((ops.add_rotation('ny-first', 'daily', '1 day', '2026-11-01 01:30-04', ARRAY['alice', 'bob'], 'admin')).handoff_at,
          '2026-11-01 05:30Z'::timestamptz, 'a first handoff at the first 01:30 of the New York fall-back night is kept');
SELECT is(array(SELECT coalesce((SELECT ops.on_call('ny-first', t)), '-')
                FROM unnest(ARRAY['2026-11-01 05:29:59Z', '2026-11-01 05:30Z', '2026-11-01 06:29:59Z',
                                  '2026-11-02 06:29:59Z', '2026-11-02 06:30Z']::timestamptz[]) AS t),
          ARRAY['-', 'alice', 'alice', 'alice', 'bob'],
          'New York fall-back night: alice is on call from the first 01:30, bob from the next 01:30 (EST, 06:30Z on 2 November)');
SELECT results_eq(
    $$SELECT principal, starts_at, ends_at FROM ops.on_call_shifts('ny-first', '2026-11-01Z', '2026-11-02 12:00Z')$$,
    $$VALUES ('alice', '2026-11-01 05:30Z'::timestamptz, '2026-11-02 06:30Z'::timestamptz),
             ('bob', '2026-11-02 06:30Z', '2026-11-02 12:00Z')$$,
    'on_call_shifts agrees on the first handoff at the New York fall-back night');
SELECT ops.add_rotation('troll-first', 'hourly', '1 hour', '2026-10-25 02:30+02', ARRAY['alice', 'bob'], 'admin');
SELECT is(array(SELECT coalesce((SELECT ops.on_call('troll-first', t)), '-')
                FROM unnest(ARRAY['2026-10-25 00:29Z', '2026-10-25 00:30Z', '2026-10-25 02:29Z', '2026-10-25 03:29Z',
                                  '2026-10-25 03:30Z']::timestamptz[]) AS t),
          ARRAY['-', 'alice', 'alice', 'alice', 'bob'],
          'Troll: a first handoff at the first 02:30 (00:30Z) holds until 03:30 local (03:30Z), no gap');
SELECT ops.add_rotation('casey-first', 'hourly', '1 hour', '2010-03-05 00:30+11', ARRAY['alice', 'bob'], 'admin');
SELECT is(array(SELECT coalesce((SELECT ops.on_call('casey-first', t)), '-')
                FROM unnest(ARRAY['2010-03-04 13:29Z', '2010-03-04 13:30Z', '2010-03-04 17:29Z',
                                  '2010-03-04 17:30Z']::timestamptz[]) AS t),
          ARRAY['-', 'alice', 'alice', 'bob'],
          'Casey 2010: a first handoff at the first 00:30 (13:30Z) holds until the second 01:30 (17:30Z)');

-- instants are kept to the whole second, as the calendar feed carries them (it cut the fraction: an override
-- added at now() started up to a second early there)
SELECT results_eq(
    $$SELECT starts_at, ends_at FROM ops.add_override('primary', 'bob', '2026-12-01 12:00:00.6Z', '2026-12-01 13:00:00.4Z',
                                                      'admin', 'fractions')$$,
    $$VALUES ('2026-12-01 12:00:00Z'::timestamptz, '2026-12-01 13:00:00Z'::timestamptz)$$,
    'an override keeps its bounds to the whole second');
SELECT is((SELECT array_agg(w.w) FROM ops.on_call('primary', '2026-12-01 12:00:00.1Z') AS w (w)), '{bob}'::text[],
          'on_call agrees with an override''s bounds stored to the whole second');
SELECT throws_ok($$SELECT ops.add_override('primary', 'alice', '2026-12-02 12:00:00.2Z', '2026-12-02 12:00:00.7Z',
                                           'admin', 'half a second')$$, '22023', NULL,
                 'an override shorter than a second, within one second, is an empty span: refused');
SELECT is((SELECT count(*) FROM ops.schedule_overrides WHERE reason = 'half a second'), 0::bigint,
          'an override refused as an empty span is not stored');
SELECT is((ops.add_rotation('primary', 'frac', '1 day', '2026-12-01 09:00:00.75Z', ARRAY['alice'], 'admin')).handoff_at,
          '2026-12-01 09:00:00Z'::timestamptz, 'a first handoff is kept to the whole second');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 hour 0.5 seconds', now(), ARRAY['alice'], 'admin')$$,
                 '22023', NULL, 'a shift with a fraction of a second is refused');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 day', now(), ARRAY['alice'], 'admin', NULL, '22:00:00.5',
                                           '06:00')$$, '22023', NULL, 'a window edge with a fraction of a second is refused');

-- Antarctica/Vostok went from +07 to +00 at 17:00Z on 31 January 1994: local 17:00-24:00 happened twice. With
-- hourly turns from 07:00 local on 30 January, the turn of 16:00 local (turn 33, bob) holds from 09:00Z until
-- the second 17:00 (17:00Z); on_call counted back three turns at most and named alice
SELECT ops.create_schedule('vostok', 'Antarctica/Vostok', 'admin');
SELECT ops.add_rotation('vostok', 'hourly', '1 hour', '1994-01-30 00:00Z', ARRAY['alice', 'bob'], 'admin');
SELECT is(array(SELECT ops.on_call('vostok', t)
                FROM unnest(ARRAY['1994-01-31 08:59Z', '1994-01-31 09:00Z', '1994-01-31 16:30Z',
                                  '1994-01-31 17:00Z']::timestamptz[]) AS t),
          ARRAY['alice', 'bob', 'bob', 'alice'],
          'Vostok 1994: a seven-hour change backwards with hourly turns: the 16:00 turn holds until the second 17:00');

-- Pacific/Apia skipped 30 December 2011 (23:59:59 -10 on the 29th was followed by 00:00 +14 on the 31st): the
-- night window opening at 22:00 on the 29th (08:00Z) closes at 06:00 read with the offset before the skip (16:00Z);
-- it ended at the skip (10:00Z)
SELECT ops.create_schedule('apia', 'Pacific/Apia', 'admin');
SELECT ops.add_rotation('apia', 'nights', '1 day', '2011-12-20 22:00 Pacific/Apia', ARRAY['alice', 'bob'], 'admin',
                        NULL, '22:00', '06:00');
SELECT is(array(SELECT coalesce((SELECT ops.on_call('apia', t)), '-')
                FROM unnest(ARRAY['2011-12-30 07:59Z', '2011-12-30 08:00Z', '2011-12-30 10:00Z', '2011-12-30 15:59Z',
                                  '2011-12-30 16:00Z']::timestamptz[]) AS t),
          ARRAY['-', 'bob', 'bob', 'bob', '-'],
          'Apia 2011: the night window of the 29th holds across the skipped day until 06:00 -10 (16:00Z)');
SELECT results_eq(
    $$SELECT principal, starts_at, ends_at FROM ops.on_call_shifts('apia', '2011-12-29Z', '2012-01-01Z')$$,
    $$VALUES ('alice', '2011-12-29 08:00Z'::timestamptz, '2011-12-29 16:00Z'::timestamptz),
             ('bob', '2011-12-30 08:00Z', '2011-12-30 16:00Z'), ('bob', '2011-12-31 08:00Z', '2011-12-31 16:00Z')$$,
    'Apia 2011: on_call_shifts agrees across the skipped day; the skipped day''s own turn (alice) never comes');

-- minute by minute, on_call against on_call_shifts around the largest clock changes, on a schedule of an hourly
-- layer under a 22:00-06:00 night layer of daily turns (nobody on both sides counts as agreeing)
CREATE FUNCTION pg_temp.disagreements(p_schedule text, p_from timestamptz, p_to timestamptz) RETURNS bigint
LANGUAGE sql AS $$
    WITH sh AS MATERIALIZED (SELECT * FROM ops.on_call_shifts(p_schedule, p_from, p_to))
    SELECT count(*) FROM pg_catalog.generate_series(p_from, p_to - interval '1 minute', interval '1 minute') AS m (t)
    WHERE (SELECT min(w.w) FROM ops.on_call(p_schedule, m.t) AS w (w)) IS DISTINCT FROM
          (SELECT min(sh.principal) FROM sh WHERE sh.starts_at <= m.t AND m.t < sh.ends_at)
$$;
SELECT ops.create_schedule('big-' || replace(z, '/', '.'), z, 'admin')
FROM unnest(ARRAY['Pacific/Apia', 'Antarctica/Vostok', 'Antarctica/Casey', 'Antarctica/Troll', 'America/New_York']) AS z;
SELECT
    ops.add_rotation('big-' || replace(z, '/', '.'), 'hourly', '1 hour', t::timestamptz - interval '2 days 20 minutes',
                     ARRAY['alice', 'bob', 'carol'], 'admin') AS hourly,
    ops.add_rotation('big-' || replace(z, '/', '.'), 'nights', '1 day', t::timestamptz - interval '3 days',
                     ARRAY['carol', 'alice'], 'admin', NULL, '22:00', '06:00') AS nights
FROM (VALUES ('Pacific/Apia', '2011-12-30 10:00Z'), ('Antarctica/Vostok', '1994-01-31 17:00Z'),
             ('Antarctica/Casey', '2010-03-04 15:00Z'), ('Antarctica/Troll', '2026-10-25 01:00Z'),
             ('America/New_York', '2026-11-01 06:00Z')) AS x (z, t);
SELECT is(pg_temp.disagreements('big-' || replace(z, '/', '.'), t::timestamptz - interval '30 hours', t::timestamptz + interval '30 hours'),
          0::bigint, z || ': on_call agrees with on_call_shifts at each minute from 30 hours before its change to 30 after')
FROM (VALUES ('Pacific/Apia', '2011-12-30 10:00Z'), ('Antarctica/Vostok', '1994-01-31 17:00Z'),
             ('Antarctica/Casey', '2010-03-04 15:00Z'), ('Antarctica/Troll', '2026-10-25 01:00Z'),
             ('America/New_York', '2026-11-01 06:00Z')) AS x (z, t);

SELECT * FROM finish();
ROLLBACK;
