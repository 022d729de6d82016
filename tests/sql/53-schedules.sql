-- Schedules (docs/oncall.md): layers of rotations, restrictions, overrides and who is on call. A later layer wins
-- where it applies, lower layers show through its gaps, nobody is on call where no layer applies; an
-- override wins over every layer, at and across handoffs. Every bad input is a SQLSTATE and changes
-- nothing; every change is an audit row. Times in UTC (the DST arithmetic is tests/sql/54); 2026-03-02 is
-- a Monday.
BEGIN;
SELECT plan(100);

SELECT ops.add_principal(p, 'human', ARRAY['ops_responder'], 'admin')
FROM unnest(ARRAY['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'gone']) AS p;
UPDATE ops.principals SET disabled = TRUE WHERE name = 'gone';

-- who is on call at t, '-' for nobody (one string, so a second row would show)
CREATE FUNCTION pg_temp.who(p_schedule text, p_at timestamptz) RETURNS text
LANGUAGE sql AS $$
    SELECT coalesce(string_agg(p, ','), '-') FROM ops.on_call(p_schedule, p_at) AS p
$$;
CREATE FUNCTION pg_temp.counts() RETURNS int[]
LANGUAGE sql AS $$
    SELECT ARRAY[(SELECT count(*)::int FROM ops.schedules), (SELECT count(*)::int FROM ops.schedule_rotations),
                 (SELECT count(*)::int FROM ops.schedule_overrides),
                 (SELECT count(*)::int FROM ops.audit_log WHERE table_name LIKE 'schedule%')]
$$;

-- schedules
SELECT is((ops.create_schedule('primary', 'utc', 'alice')).time_zone, 'UTC', 'a schedule: the zone is stored as named');
SELECT is((ops.create_schedule('berlin', 'europe/berlin', 'alice')).time_zone, 'Europe/Berlin',
          'a schedule''s zone is stored in its canonical spelling (europe/berlin: Europe/Berlin)');
SELECT is((SELECT count(*)::int FROM ops.audit_log
           WHERE table_name = 'schedules' AND action = 'INSERT' AND actor = 'alice' AND row_key = 'primary'), 1,
          'creating a schedule is audited with the actor');
CREATE TEMP TABLE before AS SELECT pg_temp.counts() AS c;
SELECT throws_ok($$SELECT ops.create_schedule('mars', 'Mars/Olympus_Mons', 'alice')$$, '22023',
                 'unknown time zone "Mars/Olympus_Mons"', 'an unknown zone is refused');
SELECT throws_ok($$SELECT ops.create_schedule('mars', NULL, 'alice')$$, '22023', NULL, 'a zone is required');
SELECT throws_ok($$SELECT ops.create_schedule('mars', '+05:30', 'alice')$$, '22023', NULL,
                 'a bare offset is no IANA zone');
SELECT throws_ok($$SELECT ops.create_schedule('no spaces', 'UTC', 'alice')$$, '22023', NULL, 'names are checked');
SELECT throws_ok($$SELECT ops.create_schedule('primary', 'UTC', 'alice')$$, '23505', NULL, 'names are unique');
SELECT throws_ok($$SELECT ops.create_schedule('mars', 'UTC', ' ')$$, '22004', NULL, 'an actor is required');
SELECT is(pg_temp.counts(), (SELECT c FROM before), 'a refused schedule writes nothing, not even an audit row');

-- rotations: the first layer, weekly from Monday 2 March 09:00
SELECT is((SELECT (layer, participants)
           FROM ops.add_rotation('primary', 'weekly', '1 week', '2026-03-02 09:00Z', ARRAY['alice', 'bob'], 'alice')),
          row(1, ARRAY['alice', 'bob']), 'the first rotation is layer 1');
SELECT is((SELECT count(*)::int FROM ops.audit_log WHERE table_name = 'schedule_rotations' AND action = 'INSERT'
           AND actor = 'alice' AND changes ->> 'name' = 'weekly'), 1, 'adding a rotation is audited');
SELECT is(pg_temp.who('primary', '2026-03-02 08:59:59Z'), '-', 'before the first handoff nobody is on call');
SELECT is(pg_temp.who('primary', '2026-03-02 09:00Z'), 'alice', 'the first turn starts at the first handoff');
SELECT is(pg_temp.who('primary', '2026-03-09 08:59:59Z'), 'alice', 'the first turn lasts the whole shift, to its last second');
SELECT is(pg_temp.who('primary', '2026-03-09 09:00Z'), 'bob', 'the second participant from the second handoff');
SELECT is(pg_temp.who('primary', '2026-03-16 09:00Z'), 'alice', 'then the first again');
SELECT is(pg_temp.who('primary', '2031-03-10 09:00Z'), 'alice', 'five years on the turns still count right');

CREATE TEMP TABLE before_rot AS SELECT pg_temp.counts() AS c;
SELECT throws_ok($$SELECT ops.add_rotation('nope', 'r', '1 day', now(), ARRAY['alice'], 'alice')$$, 'P0002',
                 'no schedule "nope"', 'an unknown schedule');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 month', now(), ARRAY['alice'], 'alice')$$, '22023',
                 'shift 1 mon is not a usable turn length', 'a shift in months is refused (months vary)');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 year', now(), ARRAY['alice'], 'alice')$$, '22023', NULL,
                 'a shift in years is refused (years vary)');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '0', now(), ARRAY['alice'], 'alice')$$, '22023', NULL,
                 'a shift of zero is refused');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '-1 day', now(), ARRAY['alice'], 'alice')$$, '22023', NULL,
                 'a negative shift is refused');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '59 minutes', now(), ARRAY['alice'], 'alice')$$, '22023',
                 NULL, 'a shift under an hour is refused');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 day -23 hours -30 minutes', now(), ARRAY['alice'], 'alice')$$,
                 '22023', NULL, 'a shift under an hour is refused however it is written (1 day -23 hours -30 minutes)');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', NULL, now(), ARRAY['alice'], 'alice')$$, '22004', NULL,
                 'a shift is required');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 day', NULL, ARRAY['alice'], 'alice')$$, '22004', NULL,
                 'a first handoff is required');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 day', now(), NULL, 'alice')$$, '22023',
                 'a rotation needs participants', 'participants are required');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 day', now(), '{}', 'alice')$$, '22023', NULL,
                 'a rotation with an empty participant list is refused');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 day', now(), ARRAY['alice', NULL], 'alice')$$, '22023',
                 NULL, 'a rotation with a NULL participant is refused');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 day', now(), ARRAY['alice', 'mallory'], 'alice')$$,
                 '23503', 'not an enabled principal: ''mallory''', 'participants are principals');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 day', now(), ARRAY['gone'], 'alice')$$, '23503', NULL,
                 'rotation participants must be enabled principals');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'weekly', '1 day', now(), ARRAY['alice'], 'alice')$$, '23505',
                 'schedule "primary" already has a rotation "weekly"', 'rotation names are unique in a schedule');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'a b', '1 day', now(), ARRAY['alice'], 'alice')$$, '22023', NULL,
                 'rotation names are checked');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 day', now(), ARRAY['alice'], 'alice', ARRAY[0])$$,
                 '22023', 'days {0} are not ISO weekdays', 'days are ISO weekdays 1..7');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 day', now(), ARRAY['alice'], 'alice', ARRAY[1, 8])$$,
                 '22023', NULL, 'days outside ISO weekdays 1..7 are refused (8)');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 day', now(), ARRAY['alice'], 'alice', '{}')$$,
                 '22023', NULL, 'an empty days list is refused (NULL means every day)');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 day', now(), ARRAY['alice'], 'alice', NULL, '09:00')$$,
                 '22023', NULL, 'a window start alone is refused');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 day', now(), ARRAY['alice'], 'alice', NULL, NULL, '17:00')$$,
                 '22023', NULL, 'a window end alone is refused');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 day', now(), ARRAY['alice'], 'alice', NULL, '09:00', '09:00')$$,
                 '22023', NULL, 'an empty window is refused');
SELECT throws_ok($$SELECT ops.add_rotation('primary', 'r', '1 day', now(), ARRAY['alice'], NULL)$$, '22004', NULL,
                 'an actor is required');
SELECT is(pg_temp.counts(), (SELECT c FROM before_rot), 'a refused rotation writes nothing, not even an audit row');

-- a business-hours layer over the weekly one: it wins Monday to Friday 09:00-17:00, the weekly layer shows
-- through in its gaps (nights, the weekend)
SELECT is((ops.add_rotation('primary', 'business', '1 day', '2026-03-02 09:00Z', ARRAY['carol'], 'bob',
                            ARRAY[1, 2, 3, 4, 5], '09:00', '17:00')).layer, 2, 'the next rotation is the next layer');
SELECT is(pg_temp.who('primary', '2026-03-04 12:00Z'), 'carol', 'Wednesday noon: the business-hours layer wins');
SELECT is(pg_temp.who('primary', '2026-03-04 17:00Z'), 'alice', 'Wednesday 17:00: the weekly layer shows through');
SELECT is(pg_temp.who('primary', '2026-03-07 12:00Z'), 'alice', 'Saturday noon: the weekly layer shows through');
SELECT results_eq(
    $$SELECT principal, starts_at, ends_at, source FROM ops.on_call_shifts('primary', '2026-03-06Z', '2026-03-10Z')$$,
    $$VALUES ('alice', '2026-03-06 00:00Z'::timestamptz, '2026-03-06 09:00Z'::timestamptz, 'rotation:weekly'),
             ('carol', '2026-03-06 09:00Z', '2026-03-06 17:00Z', 'rotation:business'),
             ('alice', '2026-03-06 17:00Z', '2026-03-09 09:00Z', 'rotation:weekly'),
             ('carol', '2026-03-09 09:00Z', '2026-03-09 17:00Z', 'rotation:business'),
             ('bob', '2026-03-09 17:00Z', '2026-03-10 00:00Z', 'rotation:weekly')$$,
    'on_call_shifts over a weekend: clipped to the range, the weekend one row, the Monday handoff under business hours');

-- a layer with gaps and nothing under it: nobody on call there
SELECT ops.create_schedule('office', 'UTC', 'alice');
SELECT ops.add_rotation('office', 'business', '1 day', '2026-03-02 09:00Z', ARRAY['carol', 'dave'], 'alice',
                        ARRAY[1, 2, 3, 4, 5], '09:00', '17:00');
SELECT is(pg_temp.who('office', '2026-03-07 12:00Z'), '-', 'no layer applies on Saturday: nobody is on call');
SELECT results_eq(
    $$SELECT principal, starts_at, ends_at FROM ops.on_call_shifts('office', '2026-03-06Z', '2026-03-10Z')$$,
    $$VALUES ('carol', '2026-03-06 09:00Z'::timestamptz, '2026-03-06 17:00Z'::timestamptz),
             ('dave', '2026-03-09 09:00Z', '2026-03-09 17:00Z')$$,
    'on_call_shifts leaves the weekend gap of a weekday layer (turns count on through it: Friday is turn 4, Monday turn 7)');
-- a window past midnight belongs to the day it starts on
SELECT ops.create_schedule('nights', 'UTC', 'alice');
SELECT ops.add_rotation('nights', 'weekend-nights', '1 week', '2026-03-02 00:00Z', ARRAY['erin'], 'alice',
                        ARRAY[5, 6], '22:00', '06:00');
SELECT is(ARRAY[pg_temp.who('nights', '2026-03-06 21:59Z'), pg_temp.who('nights', '2026-03-06 22:00Z'),
                pg_temp.who('nights', '2026-03-07 03:00Z'), pg_temp.who('nights', '2026-03-08 03:00Z'),
                pg_temp.who('nights', '2026-03-08 06:00Z'), pg_temp.who('nights', '2026-03-09 03:00Z')],
          ARRAY['-', 'erin', 'erin', 'erin', '-', '-'],
          'Friday and Saturday 22:00-06:00: Saturday and Sunday mornings yes, Monday morning (a Sunday night) no');

-- overlapping layers: the later one wins where both apply
SELECT ops.add_rotation('primary', 'evening', '1 day', '2026-03-02 00:00Z', ARRAY['dave'], 'alice', NULL,
                        '16:00', '20:00');
SELECT is(pg_temp.who('primary', '2026-03-04 16:30Z'), 'dave', 'layer 3 beats layer 2 where both apply');
SELECT is((SELECT source FROM ops.on_call_shifts('primary', '2026-03-04 16:30Z', '2026-03-04 16:31Z')),
          'rotation:evening', 'on_call_shifts names the winning overlapping layer as its source');

-- overrides: at a handoff, up to a handoff, across two
SELECT is((ops.add_override('primary', 'erin', '2026-03-16 09:00Z', '2026-03-16 12:00Z', 'carol', 'dentist swap')).principal,
          'erin', 'an override starting exactly at a handoff');
SELECT is((SELECT note FROM ops.audit_log WHERE table_name = 'schedule_overrides' AND action = 'INSERT' AND actor = 'carol'),
          'dentist swap', 'an override is audited with the actor and the reason as note');
SELECT is(ARRAY[pg_temp.who('primary', '2026-03-16 08:59:59Z'), pg_temp.who('primary', '2026-03-16 09:00Z'),
                pg_temp.who('primary', '2026-03-16 11:59:59Z'), pg_temp.who('primary', '2026-03-16 12:00Z')],
          ARRAY['bob', 'erin', 'erin', 'carol'], 'an override wins from its first instant to its last, then the layers apply again');
SELECT ops.add_override('primary', 'frank', '2026-03-16 12:00Z', '2026-03-16 13:00Z', 'alice', 'lunch cover');
SELECT results_eq(
    $$SELECT principal, starts_at, ends_at, source FROM ops.on_call_shifts('primary', '2026-03-16Z', '2026-03-17Z')$$,
    $$VALUES ('bob', '2026-03-16 00:00Z'::timestamptz, '2026-03-16 09:00Z'::timestamptz, 'rotation:weekly'),
             ('erin', '2026-03-16 09:00Z', '2026-03-16 12:00Z', 'override'),
             ('frank', '2026-03-16 12:00Z', '2026-03-16 13:00Z', 'override'),
             ('carol', '2026-03-16 13:00Z', '2026-03-16 16:00Z', 'rotation:business'),
             ('dave', '2026-03-16 16:00Z', '2026-03-16 20:00Z', 'rotation:evening'),
             ('alice', '2026-03-16 20:00Z', '2026-03-17 00:00Z', 'rotation:weekly')$$,
    'a day of on_call_shifts: layers, two adjacent overrides (touching spans are fine), layers again');
SELECT ops.add_override('primary', 'frank', '2026-03-23 06:00Z', '2026-03-23 09:00Z', 'alice', 'early cover');
SELECT is(ARRAY[pg_temp.who('primary', '2026-03-23 08:59:59Z'), pg_temp.who('primary', '2026-03-23 09:00Z')],
          ARRAY['frank', 'carol'], 'an override ending exactly at a handoff hands over to the layers there');
SELECT ops.add_override('primary', 'erin', '2026-03-28 00:00Z', '2026-03-31 00:00Z', 'alice', 'holiday cover');
SELECT is(ARRAY[pg_temp.who('primary', '2026-03-30 08:59Z'), pg_temp.who('primary', '2026-03-30 09:00Z'),
                pg_temp.who('primary', '2026-03-30 16:30Z'), pg_temp.who('primary', '2026-03-31 00:00Z')],
          ARRAY['erin', 'erin', 'erin', 'alice'], 'an override spanning two handoffs wins over every layer throughout');
SELECT results_eq(
    $$SELECT principal, starts_at, ends_at, source FROM ops.on_call_shifts('primary', '2026-03-29Z', '2026-03-30 12:00Z')$$,
    $$VALUES ('erin', '2026-03-29 00:00Z'::timestamptz, '2026-03-30 12:00Z'::timestamptz, 'override')$$,
    'on_call_shifts lists an override spanning the range as one row, clipped to the range');

CREATE TEMP TABLE before_ovr AS SELECT pg_temp.counts() AS c;
SELECT throws_ok($$SELECT ops.add_override('primary', 'bob', '2026-03-16 09:00Z', '2026-03-16 12:00Z', 'a', 'x')$$,
                 '23P01', NULL, 'the same span again is refused');
SELECT throws_ok($$SELECT ops.add_override('primary', 'bob', '2026-03-16 08:00Z', '2026-03-16 09:00:01Z', 'a', 'x')$$,
                 '23P01', NULL, 'a span reaching into one from before is refused');
SELECT throws_ok($$SELECT ops.add_override('primary', 'bob', '2026-03-16 12:59Z', '2026-03-16 14:00Z', 'a', 'x')$$,
                 '23P01', NULL, 'a span reaching out of one is refused');
SELECT throws_ok($$SELECT ops.add_override('primary', 'bob', '2026-03-16 10:00Z', '2026-03-16 11:00Z', 'a', 'x')$$,
                 '23P01', NULL, 'a span inside one is refused');
SELECT throws_ok($$SELECT ops.add_override('primary', 'bob', '2026-03-15Z', '2026-03-18Z', 'a', 'x')$$,
                 '23P01', NULL, 'a span around two is refused');
SELECT throws_ok($$SELECT ops.add_override('primary', 'bob', '2026-03-17Z', '2026-03-17Z', 'a', 'x')$$,
                 '22023', NULL, 'an empty span is refused');
SELECT throws_ok($$SELECT ops.add_override('primary', 'bob', '2026-03-18Z', '2026-03-17Z', 'a', 'x')$$,
                 '22023', NULL, 'a backwards span is refused');
SELECT throws_ok($$SELECT ops.add_override('primary', 'bob', NULL, '2026-03-17Z', 'a', 'x')$$,
                 '22023', NULL, 'a span needs a start');
SELECT throws_ok($$SELECT ops.add_override('primary', 'bob', '2026-03-17Z', 'infinity', 'a', 'x')$$,
                 '22023', NULL, 'an override with an infinite end is refused');
SELECT throws_ok($$SELECT ops.add_override('primary', 'bob', '2026-03-17Z', '2026-03-18Z', 'a', NULL)$$,
                 '22004', 'an override needs a reason', 'a reason is required');
SELECT throws_ok($$SELECT ops.add_override('primary', 'bob', '2026-03-17Z', '2026-03-18Z', 'a', '  ')$$,
                 '22004', NULL, 'an override with a blank reason is refused');
SELECT throws_ok($$SELECT ops.add_override('primary', 'mallory', '2026-03-17Z', '2026-03-18Z', 'a', 'x')$$,
                 '23503', NULL, 'the principal must exist');
SELECT throws_ok($$SELECT ops.add_override('primary', 'gone', '2026-03-17Z', '2026-03-18Z', 'a', 'x')$$,
                 '23503', NULL, 'an override for a disabled principal is refused');
SELECT throws_ok($$SELECT ops.add_override('nope', 'bob', '2026-03-17Z', '2026-03-18Z', 'a', 'x')$$,
                 'P0002', NULL, 'the schedule must exist');
SELECT throws_ok($$SELECT ops.add_override('primary', 'bob', '2026-03-17Z', '2026-03-18Z', '', 'x')$$,
                 '22004', NULL, 'an actor is required');
SELECT throws_ok($$SELECT ops.remove_override(-1, 'alice')$$, 'P0002', 'no override -1', 'removing an unknown override');
SELECT is(pg_temp.counts(), (SELECT c FROM before_ovr), 'a refused override writes nothing, not even an audit row');
SELECT ok((SELECT count(*) = 1 FROM ops.add_override('office', 'bob', '2026-03-16 09:00Z', '2026-03-16 12:00Z', 'a', 'x')),
          'overrides of another schedule do not clash');

SELECT is((ops.remove_override((SELECT id FROM ops.schedule_overrides WHERE reason = 'dentist swap'), 'bob')).principal,
          'erin', 'removing an override');
SELECT is(pg_temp.who('primary', '2026-03-16 10:00Z'), 'carol', 'after removing an override the layers apply again');
SELECT is((SELECT (actor, changes ->> 'reason') FROM ops.audit_log
           WHERE table_name = 'schedule_overrides' AND action = 'DELETE'), row('bob'::text, 'dentist swap'::text),
          'removing an override is audited with the actor and what was removed');

-- removing a layer: the layers below show through where it applied
SELECT is((ops.remove_rotation('primary', 'evening', 'bob')).name, 'evening', 'removing a rotation');
SELECT is(pg_temp.who('primary', '2026-03-04 16:30Z'), 'carol', 'after removing a layer the layer below shows through');
SELECT is((SELECT count(*)::int FROM ops.audit_log WHERE table_name = 'schedule_rotations' AND action = 'DELETE'
           AND actor = 'bob'), 1, 'removing a rotation is audited');
SELECT throws_ok($$SELECT ops.remove_rotation('primary', 'evening', 'bob')$$, 'P0002', NULL,
                 'removing an unknown rotation');
SELECT throws_ok($$SELECT ops.remove_rotation('nope', 'evening', 'bob')$$, 'P0002', NULL,
                 'removing a rotation of an unknown schedule: P0002');

-- asking
SELECT throws_ok($$SELECT ops.on_call('nope')$$, 'P0002', 'no schedule "nope"', 'on_call: an unknown schedule');
SELECT throws_ok($$SELECT ops.on_call('primary', 'infinity')$$, '22023', NULL, 'on_call: a finite time');
SELECT throws_ok($$SELECT ops.on_call('primary', NULL)$$, '22004', NULL, 'on_call: a time');
SELECT throws_ok($$SELECT ops.on_call_shifts('nope', now(), now() + interval '1 day')$$, 'P0002', NULL,
                 'on_call_shifts: an unknown schedule');
SELECT throws_ok($$SELECT ops.on_call_shifts('primary', '2026-01-01Z', '2027-01-02 00:00:01Z')$$, '22023', NULL,
                 'on_call_shifts: at most 366 days');
SELECT lives_ok($$SELECT ops.on_call_shifts('primary', '2028-01-01Z', '2029-01-01Z')$$, 'on_call_shifts accepts a leap year''s 366 days');
SELECT throws_ok($$SELECT ops.on_call_shifts('primary', '2026-03-02Z', '2026-03-02Z')$$, '22023', NULL,
                 'on_call_shifts: from before to');
SELECT throws_ok($$SELECT ops.on_call_shifts('primary', NULL, '2026-03-02Z')$$, '22023', NULL,
                 'on_call_shifts: both ends');
SELECT results_eq(
    $$SELECT principal, starts_at, ends_at FROM ops.on_call_shifts('nights', '2026-03-01Z', '2026-03-31Z') LIMIT 1$$,
    $$VALUES ('erin', '2026-03-06 22:00Z'::timestamptz, '2026-03-07 06:00Z'::timestamptz)$$,
    'the weekend nights as rows: Friday night a row of its own');

-- on_call_now: every schedule, who now and until when (now() is the transaction start in this test; a first
-- handoff is kept to the whole second)
SELECT ops.create_schedule(s, 'UTC', 'alice') FROM unnest(ARRAY['now-two', 'now-solo', 'now-later', 'now-empty']) AS s;
SELECT ops.add_rotation('now-two', 'r', '1 day', now() - interval '1 hour', ARRAY['alice', 'bob'], 'alice');
SELECT ops.add_rotation('now-solo', 'r', '1 day', now() - interval '1 hour', ARRAY['alice'], 'alice');
SELECT ops.add_rotation('now-later', 'r', '1 day', now() + interval '2 hours', ARRAY['bob'], 'alice');
SELECT results_eq(
    $$SELECT schedule, principal, until FROM ops.on_call_now WHERE schedule LIKE 'now-%' ORDER BY schedule$$,
    $$VALUES ('now-empty', NULL::text, NULL::timestamptz), ('now-later', NULL, date_trunc('second', now()) + interval '2 hours'),
             ('now-solo', 'alice', NULL), ('now-two', 'alice', date_trunc('second', now()) + interval '23 hours')$$,
    'on_call_now: until the end of the shift; NULL when nothing changes in 28 days; nobody: until someone starts');
SELECT results_eq(
    $$SELECT principal, starts_at, ends_at FROM ops.on_call_shifts('now-solo', now(), now() + interval '10 days')$$,
    $$VALUES ('alice', now(), now() + interval '10 days')$$,
    'one participant in turn after turn is one merged row');

-- operators ask and manage, the API role does neither (it gets its own api_* functions)
SET LOCAL ROLE opsguard_operator;
SELECT is(pg_temp.who('primary', '2026-03-04 12:00Z'), 'carol', 'operators ask on_call');
SELECT ok((SELECT count(*) > 0 FROM ops.on_call_now), 'operators read on_call_now');
SELECT lives_ok($$SELECT ops.add_override('primary', 'bob', '2026-04-01Z', '2026-04-02Z', 'alice', 'operator swap')$$,
                'operators swap shifts with add_override');
RESET ROLE;
SET LOCAL ROLE opsguard_api;
SELECT throws_ok($$SELECT ops.on_call('primary')$$, '42501', NULL, 'the API role cannot call on_call directly');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
