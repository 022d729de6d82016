-- Settings: the defaults of a fresh install, validation, and the audit of each change.
BEGIN;
SELECT plan(27);

SELECT results_eq(
    $$SELECT key, value FROM ops.settings ORDER BY key$$,
    $$VALUES ('ack_timeout_min', '0'::jsonb), ('alert_high_level_max', '3'), ('alert_high_level_min', '5'),
             ('app_base_url', '""'), ('canary_pct', '100'), ('change_retention_days', '30'),
             ('cron_history_retention_days', '7'),
             ('default_policy', '""'), ('dry_run', 'false'),
             ('escalation_enabled', 'true'), ('escalation_v1', 'true'), ('guard_anonymous_history_mb', '50'),
             ('guard_autoresolve_min', '10'),
             ('guard_block_inconclusive', 'false'), ('guard_critical_error_pct', '50'),
             ('guard_evaluation_retention_days', '30'), ('guard_hard_error_pct', '20'), ('guard_lookback_min', '10'),
             ('guard_rollup_retention_days', '7'), ('guard_stale_metrics', '"inconclusive"'),
             ('max_esc_level', '7'), ('notify_backoff_max_ms', '300000'), ('notify_backoff_ms', '2000'),
             ('notify_lease_s', '60'), ('notify_max_attempts', '8'), ('notify_paused', 'false'),
             ('notify_retention_days', '7'), ('pause_cron', '""'), ('slack_webhook_url', '""'),
             ('smtp_from', '"opsguard@localhost"'), ('smtp_host', '""'), ('smtp_port', '587'), ('snooze_min', '30'),
             ('tick_batch_max', '10000'), ('tick_log_retention_days', '14'), ('tick_ms', '60000')$$,
    'defaults of a fresh install (docs/escalation.md#settings)');
SELECT results_eq($$SELECT severity, ack_minutes FROM ops.sla ORDER BY severity$$,
                  $$VALUES ('critical', 5), ('warning', 30)$$, 'SLA defaults: critical 5 min, warning 30 min');

SELECT is((ops.set_setting('snooze_min', '15', 'alice')).value, '15'::jsonb, 'set_setting changes a value');
SELECT is(ops.setting('snooze_min')::int, 15, 'ops.setting reads it back');
SELECT is((SELECT updated_by FROM ops.settings WHERE key = 'snooze_min'), 'alice', 'the row records who changed it');
SELECT is((SELECT actor || ' ' || (changes -> 'value')::text FROM ops.audit_log
           WHERE table_name = 'settings' ORDER BY id DESC LIMIT 1),
          'alice [30, 15]', 'the change is in the audit log with its actor and old/new value');
SELECT is((ops.set_setting('dry_run', 'on', 'alice')).value, 'true'::jsonb, 'booleans accept on/off');
SELECT is((ops.set_setting('pause_cron', ' 0 22 * * 1-5 ', 'alice')).value, '"0 22 * * 1-5"'::jsonb,
          'a valid cron expression is stored trimmed');
SELECT is((ops.set_setting('pause_cron', '', 'alice')).value, '""'::jsonb, 'an empty pause_cron clears the window');
SELECT is((ops.set_setting('slack_webhook_url', 'http://127.0.0.1:9000/hook', 'alice')).value,
          '"http://127.0.0.1:9000/hook"'::jsonb, 'plain http is fine to a loopback webhook');
SELECT is((ops.set_setting('app_base_url', 'https://ops.example.com', 'alice')).value,
          '"https://ops.example.com"'::jsonb, 'app_base_url takes an https URL');

-- bad input: a clear SQLSTATE, and nothing changed
SELECT throws_ok($$SELECT ops.set_setting('no_such_thing', '1', 'alice')$$, '22023', NULL, 'unknown setting: 22023');
SELECT throws_ok($$SELECT ops.set_setting('max_esc_level', '0', 'alice')$$, '22003', NULL,
                 'max_esc_level below 1: 22003');
SELECT throws_ok($$SELECT ops.set_setting('canary_pct', '101', 'alice')$$, '22003', NULL, 'canary_pct above 100: 22003');
SELECT throws_ok($$SELECT ops.set_setting('snooze_min', 'ten', 'alice')$$, '22023', NULL, 'not a number: 22023');
SELECT throws_ok($$SELECT ops.set_setting('dry_run', 'maybe', 'alice')$$, '22023', NULL, 'not a boolean: 22023');
SELECT throws_ok($$SELECT ops.set_setting('pause_cron', '61 * * * *', 'alice')$$, '22023', NULL,
                 'an invalid cron expression: 22023');
SELECT throws_ok($$SELECT ops.set_setting('slack_webhook_url', 'http://hooks.example.com/x', 'alice')$$, '22023', NULL,
                 'a plain-http webhook to a remote host: 22023');
SELECT throws_ok($$SELECT ops.set_setting('app_base_url', 'ftp://x', 'alice')$$, '22023', NULL, 'not http(s): 22023');
SELECT throws_ok($$SELECT ops.set_setting('snooze_min', NULL, 'alice')$$, '22004', NULL, 'a NULL value: 22004');
SELECT throws_ok($$SELECT ops.set_setting(NULL, '1', 'alice')$$, '22004', NULL, 'a NULL key: 22004');
SELECT throws_ok($$SELECT ops.set_setting('snooze_min', '5', ' ')$$, '22004', NULL, 'a blank actor: 22004');
SELECT is(ops.setting('snooze_min')::int, 15, 'rejected changes left the value as it was');
SELECT is(ops.setting('max_esc_level')::int, 7, 'rejected changes left max_esc_level as it was');

SELECT is((ops.set_sla('critical', 10, 'alice')).ack_minutes, 10, 'set_sla changes ack minutes');
SELECT throws_ok($$SELECT ops.set_sla('minor', 10, 'alice')$$, '22023', NULL, 'unknown severity: 22023');
SELECT throws_ok($$SELECT ops.set_sla('warning', 0, 'alice')$$, '22003', NULL, 'ack minutes out of range: 22003');

SELECT * FROM finish();
ROLLBACK;
