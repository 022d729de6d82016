-- Metric names: SQL keeps the seeds' names (ops.metrics); GET /metrics exports Prometheus names in
-- base units through ops.metric_exports, whose checks refuse a name promtool check metrics would.
BEGIN;
SELECT plan(17);

SELECT ops.set_setting('snooze_min', '0', 'alice');
SELECT ops.trigger_incident('GET /a::x', 'critical', p_now => '2026-03-01 11:00Z');
SELECT ops.escalation_tick('2026-03-01 12:00Z');

CREATE TEMP VIEW sql_side AS SELECT * FROM ops.collect_metrics('2026-03-01 12:00:30Z');
CREATE TEMP VIEW exported AS SELECT * FROM ops.exported_metrics('2026-03-01 12:00:30Z');

SELECT is_empty($$SELECT metric FROM sql_side EXCEPT SELECT metric FROM ops.metric_exports$$,
                'every metric of ops.metrics has an export row');
SELECT is_empty(
    $$SELECT DISTINCT m.metric FROM sql_side AS m JOIN ops.metric_exports AS e USING (metric) WHERE e.kind <> m.kind$$,
    'every exported metric has the type its ops.metrics row has');
SELECT bag_eq($$SELECT metric, labels FROM sql_side$$,
              $$SELECT e.metric, x.labels FROM exported AS x JOIN ops.metric_exports AS e ON e.exported_as = x.metric$$,
              'one exported series per SQL series, with the same labels');

SELECT set_has($$SELECT metric FROM ops.metrics$$,
               $$VALUES ('opsguard_escalation_tick_ms'), ('opsguard_escalations_count'), ('opsguard_skipped_idempotent'),
                        ('opsguard_slack_send_failures'), ('opsguard_queue_lag_ms')$$,
               'SQL keeps the seeds'' names');
SELECT results_eq(
    $$SELECT metric, exported_as FROM ops.metric_exports
      WHERE metric IN ('opsguard_escalation_tick_ms', 'opsguard_escalations_count', 'opsguard_skipped_idempotent',
                       'opsguard_slack_send_failures', 'opsguard_queue_lag_ms', 'opsguard_tick_interval_ms')
      ORDER BY metric$$,
    $$VALUES ('opsguard_escalation_tick_ms', 'opsguard_escalation_tick_seconds'),
             ('opsguard_escalations_count', 'opsguard_escalations_total'),
             ('opsguard_queue_lag_ms', 'opsguard_queue_lag_seconds'),
             ('opsguard_skipped_idempotent', 'opsguard_escalations_skipped_idempotent_total'),
             ('opsguard_slack_send_failures', 'opsguard_slack_send_failures_total'),
             ('opsguard_tick_interval_ms', 'opsguard_tick_interval_seconds')$$,
    'GET /metrics names them in base units, counters with _total');

SELECT is((SELECT value FROM exported WHERE metric = 'opsguard_escalation_tick_seconds'),
          (SELECT escalation_tick_ms::float8 / 1000 FROM ops.tick_log), 'the last tick in seconds: ms / 1000');
SELECT results_eq(
    $$SELECT value FROM exported WHERE metric IN ('opsguard_queue_lag_seconds', 'opsguard_tick_interval_seconds')
      ORDER BY metric$$,
    $$VALUES (3300::float8), (60::float8)$$,
    'queue lag (due at 11:05, ticked at 12:00) and tick_ms (60000) in seconds');
SELECT is((SELECT value FROM sql_side WHERE metric = 'opsguard_queue_lag_ms'), 3300000::float8,
          'psql reads the queue lag in ms under the seed name opsguard_queue_lag_ms');
SELECT is((SELECT value FROM exported WHERE metric = 'opsguard_escalations_total'), 1::float8,
          'counters keep their value');

SELECT is_empty($$SELECT metric FROM exported WHERE metric ~ '_(ms|count)$' OR (kind = 'counter') <> (metric ~ '_total$')$$,
                'no exported name in ms or like a histogram part; _total exactly on counters');
SELECT ok(ops.api_metrics() @> '[{"metric": "opsguard_escalation_tick_seconds", "kind": "gauge", "unit": "seconds"}]'
          AND NOT ops.api_metrics() @> '[{"metric": "opsguard_escalation_tick_ms"}]',
          'the API gets the exported names');

-- the table refuses what promtool check metrics would refuse
SELECT throws_ok($$INSERT INTO ops.metric_exports VALUES ('x', 'opsguard_x', 'counter', 1, NULL, 'h')$$,
                 '23514', NULL, 'a counter without _total');
SELECT throws_ok($$INSERT INTO ops.metric_exports VALUES ('x', 'opsguard_x_total', 'gauge', 1, NULL, 'h')$$,
                 '23514', NULL, 'a gauge with _total');
SELECT throws_ok($$INSERT INTO ops.metric_exports VALUES ('x', 'opsguard_lag_ms', 'gauge', 1, NULL, 'h')$$,
                 '23514', NULL, 'an abbreviated unit');
SELECT throws_ok($$INSERT INTO ops.metric_exports VALUES ('x', 'opsguard_x_count_total', 'counter', 1, NULL, 'h')$$,
                 '23514', NULL, 'a histogram part');
SELECT throws_ok($$INSERT INTO ops.metric_exports VALUES ('x', 'opsguard_lag', 'gauge', 1000, 'seconds', 'h')$$,
                 '23514', NULL, 'a unit the name does not end with');

SET LOCAL ROLE opsguard_operator;
SELECT lives_ok($$SELECT e.exported_as, m.value FROM ops.metric_exports AS e JOIN ops.exported_metrics() AS m
                  ON m.metric = e.exported_as$$,
                'operators read the mapping and what GET /metrics exports');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
