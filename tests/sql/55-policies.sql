-- Escalation policies (docs/oncall.md): created, stepped and mapped to routes by ops.create_policy,
-- ops.add_policy_step, ops.remove_policy_step, ops.set_route_policy and the default_policy setting;
-- every bad input is a SQLSTATE with a hint and writes nothing; every change is audited.
-- ops.policy_step: which step each level pages.
BEGIN;
SELECT plan(61);

SELECT ops.add_principal(p, 'human', '{ops_responder}', 'admin') FROM unnest(ARRAY['alice', 'bob', 'gone']) AS p;
UPDATE ops.principals SET disabled = TRUE WHERE name = 'gone';
SELECT ops.create_schedule('primary', 'Europe/Berlin', 'admin');

-- which step a level pages: 1..n, round again repeat times, then the last step
SELECT is((SELECT array_agg(ops.policy_step(3, 0, l) ORDER BY l) FROM generate_series(1, 7) AS l), ARRAY[1, 2, 3, 3, 3, 3, 3],
          'three steps, no repeat: levels 1-3 page steps 1-3, later levels the last step');
SELECT is((SELECT array_agg(ops.policy_step(3, 1, l) ORDER BY l) FROM generate_series(1, 9) AS l), ARRAY[1, 2, 3, 1, 2, 3, 3, 3, 3],
          'three steps, repeat 1: the steps twice, then the last step');
SELECT is((SELECT array_agg(ops.policy_step(2, 2, l) ORDER BY l) FROM generate_series(1, 8) AS l), ARRAY[1, 2, 1, 2, 1, 2, 2, 2],
          'two steps, repeat 2: three rounds, then the last step');
SELECT is((SELECT array_agg(ops.policy_step(1, 5, l) ORDER BY l) FROM generate_series(1, 3) AS l), ARRAY[1, 1, 1],
          'one step pages every level');
SELECT is(ops.policy_step(0, 0, 1), NULL, 'no steps: no step (today''s behaviour)');
SELECT is(ops.policy_step(3, 0, 0), NULL, 'level 0 pages nothing');

-- create_policy
SELECT is((SELECT (name, repeat, created_by) FROM ops.create_policy('payments', 'alice', 1)),
          row('payments'::text, 1, 'alice'::text), 'a policy is created with its repeat');
SELECT is((SELECT count(*)::int FROM ops.audit_log
           WHERE table_name = 'escalation_policies' AND action = 'INSERT' AND actor = 'alice' AND row_key = 'payments'),
          1, 'creating a policy is audited with the actor');
SELECT is((ops.create_policy('plain', 'alice')).repeat, 0, 'repeat defaults to 0');
SELECT throws_ok($$SELECT ops.create_policy('payments', 'alice')$$, '23505', 'escalation policy "payments" exists',
                 'a name is used once');
SELECT throws_ok($$SELECT ops.create_policy('no spaces', 'alice')$$, '22023', 'invalid policy name "no spaces"',
                 'names are checked');
SELECT throws_ok($$SELECT ops.create_policy('p2', 'alice', -1)$$, '22003', 'repeat must be between 0 and 20, not -1',
                 'a negative repeat is refused');
SELECT throws_ok($$SELECT ops.create_policy('p2', 'alice', 21)$$, '22003', NULL, 'a repeat over 20 is refused');
SELECT throws_ok($$SELECT ops.create_policy('p2', 'alice', NULL)$$, '22003', NULL, 'a NULL repeat is refused');
SELECT throws_ok($$SELECT ops.create_policy('p2', ' ')$$, '22004', NULL, 'an actor is required');
SELECT is((SELECT count(*)::int FROM ops.escalation_policies WHERE name = 'p2'), 0, 'a refused policy is not stored');

-- add_policy_step: every kind of target
SELECT is((SELECT (step, targets, updated_by) FROM ops.add_policy_step('payments', 1, '[{"schedule": "primary"}]', 'alice')),
          row(1, '[{"schedule": "primary"}]'::jsonb, 'alice'::text), 'step 1: a schedule');
SELECT is((ops.add_policy_step('payments', 2, '[{"principal": "alice"}, {"principal": "bob"}]', 'alice')).step, 2,
          'step 2 is appended: two principals');
SELECT is((ops.add_policy_step('payments', 3, '[{"webhook": "https://hooks.slack.com/services/T/B/x"}, {"schedule": "primary"}]',
                                'bob')).step, 3, 'step 3: a webhook and a schedule');
SELECT is((SELECT count(*)::int FROM ops.audit_log WHERE table_name = 'escalation_policy_steps' AND action = 'INSERT'),
          3, 'each new step is audited');
SELECT is((ops.add_policy_step('payments', 2, '[{"principal": "bob"}]', 'carol')).targets, '[{"principal": "bob"}]'::jsonb,
          'an existing step is replaced');
SELECT is((SELECT changes -> 'targets' FROM ops.audit_log
           WHERE table_name = 'escalation_policy_steps' AND action = 'UPDATE' AND actor = 'carol'),
          '[[{"principal": "alice"}, {"principal": "bob"}], [{"principal": "bob"}]]'::jsonb,
          'replacing a policy step is audited with the old and new targets');

-- bad steps and targets: a SQLSTATE naming the bad element, and nothing written
CREATE TEMP TABLE before_steps AS SELECT * FROM ops.escalation_policy_steps;
CREATE TEMP TABLE audit_before AS SELECT count(*) AS n FROM ops.audit_log;
SELECT throws_ok($$SELECT ops.add_policy_step('payments', 5, '[{"principal": "bob"}]', 'alice')$$, '22023',
                 'steps out of order: policy payments has 3 step(s), so step 5 cannot be set',
                 'a gap in the steps is refused');
SELECT throws_ok($$SELECT ops.add_policy_step('payments', 0, '[{"principal": "bob"}]', 'alice')$$, '22023', NULL,
                 'step 0 is refused');
SELECT throws_ok($$SELECT ops.add_policy_step('payments', NULL, '[{"principal": "bob"}]', 'alice')$$, '22023', NULL,
                 'a NULL step is refused');
SELECT throws_ok($$SELECT ops.add_policy_step('nope', 1, '[{"principal": "bob"}]', 'alice')$$, 'P0002',
                 'unknown escalation policy "nope"', 'an unknown policy');
SELECT throws_ok($$SELECT ops.add_policy_step('payments', 1, '[{"principal": "zed"}]', 'alice')$$, '23503',
                 'target 1 of the step names unknown principal "zed"', 'an unknown principal');
SELECT throws_ok($$SELECT ops.add_policy_step('payments', 1, '[{"principal": "bob"}, {"schedule": "secondary"}]', 'alice')$$,
                 '23503', 'target 2 of the step names unknown schedule "secondary"', 'an unknown schedule, named by position');
SELECT throws_ok($$SELECT ops.add_policy_step('payments', 1, '[{"principal": "gone"}]', 'alice')$$, '23503',
                 'target 1 of the step names disabled principal "gone"', 'a disabled principal');
SELECT throws_ok($$SELECT ops.add_policy_step('payments', 1, '[{"webhook": "http://hooks.example.com/T/secret"}]', 'alice')$$,
                 '22023', 'target 1 of the step: webhook "http://hooks.example.com/…" must use https',
                 'a plain-http webhook, its secret path redacted in the message');
SELECT throws_ok($$SELECT ops.add_policy_step('payments', 1, '{"webhook": "https://hooks.example.com/T/secret"}', 'alice')$$,
                 '22023', 'step targets must be a JSON array of 1 to 20 targets, not {"webhook": "https://hooks.example.com/…"}',
                 'targets that are no array: the message redacts the webhook path');
SELECT throws_ok(
    $$SELECT ops.add_policy_step('payments', 1, '[{"webhook": "https://hooks.example.com/T/secret", "principal": "bob"}]', 'alice')$$,
    '22023',
    'target 1 of the step is not a schedule, a principal or a webhook: {"webhook": "https://hooks.example.com/…", "principal": "bob"}',
    'a target with two keys: its webhook path redacted too');
SELECT throws_ok($$SELECT ops.add_policy_step('payments', 1, '[]', 'alice')$$, '22023', NULL, 'no targets');
SELECT throws_ok($$SELECT ops.add_policy_step('payments', 1, '{"principal": "bob"}', 'alice')$$, '22023', NULL,
                 'an object, not an array');
SELECT throws_ok($$SELECT ops.add_policy_step('payments', 1, NULL, 'alice')$$, '22023', NULL, 'NULL targets');
SELECT throws_ok(
    $$SELECT ops.add_policy_step('payments', 1, (SELECT jsonb_agg(jsonb_build_object('principal', 'bob'))
                                                   FROM generate_series(1, 21)), 'alice')$$,
    '22023', NULL, 'more than 20 targets');
SELECT throws_ok($$SELECT ops.add_policy_step('payments', 1, '[{"principal": "bob", "schedule": "primary"}]', 'alice')$$,
                 '22023', 'target 1 of the step is not a schedule, a principal or a webhook: {"schedule": "primary", "principal": "bob"}',
                 'a target with two keys');
SELECT throws_ok($$SELECT ops.add_policy_step('payments', 1, '[{"principal": "bob"}, {"team": "x"}]', 'alice')$$,
                 '22023', 'target 2 of the step is not a schedule, a principal or a webhook: {"team": "x"}',
                 'an unknown kind of target');
SELECT throws_ok($$SELECT ops.add_policy_step('payments', 1, '[{"principal": 7}]', 'alice')$$, '22023', NULL,
                 'a name that is no string');
SELECT throws_ok($$SELECT ops.add_policy_step('payments', 1, '["bob"]', 'alice')$$, '22023', NULL,
                 'a bare string is no target');
SELECT throws_ok($$SELECT ops.add_policy_step('payments', 1, '[{"principal": "bob"}, {"principal": "bob"}]', 'alice')$$,
                 '22023', 'target 2 of the step repeats an earlier one: {"principal": "bob"}', 'a target named twice');
SELECT throws_ok($$SELECT ops.add_policy_step('payments', 1, '[{"principal": "bob"}]', NULL)$$, '22004', NULL,
                 'an actor is required');
SELECT set_eq($$SELECT policy, step, targets FROM ops.escalation_policy_steps$$,
              $$SELECT policy, step, targets FROM before_steps$$, 'no refused step changed the steps');
SELECT is((SELECT count(*) FROM ops.audit_log), (SELECT n FROM audit_before), 'a refused policy step writes no audit row');

-- remove_policy_step: the last step only
SELECT throws_ok($$SELECT ops.remove_policy_step('payments', 2, 'alice')$$, '22023',
                 'only the last step can be removed: policy payments has 3 step(s), not step 2', 'not a middle step');
SELECT throws_ok($$SELECT ops.remove_policy_step('plain', 1, 'alice')$$, '22023', NULL, 'a policy without steps');
SELECT throws_ok($$SELECT ops.remove_policy_step('nope', 1, 'alice')$$, 'P0002', NULL, 'an unknown policy');
SELECT is((ops.remove_policy_step('payments', 3, 'dave')).step, 3, 'the last step is removed');
SELECT is((SELECT count(*)::int FROM ops.audit_log
           WHERE table_name = 'escalation_policy_steps' AND action = 'DELETE' AND actor = 'dave'), 1,
          'removing the last policy step is audited');
SELECT is((ops.add_policy_step('payments', 3, '[{"principal": "alice"}]', 'alice')).step, 3, 'and appended again');

-- route policies
SELECT is((SELECT (route, policy) FROM ops.set_route_policy('GET /pay', 'payments', 'alice')),
          row('GET /pay'::text, 'payments'::text), 'a route gets a policy');
SELECT is((ops.set_route_policy('GET /pay', 'plain', 'bob')).policy, 'plain', 'and another');
SELECT is((SELECT array_agg(action || ' ' || actor ORDER BY id) FROM ops.audit_log WHERE table_name = 'route_policies'),
          ARRAY['INSERT alice', 'UPDATE bob'], 'route policies are audited');
SELECT throws_ok($$SELECT ops.set_route_policy('GET /pay', 'nope', 'alice')$$, '23503', 'unknown escalation policy "nope"',
                 'an unknown policy is refused');
SELECT throws_ok($$SELECT ops.set_route_policy('', 'plain', 'alice')$$, '22023', NULL, 'an empty route is refused');
SELECT is((SELECT policy FROM ops.route_policies WHERE route = 'GET /pay'), 'plain', 'a refused change changes nothing');
SELECT is((ops.set_route_policy('GET /pay', NULL, 'carol')).policy, 'plain', 'NULL removes the mapping, returning it');
SELECT is_empty($$SELECT * FROM ops.route_policies$$, 'a route policy set to NULL is gone from route_policies');

-- the default_policy setting names a policy or nothing
SELECT is((ops.set_setting('default_policy', 'payments', 'alice')).value, '"payments"'::jsonb, 'default_policy is set');
SELECT throws_ok($$SELECT ops.set_setting('default_policy', 'nope', 'alice')$$, '22023',
                 'setting default_policy names no escalation policy: "nope"', 'a name that is no policy is refused');
SELECT is((ops.set_setting('default_policy', '', 'alice')).value, '""'::jsonb, 'empty: no default policy');

SELECT * FROM finish();
ROLLBACK;
