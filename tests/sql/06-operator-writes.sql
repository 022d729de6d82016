-- Operators change nothing behind the audit's back: every write a field
-- test made as opsguard_operator is refused with 42501 and leaves no trace; what an operator
-- may do (the seeds' UPDATE, the verbs) still works and is audited with the session user;
-- audit rows come only from the audit triggers, even for the owner.
BEGIN;
SELECT plan(41);

CREATE TEMP TABLE t AS
SELECT (ops.trigger_incident('GET /a::slo_violation', 'critical', p_now => '2026-03-02 12:00Z')).id AS a;
SELECT ops.escalation_tick('2026-03-02 12:06Z');
SELECT ops.add_principal('carol', 'human', ARRAY['ops_responder'], 'alice');
CREATE TEMP TABLE before AS
SELECT
    (SELECT count(*) FROM ops.audit_log) AS audit_rows,
    (SELECT count(*) FROM ops.escalation_events) AS events,
       (SELECT count(*) FROM ops.notification_outbox WHERE status = 'pending') AS pending,
    (SELECT count(*) FROM ops.principal_roles) AS grants,
    (SELECT count(*) FROM ops.role_permissions) AS permissions;
GRANT SELECT ON t, before TO opsguard_operator;

SET LOCAL ROLE opsguard_operator;
-- the outbox: marking a page sent makes it disappear
SELECT throws_ok($$UPDATE ops.notification_outbox SET status = 'sent'$$, '42501', NULL,
                 'operators cannot mark a queued page sent');
SELECT throws_ok($$SELECT ops.finish_notifications('me', (SELECT jsonb_agg(jsonb_build_object('id', id, 'claim', claim_id,
                   'outcome', 'sent')) FROM ops.notification_outbox))$$, '42501', NULL,
                 'operators cannot report a queued page delivered through the dispatcher''s finish_notifications');
SELECT throws_ok($$SELECT * FROM ops.claim_notifications('me', 10)$$, '42501', NULL,
                 'operators cannot claim queued pages through claim_notifications');
-- the audit log: a forged row with a chosen db_user, time and transaction
SELECT throws_ok($$INSERT INTO ops.audit_log (actor, db_user, at, txid, action, table_name, changes)
                   VALUES ('alice', 'alice', '2026-01-01Z', 1, 'UPDATE', 'incidents', '{}')$$, '42501', NULL,
                 'operators cannot forge audit rows');
-- escalation events: a forged next unique_hash would make the real escalation skip its page
SELECT throws_ok($$INSERT INTO ops.escalation_events (incident_id, incident_key, severity, escalation_level, escalated_at, unique_hash)
                   SELECT a, 'GET /a::slo_violation', 'critical', 2, '2026-03-02 12:07Z', ops.escalation_hash(a, 2) FROM t$$,
                 '42501', NULL, 'operators cannot forge escalation events');
-- RBAC and the replay table, which were editable with no audit row
SELECT throws_ok($$UPDATE ops.principals SET disabled = true WHERE name = 'carol'$$, '42501', NULL,
                 'operators cannot edit principals directly');
SELECT throws_ok($$INSERT INTO ops.principal_roles (principal, role) VALUES ('carol', 'ops_admin')$$, '42501', NULL,
                 'operators cannot grant roles directly');
SELECT throws_ok($$INSERT INTO ops.role_permissions (role, permission) VALUES ('ops_viewer', 'escalation.tick')$$, '42501', NULL,
                 'operators cannot give a role permissions directly');
SELECT throws_ok($$DELETE FROM ops.role_permissions$$, '42501', NULL, 'operators cannot take permissions away from a role directly');
SELECT throws_ok($$INSERT INTO ops.api_replay (replay_key, expires_at) VALUES ('k', '2030-01-01Z')$$, '42501', NULL,
                 'operators cannot write the API''s replay table');
-- other tables go through their verbs
SELECT throws_ok($$UPDATE ops.settings SET value = 'true' WHERE key = 'dry_run'$$, '42501', NULL,
                 'settings change through ops.set_setting only');
SELECT throws_ok($$INSERT INTO ops.guard_overrides (item_key, reason, created_by, expires_at)
                   VALUES ('x', 'y', 'z', '2030-01-01Z')$$, '42501', NULL, 'guard overrides through ops.override_guard_item only');
SELECT throws_ok($$INSERT INTO ops.incidents (incident_key, severity) VALUES ('GET /b::x', 'critical')$$, '42501', NULL,
                 'incidents are opened through ops.trigger_incident');
-- internal functions: _api_begin authorizes whichever principal it is told about
SELECT throws_ok($$SELECT ops._api_begin('ops-bot', NULL, 'incidents.ack', NULL)$$, '42501', NULL,
                 'operators cannot run _api_begin for any principal');
SELECT throws_ok($$SELECT ops._transition((SELECT a FROM t), 'resolved', 'mallory', NULL, now())$$, '42501', NULL,
                 'operators cannot run the internal function _transition');
SELECT throws_ok($$SELECT ops.api_tick('ops-bot', NULL, NULL)$$, '42501', NULL, 'operators cannot call the API''s entry points (api_tick)');

-- no trace of any of it
SELECT results_eq(
    $$SELECT (SELECT count(*) FROM ops.audit_log), (SELECT count(*) FROM ops.escalation_events),
             (SELECT count(*) FROM ops.notification_outbox WHERE status = 'pending'),
             (SELECT count(*) FROM ops.principal_roles), (SELECT count(*) FROM ops.role_permissions)$$,
    $$SELECT audit_rows, events, pending, grants, permissions FROM before$$,
    'the refused attempts left no audit row, event, outbox change or grant');

-- what operators may do
SELECT lives_ok($$UPDATE incidents SET severity = 'critical', last_seen = now() WHERE id = (SELECT a FROM t)$$,
                'operators UPDATE incidents directly (the seeds'' SQL)');
SELECT is((SELECT db_user::text FROM ops.audit_log ORDER BY id DESC LIMIT 1), session_user::text,
          'an operator''s direct UPDATE of an incident is audited with the session user');
SELECT lives_ok($$SELECT ops.set_setting('notify_max_attempts', '7', 'alice')$$, 'operators change settings through the verb');
SELECT is(ops.setting('notify_max_attempts'), '7'::jsonb, 'an operator''s set_setting changes the setting');
SELECT lives_ok($$SELECT ops.add_principal('dave', 'human', ARRAY['ops_viewer'], 'alice')$$,
                'operators add principals through the verb');
SELECT lives_ok($$SELECT ops.grant_role('dave', 'ops_responder', 'alice')$$, 'operators grant roles through ops.grant_role');
RESET ROLE;

-- the real escalation still pages: nothing forged its next event
SELECT ops.escalation_tick('2026-03-02 12:40Z');
SELECT is((SELECT escalation_level FROM ops.incidents WHERE id = (SELECT a FROM t)), 2, 'the next tick escalates to level 2');
SELECT is((SELECT count(*)::int FROM ops.notification_outbox
           WHERE dedup_key = ops.escalation_hash((SELECT a FROM t), 2) AND status = 'pending'), 1,
          'the next tick after the refused writes queues its level-2 page');
SELECT is((SELECT count(*)::int FROM ops.notification_outbox WHERE status = 'pending'), 2,
          'the level-2 page is queued beside level 1''s, both still pending');

-- RBAC tables are audited, with the actor the verb was given or the session user
SELECT results_eq(
    $$SELECT table_name, action, row_key, actor FROM ops.audit_log
      WHERE table_name IN ('principals', 'principal_roles') AND row_key = 'dave' ORDER BY id$$,
    $$VALUES ('principals', 'INSERT', 'dave', 'alice'), ('principal_roles', 'INSERT', 'dave', 'alice'),
             ('principal_roles', 'INSERT', 'dave', 'alice')$$,
    'adding a principal and granting a role are audited');
UPDATE ops.principals SET disabled = TRUE WHERE name = 'dave';
SELECT results_eq(
    $$SELECT action, changes -> 'disabled', actor, db_user::text COLLATE "default" FROM ops.audit_log
      WHERE table_name = 'principals' ORDER BY id DESC LIMIT 1$$,
    $$VALUES ('UPDATE', '[false, true]'::jsonb, session_user::text COLLATE "default", session_user::text COLLATE "default")$$,
    'a direct change to a principal is audited');
DELETE FROM ops.role_permissions WHERE role = 'ops_viewer' AND permission = 'incidents.read';
SELECT results_eq(
    $$SELECT action, row_key, changes ->> 'permission' FROM ops.audit_log WHERE table_name = 'role_permissions'$$,
    $$VALUES ('DELETE', 'ops_viewer', 'incidents.read')$$,
    'a permission taken from a role is audited');
UPDATE ops.roles SET description = 'read only' WHERE name = 'ops_viewer';
SELECT is((SELECT changes -> 'description' ->> 1 FROM ops.audit_log WHERE table_name = 'roles'), 'read only',
          'a role''s change is audited');
INSERT INTO ops.permissions (name, description) VALUES ('guard.read', 'read the guard');
SELECT is((SELECT row_key FROM ops.audit_log WHERE table_name = 'permissions'), 'guard.read', 'a new permission is audited');

-- audit rows only from the audit triggers, whoever asks: the owner too
CREATE TEMP TABLE owner_before AS SELECT count(*) AS n FROM ops.audit_log;
SELECT throws_ok($$INSERT INTO ops.audit_log (actor, action, table_name, changes) VALUES ('alice', 'UPDATE', 'incidents', '{}')$$,
                 '42501', NULL, 'the owner cannot write an audit row by hand');
SELECT throws_ok($$DO 'BEGIN INSERT INTO ops.audit_log (actor, action, table_name, changes) VALUES (''a'', ''b'', ''c'', ''{}''); END'$$,
                 '42501', NULL, 'the owner cannot write an audit row from a DO block');
CREATE FUNCTION pg_temp._audit_changes() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ops.audit_log (actor, action, table_name, changes) VALUES ('a', 'b', 'c', '{}');
    RETURN 1;
END;
$$;
SELECT throws_ok($$SELECT pg_temp._audit_changes()$$, '42501', NULL,
                 'the owner cannot write an audit row from a function named like the audit trigger''s');
SELECT throws_ok($$TRUNCATE ops.guard_overrides$$, '42501', NULL, 'the owner cannot truncate the append-only guard overrides');
SELECT throws_ok($$TRUNCATE ops.audit_log$$, '42501', NULL, 'the owner cannot truncate the audit log');
SELECT throws_ok($$TRUNCATE ops.escalation_events CASCADE$$, '42501', NULL, 'the owner cannot truncate escalation_events');
SELECT is((SELECT count(*) FROM ops.audit_log), (SELECT n FROM owner_before), 'none of it left an audit row');

-- the replay of a dead letter is audited by the outbox's trigger, one row per message
UPDATE ops.notification_outbox SET status = 'dead', attempts = 5, last_error = 'HTTP 500'
WHERE dedup_key = ops.escalation_hash((SELECT a FROM t), 1);
SET LOCAL ROLE opsguard_operator;
SELECT is(ops.replay_dead_notifications('bob'), 1, 'operators replay a dead letter through the verb');
RESET ROLE;
SELECT results_eq(
    $$SELECT actor, action, changes, note FROM ops.audit_log WHERE table_name = 'notification_outbox'$$,
    $$VALUES ('bob', 'UPDATE', '{"status": ["dead", "pending"], "attempts": [5, 0], "last_error": ["HTTP 500", null]}'::jsonb,
              'replay of dead letters')$$,
    'a replayed dead letter is audited with its actor, what changed and why');
SELECT is(ops.current_actor(), session_user::text, 'after replay_dead_notifications the session''s actor is restored');

SELECT * FROM finish();
ROLLBACK;
