-- GET /me/permissions (ops.api_me): the actor a signer names must exist and be enabled,
-- as ops.authorize requires on every other endpoint.
BEGIN;
SELECT plan(5);

SELECT ops.add_principal('alice', 'human', '{ops_responder}', 'admin');
SELECT ops.add_principal('pipeline', 'service', '{ci}', 'admin');

SELECT is(ops.api_me('ops-bot', NULL) ->> 'actor', 'ops-bot', 'without an actor the signer is shown');
SELECT is(ops.api_me('ops-bot', 'alice') -> 'roles', '["ops_responder"]'::jsonb, 'a delegating signer sees a known actor');
SELECT throws_ok($$SELECT ops.api_me('ops-bot', 'nobody-such')$$, '42501', NULL, 'an unknown actor is refused');
UPDATE ops.principals SET disabled = TRUE WHERE name = 'alice';
SELECT throws_ok($$SELECT ops.api_me('ops-bot', 'alice')$$, '42501', NULL, 'a disabled actor is refused');
SELECT throws_ok($$SELECT ops.api_me('pipeline', 'ops-bot')$$, '42501', NULL, 'a signer without actors.delegate may not name one');

SELECT * FROM finish();
ROLLBACK;
