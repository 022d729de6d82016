-- The role stays (roles are cluster-wide; see 0011); this database's grants go.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ops FROM opsguard_dispatcher;
REVOKE ALL ON SCHEMA ops FROM opsguard_dispatcher;
DROP FUNCTION ops.config_problems(float8);
DROP FUNCTION ops._redact_url(text, text);
DROP VIEW ops.notification_stats;
DROP FUNCTION ops.replay_dead_notifications(text, bigint[]);
DROP FUNCTION ops.notification_wait_s(timestamptz);
DROP FUNCTION ops.finish_notifications(text, jsonb, timestamptz);
DROP FUNCTION ops.claim_notifications(text, integer, timestamptz);
DROP FUNCTION ops.slack_message(jsonb);
DROP FUNCTION ops.slack_escape(text);
DROP FUNCTION ops.webhook_for(text);
DROP FUNCTION ops.set_route_webhook(text, text, text);
DROP TABLE ops.route_webhooks;
DROP TABLE ops.notification_attempts;
DROP SEQUENCE ops.notification_claim_seq;
DROP INDEX ops.notification_outbox_dead;
DROP INDEX ops.notification_outbox_sending;
ALTER TABLE ops.notification_outbox
DROP COLUMN last_http_status,
DROP COLUMN lease_until,
DROP COLUMN claim_id,
DROP COLUMN claimed_by;
COMMENT ON COLUMN ops.notification_outbox.status IS NULL;
DELETE FROM ops.settings
WHERE key IN ('notify_paused', 'notify_max_attempts', 'notify_backoff_ms', 'notify_backoff_max_ms', 'notify_lease_s');
