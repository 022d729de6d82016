-- The outbox's delivery state machine: claims, leases, backoff, dead letters, webhooks.
-- The dispatcher only moves bytes; these are its decisions, at fixed times.
BEGIN;
SELECT plan(49);

SELECT ops.set_setting('app_base_url', 'https://ops.example.com/', 'alice');
CREATE TEMP TABLE t AS
SELECT
    (ops.trigger_incident('GET /a::slo_violation', 'critical', p_now => '2026-03-02 12:00Z')).id AS a,
    (ops.trigger_incident('POST /b::error_rate_critical', 'warning', p_now => '2026-03-02 12:00Z')).id AS b;
SELECT ops.escalation_tick('2026-03-02 13:00Z');
-- queued at the transaction's now(); this test's clock is the tick's
UPDATE ops.notification_outbox SET next_attempt_at = '2026-03-02 13:00Z';
CREATE TEMP VIEW msg AS
SELECT o.* FROM ops.notification_outbox AS o WHERE o.incident_id = (SELECT a FROM t);

-- what each escalation queues
SELECT results_eq(
    $$SELECT payload ->> 'incident_key', payload ->> 'escalation_level', payload ->> 'severity', payload ->> 'link',
             dedup_key = (SELECT unique_hash FROM ops.escalation_events WHERE id = event_id)
      FROM msg$$,
    $$VALUES ('GET /a::slo_violation', '1', 'critical',
              'https://ops.example.com/incidents/' || (SELECT a FROM t), true)$$,
    'an escalation queues its key, level, severity, a link from app_base_url and the event''s unique_hash as dedup key');
SELECT is(ops.slack_message((SELECT payload FROM msg)) - 'blocks',
          jsonb_build_object('text', '[CRITICAL] GET /a::slo_violation escalated to level 1',
                             'dedup_key', (SELECT dedup_key FROM msg)),
          'the Slack body: the text fallback and the dedup key');
SELECT matches(ops.slack_message((SELECT payload FROM msg)) #>> '{blocks,0,text,text}',
               '^:rotating_light: \*CRITICAL\* `GET /a::slo_violation` escalated to level \*1\*\n'
               || '<https://ops\.example\.com/incidents/[0-9a-f-]{36}\|Open the incident>$',
               'the Slack body has a block with the incident and its link');
SELECT is(ops.slack_message('{"incident_key": "GET /<x>&y", "severity": "warning", "escalation_level": 2}') #>> '{blocks,0,text,text}',
          ':warning: *WARNING* `GET /&lt;x&gt;&amp;y` escalated to level *2*',
          'mrkdwn specials are escaped; no link without app_base_url');

-- nowhere to send: messages wait
SELECT is_empty($$SELECT * FROM ops.claim_notifications('w1', 10, '2026-03-02 13:00Z')$$,
                'no webhook anywhere: nothing is claimed');
SELECT is((SELECT count(*)::int FROM ops.notification_outbox WHERE status = 'pending'), 2,
          'with no webhook anywhere both messages wait pending');

-- per-route webhook, then the global fallback
SELECT throws_ok($$SELECT ops.set_route_webhook('GET /a', 'http://hooks.example.com/x', 'alice')$$, '22023',
                 'webhook "http://hooks.example.com/x" must use https', 'plain http to a remote host is refused');
SELECT throws_ok($$INSERT INTO ops.route_webhooks (route, webhook_url, updated_by) VALUES ('GET /a', 'http://x.example/', 'a')$$,
                 '22023', NULL, 'a plain-http remote webhook is refused also by a direct INSERT');
SELECT is(ops.set_route_webhook('GET /a', 'http://127.0.0.1:9/route-a', 'alice'), 'http://127.0.0.1:9/route-a',
          'http to loopback is allowed');
SELECT is((SELECT actor FROM ops.audit_log WHERE table_name = 'route_webhooks' AND action = 'INSERT'), 'alice',
          'the webhook change is audited');
SELECT results_eq(
    $$SELECT id, attempt, webhook_url, dedup_key, lease_until FROM ops.claim_notifications('w1', 10, '2026-03-02 13:00Z')$$,
    $$SELECT id, 1, 'http://127.0.0.1:9/route-a', dedup_key, '2026-03-02 13:01Z'::timestamptz FROM msg$$,
    'only the route with a webhook is claimed, with a lease of notify_lease_s');
SELECT results_eq($$SELECT status, attempts, claimed_by FROM msg$$, $$VALUES ('sending', 1, 'w1')$$,
                  'a claimed message is sending, attempt 1, claimed by w1');
SELECT is_empty($$SELECT * FROM ops.claim_notifications('w2', 10, '2026-03-02 13:00:30Z')$$,
                'a claimed message is nobody else''s while its lease runs');

SELECT ops.set_setting('slack_webhook_url', 'https://hooks.slack.com/services/T/B/global', 'alice');
SELECT is((SELECT webhook_url FROM ops.claim_notifications('w2', 10, '2026-03-02 13:00:30Z')),
          'https://hooks.slack.com/services/T/B/global', 'a route without its own webhook uses slack_webhook_url');
SELECT is(ops.webhook_for('POST /b'), 'https://hooks.slack.com/services/T/B/global', 'webhook_for says the same');

-- reports
CREATE TEMP TABLE c AS
SELECT
    id,
    claim_id
FROM msg;
SELECT is(ops.finish_notifications('w9', jsonb_build_array(jsonb_build_object(
              'id', (SELECT id FROM c), 'claim', (SELECT claim_id FROM c) + 1000, 'outcome', 'failed', 'error', 'x')),
              '2026-03-02 13:00:40Z') ->> 'stale', '1',
          'a report for another claim is counted stale');
SELECT results_eq($$SELECT status, attempts FROM msg$$, $$VALUES ('sending', 1)$$, 'a stale report for another claim changes nothing');

SELECT is(ops.finish_notifications('w1', jsonb_build_array(jsonb_build_object(
              'id', (SELECT id FROM c), 'claim', (SELECT claim_id FROM c), 'outcome', 'failed', 'status', 500,
              'error', 'HTTP 500: internal_error', 'ms', 12.5)), '2026-03-02 13:00:40Z') ->> 'retrying', '1',
          'a failure is retried');
SELECT results_eq($$SELECT status, attempts, last_http_status, last_error, claimed_by FROM msg$$,
                  $$VALUES ('pending', 1, 500, 'HTTP 500: internal_error', NULL::text)$$,
                  'a failed delivery goes back to pending, with the error');
SELECT ok((SELECT next_attempt_at BETWEEN '2026-03-02 13:00:41Z' AND '2026-03-02 13:00:42Z' FROM msg),
          'first retry after notify_backoff_ms (2 s) with jitter: between 1 and 2 s');
SELECT is((SELECT slack_send_failures::int FROM ops.notification_stats), 2, 'both failed attempts count as Slack failures');
SELECT is_empty($$SELECT * FROM ops.claim_notifications('w1', 10, '2026-03-02 13:00:40.9Z') WHERE id = (SELECT id FROM c)$$,
                'not claimed before its retry time');

-- the backoff doubles, is capped, and respects Retry-After
UPDATE ops.notification_outbox SET status = 'sending', attempts = 3, claim_id = 77 WHERE id = (SELECT id FROM c);
SELECT ops.finish_notifications('w1', jsonb_build_array(jsonb_build_object('id', (SELECT id FROM c), 'claim', 77,
                                'outcome', 'failed')), '2026-03-02 14:00Z');
SELECT ok((SELECT next_attempt_at BETWEEN '2026-03-02 14:00:04Z' AND '2026-03-02 14:00:08Z' FROM msg),
          'third attempt failed: 4 to 8 s');
SELECT ops.set_setting('notify_backoff_max_ms', '5000', 'alice');
UPDATE ops.notification_outbox SET status = 'sending', attempts = 6, claim_id = 78 WHERE id = (SELECT id FROM c);
SELECT ops.finish_notifications('w1', jsonb_build_array(jsonb_build_object('id', (SELECT id FROM c), 'claim', 78,
                                'outcome', 'failed')), '2026-03-02 14:00Z');
SELECT ok((SELECT next_attempt_at BETWEEN '2026-03-02 14:00:02.5Z' AND '2026-03-02 14:00:05Z' FROM msg),
          'capped by notify_backoff_max_ms');
UPDATE ops.notification_outbox SET status = 'sending', attempts = 1, claim_id = 79 WHERE id = (SELECT id FROM c);
SELECT ops.finish_notifications('w1', jsonb_build_array(jsonb_build_object('id', (SELECT id FROM c), 'claim', 79,
                                'outcome', 'failed', 'status', 429, 'retry_after_s', 30)), '2026-03-02 14:00Z');
SELECT is((SELECT next_attempt_at FROM msg), '2026-03-02 14:00:30Z'::timestamptz, 'a 429''s Retry-After is a floor');

-- skipped: not attempted, goes back as it was
UPDATE ops.notification_outbox SET status = 'sending', attempts = 2, claim_id = 80 WHERE id = (SELECT id FROM c);
SELECT is(ops.finish_notifications('w1', jsonb_build_array(jsonb_build_object('id', (SELECT id FROM c), 'claim', 80,
                                   'outcome', 'skipped')), '2026-03-02 14:01Z') ->> 'released', '1',
          'a message the dispatcher did not start is released');
SELECT results_eq($$SELECT status, attempts, next_attempt_at FROM msg$$,
                  $$VALUES ('pending', 1, '2026-03-02 14:01Z'::timestamptz)$$, 'a skipped message is due now, the attempt not counted');

-- a dispatcher that dies: its lease runs out and the message goes out again, same key
CREATE TEMP TABLE first_claim AS SELECT * FROM ops.claim_notifications('doomed', 10, '2026-03-02 14:01Z');
SELECT is((SELECT count(*)::int FROM first_claim WHERE id = (SELECT id FROM c)), 1, 'claimed by a dispatcher that then dies');
SELECT is_empty($$SELECT * FROM ops.claim_notifications('w2', 10, '2026-03-02 14:01:59Z') WHERE id = (SELECT id FROM c)$$,
                'one second before its lease ends nobody else takes it');
SELECT results_eq(
    $$SELECT dedup_key, attempt FROM ops.claim_notifications('w2', 10, '2026-03-02 14:02Z') WHERE id = (SELECT id FROM c)$$,
    $$SELECT dedup_key, 3 FROM first_claim WHERE id = (SELECT id FROM c)$$,
    'when it ends, another dispatcher claims it with the same dedup key');
SELECT results_eq(
    $$SELECT worker, outcome, attempt FROM ops.notification_attempts WHERE outbox_id = (SELECT id FROM c) AND outcome = 'lost'$$,
    $$VALUES ('doomed', 'lost', 2)$$, 'the lost attempt is on record');
SELECT is(ops.finish_notifications('doomed', jsonb_build_array(jsonb_build_object(
              'id', (SELECT id FROM c), 'claim', (SELECT claim_id FROM first_claim WHERE id = (SELECT id FROM c)),
              'outcome', 'sent', 'status', 200)), '2026-03-02 14:02:01Z') ->> 'stale', '1',
          'a late report from the dead dispatcher is counted stale');
SELECT is((SELECT status FROM msg), 'sending', 'a late report from the dead dispatcher does not touch the new claim');
SELECT is(ops.finish_notifications('w2', (SELECT jsonb_agg(jsonb_build_object('id', id, 'claim', claim_id, 'outcome', 'sent',
                                                           'status', 200, 'ms', 3)) FROM msg), '2026-03-02 14:02:02Z') ->> 'sent',
          '1', 'delivered');
SELECT results_eq($$SELECT status, sent_at, claimed_by, lease_until FROM msg$$,
                  $$VALUES ('sent', '2026-03-02 14:02:02Z'::timestamptz, NULL::text, NULL::timestamptz)$$,
                  'a delivered message is sent, the claim cleared');

-- dead letters, and their replay
SELECT ops.set_setting('notify_max_attempts', '2', 'alice');
CREATE TEMP VIEW msg_b AS SELECT o.* FROM ops.notification_outbox AS o WHERE o.incident_id = (SELECT b FROM t);
UPDATE ops.notification_outbox SET status = 'pending', attempts = 0, next_attempt_at = '2026-03-02 15:00Z', claim_id = NULL
WHERE id = (SELECT id FROM msg_b);
SELECT ops.finish_notifications('w1', (SELECT jsonb_agg(jsonb_build_object('id', id, 'claim', claim_id, 'outcome', 'failed',
                                                        'error', 'timed out'))
                                       FROM ops.claim_notifications('w1', 10, '2026-03-02 15:00Z')), '2026-03-02 15:00Z');
SELECT is((SELECT status FROM msg_b), 'pending', 'attempt 1 of 2 failed: retried');
SELECT is(ops.finish_notifications('w1', (SELECT jsonb_agg(jsonb_build_object('id', id, 'claim', claim_id, 'outcome', 'failed',
                                                           'error', 'timed out'))
                                          FROM ops.claim_notifications('w1', 10, '2026-03-02 15:10Z')), '2026-03-02 15:10Z') ->> 'dead',
          '1', 'attempt 2 of 2 failed: a dead letter');
SELECT results_eq($$SELECT status, attempts, last_error FROM msg_b$$, $$VALUES ('dead', 2, 'timed out')$$,
                  'a dead letter is kept, with why');
SELECT is_empty($$SELECT * FROM ops.claim_notifications('w1', 10, '2026-03-02 16:00Z')$$, 'dead letters are not claimed');
SELECT results_eq($$SELECT sent::int, dead_letters::int, pending::int, sending::int FROM ops.notification_stats$$,
                  $$VALUES (1, 1, 0, 0)$$, 'notification_stats counts sent, dead, pending and sending');
SELECT is(ops.replay_dead_notifications('alice'), 1, 'replay puts the dead letter back');
SELECT results_eq($$SELECT status, attempts FROM msg_b$$, $$VALUES ('pending', 0)$$,
                  'replay_dead_notifications puts the dead letter back pending, with fresh attempts');
SELECT is((SELECT actor FROM ops.audit_log WHERE table_name = 'notification_outbox'), 'alice', 'replay_dead_notifications is audited');

-- URL rotation: the webhook is read when a message is sent, not when it was queued
SELECT ops.set_setting('slack_webhook_url', 'https://hooks.slack.com/services/T/B/rotated', 'alice');
SELECT is((SELECT webhook_url FROM ops.claim_notifications('w1', 10, now()) WHERE id = (SELECT id FROM msg_b)),
          'https://hooks.slack.com/services/T/B/rotated', 'a pending message goes to the rotated URL');

-- pause
UPDATE ops.notification_outbox SET status = 'pending', claim_id = NULL WHERE id = (SELECT id FROM msg_b);
SELECT ops.set_setting('notify_paused', 'true', 'alice');
SELECT is_empty($$SELECT * FROM ops.claim_notifications('w1', 10, now())$$, 'paused: nothing is claimed');
SELECT ops.set_setting('notify_paused', 'false', 'alice');
SELECT results_eq($$SELECT id, webhook_url FROM ops.claim_notifications('w1', 10, now())$$,
                  $$SELECT id, 'https://hooks.slack.com/services/T/B/rotated' FROM msg_b$$,
                  'unpaused: the message goes out, to the rotated URL');

-- the boot check
SELECT is_empty($$SELECT * FROM ops.config_problems()$$, 'a valid configuration has no problems');
UPDATE ops.settings SET value = '"http://hooks.example.com/services/T/B/SECRET"' WHERE key = 'slack_webhook_url';
SELECT results_eq($$SELECT setting, problem FROM ops.config_problems()$$,
                  $$VALUES ('slack_webhook_url', 'webhook "http://hooks.example.com/…" must use https')$$,
                  'a webhook set around set_setting is named, its secret path hidden');
SELECT results_eq($$SELECT setting FROM ops.config_problems(60)$$, $$VALUES ('notify_lease_s'), ('slack_webhook_url')$$,
                  'a dispatcher whose timeout the lease cannot cover is told which setting to raise');

SELECT * FROM finish();
ROLLBACK;
