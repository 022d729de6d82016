-- Slack reads &, < and > as markup (<!channel> notifies everyone, <https://x|click> disguises a
-- link): every text a message takes from a payload, a row or a request arrives escaped, in every
-- kind of message. The only live markup is opsguard's own: mentions of linked users and links.
BEGIN;
SELECT plan(14);

-- what is left of a text once opsguard's own markup is taken out: no < or > may remain
CREATE FUNCTION pg_temp.stray(p_text text) RETURNS boolean LANGUAGE sql AS $$
    SELECT regexp_replace(p_text, '<@U[A-Z0-9]+>|<https://ops\.example\.com/[^|<> ]*\|Open the incident>|<!date\^[0-9]+\^\{date_short_pretty\} \{time\}\|[^<>]*>', '', 'g')
           ~ '[<>]'
$$;
CREATE FUNCTION pg_temp.texts(p_msg jsonb) RETURNS SETOF text LANGUAGE sql AS $$
    SELECT p_msg ->> 'text'
    UNION ALL SELECT b #>> '{text,text}' FROM jsonb_array_elements(p_msg -> 'blocks') AS b WHERE b ? 'text'
    UNION ALL SELECT e ->> 'text' FROM jsonb_array_elements(p_msg -> 'blocks') AS b,
                                       jsonb_array_elements(b -> 'elements') AS e
$$;

SELECT ops.add_principal('bob', 'human', ARRAY['ops_responder'], 'admin');
SELECT ops.link_chat_identity('slack', 'T1', 'UBOB', 'bob', 'admin');
SELECT ops.create_policy('p', 'admin');
SELECT ops.add_policy_step('p', 1, '[{"principal": "bob"}]', 'admin');
SELECT ops.set_setting('default_policy', 'p', 'admin');
SELECT ops.set_setting('app_base_url', 'https://ops.example.com/a|b', 'admin');
SELECT ops.trigger_incident('<!channel> <https://evil.example|click>::x&y', 'critical', p_now => '2026-03-02 12:00Z');
SELECT ops.escalation_tick('2026-03-02 13:00Z');
CREATE TEMP TABLE m AS SELECT ops.slack_message(payload) AS msg FROM ops.notification_outbox;

-- escalation pages
SELECT is((SELECT msg ->> 'text' FROM m),
          '[CRITICAL] &lt;!channel&gt; &lt;https://evil.example|click&gt;::x&amp;y escalated to level 1 <@UBOB>',
          'a page''s text fallback: the key escaped, the mention live');
SELECT matches((SELECT msg #>> '{blocks,0,text,text}' FROM m),
               '`&lt;!channel&gt; &lt;https://evil\.example\|click&gt;::x&amp;y`.*\nPaging <@UBOB>\n'
               || '<https://ops\.example\.com/a%7Cb/incidents/[0-9a-f-]{36}\|Open the incident>$',
               'a page''s block: the key escaped; the link''s own | sent as %7C, so it cannot start a label');
SELECT matches((SELECT msg #>> '{blocks,1,elements,0,text}' FROM m),
               '· route &lt;!channel&gt; &lt;https://evil\.example\|click&gt; ·',
               'a page''s context line: the route escaped');
SELECT is_empty($$SELECT t FROM m, pg_temp.texts(m.msg) AS t WHERE pg_temp.stray(t)$$,
                'a page has no other < or > anywhere in it');

-- a payload is data: every field of it is escaped, and a mention must have the tick's exact shape
CREATE TEMP TABLE forged AS SELECT ops.slack_message(
    '{"text": "<!here>", "incident_key": "k", "severity": "<!here>", "escalation_level": "<!here>",
      "incident_id": "<!here>", "escalated_at": "<!here>", "dedup_key": "<!here>", "route": "r",
      "mentions": ["<@UBOB>", "<!channel>", "<@UBOB|everyone>", "<@ubob>"], "principals": ["<!here>"]}') AS msg;
SELECT is((SELECT msg ->> 'text' FROM forged), '&lt;!here&gt; <@UBOB>',
          'a payload''s text is escaped; of its mentions, only <@U...> is kept');
SELECT is_empty($$SELECT t FROM forged, pg_temp.texts(forged.msg) AS t WHERE t ~ '<!|<@UBOB\|' OR pg_temp.stray(t)$$,
                'no field of a forged payload becomes markup');

-- slash-command replies
-- the seeds' direct UPDATE lets an operator write any acknowledged_by
UPDATE ops.incidents SET status = 'acknowledged', acknowledged_by = '<!here>';
CREATE TEMP TABLE r (what text, msg jsonb);
GRANT INSERT, SELECT ON r TO opsguard_api;
SET LOCAL ROLE opsguard_api;
INSERT INTO r VALUES
    ('unlinked', ops.api_slack_command('T<!channel>', 'U<!channel>', '/incident-list', '', 'k1')),
    ('unknown', ops.api_slack_command('T1', 'UBOB', '/<!channel>', '', 'k2')),
    ('list', ops.api_slack_command('T1', 'UBOB', '/incident-list', '', 'k3')),
    ('oncall', ops.api_slack_command('T1', 'UBOB', '/oncall', '<!channel>', 'k4')),
    ('already', ops.api_slack_command('T1', 'UBOB', '/incident-ack', '<!channel> <https://evil.example|click>::x&y', 'k5'));
RESET ROLE;

SELECT matches((SELECT msg ->> 'text' FROM r WHERE what = 'unlinked'),
               '^Your Slack user U&lt;!channel&gt; \(team T&lt;!channel&gt;\) .*'
               || 'link_chat_identity\(''slack'', ''T&lt;!channel&gt;'', ''U&lt;!channel&gt;'', '
               || '''&lt;principal&gt;'', ''&lt;admin&gt;''\);$',
               'an unlinked user: the Slack ids escaped, quoted as SQL literals');
SELECT is((SELECT msg ->> 'text' FROM r WHERE what = 'unknown'),
          'opsguard does not know /&lt;!channel&gt;. It answers /incident-ack, /incident-resolve, /incident-list and /oncall.',
          'an unknown command: escaped');
SELECT matches((SELECT msg ->> 'text' FROM r WHERE what = 'list'),
               '• `&lt;!channel&gt; &lt;https://evil\.example\|click&gt;::x&amp;y` critical, level 1, acknowledged by &lt;!here&gt; — ',
               '/incident-list: the key and who acknowledged it, escaped');
SELECT is((SELECT msg ->> 'text' FROM r WHERE what = 'oncall'), 'No schedule `&lt;!channel&gt;`. Schedules: none yet.',
          '/oncall: the schedule asked for escaped');
SELECT is((SELECT msg ->> 'text' FROM r WHERE what = 'already'),
          '`&lt;!channel&gt; &lt;https://evil.example|click&gt;::x&amp;y` was already acknowledged by &lt;!here&gt;.',
          'an ack of an acknowledged incident: who acknowledged it, escaped');
SELECT is_empty($$SELECT what FROM r WHERE pg_temp.stray(msg ->> 'text')$$, 'no reply has any other < or >');

-- /oncall's own markup stays live: <!date^...> shows each reader the time in their zone
SELECT ops.create_schedule('primary', 'Europe/Berlin', 'admin');
SELECT ops.add_principal('carol', 'human', ARRAY['ops_responder'], 'admin');
SELECT ops.add_rotation('primary', 'days', '1 day', '2026-03-01 09:00+01', ARRAY['carol', 'bob'], 'admin');
SELECT matches(ops._slack_oncall('', '2026-03-02 12:00Z') ->> 'text', E'^On call now:\n• \\*primary\\*: bob until <!date\\^[0-9]+\\^',
               '/oncall keeps its <!date^...> markup');
SELECT ok(NOT pg_temp.stray(ops._slack_oncall('', '2026-03-02 12:00Z') ->> 'text'),
          '/oncall has no other < or > than its <!date^...> markup');

SELECT * FROM finish();
ROLLBACK;
