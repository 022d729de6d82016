-- 0027 undone: no integration keys, no intake verbs, incidents without details
DROP FUNCTION ops._intake_transition(text, text, text, timestamptz);
DROP FUNCTION ops._intake_trigger(text, text, text, text, jsonb, text, timestamptz);
DROP FUNCTION ops._integration_key(text, text);
DROP FUNCTION ops.revoke_integration_key(text, text);
DROP FUNCTION ops.create_integration_key(text, text, text, text);
ALTER TABLE ops.incidents DROP COLUMN details;
DROP TABLE ops.integration_keys;
