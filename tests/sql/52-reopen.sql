-- Re-opening a resolved incident by plain SQL while its key is active again: 23505 (the
-- unique index's SQLSTATE and constraint), with a message and hint naming the active incident;
-- the trigger runs only for a resolved row leaving resolved, so ticks and acks never call it.
BEGIN;
SELECT plan(15);

SELECT has_trigger('ops', 'incidents', 'incidents_before_reopen', 'incidents has the re-open trigger');
SELECT trigger_is('ops', 'incidents', 'incidents_before_reopen', 'ops', '_incidents_before_reopen',
                  'it calls ops._incidents_before_reopen');
SELECT matches(pg_get_triggerdef((SELECT oid FROM pg_trigger WHERE tgname = 'incidents_before_reopen')),
               'BEFORE UPDATE ON ops\.incidents FOR EACH ROW '
               || $$WHEN \(\(\(old\.status = 'resolved'::text\) AND \(new\.status <> 'resolved'::text\)\)\)$$,
               'a BEFORE UPDATE row trigger whose WHEN clause lets only a resolved row leaving resolved through');

-- an occurrence, resolved; the key fires again: a new occurrence is active
CREATE TEMP TABLE t AS
SELECT (ops.trigger_incident('GET /projects::slo_violation', 'critical', p_now => now() - interval '1 hour')).id AS old;
DO $$ BEGIN PERFORM ops.resolve_incident((SELECT old FROM t), 'alice', 'fixed'); END $$;
ALTER TABLE t ADD COLUMN active uuid;
UPDATE t SET active = (ops.trigger_incident('GET /projects::slo_violation', 'critical')).id;
GRANT SELECT ON t TO opsguard_operator;

-- what psql shows: state, message, hint, constraint
CREATE FUNCTION pg_temp.reopen_error(p_id uuid, p_status text) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
    v_message text;
    v_hint text;
    v_constraint text;
BEGIN
    UPDATE incidents SET status = p_status WHERE id = p_id;
    RETURN NULL;
EXCEPTION WHEN others THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_hint = PG_EXCEPTION_HINT, v_constraint = CONSTRAINT_NAME;
    RETURN ARRAY[v_state, v_message, v_hint, v_constraint];
END;
$$;
GRANT EXECUTE ON FUNCTION pg_temp.reopen_error(uuid, text) TO opsguard_operator;

SET LOCAL track_functions = 'all';
SET LOCAL ROLE opsguard_operator;

-- the operator's plain SQL, as the smoke test and the runbook write it
SELECT throws_ok(
    format($$UPDATE incidents SET status = 'open' WHERE id = %L$$, (SELECT old FROM t)),
    '23505',
    format('cannot re-open incident %s: incident %s is already active for key %L',
           (SELECT old FROM t), (SELECT active FROM t), 'GET /projects::slo_violation'),
    're-opening names the active incident (id and key), SQLSTATE 23505 as before');
SELECT is(
    (pg_temp.reopen_error((SELECT old FROM t), 'open'))[3],
    format('Work on the active incident %s (key %L) instead: ack, update or resolve it; '
           'or resolve it first, then re-open this one.', (SELECT active FROM t), 'GET /projects::slo_violation'),
    'the hint names the active incident and what to do');
SELECT is((pg_temp.reopen_error((SELECT old FROM t), 'open'))[4], 'incidents_one_active_per_key',
          'the constraint name is the unique index, as the bare 23505 had it');
SELECT is((pg_temp.reopen_error((SELECT old FROM t), 'acknowledged'))[1], '23505',
          're-opening straight to acknowledged is refused the same way');
SELECT results_eq($$SELECT status FROM incidents WHERE id IN (SELECT old FROM t)$$, $$VALUES ('resolved')$$,
                  'the refused re-open changed nothing');
SELECT lives_ok(
    format($$UPDATE incidents SET summary = 'post-mortem linked' WHERE id = %L$$, (SELECT old FROM t)),
    'a resolved incident that stays resolved can still be edited');

RESET ROLE;
-- ticks, acks, resolves and edits of resolved rows never call the trigger function
SELECT is((ops.escalation_tick(now() + interval '1 hour') ->> 'escalationsCount')::int, 1, 'the tick escalates the active one');
DO $$ BEGIN PERFORM ops.ack_incident((SELECT active FROM t), 'alice'); END $$;
-- (the refused attempts above are not counted: their subtransactions rolled back)
SELECT is(coalesce(pg_stat_get_xact_function_calls('ops._incidents_before_reopen'::regproc), 0), 0::bigint,
          'a tick, an ack and an edit of a resolved row never call the trigger function (its WHEN clause)');

DO $$ BEGIN PERFORM ops.resolve_incident((SELECT active FROM t), 'alice', 'fixed again'); END $$;
SET LOCAL ROLE opsguard_operator;
SELECT lives_ok(
    format($$UPDATE incidents SET status = 'open' WHERE id = %L$$, (SELECT old FROM t)),
    'with no other active incident for the key, re-opening works');
RESET ROLE;
SELECT results_eq(
    $$SELECT status, next_due_at IS NOT NULL, resolved_at FROM ops.incidents WHERE id IN (SELECT old FROM t)$$,
    $$VALUES ('open', true, NULL::timestamptz)$$,
    'the re-opened incident is open and due again');
SELECT is(coalesce(pg_stat_get_xact_function_calls('ops._incidents_before_reopen'::regproc), 0), 1::bigint,
          'that re-open called it, once');

-- re-opened under another key that is active: that key's incident is named
DO $$ BEGIN PERFORM ops.resolve_incident((SELECT old FROM t), 'alice', 'closed'); END $$;
ALTER TABLE t ADD COLUMN other uuid;
UPDATE t SET other = (ops.trigger_incident('GET /other::x', 'warning')).id;
SELECT throws_ok(
    format($$UPDATE ops.incidents SET status = 'open', incident_key = 'GET /other::x' WHERE id = %L$$,
           (SELECT active FROM t)),
    '23505',
    format('cannot re-open incident %s: incident %s is already active for key %L',
           (SELECT active FROM t), (SELECT other FROM t), 'GET /other::x'),
    'a re-open that also changes the key names the incident active under the new key');

SELECT * FROM finish();
ROLLBACK;
