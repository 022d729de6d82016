-- A schedule that cannot say who is on call (its zone unknown to this server after a tzdata
-- change, a row written around the checking functions) pages no one through it; the tick still
-- escalates every incident, the step's other targets and the route message still go out.
BEGIN;
SELECT plan(7);

DO $$
BEGIN
    PERFORM ops.add_principal(p, 'human', '{ops_responder}', 'admin') FROM unnest(ARRAY['alice', 'bob']) AS p;
    PERFORM ops.create_schedule('broken', 'Europe/Berlin', 'admin');
    PERFORM ops.add_rotation('broken', 'days', '1 day', '2026-03-01 09:00+01', ARRAY['bob'], 'admin');
    PERFORM ops.create_policy('pay', 'admin');
    PERFORM ops.add_policy_step('pay', 1, '[{"schedule": "broken"}, {"principal": "alice"}]', 'admin');
    PERFORM ops.set_route_policy('GET /pay', 'pay', 'admin');
END
$$;
CREATE TEMP TABLE t AS
SELECT
    (ops.trigger_incident('GET /pay::slo_violation', 'critical', p_now => '2026-03-02 12:00Z')).id AS a,
    (ops.trigger_incident('GET /other::slo_violation', 'critical', p_now => '2026-03-02 12:00Z')).id AS b;

-- the zone goes away underneath the schedule (written around ops.create_schedule, as a tzdata
-- update that drops a zone would leave it)
UPDATE ops.schedules SET time_zone = 'Atlantis/Poseidonis' WHERE name = 'broken';
SELECT throws_ok($$SELECT ops.on_call('broken', '2026-03-02 12:05Z')$$, '22023', NULL,
                 'ops.on_call of the broken schedule raises');

SELECT is((ops.escalation_tick('2026-03-02 12:05Z')) -> 'escalationsCount', '2'::jsonb,
          'the tick still escalates both incidents, the one on the policy naming the schedule too');
SELECT is((SELECT targets -> 'principals' FROM ops.escalation_events WHERE incident_id = (SELECT a FROM t)),
          '["alice"]'::jsonb, 'the step pages its other target; the broken schedule adds no one');
SELECT is((SELECT targets -> 'destinations' FROM ops.escalation_events WHERE incident_id = (SELECT a FROM t)),
          '[{"type": "route"}]'::jsonb, 'a step with a broken schedule still pages its other target through the route message');
SELECT is((SELECT count(*)::int FROM ops.notification_outbox), 2, 'one message per incident is queued');
SELECT is(ops.page_targets('pay', 1, '2026-03-02 12:05Z') -> 'principals', '["alice"]'::jsonb,
          'page_targets answers the same instead of failing');
SELECT ok(NOT has_function_privilege('opsguard_operator', 'ops._on_call_or_nobody(text, timestamptz)', 'EXECUTE')
          AND NOT has_function_privilege('opsguard_api', 'ops._on_call_or_nobody(text, timestamptz)', 'EXECUTE'),
          'the wrapper is internal');

SELECT * FROM finish();
ROLLBACK;
