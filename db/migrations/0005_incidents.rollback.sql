DROP FUNCTION ops.escalation_hash(uuid, integer);
DROP TABLE ops.escalation_events;
DROP TABLE ops.incidents CASCADE;
DROP FUNCTION ops._incidents_before_write();
