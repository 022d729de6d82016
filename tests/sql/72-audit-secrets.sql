-- The audit log never holds a webhook URL (0041): a Slack webhook's path is its secret, and
-- auditors read the audit log but not the settings, route webhooks or policy steps that hold
-- them. Each is kept as scheme, host and the first 16 hex of its sha256, so a change still shows.
BEGIN;
SELECT plan(11);

SELECT ops.set_setting('slack_webhook_url', 'https://hooks.slack.com/services/T0/B0/globalSECRET', 'alice');
SELECT ops.set_setting('notify_max_attempts', '7', 'alice');
SELECT ops.set_route_webhook('GET /a', 'https://hooks.slack.com/services/T0/B0/routeSECRET', 'alice');
SELECT ops.set_route_webhook('GET /a', 'https://hooks.slack.com/services/T0/B0/route2SECRET', 'alice');
SELECT ops.create_policy('payments', 'alice');
SELECT ops.add_policy_step('payments', 1, '[{"webhook": "https://hooks.slack.com/services/T0/B0/stepSECRET"}]', 'alice');
SELECT ops.add_policy_step('payments', 1, '[{"webhook": "https://chat.example.com/hook/step2SECRET"}]', 'alice');
SELECT ops.set_route_webhook('GET /a', '', 'alice');
-- every webhook of a step, not only its first target
SELECT ops.add_policy_step('payments', 2, '[{"webhook": "https://one.example.com/h/firstSECRET"},
                                            {"webhook": "https://two.example.com/h/secondSECRET"}]', 'alice');
-- a setting is redacted for its kind, whatever its name: one a later migration declares, here by hand
INSERT INTO ops.settings (key, value, default_value, kind, description)
VALUES ('pager_webhook_url', '"https://pager.example.com/h/pagerSECRET"', '""', 'webhook', 'a second webhook setting');
SELECT ops.set_setting('pager_webhook_url', 'https://pager.example.com/h/pager2SECRET', 'alice');

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
            'a changed route webhook URL shows in the audit row as two different hashes');
SELECT is((SELECT changes #>> '{targets,0,webhook}' FROM ops.audit_log
           WHERE table_name = 'escalation_policy_steps' AND action = 'INSERT' AND changes -> 'step' = '1'),
          'https://hooks.slack.com/… sha256:'
          || left(encode(sha256(convert_to('https://hooks.slack.com/services/T0/B0/stepSECRET', 'UTF8')), 'hex'), 16),
          'a policy step''s webhook target is kept as its host and sha256');
SELECT alike((SELECT changes #>> '{targets,1,0,webhook}' FROM ops.audit_log
              WHERE table_name = 'escalation_policy_steps' AND action = 'UPDATE'),
             'https://chat.example.com/… sha256:%', 'a replaced policy step''s webhook target is kept as its host and sha256');
SELECT is((SELECT changes #>> '{targets,1,webhook}' FROM ops.audit_log
           WHERE table_name = 'escalation_policy_steps' AND action = 'INSERT' AND changes -> 'step' = '2'),
          'https://two.example.com/… sha256:'
          || left(encode(sha256(convert_to('https://two.example.com/h/secondSECRET', 'UTF8')), 'hex'), 16),
          'a step''s second webhook is kept as its host and sha256 too');
SELECT is((SELECT changes -> 'value' FROM ops.audit_log WHERE table_name = 'settings' AND row_key = 'pager_webhook_url'),
          jsonb_build_array(
              'https://pager.example.com/… sha256:'
              || left(encode(sha256(convert_to('https://pager.example.com/h/pagerSECRET', 'UTF8')), 'hex'), 16),
              'https://pager.example.com/… sha256:'
              || left(encode(sha256(convert_to('https://pager.example.com/h/pager2SECRET', 'UTF8')), 'hex'), 16)),
          'any setting of kind webhook, not only slack_webhook_url: its change shows two hashes');
SELECT is((SELECT value #>> '{}' FROM ops.settings WHERE key = 'pager_webhook_url'),
          'https://pager.example.com/h/pager2SECRET', 'a webhook setting keeps its URL while the audit row shows hashes');
-- what the tick sends still goes to the real URL: only the audit row is redacted
SELECT is((SELECT targets -> 0 ->> 'webhook' FROM ops.escalation_policy_steps WHERE policy = 'payments' AND step = 1),
          'https://chat.example.com/hook/step2SECRET', 'the step itself keeps the URL it pages');

SELECT * FROM finish();
ROLLBACK;
