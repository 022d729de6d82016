-- depends: 0049_one_incident_path

-- Comments cite only what is in the repository: each names the doc that states its rule.

COMMENT ON TABLE ops.escalation_policies IS
'Whom each escalation level pages (docs/oncall.md). Level N pages step N; after the last step the steps start '
'over repeat times, then the last step repeats until max_esc_level. Create with ops.create_policy, steps with '
'ops.add_policy_step; routes use one through ops.set_route_policy or the default_policy setting.';
COMMENT ON FUNCTION ops.next_due(p_incident ops.incidents) IS
'When this incident''s next escalation is due (docs/escalation.md): NULL when acknowledged, not open or at '
'max_esc_level; else the latest of first_seen + ack_min(severity) * (level + 1), last escalation + snooze_min, '
'snoozed_until.';
COMMENT ON TABLE ops.settings IS
'Runtime settings (docs/escalation.md#settings). Read with ops.setting(key); change with ops.set_setting(key, '
'value, actor).';
COMMENT ON TABLE ops.route_webhooks IS
'Per-route Slack webhooks (docs/notifications.md); routes without one use the slack_webhook_url setting. Read '
'at send time, so a change reaches messages already queued. Change with ops.set_route_webhook.';
