-- 0060 undone: outbox rows checked against their event again
COMMENT ON COLUMN ops.notification_outbox.event_id IS NULL;
ALTER TABLE ops.notification_outbox
ADD CONSTRAINT notification_outbox_event_id_fkey FOREIGN KEY (event_id) REFERENCES ops.escalation_events (id);
