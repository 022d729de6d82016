-- What one intake event writes and runs (0031): the incident row and its audit trail as
-- before, with each trigger run once. 0027 wrote it with INSERT ... ON CONFLICT DO UPDATE,
-- for which PostgreSQL fires the INSERT and the UPDATE statement triggers whichever way the
-- row goes (two audit trigger runs, two audit_log writer checks) and, on a refresh, the
-- BEFORE INSERT row trigger as well as the BEFORE UPDATE one.
BEGIN;
SELECT plan(23);

SET LOCAL track_functions = 'all';

-- calls of a function in this transaction, as a difference from the last snapshot
CREATE TEMP TABLE seen (fn regproc PRIMARY KEY, calls bigint NOT NULL);
CREATE FUNCTION pg_temp.calls_since(p_fn regproc) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_now bigint := coalesce(pg_stat_get_xact_function_calls(p_fn), 0);
    v_before bigint := coalesce((SELECT s.calls FROM seen AS s WHERE s.fn = p_fn), 0);
BEGIN
    INSERT INTO seen VALUES (p_fn, v_now) ON CONFLICT (fn) DO UPDATE SET calls = EXCLUDED.calls;
    RETURN v_now - v_before;
END;
$$;
CREATE FUNCTION pg_temp.runs() RETURNS bigint[] LANGUAGE sql AS $$
    SELECT ARRAY[pg_temp.calls_since('ops._audit_changes'), pg_temp.calls_since('ops._audit_log_writer_check'),
                 pg_temp.calls_since('ops._incidents_before_write')]
$$;
CREATE TEMP TABLE r AS SELECT pg_temp.runs() AS before_all;

-- a new key: one INSERT, audited once
CREATE TEMP TABLE i1 AS
SELECT * FROM ops._intake_trigger('am:w1', 'warning', 'checkout', 'disk', '{"labels": {"a": "1"}}', 'am-prod',
                                  '2026-12-01 10:00+00');
SELECT is(pg_temp.runs(), ARRAY[1, 1, 1]::bigint[],
          'opening: the audit trigger, its writer check and the row trigger run once each');
SELECT results_eq($$SELECT action, actor, row_key FROM ops.audit_log WHERE table_name = 'incidents' AND row_key =
                    (SELECT id::text FROM i1)$$,
                  $$VALUES ('INSERT'::text, 'am-prod'::text, (SELECT id::text FROM i1))$$,
                  'opening is audited once, as an INSERT by the key name');

-- the same again, later: only last_seen moves, which the audit counts as noise
SELECT is((ops._intake_trigger('am:w1', 'warning', 'checkout', 'disk', '{"labels": {"a": "1"}}', 'am-prod',
                               '2026-12-01 10:05+00')).id, (SELECT id FROM i1), 'a repeat refreshes the same incident');
SELECT is(pg_temp.runs(), ARRAY[1, 1, 1]::bigint[],
          'refreshing: the audit trigger, its writer check and the row trigger run once each');
SELECT is((SELECT count(*)::int FROM ops.audit_log WHERE row_key = (SELECT id::text FROM i1)), 1,
          'a repeat that changes only last_seen adds no audit row');
SELECT is((SELECT last_seen FROM ops.incidents WHERE id = (SELECT id FROM i1)), '2026-12-01 10:05+00'::timestamptz,
          'the repeat moved last_seen');

-- a repeat that says more: critical, a new summary, new details
SELECT is((ops._intake_trigger('am:w1', 'critical', 'other-route', 'disk full', '{"labels": {"a": "2"}}', 'am-prod',
                               '2026-12-01 10:03+00')).severity, 'critical', 'severity goes up to critical');
SELECT is(pg_temp.runs(), ARRAY[1, 1, 1]::bigint[], 'that refresh too runs each trigger once');
SELECT is((SELECT (route, summary, details::text, last_seen) FROM ops.incidents WHERE id = (SELECT id FROM i1)),
          row('checkout'::text, 'disk full'::text, '{"labels": {"a": "2"}}'::text, '2026-12-01 10:05+00'::timestamptz),
          'the summary and details follow the sender, the route stays, last_seen never goes back');
SELECT results_eq($$SELECT actor, changes ? 'severity', changes ? 'details', changes ? 'route'
                    FROM ops.audit_log WHERE row_key = (SELECT id::text FROM i1) AND action = 'UPDATE'$$,
                  $$VALUES ('am-prod'::text, true, true, false)$$,
                  'the change is audited once, by the key name');
SELECT is((ops._intake_trigger('am:w1', 'warning', 'x', NULL, '{"labels": {"a": "2"}}', 'am-prod',
                               '2026-12-01 10:06+00')).severity, 'critical',
          'a warning repeat never lowers the severity, and no summary keeps the old one');
SELECT is((SELECT summary FROM ops.incidents WHERE id = (SELECT id FROM i1)), 'disk full', 'the summary stays');
SELECT is(pg_temp.runs(), ARRAY[1, 1, 1]::bigint[], 'and runs each trigger once');

-- the actor of the transaction is put back
DO $$ BEGIN PERFORM set_config('opsguard.actor', 'alice', true); END $$;
SELECT lives_ok($$SELECT ops._intake_trigger('am:w2', 'warning', NULL, 's', '{}', 'am-prod', '2026-12-01 10:00+00')$$,
                'another key opens');
SELECT is(current_setting('opsguard.actor'), 'alice', 'the actor of the caller is put back afterwards');
SELECT is(pg_temp.runs(), ARRAY[1, 1, 1]::bigint[], 'opening it ran each trigger once');

-- resolved: the next trigger opens a new incident
DO $$ BEGIN PERFORM ops._intake_transition('am:w1', 'resolved', 'am-prod', '2026-12-01 10:10+00'); END $$;
SELECT isnt((ops._intake_trigger('am:w1', 'warning', 'checkout', 'disk', '{}', 'am-prod', '2026-12-01 10:20+00')).id,
            (SELECT id FROM i1), 'after a resolve the key opens a new incident');
SELECT is((SELECT count(*)::int FROM ops.incidents WHERE incident_key = 'am:w1'), 2, 'two rows for the key, one open');

-- bad input the callers check first: the errors of ops.trigger_incident, for a refresh too
SELECT throws_ok($$SELECT ops._intake_trigger('am:w1', 'warning', NULL, 's', '{}', 'am-prod', NULL)$$, '22004',
                 NULL, 'no time: 22004 (a refresh of an open key included)');
SELECT throws_ok($$SELECT ops._intake_trigger('am:w1', 'urgent', NULL, 's', '{}', 'am-prod', now())$$, '22023',
                 'unknown severity "urgent"', 'a severity that is none: 22023');
SELECT throws_ok($$SELECT ops._intake_trigger('am:w1', 'warning', NULL, 's', '[]', 'am-prod', now())$$, '23514',
                 NULL, 'details that are not an object: 23514 (incidents_details_object)');

-- the alerts an Alertmanager incident keeps: as sent when that is what the rebuild makes of them,
-- else rebuilt from the known fields without JSON nulls in objects (0028), also since 0031
CREATE TEMP TABLE amk AS SELECT ops.create_integration_key('am-kept', 'alertmanager', 'alice') AS token;
CREATE TEMP TABLE sent AS SELECT jsonb_build_array(
    '{"status": "firing", "labels": {"alertname": "A"}, "annotations": {"summary": "a"}, "fingerprint": "a",
      "startsAt": "2026-12-01T10:00:00Z", "values": {"B": 1.5, "C": [1, 2]}}'::jsonb,
    '{"status": "firing", "labels": {"alertname": "B"}, "annotations": null, "dashboardURL": "", "panelURL": "",
      "generatorURL": null, "extra": "x", "fingerprint": "b", "values": {"B": null, "C": {"d": null, "e": [null, 1]}}}'::jsonb,
    '{"status": "resolved", "labels": {"alertname": "C"}, "silenceURL": "https://s", "imageURL": null}'::jsonb) AS alerts;
SELECT is(ops.api_alertmanager((SELECT token FROM amk), jsonb_build_object(
              'version', '4', 'groupKey', '{}:{alertname="kept"}', 'status', 'firing', 'receiver', 'r',
              'alerts', (SELECT alerts FROM sent)), '2026-12-01 10:00+00') #>> '{incidents,0,status}', 'open',
          'a notification with plain and odd alerts opens its incident');
SELECT is((SELECT details -> 'alerts' FROM ops.incidents WHERE details ->> 'groupKey' = '{}:{alertname="kept"}'),
          jsonb_build_array(
              (SELECT alerts -> 0 FROM sent),
              '{"status": "firing", "labels": {"alertname": "B"}, "fingerprint": "b", "values": {"C": {"e": [null, 1]}}}'::jsonb,
              '{"status": "resolved", "labels": {"alertname": "C"}, "silenceURL": "https://s"}'::jsonb),
          'kept: a plain alert as sent; unknown fields, nulls in objects and empty dashboard links dropped');

SELECT * FROM finish();
ROLLBACK;
