-- ops.escalation_tick is named steps a reader takes in one screen each (docs/escalation.md, "How a
-- tick runs"), internal to it; a setting's default lives in one place, ops.settings.default_value,
-- which the tick runs with while the stored value is invalid.
-- 2026-03-02 is a Monday; a critical incident opened at 12:00 is due at 12:05.
BEGIN;
SELECT plan(16);

SELECT set_eq(
    $$SELECT 'ops.' || pg_catalog.regexp_replace(p.oid::regprocedure::text, '^ops[.]', '')
      FROM pg_proc AS p JOIN pg_namespace AS n ON p.pronamespace = n.oid
      WHERE n.nspname = 'ops' AND p.proname LIKE '\_tick\_%'$$,
    ARRAY['ops._tick_settings(timestamp with time zone)',
          'ops._tick_heartbeats(timestamp with time zone,boolean,integer)',
          'ops._tick_stale_acks(timestamp with time zone,integer,integer)',
          'ops._tick_claim(timestamp with time zone,integer,integer,boolean,integer,text)',
          'ops._tick_due(timestamp with time zone,bigint,jsonb,boolean)',
          'ops._tick_payload(text,uuid,text,text,text,integer,timestamp with time zone,jsonb,text)',
          'ops._tick_log(timestamp with time zone,bigint,timestamp with time zone,text,text,boolean,integer,integer,'
          || 'integer,integer,bigint,jsonb)'],
    'the tick''s steps, each \sf-able by name');
SELECT is_empty(
    $$SELECT p.proname FROM pg_proc AS p JOIN pg_namespace AS n ON p.pronamespace = n.oid
      WHERE n.nspname = 'ops' AND (p.proname = 'escalation_tick' OR p.proname LIKE '\_tick\_%')
        AND pg_catalog.array_length(pg_catalog.string_to_array(p.prosrc, E'\n'), 1) > 80$$,
    'escalation_tick and each step fit a screen (80 lines at most)');
SELECT is_empty(
    $$SELECT p.proname FROM pg_proc AS p JOIN pg_namespace AS n ON p.pronamespace = n.oid
      WHERE n.nspname = 'ops' AND p.proname LIKE '\_tick\_%'
        AND coalesce(pg_catalog.obj_description(p.oid, 'pg_proc'), '') !~ '^Internal'$$,
    'each step has a comment saying it is internal');
SELECT is_empty(
    $$SELECT p.proname || ' ' || r.rolname FROM pg_proc AS p JOIN pg_namespace AS n ON p.pronamespace = n.oid
      CROSS JOIN pg_roles AS r
      WHERE n.nspname = 'ops' AND p.proname LIKE '\_tick\_%' AND r.rolname ~ '^opsguard_'
        AND pg_catalog.has_function_privilege(r.oid, p.oid, 'EXECUTE')$$,
    'no opsguard role may call a step: only the tick, as its owner, does');
SELECT is_empty(
    $$SELECT p.proname FROM pg_proc AS p JOIN pg_namespace AS n ON p.pronamespace = n.oid
      WHERE n.nspname = 'ops' AND p.proname LIKE '\_tick\_%' AND p.prosecdef$$,
    'no step is SECURITY DEFINER: called by anyone else it would run with no more than their rights');

-- the defaults: one column, every value one set_setting accepts
SELECT is_empty(
    $$SELECT key FROM ops.settings
      WHERE default_value IS NULL OR ops._setting_problem(kind, default_value, min_value, max_value) IS NOT NULL$$,
    'every setting has a default_value that set_setting would accept');
SELECT results_eq(
    $$SELECT key, default_value FROM ops.settings
      WHERE key IN ('dry_run', 'canary_pct', 'max_esc_level', 'tick_batch_max', 'pause_cron') ORDER BY key$$,
    $$VALUES ('canary_pct', '100'::jsonb), ('dry_run', 'false'), ('max_esc_level', '7'), ('pause_cron', '""'),
             ('tick_batch_max', '10000')$$,
    'the install values are the defaults');
SELECT is((SELECT count(*)::int FROM ops.settings WHERE value = default_value), (SELECT count(*)::int FROM ops.settings),
          'a fresh install runs with every default');

CREATE TEMP TABLE t AS
SELECT (ops.trigger_incident('GET /a::slo_violation', 'critical', p_now => '2026-03-02 12:00Z')).id AS a;

-- the tick reads the default from ops.settings, not from a copy of its own: with dry_run stored
-- invalid and its default made true, the tick is a dry run
UPDATE ops.settings SET default_value = 'true' WHERE key = 'dry_run';
UPDATE ops.settings SET value = '"maybe"' WHERE key = 'dry_run';
SELECT is(ops.escalation_tick('2026-03-02 12:05Z') - 'escalationTickMs' - 'tickId' - 'queueLagMs' - 'wouldEscalate',
          '{"ok": true, "due": 1, "state": "dry_run", "dryRun": true, "paused": false, "disabled": false,
            "reopened": 0, "dryRunCount": 1, "escalationsCount": 0, "skippedIdempotent": 0,
            "invalidSettings": {"dry_run": "\"maybe\" is not true or false"}}'::jsonb,
          'an invalid dry_run runs with its default_value (made true here), and is reported');
SELECT is((SELECT escalation_level FROM ops.incidents WHERE id = (SELECT a FROM t)), 0,
          'a tick run dry by an invalid dry_run''s default escalates nothing');
UPDATE ops.settings SET value = 'false' WHERE key = 'dry_run';

-- pause_cron written invalid: its default decides, a maintenance window for every minute here
UPDATE ops.settings SET default_value = '"* * * * *"' WHERE key = 'pause_cron';
UPDATE ops.settings SET value = '"5 99 * * *"' WHERE key = 'pause_cron';
SELECT is(ops.escalation_tick('2026-03-02 12:06Z') ->> 'state', 'paused', 'an invalid pause_cron pauses as its default does');
SELECT is((SELECT invalid_settings FROM ops.tick_log ORDER BY id DESC LIMIT 1),
          '{"pause_cron": "cron hour: \"99\" is outside 0-23"}'::jsonb, 'the tick log says why pause_cron is invalid');
UPDATE ops.settings SET value = '""', default_value = '""' WHERE key = 'pause_cron';

-- a row deleted took its default with it: the tick refuses loudly rather than guess
DELETE FROM ops.settings WHERE key = 'canary_pct';
SELECT throws_ok($$SELECT ops.escalation_tick('2026-03-02 12:07Z')$$, 'P0002',
                 'escalation_tick: settings canary_pct are missing from ops.settings',
                 'a tick with a setting row deleted fails with P0002, naming it');

-- a tick that dies halfway (here at its last write, the outbox) leaves nothing half-done
CREATE FUNCTION pg_temp.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'outbox refused'; END;
$$;
INSERT INTO ops.settings (key, value, kind, min_value, max_value, description, default_value)
VALUES ('canary_pct', '100', 'integer', 0, 100, 'restored', '100');
CREATE TRIGGER refuse BEFORE INSERT ON ops.notification_outbox FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse();
SELECT throws_ok($$SELECT ops.escalation_tick('2026-03-02 12:08Z')$$, 'P0001', 'outbox refused',
                 'a tick whose outbox write fails fails whole');
SELECT results_eq(
    $$SELECT (SELECT escalation_level FROM ops.incidents WHERE id = (SELECT a FROM t)),
             (SELECT count(*)::int FROM ops.escalation_events), (SELECT count(*)::int FROM ops.tick_log
                                                                 WHERE tick_at = '2026-03-02 12:08Z')$$,
    $$VALUES (0, 0, 0)$$, 'a failed tick leaves the incident at its level, no event and no tick-log row');
DROP TRIGGER refuse ON ops.notification_outbox;
SELECT is(ops.escalation_tick('2026-03-02 12:08Z') ->> 'escalationsCount', '1', 'the next tick escalates it once');

SELECT * FROM finish();
ROLLBACK;
