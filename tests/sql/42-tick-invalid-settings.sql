-- A stored setting that is invalid anyway (written around set_setting, by the schema owner or by
-- the clock-dependent check before 0023) never stops ticks: the tick treats it as unset,
-- records it in the tick log and its summary, and the SettingInvalid alert fires (docs/observability.md).
-- 2026-03-02 is a Monday; a critical incident opened at 12:00 is due at 12:05.
BEGIN;
SELECT plan(18);

CREATE TEMP TABLE t AS
SELECT (ops.trigger_incident('GET /a::slo_violation', 'critical', p_now => '2026-03-02 12:00Z')).id AS a;

-- hour 99 written raw, as the owner can; 12:05 is minute 5, the minute the old check looked at
UPDATE ops.settings SET value = '"5 99 * * *"' WHERE key = 'pause_cron';

SELECT lives_ok($$SELECT ops.escalation_tick('2026-03-02 12:05Z')$$, 'a tick with pause_cron = 5 99 * * * runs');
SELECT results_eq(
    $$SELECT state, escalations_count, paused FROM ops.tick_log ORDER BY id DESC LIMIT 1$$,
    $$VALUES ('ran', 1, false)$$,
    'it escalates the due incident: pause_cron is treated as unset, not as paused');
SELECT is((SELECT escalation_level FROM ops.incidents WHERE id = (SELECT a FROM t)), 1, 'the incident is at level 1');
SELECT is((SELECT count(*)::int FROM ops.escalation_events), 1, 'one escalation event');
SELECT is((SELECT count(*)::int FROM ops.notification_outbox), 1, 'one notification queued');
SELECT is((SELECT invalid_settings FROM ops.tick_log ORDER BY id DESC LIMIT 1),
          '{"pause_cron": "cron hour: \"99\" is outside 0-23"}'::jsonb,
          'the tick log names the setting and why it was ignored');

-- the summary says so too (a tick at a time the incident is due again: 12:05 + 30 min snooze)
SELECT is(ops.escalation_tick('2026-03-02 12:35Z') -> 'invalidSettings',
          '{"pause_cron": "cron hour: \"99\" is outside 0-23"}'::jsonb, 'the summary lists invalidSettings');
SELECT is((SELECT escalation_level FROM ops.incidents WHERE id = (SELECT a FROM t)), 2,
          'an invalid pause_cron is ignored: the tick escalates the incident again');

-- the alert: listed in ops.alerts and by evaluate_alerts at any time, with the key in its summary
SELECT is((SELECT severity FROM ops.alerts WHERE alert = 'SettingInvalid'), 'warning', 'ops.alerts lists SettingInvalid');
SELECT matches((SELECT summary FROM ops.alerts WHERE alert = 'SettingInvalid'),
               '^1 stored settings are invalid and treated as unset \(pause_cron: cron hour: "99" is outside 0-23\)',
               'the SettingInvalid summary names the setting and the problem');
SELECT results_eq($$SELECT key, problem FROM ops.setting_problems()$$,
                  $$VALUES ('pause_cron', 'cron hour: "99" is outside 0-23')$$, 'ops.setting_problems() says the same');

-- other kinds written raw: booleans and numbers the tick reads fall back to their install defaults
UPDATE ops.settings SET value = '"yes please"' WHERE key = 'dry_run';
UPDATE ops.settings SET value = '250' WHERE key = 'canary_pct';
UPDATE ops.settings SET value = '"https://hooks.example.com:99999/services/T/B/secret"' WHERE key = 'slack_webhook_url';
SELECT is(ops.escalation_tick('2026-03-02 13:05Z') - 'escalationTickMs' - 'tickId' - 'queueLagMs' - 'invalidSettings',
          '{"ok": true, "due": 1, "state": "ran", "dryRun": false, "paused": false, "disabled": false,
            "reopened": 0, "dryRunCount": 0, "wouldEscalate": [], "escalationsCount": 1, "skippedIdempotent": 0}'::jsonb,
          'dry_run and canary_pct written invalid: not dry run, every route escalates (the defaults)');
SELECT is((SELECT pg_catalog.array_agg(k ORDER BY k) FROM ops.tick_log AS l, pg_catalog.jsonb_object_keys(l.invalid_settings) AS k
           WHERE l.id = (SELECT max(id) FROM ops.tick_log)),
          ARRAY['canary_pct', 'dry_run', 'pause_cron'], 'the tick log lists every setting it ignored');
SELECT is((SELECT value FROM ops.alerts WHERE alert = 'SettingInvalid'), 4::float8,
          'the alert counts every invalid setting, those the tick does not read too');
SELECT unalike((SELECT summary FROM ops.alerts WHERE alert = 'SettingInvalid'), '%secret%',
               'a webhook path (its secret) is not in the alert');

-- fixed with set_setting: the alert clears and the next tick logs nothing
SELECT ops.set_setting(key, value, 'alice')
FROM (VALUES ('pause_cron', ''), ('dry_run', 'false'), ('canary_pct', '100'), ('slack_webhook_url', '')) AS f (key, value);
SELECT is_empty($$SELECT * FROM ops.alerts WHERE alert = 'SettingInvalid'$$, 'fixed: SettingInvalid is quiet');
SELECT ok(NOT ops.escalation_tick('2026-03-02 13:06Z') ? 'invalidSettings', 'a healthy tick has no invalidSettings');
SELECT is((SELECT invalid_settings FROM ops.tick_log ORDER BY id DESC LIMIT 1), '{}'::jsonb, 'a healthy tick logs invalid_settings {}');

SELECT * FROM finish();
ROLLBACK;
