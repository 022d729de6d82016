DROP TABLE ops.audit_log;
DROP FUNCTION ops._audit_changes();
DROP FUNCTION ops._forbid_change();
DROP FUNCTION ops._act_as(text, text);
DROP FUNCTION ops.current_actor();
