-- Whom each escalation pages (docs/oncall.md): level N of an incident pages step N of its policy, each
-- escalation event records the principals and destinations resolved at escalation time, and the
-- outbox holds one message per destination with its own dedup key and the Slack mentions.
-- Schedules (0032) move with the clock; 2026-03-02 is a Monday. An incident opened at 12:00 is
-- due at 12:05, then every 30 minutes (snooze_min).
BEGIN;
SELECT plan(41);

DO $$
BEGIN
    PERFORM ops.add_principal(p, 'human', '{ops_responder}', 'admin') FROM unnest(ARRAY['alice', 'bob', 'carol', 'dave']) AS p;
    PERFORM ops.link_chat_identity('slack', 'T1', u, p, 'admin')
    FROM (VALUES ('alice', 'UALICE'), ('bob', 'UBOB'), ('carol', 'UCAROL')) AS x (p, u);
    -- primary: daily turns from Sunday 09:00 Berlin, so bob is on call on Monday; secondary: carol on Monday
    PERFORM ops.create_schedule('primary', 'Europe/Berlin', 'admin');
    PERFORM ops.add_rotation('primary', 'days', '1 day', '2026-03-01 09:00+01', ARRAY['alice', 'bob', 'carol'], 'admin');
    PERFORM ops.create_schedule('secondary', 'Europe/Berlin', 'admin');
    PERFORM ops.add_rotation('secondary', 'days', '1 day', '2026-03-02 09:00+01', ARRAY['carol', 'alice'], 'admin');
    PERFORM ops.create_policy('three', 'admin');
    PERFORM ops.add_policy_step('three', 1, '[{"schedule": "primary"}]', 'admin');
    PERFORM ops.add_policy_step('three', 2, '[{"schedule": "secondary"}]', 'admin');
    PERFORM ops.add_policy_step(
        'three', 3, '[{"principal": "dave"}, {"webhook": "https://hooks.example.com/services/T/B/s3cret"}]', 'admin');
    PERFORM ops.set_route_policy('GET /pay', 'three', 'admin');
END
$$;

CREATE TEMP TABLE t AS
SELECT (ops.trigger_incident('GET /pay::slo_violation', 'critical', p_now => '2026-03-02 12:00Z')).id AS a;
CREATE TEMP VIEW paged AS
SELECT
    e.escalation_level AS level,
    e.targets -> 'principals' AS principals,
    e.targets -> 'mentions' AS mentions,
    e.targets -> 'step' AS step
FROM ops.escalation_events AS e WHERE e.incident_id = (SELECT a FROM t);

-- level 1: the primary on-call
SELECT is((ops.escalation_tick('2026-03-02 12:05Z')) -> 'escalationsCount', '1'::jsonb, 'level 1 at 12:05');
SELECT results_eq($$SELECT level, principals, mentions, step FROM paged$$,
                  $$VALUES (1, '["bob"]'::jsonb, '["<@UBOB>"]'::jsonb, '1'::jsonb)$$,
                  'level 1 pages step 1: bob, on call in primary, mentioned by his Slack user');
SELECT is((SELECT targets -> 'destinations' FROM ops.escalation_events WHERE escalation_level = 1),
          '[{"type": "route"}]'::jsonb, 'level 1 pages step 1 through the route destination');
SELECT results_eq(
    $$SELECT dedup_key, webhook_url, payload -> 'mentions', payload -> 'principals' FROM ops.notification_outbox$$,
    $$SELECT ops.escalation_hash(a, 1), NULL::text, '["<@UBOB>"]'::jsonb, '["bob"]'::jsonb FROM t$$,
    'one message: the route destination keeps dedup_key = unique_hash, and carries the mentions');
SELECT is((SELECT ops.slack_message(payload) ->> 'text' FROM ops.notification_outbox),
          '[CRITICAL] GET /pay::slo_violation escalated to level 1 <@UBOB>', 'the Slack text mentions bob');
SELECT ok((SELECT ops.slack_message(payload) #>> '{blocks,0,text,text}' FROM ops.notification_outbox) LIKE E'%\nPaging <@UBOB>%',
          'the first Slack block mentions the paged bob too');

-- the schedule changes between levels: alice covers primary from 12:10
SELECT is((ops.add_override('primary', 'alice', '2026-03-02 12:10Z', '2026-03-02 14:00Z', 'admin', 'swap')).principal,
          'alice', 'alice takes over primary at 12:10');
SELECT is(ops.page_targets('three', 1, '2026-03-02 12:35Z') -> 'principals', '["alice"]'::jsonb,
          'page_targets: level 1 would now page alice');
SELECT is((SELECT principals FROM paged WHERE level = 1), '["bob"]'::jsonb,
          'the event already sent still says bob: the change is for the next escalation');
SELECT is((ops.escalation_tick('2026-03-02 12:05Z')) -> 'escalationsCount', '0'::jsonb,
          'the same tick run again sends nothing');
SELECT is((SELECT count(*)::int FROM ops.notification_outbox), 1, 'the same tick run again queues no message twice');

-- level 2: the secondary on-call; level 3: dave and a webhook
SELECT is((ops.escalation_tick('2026-03-02 12:35Z')) -> 'escalationsCount', '1'::jsonb, 'level 2 at 12:35');
SELECT is((ops.escalation_tick('2026-03-02 13:05Z')) -> 'escalationsCount', '1'::jsonb, 'level 3 at 13:05');
SELECT results_eq($$SELECT level, principals, mentions FROM paged ORDER BY level$$,
                  $$VALUES (1, '["bob"]'::jsonb, '["<@UBOB>"]'::jsonb), (2, '["carol"]', '["<@UCAROL>"]'),
                           (3, '["dave"]', '[]')$$,
                  'three steps paged three different principals: bob, carol, dave (no Slack user: no mention)');
SELECT is((SELECT targets -> 'destinations' FROM ops.escalation_events WHERE escalation_level = 3),
          jsonb_build_array(jsonb_build_object('type', 'route'),
                            jsonb_build_object('type', 'webhook', 'url', 'https://hooks.example.com/…',
                                               'sha256', left(encode(sha256('https://hooks.example.com/services/T/B/s3cret'),
                                                                     'hex'), 16))),
          'level 3 records two destinations, the webhook redacted with a short hash');
SELECT results_eq(
    $$SELECT dedup_key, webhook_url, payload ->> 'dedup_key' FROM ops.notification_outbox
      WHERE payload -> 'escalation_level' = '3' ORDER BY webhook_url NULLS FIRST$$,
    $$SELECT ops.escalation_hash(a, 3), NULL::text, ops.escalation_hash(a, 3) FROM t
      UNION ALL
      SELECT encode(sha256(convert_to(ops.escalation_hash(a, 3) || ':https://hooks.example.com/services/T/B/s3cret', 'UTF8')),
                    'hex'), 'https://hooks.example.com/services/T/B/s3cret',
             encode(sha256(convert_to(ops.escalation_hash(a, 3) || ':https://hooks.example.com/services/T/B/s3cret', 'UTF8')),
                    'hex') FROM t$$,
    'one message per destination, each with its own dedup key (in the column and the payload)');
SELECT is_empty($$SELECT 1 FROM ops.escalation_events WHERE targets::text LIKE '%s3cret%'
                  UNION ALL SELECT 1 FROM ops.notification_outbox WHERE payload::text LIKE '%s3cret%'$$,
                'the webhook secret is in no event and no payload');
SELECT is((SELECT count(DISTINCT dedup_key)::int FROM ops.notification_outbox), 4, 'four messages, four dedup keys');

-- replays: the same and later clocks send nothing twice
SELECT is((ops.escalation_tick('2026-03-02 13:05Z')) -> 'escalationsCount', '0'::jsonb, 'level 3 again: nothing');
SELECT is((ops.escalation_tick('2026-03-02 13:20Z')) -> 'escalationsCount', '0'::jsonb, 'before level 4 is due: nothing');
SELECT is((SELECT count(*)::int FROM ops.notification_outbox), 4, 'still four messages');

-- beyond the last step (repeat 0): the last step again
SELECT is((ops.escalation_tick('2026-03-02 13:35Z')) -> 'escalationsCount', '1'::jsonb, 'level 4 at 13:35');
SELECT is((SELECT (step, principals) FROM paged WHERE level = 4), row('3'::jsonb, '["dave"]'::jsonb),
          'level 4 is beyond the last step: it pages step 3 again');
SELECT is((SELECT count(*)::int FROM ops.notification_outbox WHERE payload -> 'escalation_level' = '4'), 2,
          'level 4, beyond the last step, pages both destinations of step 3');
SELECT ops.ack_incident(a, 'bob', p_now => '2026-03-02 13:40Z') FROM t;

-- repeat: the steps start over, then the last one stays
SELECT ops.create_policy('twice', 'admin', 1);
SELECT ops.add_policy_step('twice', 1, '[{"principal": "alice"}]', 'admin');
SELECT ops.add_policy_step('twice', 2, '[{"principal": "bob"}]', 'admin');
SELECT is((SELECT array_agg(ops.page_targets('twice', l, '2026-03-02 14:00Z') ->> 'principals' ORDER BY l)
           FROM generate_series(1, 6) AS l),
          ARRAY['["alice"]', '["bob"]', '["alice"]', '["bob"]', '["bob"]', '["bob"]'],
          'repeat 1: alice, bob, alice, bob, then bob until max_esc_level');
SELECT throws_ok($$SELECT ops.page_targets('nope', 1)$$, 'P0002', NULL, 'page_targets: unknown policy');
SELECT throws_ok($$SELECT ops.page_targets('twice', 0)$$, '22023', NULL, 'page_targets: level 0');

-- without a policy: today's behaviour, byte for byte
INSERT INTO t SELECT (ops.trigger_incident('GET /plain::slo_violation', 'critical', p_now => '2026-03-02 14:00Z')).id;
SELECT is((ops.escalation_tick('2026-03-02 14:05Z')) -> 'escalationsCount', '1'::jsonb, 'an incident on a route without a policy');
CREATE TEMP TABLE plain AS
SELECT
    e.*,
    o.dedup_key,
    o.webhook_url,
    o.payload
FROM ops.escalation_events AS e
INNER JOIN ops.notification_outbox AS o ON e.id = o.event_id WHERE e.incident_key = 'GET /plain::slo_violation';
SELECT is((SELECT count(*)::int FROM plain), 1, 'an incident on a route without a policy queues one message');
SELECT is((SELECT targets FROM plain), NULL, 'an incident on a route without a policy records no targets on its event');
SELECT is((SELECT (dedup_key = unique_hash AND webhook_url IS NULL) FROM plain), TRUE,
          'without a policy, dedup_key is unique_hash and the route webhook is read at send time');
SELECT is((SELECT payload::text FROM plain),
          (SELECT jsonb_build_object('dedup_key', unique_hash, 'incident_id', incident_id, 'incident_key', incident_key,
                                     'route', route, 'severity', severity, 'escalation_level', escalation_level,
                                     'escalated_at', escalated_at, 'link', NULL,
                                     'text', format('[%s] %s escalated to level %s', upper(severity), incident_key,
                                                    escalation_level))::text FROM plain),
          'without a policy, the payload is the one of before, byte for byte');

SELECT ops.ack_incident(incident_id, 'bob', p_now => '2026-03-02 14:10Z') FROM plain;

-- the default policy, and a dry run and the canary report whom they would page
SELECT ops.set_setting('default_policy', 'twice', 'admin');
SELECT ops.set_setting('dry_run', 'true', 'admin');
INSERT INTO t SELECT (ops.trigger_incident('GET /other::slo_violation', 'critical', p_now => '2026-03-02 15:00Z')).id;
SELECT is(((ops.escalation_tick('2026-03-02 15:05Z')) #> '{wouldEscalate,0}') - 'id',
          '{"why": "dry_run", "toLevel": 1, "fromLevel": 0, "wouldPage": ["alice"], "incidentKey": "GET /other::slo_violation"}'::jsonb,
          'dry run: a route without its own policy uses default_policy, and wouldPage names alice');
SELECT ops.set_setting('dry_run', 'false', 'admin');
SELECT ops.set_setting('canary_pct', '0', 'admin');
SELECT is((ops.escalation_tick('2026-03-02 15:06Z')) #> '{wouldEscalate,0,wouldPage}', '["alice"]'::jsonb,
          'outside the canary: wouldPage too');
SELECT is((SELECT count(*)::int FROM ops.escalation_events WHERE incident_key = 'GET /other::slo_violation'), 0,
          'a route outside the canary share is not escalated, only reported with wouldPage');
SELECT ops.set_setting('canary_pct', '100', 'admin');

-- a dangling default policy is none, reported; a removed schedule pages no one and is reported
UPDATE ops.settings SET value = '"ghost"' WHERE key = 'default_policy';
SELECT is((ops.escalation_tick('2026-03-02 15:07Z')) -> 'invalidSettings',
          '{"default_policy": "no escalation policy is named \"ghost\""}'::jsonb,
          'a default_policy naming no policy: the tick names it and treats it as none');
SELECT is((SELECT targets FROM ops.escalation_events WHERE incident_key = 'GET /other::slo_violation'), NULL,
          'a default_policy naming no policy pages as without a policy');
DELETE FROM ops.schedules WHERE name = 'secondary';
SELECT results_eq(
    -- (no one here has notification rules: 75-notification-rules.sql checks that warning)
    $$SELECT setting, blocking FROM ops.config_problems() WHERE problem NOT LIKE '% has no notification rules%'$$,
    $$VALUES ('default_policy', FALSE), ('escalation_policy_steps[three/2]', FALSE), ('principals[dave]', FALSE)$$,
    'config_problems: the dangling default, the step naming a removed schedule, dave without a Slack user; none blocks');
SELECT is((ops.page_targets('three', 2, '2026-03-02 16:00Z')) - 'policy',
          '{"step": 2, "mentions": [], "principals": [], "destinations": [{"type": "route"}]}'::jsonb,
          'a step whose schedule is gone pages no one, but still posts to the route channel');

-- a principal disabled after the step was set is paged no more
UPDATE ops.principals SET disabled = TRUE WHERE name = 'dave';
SELECT is(ops.page_targets('three', 3, '2026-03-02 16:00Z') -> 'principals', '[]'::jsonb,
          'a disabled principal is no longer paged by the step that names him');

-- a route's own policy wins over default_policy (docs/oncall.md, Escalation policies)
SELECT ops.set_setting('default_policy', 'twice', 'admin');
INSERT INTO t SELECT (ops.trigger_incident(k, 'critical', p_now => '2026-03-02 16:00Z')).id
FROM unnest(ARRAY['GET /pay::route_wins', 'GET /default::route_wins']) AS k;
SELECT ops.escalation_tick('2026-03-02 16:05Z');
SELECT results_eq(
    $$SELECT incident_key, targets ->> 'policy', targets -> 'principals' FROM ops.escalation_events
      WHERE incident_key LIKE '%::route_wins' ORDER BY incident_key$$,
    $$VALUES ('GET /default::route_wins', 'twice', '["alice"]'::jsonb), ('GET /pay::route_wins', 'three', '["bob"]'::jsonb)$$,
    'with default_policy set, GET /pay still pages by its own policy (bob); a route without one by the default (alice)');

SELECT * FROM finish();
ROLLBACK;
