-- depends: 0057_shared_rate_limits
-- The fan-out of a page to its notification rules, cheaper per row: a tick that pages 10k incidents
-- for principals with 3 rules writes 30k outbox rows in one statement, and a per-row cost of
-- that insert bought nothing.
--
-- The foreign key from notification_outbox.event_id to escalation_events: the tick takes each
-- event_id from the RETURNING of the event it inserted in the same statement, and events are
-- append-only (escalation_events_append_only refuses UPDATE and DELETE, a TRUNCATE trigger the
-- rest), so the event is always there; yet each row's check ran a query that locked its event (FOR KEY
-- SHARE, a tuple write), 40k of them in that tick: a tenth of its time.
ALTER TABLE ops.notification_outbox DROP CONSTRAINT notification_outbox_event_id_fkey;
COMMENT ON COLUMN ops.notification_outbox.event_id IS
'The escalation event a channel post or page belongs to (NULL for a verification code or a Slack reply). No foreign '
'key: the tick writes the event and its messages in one statement, and events are append-only.';
