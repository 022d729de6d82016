-- Every setting is validated completely when it is set, whatever the clock says (docs/escalation.md#settings):
-- a cron expression with hour 99 is refused at any minute, not only in the minute it would match.
-- The clock is moved with ops.cron_matches(expr, p_now) at several times; set_setting itself never
-- looks at the clock (its check is ops._cron_sets), which the same bad expressions show.
BEGIN;
SELECT plan(86);

CREATE TEMP TABLE bad (expr text, what text);
INSERT INTO bad VALUES
('5 99 * * *', 'hour 99'),
('5 * * 13 *', 'month 13'),
('0 24 * * *', 'hour 24'),
('5 * * foo *', 'an unknown month name'),
('* * 0 * *', 'day-of-month 0'),
('* * 32 * *', 'day-of-month 32'),
('* * * * 8', 'day-of-week 8'),
('60 * * * *', 'minute 60'),
('5 1-99 * * *', 'an hour range past 23'),
('5 3,99 * * *', 'a list with hour 99'),
('5 */0 * * *', 'an hour step of 0'),
('5 * * * mon-fun', 'a range to an unknown day name'),
('5 mon * * *', 'a day name in the hour field'),
('5 * * 1-13/2 *', 'a stepped month range past 12'),
('5 * * * 5-2', 'a backwards day-of-week range');

CREATE TEMP TABLE at_times (t timestamptz);
INSERT INTO at_times VALUES
('2026-03-02 00:00Z'), ('2026-03-02 05:00Z'), ('2026-03-02 05:05Z'), ('2026-03-02 18:07Z'), ('2026-12-31 23:59Z');

-- each bad expression raises 22023 at each of the five times (15 x 5 in one assertion per expression)
CREATE FUNCTION pg_temp.refused_at_every_time(p_expr text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_t timestamptz;
    v_out text := '';
BEGIN
    FOR v_t IN SELECT t FROM at_times ORDER BY t LOOP
        BEGIN
            PERFORM ops.cron_matches(p_expr, v_t);
            v_out := v_out || ' accepted at ' || v_t;
        EXCEPTION WHEN invalid_parameter_value THEN
            NULL;
        END;
    END LOOP;
    RETURN v_out;
END;
$$;
SELECT is(pg_temp.refused_at_every_time(expr), '', 'cron_matches refuses ' || what || ' at 00:00, 05:00, 05:05, 18:07, Dec 31 23:59')
FROM bad ORDER BY expr;

-- set_setting refuses each, with 22023, and nothing changes
SELECT throws_ok(pg_catalog.format('SELECT ops.set_setting(%L, %L, %L)', 'pause_cron', expr, 'alice'), '22023', NULL,
                 'set_setting refuses ' || what)
FROM bad ORDER BY expr;
SELECT is(ops.setting('pause_cron'), '""'::jsonb, 'pause_cron is unchanged after every refusal');

-- the message names the field and the value; the hint says what the field takes
CREATE FUNCTION pg_temp.error_of(p_expr text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_msg text;
    v_hint text;
BEGIN
    PERFORM ops.set_setting('pause_cron', p_expr, 'alice');
    RETURN 'accepted';
EXCEPTION WHEN invalid_parameter_value THEN
    GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT, v_hint = PG_EXCEPTION_HINT;
    RETURN v_msg || ' | ' || v_hint;
END;
$$;
SELECT is(pg_temp.error_of('5 99 * * *'),
          'cron hour: "99" is outside 0-23 | The hour field takes 0-23; a range goes low-high within those bounds.',
          'hour 99: the message names the hour field, the hint its bounds');
SELECT is(pg_temp.error_of('5 * * 13 *'),
          'cron month: "13" is outside 1-12 | The month field takes 1-12 or names (jan, feb, mar, apr, may, jun, jul, '
          || 'aug, sep, oct, nov, dec); a range goes low-high within those bounds.',
          'month 13: the month field, its bounds and names');
SELECT matches(pg_temp.error_of('5 * * foo *'), '^cron month: "foo" is not a number or a name \| .+',
               'an unknown name: the month field, with a hint');
SELECT matches(pg_temp.error_of('5 */0 * * *'), '^cron hour: "\*/0" is not a valid item \| The hour field takes 0-23; .+',
               'step 0: the hour field, with a hint');
SELECT matches(pg_temp.error_of('5 * * *'), '^cron expression "5 \* \* \*" does not have 5 fields \| minute hour .+',
               'four fields: named, with the field order as hint');

-- the same expressions at the times they would have passed before (the minute field does not
-- match): refused by cron_matches too, for the pause check of every tick
SELECT throws_ok($$SELECT ops.cron_matches('5 99 * * *', '2026-03-02 18:07Z')$$, '22023', NULL,
                 'hour 99 is refused in a minute whose minute field does not match');
SELECT throws_ok($$SELECT ops.cron_matches('5 * * 13 *', '2026-03-02 18:07Z')$$, '22023', NULL,
                 'month 13 likewise');

-- good expressions: accepted (stored trimmed), and they still match as before
CREATE TEMP TABLE good (expr text);
INSERT INTO good VALUES
('0 22 * * 1-5'), ('*/15 * * * *'), ('5/15 * * * *'), ('0 0 1 jan *'), ('0 0 * * sun'), ('0 0 * * 7'),
('0,30 9-17 * * mon-fri'), ('0 0 1-31/2 * *'), ('59 23 31 dec *'), ('0 0 * jan-mar/2 *'), ('@daily'),
('@weekly'), ('0 0 * * 5-7'), ('0 0 29 feb *'), ('0-59/10 0-23/6 * * *');
SELECT is((ops.set_setting('pause_cron', ' ' || expr || ' ', 'alice')).value, pg_catalog.to_jsonb(expr),
          'set_setting accepts ' || expr)
FROM good ORDER BY expr;
SELECT lives_ok(pg_catalog.format('SELECT ops.cron_matches(%L, %L)', expr, t), 'cron_matches takes ' || expr || ' at ' || t)
FROM good, at_times WHERE expr IN ('0 22 * * 1-5', '59 23 31 dec *') ORDER BY expr, t;
SELECT ok(ops.cron_matches('59 23 31 dec *', '2026-12-31 23:59Z'), 'Dec 31 23:59 matches 59 23 31 dec *');
SELECT ok(ops.cron_matches('0 0 29 feb *', '2028-02-29 00:00Z'), 'Feb 29 in a leap year');
SELECT ok(NOT ops.cron_matches('0-59/10 0-23/6 * * *', '2026-03-02 05:00Z'), '0-23/6 does not match 05:00');
SELECT ok(ops.cron_matches('0-59/10 0-23/6 * * *', '2026-03-02 18:50Z'), '0-23/6 and 0-59/10 match 18:50');

-- the other kinds, completely
SELECT throws_ok($$SELECT ops.set_setting('dry_run', 'maybe', 'alice')$$, '22023', NULL, 'boolean: maybe is refused');
SELECT throws_ok($$SELECT ops.set_setting('dry_run', '', 'alice')$$, '22023', NULL, 'boolean: empty is refused');
SELECT is((ops.set_setting('dry_run', ' YES ', 'alice')).value, 'true'::jsonb, 'boolean: yes, any case and blanks');
SELECT is((ops.set_setting('notify_paused', '0', 'alice')).value, 'false'::jsonb, 'boolean: 0');
SELECT throws_ok($$SELECT ops.set_setting('snooze_min', '1.5', 'alice')$$, '22023', NULL, 'integer: 1.5 is refused');
SELECT throws_ok($$SELECT ops.set_setting('snooze_min', '1e3', 'alice')$$, '22023', NULL, 'integer: 1e3 is refused');
SELECT throws_ok($$SELECT ops.set_setting('snooze_min', '', 'alice')$$, '22023', NULL, 'integer: empty is refused');
SELECT throws_ok($$SELECT ops.set_setting('snooze_min', '-1', 'alice')$$, '22003', NULL, 'integer: below its minimum');
SELECT throws_ok($$SELECT ops.set_setting('tick_ms', '999', 'alice')$$, '22003', NULL, 'tick_ms below 1000');
SELECT throws_ok($$SELECT ops.set_setting('ack_timeout_min', '10081', 'alice')$$, '22003', NULL,
                 'ack_timeout_min above a week');
SELECT throws_ok($$SELECT ops.set_setting('guard_lookback_min', '0', 'alice')$$, '22003', NULL,
                 'guard_lookback_min below 1');
SELECT throws_ok($$SELECT ops.set_setting('app_base_url', 'ops.example.com', 'alice')$$, '22023', NULL,
                 'url: no scheme is refused');
SELECT throws_ok($$SELECT ops.set_setting('app_base_url', 'https://ops.example.com:99999', 'alice')$$, '22023', NULL,
                 'url: port 99999 is refused');
SELECT throws_ok($$SELECT ops.set_setting('app_base_url', 'https://ops.example.com:0/x', 'alice')$$, '22023', NULL,
                 'url: port 0 is refused');
SELECT is((ops.set_setting('app_base_url', 'https://ops.example.com:8443/', 'alice')).value,
          '"https://ops.example.com:8443/"'::jsonb, 'url: a real port is fine');
SELECT throws_ok($$SELECT ops.set_setting('slack_webhook_url', 'http://hooks.example.com/x', 'alice')$$, '22023', NULL,
                 'webhook: plain http off loopback is refused');
SELECT throws_ok($$SELECT ops.set_setting('slack_webhook_url', 'https://hooks.example.com:65536/x', 'alice')$$, '22023',
                 NULL, 'webhook: port 65536 is refused');

-- every setting key (docs/escalation.md#settings) is checked by its kind: after a bad value for each, nothing
-- stored is invalid, and set_setting refuses a value of the wrong kind for every key
SELECT is_empty($$SELECT * FROM ops.setting_problems()$$, 'every stored setting is valid');
CREATE FUNCTION pg_temp.refuses_wrong_kind() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_row ops.settings;
    v_out text := '';
BEGIN
    FOR v_row IN SELECT * FROM ops.settings ORDER BY key LOOP
        BEGIN
            PERFORM ops.set_setting(v_row.key, CASE v_row.kind WHEN 'boolean' THEN 'sometimes' WHEN 'integer' THEN 'x'
                                                                WHEN 'cron' THEN '5 99 * * *' WHEN 'host' THEN 'smtp://nope'
                                                                ELSE 'nope' END, 'alice');
            v_out := v_out || ' ' || v_row.key;
        EXCEPTION WHEN invalid_parameter_value THEN
            NULL;
        END;
    END LOOP;
    RETURN v_out;
END;
$$;
SELECT is(pg_temp.refuses_wrong_kind(), '', 'no setting accepts a value of the wrong kind');

SELECT * FROM finish();
ROLLBACK;
