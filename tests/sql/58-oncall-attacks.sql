-- Attacks on issue 13 by an outsider (h18), each pinned where it broke: a first handoff at an
-- infinite time (it made ops.on_call of the schedule fail, and with it ops.on_call_now for every
-- schedule and page_targets), a participants array without bound, an override reason of a megabyte.
BEGIN;
SELECT plan(13);

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

SELECT * FROM finish();
ROLLBACK;
