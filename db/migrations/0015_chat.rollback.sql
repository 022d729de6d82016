DROP FUNCTION ops.api_slack_command(text, text, text, text, text);
DROP FUNCTION ops._slack_reply(boolean, text, text, jsonb);
DROP FUNCTION ops._incident_by_ref(text);
DROP FUNCTION ops.unlink_chat_identity(text, text, text, text);
DROP FUNCTION ops.link_chat_identity(text, text, text, text, text);
DROP TABLE ops.chat_identities;
