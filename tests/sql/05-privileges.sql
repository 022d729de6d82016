-- Privileges: the API role can only execute its functions; every function pins its search_path;
-- operators read everything, UPDATE incidents and run the verbs, nothing else (0019);
-- auditors read the trail and nothing else.
BEGIN;
SELECT plan(29);

SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'ops' AND p.prosecdef
        AND NOT coalesce(p.proconfig, '{}') && ARRAY['search_path=ops, pg_temp']$$,
    'every SECURITY DEFINER function pins search_path = ops, pg_temp');
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'ops' AND NOT coalesce(p.proconfig, '{}') && ARRAY['search_path=ops, pg_temp']
        AND p.prosqlbody IS NULL$$,
    'every function in ops pins search_path = ops, pg_temp or has a SQL-standard body, bound when created');
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'ops' AND p.prosqlbody IS NOT NULL AND (p.provolatile = 'v' OR p.prosecdef)$$,
    'ops functions with a SQL-standard body only compute or read (stable or immutable), as their caller');
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'ops' AND NOT p.prosecdef AND p.prosqlbody IS NULL
        AND (p.proname !~ '^(_|api_)' OR p.prorettype = 'trigger'::regtype)
        -- writes nothing, and must see the role the audit INSERT runs as (71-audit-writer.sql)
        AND p.oid <> 'ops._audit_log_writer_check()'::regprocedure$$,
    'operator verbs and trigger functions are SECURITY DEFINER (operators need no table write privilege)');
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'ops' AND has_function_privilege('public', p.oid, 'EXECUTE')$$,
    'PUBLIC may execute no ops function');
SELECT set_eq(
    $$SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'ops' AND has_function_privilege('opsguard_api', p.oid, 'EXECUTE')$$,
    ARRAY['api_tick', 'api_recalc', 'api_set_incident_status', 'api_trigger_incident', 'api_list_incidents',
          'api_me', 'api_health', 'api_record_requests', 'api_release_guard', 'api_override_guard_item',
          'api_slack_command', 'api_metrics', 'config_problems', 'api_heartbeat_ping', 'api_alertmanager',
          'api_events_v2', 'api_oncall', 'api_schedule_feed', 'api_change_event',
          'api_my_contact_methods', 'api_add_contact_method', 'api_verify_contact_method', 'api_resend_verification',
          'api_remove_contact_method', 'api_my_notification_rules', 'api_add_notification_rule',
          'api_remove_notification_rule',
          'api_page_get', 'api_page_act', 'api_slack_interaction', 'api_twilio_sms', 'api_twilio_voice',
          'api_twilio_status', 'api_public_base_url', 'api_rate_limit_acquire', 'api_rate_limit_window',
          'api_rate_limit_clear'],
    'the API role may execute exactly the api_* functions and the boot-time configuration check');
SELECT set_eq(
    $$SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'ops' AND has_function_privilege('opsguard_dispatcher', p.oid, 'EXECUTE')$$,
    ARRAY['claim_notifications', 'finish_notifications', 'notification_wait_s', 'notification_still_wanted', 'config_problems'],
    'the dispatcher role may claim, check a claim is still wanted, report, wait and check the configuration, nothing else');
SELECT is_empty(
    $$SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'ops' AND c.relkind IN ('r', 'v')
        AND has_table_privilege('opsguard_dispatcher', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')$$,
    'the dispatcher role has no privilege on any table');
SELECT ok(NOT has_table_privilege('opsguard_operator', 'ops.notification_attempts', 'INSERT, UPDATE'),
          'operators cannot forge delivery attempts');
SELECT is_empty(
    $$SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'ops' AND c.relkind IN ('r', 'v')
        AND has_table_privilege('opsguard_api', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')$$,
    'the API role has no privilege on any table');
SELECT set_eq(
    $$SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'ops' AND c.relkind IN ('r', 'v') AND has_table_privilege('opsguard_auditor', c.oid, 'SELECT')$$,
    ARRAY['escalation_events', 'audit_log'], 'auditors read escalation_events and the audit log only');
SELECT ok(NOT has_table_privilege('opsguard_operator', 'ops.audit_log', 'DELETE'), 'operators delete nothing');
SELECT ok(NOT has_table_privilege('opsguard_operator', 'ops.cron_jobs', 'INSERT, UPDATE'),
          'operators cannot add pg_cron commands (they run as the installer)');
SELECT set_eq(
    $$SELECT c.relname || ' ' || w.priv FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      CROSS JOIN (VALUES ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'), ('REFERENCES'), ('TRIGGER')) AS w (priv)
      WHERE n.nspname = 'ops' AND c.relkind IN ('r', 'v', 'p') AND has_table_privilege('opsguard_operator', c.oid, w.priv)$$,
    ARRAY['incidents UPDATE'],
    'the operator''s only table write is UPDATE ops.incidents (the seeds'' SQL)');
SELECT is_empty(
    $$SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'ops' AND c.relkind IN ('r', 'v', 'p') AND NOT has_table_privilege('opsguard_operator', c.oid, 'SELECT')
        AND c.relname NOT IN ('contact_methods', 'sms_reply_misses')$$,
    'operators read every table and view but contact_methods (addresses and secrets) and sms_reply_misses (hashes '
    'of phone numbers, which a few billion guesses reverse)');
SELECT is_empty(
    $$SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'ops' AND c.relkind = 'S'
        AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege('opsguard_operator', c.oid, 'USAGE, UPDATE') END$$,
    'operators draw from no sequence');
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'ops' AND has_function_privilege('opsguard_operator', p.oid, 'EXECUTE')
        AND (p.proname ~ '^(_|api_)' OR p.proname IN ('claim_notifications', 'finish_notifications', 'notification_wait_s', 'notification_still_wanted'))
        AND p.proname <> 'api_health'$$,
    'operators execute no internal (_*), API (api_*, but the runbook''s api_health) or dispatcher function');
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'ops' AND NOT has_function_privilege('opsguard_operator', p.oid, 'EXECUTE')
        AND (p.proname !~ '^(_|api_)' OR p.proname = 'api_health')
        AND p.proname NOT IN ('claim_notifications', 'finish_notifications', 'notification_wait_s', 'notification_still_wanted')$$,
    'operators execute every ops function but the internal, API (api_health aside) and dispatcher ones');

-- what a later migration creates gives operators SELECT on a table and nothing else by default
CREATE TABLE ops.later_table (x int);
CREATE FUNCTION ops._later_helper() RETURNS int LANGUAGE sql SET search_path = ops, pg_temp AS 'SELECT 1';
REVOKE EXECUTE ON FUNCTION ops._later_helper() FROM public;  -- as every migration does
SELECT ok(has_table_privilege('opsguard_operator', 'ops.later_table', 'SELECT')
          AND NOT has_table_privilege('opsguard_operator', 'ops.later_table', 'INSERT, UPDATE'),
          'a new table: operators read it, do not write it');
SELECT ok(NOT has_function_privilege('opsguard_operator', 'ops._later_helper()', 'EXECUTE'),
          'a new function: operators execute it only when a migration grants it');
DROP FUNCTION ops._later_helper();
DROP TABLE ops.later_table;

CREATE TEMP TABLE t AS SELECT (ops.trigger_incident('GET /a::slo_violation', 'critical')).id AS a;
SELECT ops.escalation_tick(now() + interval '10 minutes');  -- one escalation event for the auditor to read
GRANT SELECT ON t TO opsguard_api, opsguard_operator;

SET LOCAL ROLE opsguard_api;
SELECT is((ops.api_set_incident_status('ops-bot', NULL, NULL, (SELECT a::text FROM t), 'acknowledged', '{}')) #>> '{incident,status}',
          'acknowledged', 'as opsguard_api, the ack function works');
SELECT throws_ok($$SELECT count(*) FROM ops.incidents$$, '42501', NULL, 'as opsguard_api, reading incidents is refused');
SELECT throws_ok($$UPDATE ops.incidents SET status = 'open'$$, '42501', NULL, 'as opsguard_api, writing incidents is refused');
SELECT throws_ok($$SELECT ops.ack_incident((SELECT a FROM t), 'x')$$, '42501', NULL,
                 'as opsguard_api, the operator verbs are refused');
RESET ROLE;

SET LOCAL ROLE opsguard_auditor;
SELECT results_eq($$SELECT incident_key, escalation_level, escalated_at FROM escalation_events
                    WHERE created_at > now() - interval '24 hours' ORDER BY created_at DESC$$,
                  $$VALUES ('GET /a::slo_violation', 1, now() + interval '10 minutes')$$,
                  'auditors run the runbook''s audit query and see the escalation');
SELECT throws_ok($$SELECT count(*) FROM ops.incidents$$, '42501', NULL, 'auditors do not read incidents');
RESET ROLE;

SET LOCAL ROLE opsguard_operator;
SELECT lives_ok($$UPDATE incidents SET status = 'resolved' WHERE id = (SELECT a FROM t)$$,
                'operators run the seeds'' direct UPDATE');
SELECT is((SELECT status FROM incidents WHERE id = (SELECT a FROM t)), 'resolved',
          'the operators'' direct UPDATE of an incident''s status takes effect');
SELECT throws_ok($$DELETE FROM ops.incidents$$, '42501', NULL, 'operators cannot delete incidents');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
