-- Attacks on issue 13 by an outsider (h18), each pinned where it broke: a first handoff at an
-- infinite time (it made ops.on_call of the schedule fail, and with it ops.on_call_now for every
-- schedule and page_targets), a participants array without bound, an override reason of a megabyte.
BEGIN;
SELECT plan(26);

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

SELECT * FROM finish();
ROLLBACK;
