-- 0054 undone: pages cannot be answered; Slack channel posts without buttons
DROP FUNCTION ops.api_page_act(text, text);
DROP FUNCTION ops.api_page_get(text);
DROP FUNCTION ops.page_view(text, timestamptz);
DROP FUNCTION ops.page_action(text, text, text, timestamptz);
DROP FUNCTION ops._page_act(ops.page_tokens, text, text, timestamptz);
DROP FUNCTION ops._page_transition(uuid, text, text, text, timestamptz);
DROP FUNCTION ops._page_token_unknown();
DROP FUNCTION ops._page_token_hash(text);
