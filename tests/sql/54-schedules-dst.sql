-- Rotation arithmetic across the 2026 DST changes (docs/oncall.md): a handoff keeps its local wall-clock time
-- (09:00 stays 09:00, 12-hour shifts stay 09:00/21:00) in Europe/Berlin (29 Mar, 25 Oct), America/New_York
-- (8 Mar, 1 Nov), Australia/Adelaide (+10:30 to +09:30 on 5 Apr, back on 4 Oct) and Asia/Kolkata (+05:30,
-- no DST). The UTC instants below were computed with Python zoneinfo, not with opsguard. A handoff at a
-- local time that is skipped or repeated (02:30 in Berlin) happens at the later reading: 03:30 summer
-- time in spring, the second 02:30 in autumn. Then ops.on_call_shifts agrees with ops.on_call minute by
-- minute over 30 days (43,200 minutes) of a layered Berlin schedule with overrides and a DST change.
BEGIN;
SELECT plan(22);

SELECT ops.add_principal(p, 'human', ARRAY['ops_responder'], 'admin')
FROM unnest(ARRAY['alice', 'bob', 'carol', 'dave', 'erin', 'frank']) AS p;

-- the handoffs strictly inside (p_from, p_to), in UTC
CREATE FUNCTION pg_temp.handoffs(p_schedule text, p_from timestamptz, p_to timestamptz) RETURNS text[]
LANGUAGE sql AS $$
    SELECT array_agg(to_char(starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') ORDER BY starts_at)
    FROM ops.on_call_shifts(p_schedule, p_from, p_to) WHERE starts_at > p_from
$$;

-- one schedule per zone and shift; every first handoff is 2026-03-02 09:00 local
SELECT ops.create_schedule(s, z, 'admin')
FROM (VALUES ('berlin-daily', 'Europe/Berlin'), ('berlin-weekly', 'Europe/Berlin'), ('berlin-night', 'Europe/Berlin'),
             ('ny-12h', 'America/New_York'), ('kolkata-daily', 'Asia/Kolkata'),
             ('adelaide-daily', 'Australia/Adelaide'), ('adelaide-12h', 'Australia/Adelaide')) AS x (s, z);
SELECT ops.add_rotation(s, 'r', sh::interval, h::timestamptz, ARRAY['alice', 'bob', 'carol'], 'admin')
FROM (VALUES ('berlin-daily', '1 day', '2026-03-02 08:00Z'), ('berlin-weekly', '1 week', '2026-03-02 08:00Z'),
             ('berlin-night', '1 day', '2026-03-02 01:30Z'),  -- 02:30 local
             ('ny-12h', '12 hours', '2026-03-02 14:00Z'), ('kolkata-daily', '1 day', '2026-03-02 03:30Z'),
             ('adelaide-daily', '1 day', '2026-03-01 22:30Z'), ('adelaide-12h', '12 hours', '2026-03-01 22:30Z'))
    AS x (s, sh, h);

SELECT is(pg_temp.handoffs('berlin-daily', '2026-03-27Z', '2026-03-31Z'),
          ARRAY['2026-03-27 08:00', '2026-03-28 08:00', '2026-03-29 07:00', '2026-03-30 07:00'],
          'Berlin daily 09:00 across spring forward: 08:00Z, then 07:00Z from 29 March (a 23-hour shift)');
SELECT is(pg_temp.handoffs('berlin-daily', '2026-10-23Z', '2026-10-27Z'),
          ARRAY['2026-10-23 07:00', '2026-10-24 07:00', '2026-10-25 08:00', '2026-10-26 08:00'],
          'Berlin daily 09:00 across fall back: 07:00Z, then 08:00Z from 25 October (a 25-hour shift)');
SELECT is(pg_temp.handoffs('berlin-weekly', '2026-03-20Z', '2026-04-01Z'), ARRAY['2026-03-23 08:00', '2026-03-30 07:00'],
          'Berlin weekly Monday 09:00 across spring forward (a week of 167 hours)');
SELECT is(pg_temp.handoffs('berlin-weekly', '2026-10-18Z', '2026-10-28Z'), ARRAY['2026-10-19 07:00', '2026-10-26 08:00'],
          'Berlin weekly Monday 09:00 across fall back (a week of 169 hours)');
SELECT is(pg_temp.handoffs('ny-12h', '2026-03-07Z', '2026-03-10Z'),
          ARRAY['2026-03-07 02:00', '2026-03-07 14:00', '2026-03-08 02:00', '2026-03-08 13:00', '2026-03-09 01:00',
                '2026-03-09 13:00'],
          'New York 12-hour shifts stay 09:00/21:00 across spring forward (8 March)');
SELECT is(pg_temp.handoffs('ny-12h', '2026-10-31Z', '2026-11-03Z'),
          ARRAY['2026-10-31 01:00', '2026-10-31 13:00', '2026-11-01 01:00', '2026-11-01 14:00', '2026-11-02 02:00',
                '2026-11-02 14:00'],
          'New York 12-hour shifts stay 09:00/21:00 across fall back (1 November)');
SELECT is(pg_temp.handoffs('kolkata-daily', '2026-03-27Z', '2026-03-31Z'),
          ARRAY['2026-03-27 03:30', '2026-03-28 03:30', '2026-03-29 03:30', '2026-03-30 03:30'],
          'Kolkata (+05:30, no DST) daily 09:00 is 03:30Z every day');
SELECT is(pg_temp.handoffs('adelaide-daily', '2026-04-03Z', '2026-04-06Z'),
          ARRAY['2026-04-03 22:30', '2026-04-04 23:30', '2026-04-05 23:30'],
          'Adelaide daily 09:00 when summer time ends (+10:30 to +09:30, 5 April)');
SELECT is(pg_temp.handoffs('adelaide-daily', '2026-10-02Z', '2026-10-05Z'),
          ARRAY['2026-10-02 23:30', '2026-10-03 22:30', '2026-10-04 22:30'],
          'Adelaide daily 09:00 when summer time starts (4 October)');
SELECT is(pg_temp.handoffs('adelaide-12h', '2026-04-03Z', '2026-04-06Z'),
          ARRAY['2026-04-03 10:30', '2026-04-03 22:30', '2026-04-04 10:30', '2026-04-04 23:30', '2026-04-05 11:30',
                '2026-04-05 23:30'],
          'Adelaide 12-hour shifts stay 09:00/21:00 in a half-hour zone with DST');

-- turns count on across the changes: 27 days after 2 March is alice's turn again (27 mod 3 = 0)
SELECT is(array(SELECT ops.on_call('berlin-daily', t)
                FROM unnest(ARRAY['2026-03-29 06:59:59Z', '2026-03-29 07:00Z']::timestamptz[]) AS t),
          ARRAY['carol', 'alice'], 'the turn changes at the 09:00 handoff itself, not an hour off');

-- 02:30 does not exist on 29 March in Berlin (02:00 jumps to 03:00): the handoff is 03:30 CEST = 01:30Z;
-- between 03:00 and 03:30 local the wall clock is past 02:30 but the handoff has not happened
SELECT is(array(SELECT ops.on_call('berlin-night', t)
                FROM unnest(ARRAY['2026-03-29 00:59Z', '2026-03-29 01:00Z', '2026-03-29 01:29:59Z',
                                  '2026-03-29 01:30Z']::timestamptz[]) AS t),
          ARRAY['carol', 'carol', 'carol', 'alice'],
          'a handoff at a skipped local time (02:30 on 29 March) happens at 03:30 summer time, 01:30Z');
SELECT is(pg_temp.handoffs('berlin-night', '2026-03-27Z', '2026-03-31Z'),
          ARRAY['2026-03-27 01:30', '2026-03-28 01:30', '2026-03-29 01:30', '2026-03-30 00:30'],
          'on_call_shifts agrees on the skipped-time handoff; the next day is 02:30 CEST again');
-- 02:30 happens twice on 25 October (03:00 CEST falls back to 02:00 CET): the handoff is the second one
SELECT is(array(SELECT ops.on_call('berlin-night', t)
                FROM unnest(ARRAY['2026-10-25 00:29Z', '2026-10-25 00:30Z', '2026-10-25 00:45Z', '2026-10-25 01:29:59Z',
                                  '2026-10-25 01:30Z']::timestamptz[]) AS t),
          ARRAY['carol', 'carol', 'carol', 'carol', 'alice'],
          'a handoff at a repeated local time (02:30 on 25 October) happens at the second 02:30, 01:30Z');
SELECT is(pg_temp.handoffs('berlin-night', '2026-10-23Z', '2026-10-27Z'),
          ARRAY['2026-10-23 00:30', '2026-10-24 00:30', '2026-10-25 01:30', '2026-10-26 01:30'],
          'on_call_shifts agrees on the repeated-time handoff (the second 02:30, 01:30Z)');
SELECT is((SELECT count(*)::int FROM ops.on_call('berlin-daily', '2026-03-02 07:59:59Z')), 0,
          'before the first handoff the layer is not active: nobody');

-- a restriction window in the skipped hour (Sundays 02:15-02:45) on 29 March: 03:15-03:45 CEST
SELECT ops.create_schedule('berlin-window', 'Europe/Berlin', 'admin');
SELECT ops.add_rotation('berlin-window', 'w', '1 week', '2026-03-01Z', ARRAY['dave'], 'admin', ARRAY[7],
                        '02:15', '02:45');
SELECT results_eq(
    $$SELECT starts_at, ends_at FROM ops.on_call_shifts('berlin-window', '2026-03-28Z', '2026-03-30Z')$$,
    $$VALUES ('2026-03-29 01:15Z'::timestamptz, '2026-03-29 01:45Z'::timestamptz)$$,
    'a window at skipped local times opens and closes at their later readings (03:15 and 03:45 CEST)');
SELECT is(array(SELECT coalesce((SELECT ops.on_call('berlin-window', t)), '-')
                FROM unnest(ARRAY['2026-03-29 01:00Z', '2026-03-29 01:14Z', '2026-03-29 01:15Z', '2026-03-29 01:44Z',
                                  '2026-03-29 01:45Z']::timestamptz[]) AS t),
          ARRAY['-', '-', 'dave', 'dave', '-'], 'on_call agrees with on_call_shifts at the edges of a window at skipped local times');

-- 30 days of a layered Berlin schedule, minute by minute: on_call at each minute against the row of
-- on_call_shifts that holds it (nobody on both sides counts as agreeing). Layers: a weekly base, business
-- hours on weekdays, a night layer 22:00-06:00 handing off at 02:30 (the skipped hour on 29 March), and
-- overrides at and across handoffs.
SELECT ops.create_schedule('month', 'Europe/Berlin', 'admin');
SELECT ops.add_rotation('month', 'base', '1 week', '2026-03-02 08:00Z', ARRAY['alice', 'bob'], 'admin');
SELECT ops.add_rotation('month', 'business', '1 day', '2026-03-02 08:00Z', ARRAY['carol', 'dave'], 'admin',
                        ARRAY[1, 2, 3, 4, 5], '09:00', '17:00');
SELECT ops.add_rotation('month', 'night', '1 day', '2026-03-02 01:30Z', ARRAY['erin', 'frank', 'bob'], 'admin',
                        NULL, '22:00', '06:00');
SELECT ops.add_override('month', 'frank', '2026-03-09 08:00Z', '2026-03-10 08:00Z', 'admin', 'starts and ends at handoffs');
SELECT ops.add_override('month', 'alice', '2026-03-21 06:00Z', '2026-03-23 08:00Z', 'admin', 'spans two handoffs');
SELECT ops.add_override('month', 'erin', '2026-03-17 12:34Z', '2026-03-17 12:35Z', 'admin', 'one minute');

CREATE TEMP TABLE minutes AS
SELECT t FROM generate_series('2026-03-05 00:00Z'::timestamptz, '2026-04-03 23:59Z', interval '1 minute') AS t;
SELECT is((SELECT count(*)::int FROM minutes), 43200, '30 days of minutes');
CREATE TEMP TABLE shifts AS SELECT * FROM ops.on_call_shifts('month', '2026-03-05Z', '2026-04-04Z');
CREATE TEMP TABLE asked AS
SELECT
    m.t,
    o.p
FROM minutes AS m LEFT JOIN LATERAL ops.on_call('month', m.t) AS o (p) ON TRUE;
SELECT is_empty(
    $$(SELECT t, p FROM asked
       EXCEPT
       SELECT m.t, s.principal FROM minutes AS m LEFT JOIN shifts AS s ON m.t >= s.starts_at AND m.t < s.ends_at)
      UNION ALL
      (SELECT m.t, s.principal FROM minutes AS m LEFT JOIN shifts AS s ON m.t >= s.starts_at AND m.t < s.ends_at
       EXCEPT
       SELECT t, p FROM asked)$$,
    'on_call_shifts agrees with on_call at each of the 43,200 minutes');
SELECT is_empty(
    $$SELECT 1 FROM shifts AS a JOIN shifts AS b ON a.ends_at = b.starts_at
      WHERE a.principal = b.principal AND a.source = b.source$$,
    'on_call_shifts merges its rows of one principal and source that touch');
SELECT ok((SELECT count(DISTINCT source) = 4 AND count(*) > 100 FROM shifts),
          'the month of on_call_shifts exercises every layer and the overrides');

SELECT * FROM finish();
ROLLBACK;
