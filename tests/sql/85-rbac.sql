-- RBAC: one decision, ops.authorize, from principals, roles and grants; psql and the API agree.
BEGIN;
SELECT plan(16);

SELECT ops.add_principal('alice', 'human', '{ops_responder}', 'admin');
SELECT ops.add_principal('victor', 'human', '{ops_viewer}', 'admin');
SELECT ops.add_principal('pipeline', 'service', '{ci}', 'admin');

SELECT ok(ops.has_permission('ops-bot', 'escalation.tick'), 'ops-bot (ops_admin) may tick');
SELECT ok(ops.has_permission('alice', 'incidents.ack'), 'a responder may ack');
SELECT ok(NOT ops.has_permission('alice', 'escalation.tick'), 'a responder may not force a tick');
SELECT ok(NOT ops.has_permission('victor', 'incidents.ack'), 'a viewer may not ack');
SELECT ok(ops.has_permission('pipeline', 'metrics.write'), 'ci may send metrics');
SELECT ok(NOT ops.has_permission('nobody', 'incidents.read'), 'an unknown principal may nothing');

SELECT is(ops.authorize('ops-bot', 'incidents.ack'), 'ops-bot', 'the signer acts for itself');
SELECT is(ops.authorize('ops-bot', 'incidents.ack', 'alice'), 'alice', 'a trusted signer acts for a named human');
SELECT throws_ok($$SELECT ops.authorize('ops-bot', 'incidents.ack', 'victor')$$, '42501', NULL,
                 'the named human must hold the permission');
SELECT throws_ok($$SELECT ops.authorize('ops-bot', 'incidents.ack', 'mallory')$$, '42501', NULL,
                 'the named human must exist');
SELECT throws_ok($$SELECT ops.authorize('pipeline', 'incidents.read', 'alice')$$, '42501', NULL,
                 'only signers with actors.delegate may name someone else');
SELECT throws_ok($$SELECT ops.authorize('ops-bot', 'no.such')$$, '22023', NULL, 'an unknown permission: 22023');

UPDATE ops.principals SET disabled = TRUE WHERE name = 'alice';
SELECT ok(NOT ops.has_permission('alice', 'incidents.ack'), 'a disabled principal may nothing');
SELECT ok(ops.revoke_role('victor', 'ops_viewer', 'admin'), 'revoke_role');
SELECT is((SELECT actor || ' ' || action FROM ops.audit_log WHERE table_name = 'principal_roles' ORDER BY id DESC LIMIT 1),
          'admin DELETE', 'grants and revokes are audited');
SELECT throws_ok($$SELECT ops.grant_role('victor', 'root', 'admin')$$, '22023', NULL, 'an unknown role: 22023');

SELECT * FROM finish();
ROLLBACK;
