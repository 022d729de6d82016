-- The audit log: every change to incidents with its actor, direct SQL included; append-only.
BEGIN;
SELECT plan(10);

CREATE TEMP TABLE t AS
SELECT (ops.trigger_incident('GET /a::slo_violation', 'critical', p_actor => 'alertmanager')).id AS a;
SELECT is((SELECT actor || ' ' || action FROM ops.audit_log WHERE row_key = (SELECT a FROM t)::text),
          'alertmanager INSERT', 'opening is audited with the caller''s actor');

SELECT ops.trigger_incident('GET /a::slo_violation', 'critical', p_actor => 'alertmanager');
SELECT is((SELECT count(*)::int FROM ops.audit_log WHERE row_key = (SELECT a FROM t)::text), 1,
          'a repeat that only refreshes last_seen adds no audit row');

SELECT ops.ack_incident((SELECT a FROM t), 'alice', 'on it');
SELECT results_eq(
    $$SELECT actor, note, changes -> 'status' FROM ops.audit_log WHERE row_key = (SELECT a FROM t)::text AND action = 'UPDATE'$$,
    $$VALUES ('alice', 'on it', '["open", "acknowledged"]'::jsonb)$$, 'ack is audited with actor, note and the change');

SET LOCAL "opsguard.actor" = 'dba-carol';
UPDATE incidents SET escalation_level = 0, status = 'open' WHERE id = (SELECT a FROM t);
SELECT results_eq(
    $$SELECT actor, changes ? 'escalation_level', changes ? 'next_due_at' FROM ops.audit_log ORDER BY id DESC LIMIT 1$$,
    $$VALUES ('dba-carol', false, true)$$,
    'a direct UPDATE is audited with the actor named by SET LOCAL opsguard.actor');
RESET "opsguard.actor";
UPDATE incidents SET severity = 'warning' WHERE id = (SELECT a FROM t);
SELECT results_eq(
    $$SELECT actor, changes -> 'severity' FROM ops.audit_log ORDER BY id DESC LIMIT 1$$,
    $$SELECT session_user::text COLLATE "default", '["critical", "warning"]'::jsonb$$,
    'without one, the database user is the actor');
SELECT is((SELECT db_user::text FROM ops.audit_log ORDER BY id DESC LIMIT 1), session_user::text,
          'the database user is always recorded too');

SELECT throws_ok($$UPDATE ops.audit_log SET actor = 'mallory'$$, '42501', NULL, 'audit_log rows cannot be changed');
SELECT throws_ok($$DELETE FROM ops.audit_log$$, '42501', NULL, 'or deleted');
SELECT throws_ok($$TRUNCATE ops.audit_log$$, '42501', NULL, 'or truncated');
SELECT ops.escalation_tick(now() + interval '1 hour');
SELECT throws_ok($$DELETE FROM ops.escalation_events$$, '42501', NULL, 'escalation_events is append-only too');

SELECT * FROM finish();
ROLLBACK;
