-- The health answer's reasons, what an unsigned caller sees of them, and the boot check's time zone rule.
BEGIN;
SELECT plan(16);

SELECT is(ops.api_health(ops.installed_at() + interval '1 minute') -> 'reasons', '[]',
          'just installed, before the first tick is due: healthy');
SELECT is(ops.api_health(ops.installed_at() + interval '3 minutes') -> 'reasons',
          '["no escalation tick has run since opsguard was installed"]', 'no tick 3 minutes after install: unhealthy');

SELECT ops.escalation_tick('2026-03-02 12:00Z');
SELECT is(ops.api_health('2026-03-02 12:02Z') -> 'reasons', '[]', 'the last tick 2 x tick_ms ago: healthy');
SELECT is(ops.api_health('2026-03-02 12:02:01Z') -> 'reasons', '["the last tick was 121 s ago (more than 2 x tick_ms)"]',
          'a second later: unhealthy, and why');
SELECT results_eq($$SELECT ops.api_health('2026-03-02 12:01Z') ->> 'lastTickAgeSeconds', ops.api_health() ->> 'pgCron'$$,
                  $$VALUES ('60', ops.pg_cron_status())$$, 'it reports the tick''s age and pg_cron''s status');

UPDATE ops.settings SET value = '"http://hooks.example.com/x"' WHERE key = 'slack_webhook_url';
SELECT is(ops.api_health('2026-03-02 12:01Z') -> 'reasons',
          '["slack_webhook_url: webhook \"http://hooks.example.com/…\" must use https"]', 'a configuration problem is a reason');
SELECT is(ops.api_health('2026-03-02 12:01Z') -> 'problemCounts', '{"tick": 0, "pgCron": 0, "configuration": 1}',
          'problems are counted by kind');

-- GET /healthz: p_principal NULL is an unsigned caller
SELECT is((SELECT pg_catalog.array_agg(k ORDER BY k) FROM pg_catalog.jsonb_object_keys(
              ops.api_health(NULL, NULL, '[]', TRUE, '2026-03-02 12:01Z')) AS k),
          '{database,hint,lastTickAgeSeconds,migrationsCurrent,ok,problemCounts}',
          'an unsigned caller gets the summary only');
SELECT is(ops.api_health(NULL, NULL, '[]', TRUE, '2026-03-02 12:01Z')
          - 'hint' - 'database' - 'lastTickAgeSeconds',
          '{"ok": false, "migrationsCurrent": true,
            "problemCounts": {"tick": 0, "pgCron": 0, "migrations": 0, "configuration": 1}}',
          'an unsigned caller learns the API is unhealthy, and of what kind, without the setting''s name');
SELECT is(ops.api_health('ops-bot', NULL, '[]', TRUE, '2026-03-02 12:01Z') -> 'reasons',
          ops.api_health('2026-03-02 12:01Z') -> 'reasons', 'an admin gets the reasons by name');
SELECT ok(ops.api_health('ops-bot', NULL, '[]', TRUE, '2026-03-02 12:01Z') -> 'warnings' ->> 0 LIKE 'body-only signatures%',
          'an admin gets the body-only signature warning while the API accepts them');
SELECT is(ops.api_health('ops-bot', NULL, '["9999_future"]', FALSE, '2026-03-02 12:01Z')
          -> 'pendingMigrations', '["9999_future"]', 'a migration the API ships but the database lacks is pending');
INSERT INTO ops.principals (name, kind) VALUES ('watcher', 'service');
INSERT INTO ops.principal_roles (principal, role) VALUES ('watcher', 'ops_viewer');
SELECT throws_ok($$SELECT ops.api_health('watcher', NULL, '[]', FALSE)$$, '42501', NULL,
                 'a signer without escalation.recalc gets no detail');
UPDATE ops.settings SET value = '""' WHERE key = 'slack_webhook_url';

SELECT is(current_setting('TimeZone'), 'UTC', 'the database''s time zone is UTC');
SET LOCAL timezone = 'Europe/Berlin';
SELECT results_eq($$SELECT setting, problem FROM ops.config_problems()$$,
                  $$VALUES ('TimeZone', 'the time zone is Europe/Berlin, not UTC: SELECT ops.use_utc(); then reconnect')$$,
                  'another time zone is refused at boot, named');
RESET timezone;
SELECT is_empty($$SELECT * FROM ops.config_problems()$$, 'UTC again: no problem');

SELECT * FROM finish();
ROLLBACK;
