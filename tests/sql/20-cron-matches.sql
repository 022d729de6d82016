-- ops.cron_matches: the 5-field cron matcher behind pause_cron (UTC, Vixie semantics).
-- 2026-11-22 is a Sunday, 2026-11-23 a Monday.
BEGIN;
SELECT plan(30);

SELECT ok(ops.cron_matches('* * * * *', '2026-11-23 13:37Z'), 'every minute');
SELECT ok(ops.cron_matches('*/15 * * * *', '2026-11-23 13:30Z'), '*/15 matches :30');
SELECT ok(NOT ops.cron_matches('*/15 * * * *', '2026-11-23 13:31Z'), '*/15 does not match :31');
SELECT ok(ops.cron_matches('5/15 * * * *', '2026-11-23 13:50Z'), '5/15 is 5-59/15 (matches :50)');
SELECT ok(NOT ops.cron_matches('5/15 * * * *', '2026-11-23 13:45Z'), '5/15 does not match :45');
SELECT ok(ops.cron_matches('0 22 * * 1-5', '2026-11-23 22:00Z'), '1-5 matches Monday');
SELECT ok(NOT ops.cron_matches('0 22 * * 1-5', '2026-11-22 22:00Z'), '1-5 does not match Sunday');
SELECT ok(ops.cron_matches('0 0 * * 0', '2026-11-22 00:00Z'), 'Sunday as 0');
SELECT ok(ops.cron_matches('0 0 * * 7', '2026-11-22 00:00Z'), 'Sunday as 7');
SELECT ok(ops.cron_matches('0 0 * * 5-7', '2026-11-22 00:00Z'), 'a range ending in 7 includes Sunday');
SELECT ok(NOT ops.cron_matches('0 0 * * 7', '2026-11-23 00:00Z'), '7 does not match Monday');
SELECT ok(ops.cron_matches('0,30 9-17 * * *', '2026-11-23 17:30Z'), 'lists and hour ranges');
SELECT ok(NOT ops.cron_matches('0,30 9-17 * * *', '2026-11-23 18:00Z'), 'outside the hour range');
SELECT ok(ops.cron_matches('0 0 * nov mon-fri', '2026-11-23 00:00Z'), 'month and day names');
SELECT ok(NOT ops.cron_matches('0 0 * DEC MON', '2026-11-23 00:00Z'), 'names are case-insensitive; wrong month');
SELECT ok(ops.cron_matches('0 0 1 * mon', '2026-11-23 00:00Z'), 'both day fields set: day-of-week alone matches');
SELECT ok(ops.cron_matches('0 0 1 * mon', '2026-11-01 00:00Z'), 'both day fields set: day-of-month alone matches');
SELECT ok(NOT ops.cron_matches('0 0 1 * mon', '2026-11-24 00:00Z'), 'both day fields set: neither matches');
SELECT ok(NOT ops.cron_matches('0 0 */2 * mon', '2026-11-30 00:00Z'),
          'day-of-month starting with * combines with AND (Monday the 30th, even day)');
SELECT ok(ops.cron_matches('0 22 * * *', '2026-11-24 03:00+05'), 'evaluated in UTC whatever the offset given');
SELECT ok(ops.cron_matches('@daily', '2026-11-23 00:00Z'), '@daily');
SELECT ok(ops.cron_matches('  0   22 * *   1-5 ', '2026-11-23 22:00Z'), 'extra blanks are fine');

SELECT throws_ok($$SELECT ops.cron_matches('* * * *', now())$$, '22023', NULL, 'four fields: 22023');
SELECT throws_ok($$SELECT ops.cron_matches('60 * * * *', now())$$, '22023', NULL, 'minute 60: 22023');
SELECT throws_ok($$SELECT ops.cron_matches('*/0 * * * *', now())$$, '22023', NULL, 'step 0: 22023');
SELECT throws_ok($$SELECT ops.cron_matches('5-1 * * * *', now())$$, '22023', NULL, 'a backwards range: 22023');
SELECT throws_ok($$SELECT ops.cron_matches('0 0 * * fun', now())$$, '22023', NULL, 'an unknown name: 22023');
SELECT throws_ok($$SELECT ops.cron_matches('0 0 32 * *', '2026-11-23 01:00Z')$$, '22023', NULL,
                 'a bad day field fails even in a minute that does not match');
SELECT throws_ok($$SELECT ops.cron_matches('', now())$$, '22023', NULL, 'empty: 22023');
SELECT throws_ok($$SELECT ops.cron_matches(NULL, now())$$, '22004', NULL, 'NULL: 22004');

SELECT * FROM finish();
ROLLBACK;
