-- The audit log never holds a webhook URL (0041): a Slack webhook's path is its secret, and
-- auditors read the audit log but not the settings, route webhooks or policy steps that hold
-- them. Each is kept as scheme, host and the first 16 hex of its sha256, so a change still shows.
BEGIN;
SELECT plan(8);

SELECT ops.set_setting('slack_webhook_url', 'https://hooks.slack.com/services/T0/B0/globalSECRET', 'alice');
SELECT ops.set_setting('notify_max_attempts', '7', 'alice');
SELECT ops.set_route_webhook('GET /a', 'https://hooks.slack.com/services/T0/B0/routeSECRET', 'alice');
SELECT ops.set_route_webhook('GET /a', 'https://hooks.slack.com/services/T0/B0/route2SECRET', 'alice');
SELECT ops.create_policy('payments', 'alice');
SELECT ops.add_policy_step('payments', 1, '[{"webhook": "https://hooks.slack.com/services/T0/B0/stepSECRET"}]', 'alice');
SELECT ops.add_policy_step('payments', 1, '[{"webhook": "https://chat.example.com/hook/step2SECRET"}]', 'alice');
SELECT ops.set_route_webhook('GET /a', '', 'alice');

SET LOCAL ROLE opsguard_auditor;
SELECT is((SELECT count(*)::int FROM ops.audit_log WHERE changes::text LIKE '%SECRET%' OR note LIKE '%SECRET%'), 0,
          'an auditor finds no webhook URL in the audit log');
RESET ROLE;

SELECT is((SELECT changes -> 'value' ->> 1 FROM ops.audit_log WHERE table_name = 'settings' AND row_key = 'slack_webhook_url'),
          'https://hooks.slack.com/… sha256:'
          || left(encode(sha256(convert_to('https://hooks.slack.com/services/T0/B0/globalSECRET', 'UTF8')), 'hex'), 16),
          'the global webhook is kept as its host and sha256');
SELECT is((SELECT changes -> 'value' FROM ops.audit_log WHERE table_name = 'settings' AND row_key = 'notify_max_attempts'),
          '[8, 7]'::jsonb, 'a setting of another kind is audited as it was');
SELECT results_eq(
    $$SELECT action, CASE action WHEN 'UPDATE' THEN changes #>> '{webhook_url,1}' ELSE changes ->> 'webhook_url' END
                     LIKE 'https://hooks.slack.com/… sha256:%'
      FROM ops.audit_log WHERE table_name = 'route_webhooks' ORDER BY id$$,
    $$VALUES ('INSERT', true), ('UPDATE', true), ('DELETE', true)$$,
    'a route webhook set, changed and removed: each row names the host and hash only');
SELECT isnt((SELECT changes #>> '{webhook_url,0}' FROM ops.audit_log WHERE table_name = 'route_webhooks' AND action = 'UPDATE'),
            (SELECT changes #>> '{webhook_url,1}' FROM ops.audit_log WHERE table_name = 'route_webhooks' AND action = 'UPDATE'),
            '... and a changed URL shows as two different hashes');
SELECT is((SELECT changes #>> '{targets,0,webhook}' FROM ops.audit_log
           WHERE table_name = 'escalation_policy_steps' AND action = 'INSERT'),
          'https://hooks.slack.com/… sha256:'
          || left(encode(sha256(convert_to('https://hooks.slack.com/services/T0/B0/stepSECRET', 'UTF8')), 'hex'), 16),
          'a policy step''s webhook target is kept as its host and sha256');
SELECT alike((SELECT changes #>> '{targets,1,0,webhook}' FROM ops.audit_log
              WHERE table_name = 'escalation_policy_steps' AND action = 'UPDATE'),
             'https://chat.example.com/… sha256:%', '... also when the step is replaced');
-- what the tick sends still goes to the real URL: only the audit row is redacted
SELECT is((SELECT targets -> 0 ->> 'webhook' FROM ops.escalation_policy_steps WHERE policy = 'payments'),
          'https://chat.example.com/hook/step2SECRET', 'the step itself keeps the URL it pages');

SELECT * FROM finish();
ROLLBACK;
