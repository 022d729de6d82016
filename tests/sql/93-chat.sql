-- Slack slash commands after the signature check: identity, RBAC, the verbs, the replies.
BEGIN;
SELECT plan(27);

SELECT ops.add_principal('alice', 'human', ARRAY['ops_responder'], 'admin');
SELECT ops.add_principal('victor', 'human', ARRAY['ops_viewer'], 'admin');
CREATE TEMP TABLE t AS
SELECT
    (ops.trigger_incident('GET /a::slo_violation', 'critical')).id AS a,
    (ops.trigger_incident('POST /b::error_rate_critical', 'warning')).id AS b;
GRANT SELECT ON t TO opsguard_api;

-- linking
SELECT throws_ok($$SELECT ops.link_chat_identity('slack', 'T1', 'U1', 'nobody', 'admin')$$, '22023',
                 'unknown principal "nobody"', 'a link to an unknown principal is refused');
SELECT throws_ok($$SELECT ops.link_chat_identity('teams', 'T1', 'U1', 'alice', 'admin')$$, '22023', NULL,
                 'only slack identities');
SELECT is((ops.link_chat_identity('slack', 'T1', 'UALICE', 'alice', 'admin')).principal, 'alice', 'alice''s Slack user is linked');
SELECT ops.link_chat_identity('slack', 'T1', 'UVICTOR', 'victor', 'admin');
SELECT is((SELECT actor FROM ops.audit_log WHERE table_name = 'chat_identities' AND row_key = 'UALICE'), 'admin',
          'the link is audited');

-- the API role runs the commands
SET LOCAL ROLE opsguard_api;
SELECT is(ops.api_slack_command('T1', 'UNKNOWN', '/incident-ack', 'GET /a::slo_violation', 'k1') ->> 'error', 'unlinked_user',
          'an unlinked Slack user is told so');
SELECT matches(ops.api_slack_command('T1', 'UNKNOWN', '/incident-ack', 'x', 'k2') ->> 'text',
               'not linked.*link_chat_identity\(''slack'', ''T1'', ''UNKNOWN''',
               'an unlinked Slack user is told the command an admin runs to link them');
SELECT is(ops.api_slack_command('T2', 'UALICE', '/incident-list', '', 'k3') ->> 'error', 'unlinked_user',
          'the same user id in another workspace is someone else');

SELECT is(ops.api_slack_command('T1', 'UVICTOR', '/incident-ack', 'GET /a::slo_violation', 'k4') - 'text',
          '{"ok": false, "error": "forbidden", "response_type": "ephemeral"}', 'a viewer may not ack');
SELECT is(ops.api_slack_command('T1', 'UVICTOR', '/incident-resolve', 'GET /a::slo_violation', 'k5') ->> 'text',
          'victor may not resolve incidents (the permission incidents.resolve is missing).',
          'a viewer may not resolve from Slack, and is told why');
RESET ROLE;
SELECT is((SELECT status FROM ops.incidents WHERE id = (SELECT a FROM t)), 'open', 'a viewer''s refused Slack commands changed nothing');
SET LOCAL ROLE opsguard_api;

SELECT is(ops.api_slack_command('T1', 'UALICE', '/incident-ack', '', 'k6') ->> 'text',
          'Usage: /incident-ack &lt;incident id or key&gt;, e.g. /incident-ack GET /projects::slo_violation', 'no argument: usage');
SELECT is(ops.api_slack_command('T1', 'UALICE', '/incident-ack', 'GET /nope::x', 'k7') ->> 'error', 'not_found',
          'an unknown incident key');
SELECT is(ops.api_slack_command('T1', 'UALICE', '/incident-ack', '00000000-0000-0000-0000-000000000000', 'k8') ->> 'error',
          'not_found', 'an unknown incident id');

SELECT is(ops.api_slack_command('T1', 'UALICE', '/incident-ack', '  GET /a::slo_violation ', 'k9') - 'incident',
          '{"ok": true, "response_type": "ephemeral", "text": "Acknowledged `GET /a::slo_violation` (critical, level 0) as alice."}',
          'ack by key');
RESET ROLE;
SELECT results_eq($$SELECT status, acknowledged_by FROM ops.incidents WHERE id = (SELECT a FROM t)$$,
                  $$VALUES ('acknowledged', 'alice')$$, 'ack by key from Slack acknowledges as the linked principal');
SELECT is((SELECT note FROM ops.audit_log WHERE table_name = 'incidents' AND row_key = (SELECT a FROM t)::text
           AND action = 'UPDATE' AND changes ? 'acknowledged_by'), 'via Slack /incident-ack', 'the audit log says it came from Slack');
SET LOCAL ROLE opsguard_api;
SELECT is(ops.api_slack_command('T1', 'UALICE', '/incident-ack', 'GET /a::slo_violation', 'k10') ->> 'text',
          '`GET /a::slo_violation` was already acknowledged by alice.', 'acking twice says so');

SELECT is(ops.api_slack_command('T1', 'UALICE', '/incident-resolve', (SELECT b::text FROM t), 'k11') #>> '{incident,status}',
          'resolved', 'resolve by id');
SELECT is(ops.api_slack_command('T1', 'UALICE', '/incident-ack', (SELECT b::text FROM t), 'k12') ->> 'error', 'conflict',
          'a resolved incident cannot be acked');
SELECT is(ops.api_slack_command('T1', 'UALICE', '/incident-resolve', 'POST /b::error_rate_critical', 'k13') ->> 'error',
          'not_found', 'a key names the not-resolved occurrence only');

SELECT is(ops.api_slack_command('T1', 'UVICTOR', '/incident-list', '', 'k14') ->> 'text',
          E'1 open or acknowledged incident(s):\n• `GET /a::slo_violation` critical, level 0, acknowledged by alice — '
          || (SELECT a FROM t), 'a viewer lists incidents');
SELECT is(ops.api_slack_command('T1', 'UVICTOR', '/incident-list', 'nothing-like-this', 'k15') - 'text',
          '{"ok": true, "count": 0, "response_type": "ephemeral"}', 'a filter that matches nothing');
SELECT is(ops.api_slack_command('T1', 'UALICE', '/incident-page', '', 'k16') ->> 'error', 'unknown_command',
          'an unknown command is named');

SELECT throws_ok($$SELECT ops.api_slack_command('T1', 'UALICE', '/incident-list', '', 'k14')$$, '28000',
                 'this Slack request was already received', 'a replayed signature is refused');
RESET ROLE;

UPDATE ops.principals SET disabled = TRUE WHERE name = 'alice';
SELECT is(ops.api_slack_command('T1', 'UALICE', '/incident-list', '', 'k17') ->> 'error', 'unlinked_user',
          'a disabled principal''s Slack user acts no more');
SELECT ok(ops.unlink_chat_identity('slack', 'T1', 'UVICTOR', 'admin'), 'unlink');
SELECT is(ops.api_slack_command('T1', 'UVICTOR', '/incident-list', '', 'k18') ->> 'error', 'unlinked_user',
          'after unlink_chat_identity the Slack user''s commands are refused as unlinked_user');

SELECT * FROM finish();
ROLLBACK;
