-- 0050 undone: the four comments as they were before

COMMENT ON TABLE ops.escalation_policies IS
'Whom each escalation level pages (SPEC 11). Level N pages step N; after the last step the steps start over '
'repeat times, then the last step repeats until max_esc_level. Create with ops.create_policy, steps with '
'ops.add_policy_step; routes use one through ops.set_route_policy or the default_policy setting.';
COMMENT ON FUNCTION ops.next_due(p_incident ops.incidents) IS
'When this incident''s next escalation is due (SPEC §4): NULL when acknowledged, not open or at max_esc_level; '
'else the latest of first_seen + ack_min(severity) * (level + 1), last escalation + snooze_min, snoozed_until.';
COMMENT ON TABLE ops.settings IS
'Runtime settings (SPEC §3). Read with ops.setting(key); change with ops.set_setting(key, value, actor).';
COMMENT ON TABLE ops.route_webhooks IS
'Per-route Slack webhooks (SPEC §8); routes without one use the slack_webhook_url setting. Read at send time, '
'so a change reaches messages already queued. Change with ops.set_route_webhook.';
