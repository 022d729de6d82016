DROP FUNCTION ops.snooze_incident(uuid, integer, text, timestamptz);
DROP FUNCTION ops.resolve_incident(uuid, text, text, timestamptz);
DROP FUNCTION ops.ack_incident(uuid, text, text, timestamptz);
DROP FUNCTION ops._transition(uuid, text, text, text, timestamptz);
DROP FUNCTION ops.trigger_incident(text, text, text, text, text, timestamptz);
DROP FUNCTION ops._lock_incident(uuid);
DROP FUNCTION ops._require_actor(text);
