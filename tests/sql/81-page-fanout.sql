-- What a page's outbox row costs the tick that fans it out (docs/notifications.md, "The rules at
-- page time"): writing the channel post and the pages takes no lock on the escalation event they
-- belong to, a page holds no copy of the channel post's payload, and the claim still sends what a
-- page with the payload in its row sends (75-notification-rules.sql checks the other fields).
BEGIN;
SELECT plan(9);

DO $$
BEGIN
    PERFORM ops.set_setting('app_base_url', 'https://ops.example.com', 'admin');
    PERFORM ops.add_principal('bob', 'human', '{ops_responder}', 'admin');
    PERFORM ops.create_policy('pay', 'admin');
    PERFORM ops.add_policy_step('pay', 1, '[{"principal": "bob"}]', 'admin');
    PERFORM ops.set_route_policy('GET /pay', 'pay', 'admin');
    PERFORM ops.add_notification_rule('bob', ops.add_contact_method('bob', 'slack_dm', 'U024BE7LH', 'bob'), 0, 'bob');
    PERFORM ops.add_notification_rule('bob', (ops.add_webhook_contact_method('bob', 'https://hooks.example.com/bob', 'bob')).id,
                                      5, 'bob');
    PERFORM ops.trigger_incident('GET /pay::slo_violation', 'critical', p_now => '2026-03-02 12:00Z');
    PERFORM ops.escalation_tick('2026-03-02 12:05Z');
END
$$;

SELECT results_eq(
    $$SELECT channel, due_at FROM ops.notification_outbox WHERE event_id IS NOT NULL ORDER BY channel$$,
    $$VALUES ('slack', NULL::timestamptz), ('slack_dm', '2026-03-02 12:05Z'), ('webhook', '2026-03-02 12:10Z')$$,
    'the tick queued the channel post and one page per rule');
-- a lock on the event was a query and a tuple write per outbox row, for an event the same
-- statement had just written and that no one may delete
SELECT is((SELECT count(*) FROM ops.escalation_events WHERE xmax::text <> '0'), 0::bigint,
          'queueing the messages locked no escalation event');
SELECT throws_ok(
    $$INSERT INTO ops.notification_outbox (dedup_key, event_id, incident_id, payload)
      SELECT dedup_key, event_id, incident_id, payload FROM ops.notification_outbox WHERE channel = 'webhook'$$,
    '23505', NULL, 'a page''s dedup key is still unique');
SELECT throws_ok(
    $$INSERT INTO ops.notification_outbox (dedup_key, event_id, payload) VALUES ('x', 1, '{}')$$,
    '23514', NULL, 'a message naming an event must name its incident too');

SELECT is((SELECT count(*) FROM ops.notification_outbox WHERE contact_method IS NOT NULL AND payload = '{}'), 2::bigint,
          'no page row holds a copy of the payload');

-- the same two pages as rows queued with the channel post's payload in them, due an hour later: a
-- claim renders both kinds alike
INSERT INTO ops.notification_outbox (dedup_key, event_id, incident_id, route, channel, principal, contact_method, payload,
                                     due_at, next_attempt_at)
SELECT
    'copy:' || p.dedup_key AS dedup_key,
    p.event_id,
    p.incident_id,
    p.route,
    p.channel,
    p.principal,
    p.contact_method,
    s.payload,
    p.due_at + interval '1 hour' AS due_at,
    p.next_attempt_at + interval '1 hour' AS next_attempt_at
FROM ops.notification_outbox AS p
INNER JOIN ops.notification_outbox AS s ON p.event_id = s.event_id AND s.channel = 'slack'
WHERE p.contact_method IS NOT NULL;
CREATE TEMP TABLE claimed AS
SELECT
    c.dedup_key LIKE 'copy:%' AS copy,
    c.channel,
    c.message
FROM ops.claim_notifications('w1', 100, '2026-03-02 14:00Z') AS c
WHERE c.channel IN ('slack_dm', 'webhook');
SELECT is((SELECT count(*) FROM claimed), 4::bigint, 'the claim takes both pages of each kind');
SELECT is((SELECT message FROM claimed WHERE channel = 'webhook' AND NOT copy),
          (SELECT message FROM claimed WHERE channel = 'webhook' AND copy),
          'a webhook page sends the same body and secret either way');
SELECT is((SELECT message #- '{blocks,1}' FROM claimed WHERE channel = 'slack_dm' AND NOT copy),
          (SELECT message #- '{blocks,1}' FROM claimed WHERE channel = 'slack_dm' AND copy),
          'a Slack DM says the same either way (its buttons carry tokens of their own)');
SELECT matches((SELECT message::text FROM claimed WHERE channel = 'slack_dm' AND NOT copy),
               'https://ops\.example\.com/incidents/', 'and links the incident');

SELECT * FROM finish();
ROLLBACK;
