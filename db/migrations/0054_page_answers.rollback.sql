-- 0054 undone: pages cannot be answered; Slack channel posts without buttons
DROP FUNCTION ops.api_public_base_url();
DROP FUNCTION ops.api_twilio_status(text, text);
DROP FUNCTION ops.api_twilio_voice(text, text);
DROP FUNCTION ops.api_twilio_sms(text, text);
DROP FUNCTION ops._twiml_text(text);
DROP FUNCTION ops.page_sms_reply(text, text, timestamptz);
DROP FUNCTION ops.api_slack_interaction(text, text, text, text, text, text);
DROP FUNCTION ops._slack_page_reply(jsonb);
DROP FUNCTION ops.api_page_act(text, text);
DROP FUNCTION ops.api_page_get(text);
DROP FUNCTION ops.page_view(text, timestamptz);
DROP FUNCTION ops.page_action(text, text, text, timestamptz);
DROP FUNCTION ops._page_act(ops.page_tokens, text, text, timestamptz);
DROP FUNCTION ops._page_transition(uuid, text, text, text, timestamptz);
DROP FUNCTION ops._page_token_unknown();
DROP FUNCTION ops._page_token_hash(text);
CREATE OR REPLACE FUNCTION ops.slack_message(p_payload jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object(
        'text', ops.slack_escape(p_payload ->> 'text') || coalesce(' ' || m.mentions, ''),
        'blocks', pg_catalog.jsonb_build_array(
            pg_catalog.jsonb_build_object('type', 'section', 'text', pg_catalog.jsonb_build_object(
                'type', 'mrkdwn',
                'text', pg_catalog.format('%s *%s* `%s` escalated to level *%s*',
                                          CASE p_payload ->> 'severity' WHEN 'critical' THEN ':rotating_light:'
                                              ELSE ':warning:' END,
                                          ops.slack_escape(pg_catalog.upper(p_payload ->> 'severity')),
                                          ops.slack_escape(p_payload ->> 'incident_key'),
                                          ops.slack_escape(p_payload ->> 'escalation_level'))
                        || coalesce(E'\nPaging ' || m.mentions, '')
                        || coalesce(E'\n<' || pg_catalog.replace(ops.slack_escape(p_payload ->> 'link'), '|', '%7C')
                                    || '|Open the incident>', ''))),
            pg_catalog.jsonb_build_object('type', 'context', 'elements', pg_catalog.jsonb_build_array(
                pg_catalog.jsonb_build_object('type', 'mrkdwn', 'text', pg_catalog.format(
                    'incident %s · route %s · escalated %s · dedup %s',
                    ops.slack_escape(p_payload ->> 'incident_id'), ops.slack_escape(coalesce(p_payload ->> 'route', '-')),
                    ops.slack_escape(p_payload ->> 'escalated_at'), ops.slack_escape(p_payload ->> 'dedup_key'))
                    || coalesce(' · paged ' || ops.slack_escape(m.principals), ''))))),
        'dedup_key', p_payload ->> 'dedup_key')
    -- without a policy the payload has neither key and the message is what it was; a mention is
    -- markup, so only the exact shape the tick builds (<@ and a Slack user id) is let through
    FROM (SELECT (SELECT pg_catalog.string_agg(v, ' ') FROM pg_catalog.jsonb_array_elements_text(
                      CASE pg_catalog.jsonb_typeof(p_payload -> 'mentions') WHEN 'array' THEN p_payload -> 'mentions' END)
                  AS v WHERE v ~ '^<@[A-Z0-9]{1,40}>$') AS mentions,
                 (SELECT pg_catalog.string_agg(v, ', ') FROM pg_catalog.jsonb_array_elements_text(
                      CASE pg_catalog.jsonb_typeof(p_payload -> 'principals') WHEN 'array' THEN p_payload -> 'principals' END)
                  AS v) AS principals) AS m
$$;
COMMENT ON FUNCTION ops.slack_message(jsonb) IS
'The Slack incoming-webhook body for an outbox payload: text (the notification fallback), blocks, and dedup_key. '
'A policy''s payload adds its mentions (<@U...>) to the text and the first block, and the paged principals to the '
'context line. Every text from the payload is escaped (ops.slack_escape): the mentions and the incident link are '
'the only markup.';
DROP FUNCTION ops.slack_page_blocks(jsonb, text, text);
DROP FUNCTION ops._page_refusal(text);
ALTER TABLE ops.page_tokens DROP COLUMN used_via;
