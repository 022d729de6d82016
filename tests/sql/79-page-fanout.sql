-- What a page's outbox row costs the tick that fans it out (docs/notifications.md, "The rules at
-- page time"): writing the channel post and the pages takes no lock on the escalation event they
-- belong to, dedup keys stay unique, and the pages hold what they did
-- (75-notification-rules.sql checks each field).
BEGIN;
SELECT plan(4);

DO $$
BEGIN
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

SELECT * FROM finish();
ROLLBACK;
