-- Objects in public cannot change what an ops function does. The database's
-- default search_path is "$user", public, ops: pg_catalog comes first, but a function in public
-- whose argument types match exactly beats a polymorphic built-in (to_jsonb(anyelement),
-- text || anynonarray), and anyone with CREATE on public (the default before PostgreSQL 15)
-- could create one. With such traps in place, the seeds' SQL, a tick, an ack, a guard call and
-- the audited verbs behave exactly as without them: every function pins its search_path.
BEGIN;
SELECT plan(14);

SELECT is(current_setting('search_path'), '"$user", public, ops', 'the session runs under the database''s default search_path');

CREATE TEMP TABLE t AS
SELECT (ops.trigger_incident('GET /a::slo_violation', 'critical', p_now => now() - interval '6 minutes')).id AS a;
SELECT ops.record_requests(jsonb_agg(jsonb_build_object('route', 'GET /a', 'status', CASE WHEN g <= 60 THEN 500 ELSE 200 END,
                                                        'latency_ms', 10, 'at', now() - interval '20 seconds')))
FROM generate_series(1, 100) AS g;
GRANT SELECT ON t TO opsguard_operator;

-- the traps: each raises, so a function that resolves to one fails loudly
CREATE FUNCTION public.to_jsonb(ops.incidents) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'trap: public.to_jsonb(incidents)'; END;
$$;
CREATE FUNCTION public.to_jsonb(ops.guard_overrides) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'trap: public.to_jsonb(guard_overrides)'; END;
$$;
CREATE FUNCTION public.to_jsonb(ops.settings) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'trap: public.to_jsonb(settings)'; END;
$$;
CREATE FUNCTION public.to_jsonb(text) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'trap: public.to_jsonb(text)'; END;
$$;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'trap: public.now()'; END;
$$;
-- text || integer: escalation_hash builds the dedup key with it
CREATE FUNCTION public.trap_concat(text, integer) RETURNS text LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'trap: public.||(text, integer)'; END;
$$;
-- (through EXECUTE: sqlfluff cannot parse CREATE/DROP OPERATOR)
DO $$ BEGIN EXECUTE 'CREATE OPERATOR public.|| (LEFTARG = text, RIGHTARG = integer, FUNCTION = public.trap_concat)'; END $$;
-- coalesce, nullif and greatest are syntax, not functions: one in public is never called
CREATE FUNCTION public.coalesce(text, text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'trap: public.coalesce(text, text)'; END;
$$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO public;

-- the traps are armed: code that does not pin its search_path walks into them
CREATE TEMP TABLE armed (what text, outcome text);
GRANT INSERT ON armed TO opsguard_operator;
DO $$
DECLARE
    v_lvl int := 2;
BEGIN
    BEGIN
        PERFORM to_jsonb(i) FROM ops.incidents AS i;
    EXCEPTION WHEN raise_exception THEN
        INSERT INTO armed VALUES ('to_jsonb', SQLERRM);
    END;
    BEGIN
        PERFORM 'level ' || v_lvl;
    EXCEPTION WHEN raise_exception THEN
        INSERT INTO armed VALUES ('||', SQLERRM);
    END;
END;
$$;

-- smoke step 1, the seeds' direct UPDATE, as an operator
SET LOCAL ROLE opsguard_operator;
-- noqa: disable=LT01,LT08
UPDATE incidents
SET status='open',
    severity='critical',
    acknowledged_at=NULL,
    escalation_level=1,
    first_seen=now() - interval '6 minutes',
    last_seen=now()
WHERE id IN (SELECT a FROM t);
-- noqa: enable=all
RESET ROLE;
-- pg_cron's tick runs as the owner
CREATE TEMP TABLE tick AS SELECT ops.escalation_tick(now() + interval '4 minutes') AS summary;
SET LOCAL ROLE opsguard_operator;
CREATE TEMP TABLE ack AS SELECT (ops.ack_incident((SELECT a FROM t), 'alice')).status;
CREATE TEMP TABLE guard AS SELECT ops.release_guard(now()) AS verdict;
CREATE TEMP TABLE exempt AS
SELECT (ops.override_guard_item('GET /a::error_rate_critical', 'known', 60, 'ops-bot', now())).item_key;
CREATE TEMP TABLE setting AS SELECT (ops.set_setting('snooze_min', '15', 'alice')).value;
RESET ROLE;

-- all behaved; the traps go before pgTAP reads the results (it concatenates text and integers)
DO $$ BEGIN EXECUTE 'DROP OPERATOR public.|| (text, integer)'; END $$;
DROP FUNCTION public.trap_concat(text, integer), public.to_jsonb(ops.incidents), public.to_jsonb(ops.guard_overrides),
              public.to_jsonb(ops.settings), public.to_jsonb(text), public.now(), public.coalesce(text, text);

SELECT set_eq($$SELECT what || ': ' || outcome FROM armed$$,
              ARRAY['to_jsonb: trap: public.to_jsonb(incidents)', '||: trap: public.||(text, integer)'],
              'the traps catch code that does not pin its search_path');
SELECT is((SELECT summary ->> 'escalationsCount' FROM tick), '1', 'the tick escalates');
SELECT is((SELECT escalation_level FROM ops.incidents WHERE id = (SELECT a FROM t)), 2,
          'with traps in public, the tick escalates from level 1 to 2');
SELECT is((SELECT unique_hash FROM ops.escalation_events WHERE incident_id = (SELECT a FROM t) AND escalation_level = 2),
          encode(sha256(convert_to((SELECT a FROM t)::text || ':2', 'UTF8')), 'hex'),
          'with traps in public, the level-2 dedup key is built by the real ||');
SELECT is((SELECT count(*)::int FROM ops.notification_outbox WHERE incident_id = (SELECT a FROM t)), 1,
          'with traps in public, the tick queues its page');
SELECT is((SELECT status FROM ack), 'acknowledged', 'the ack works');
SELECT is((SELECT verdict -> 'failing' -> 0 ->> 'reason' FROM guard), 'error_rate_critical',
          'the guard finds the failing route');
SELECT is((SELECT item_key FROM exempt), 'GET /a::error_rate_critical', 'an override is recorded');
SELECT is((SELECT value FROM setting), '15'::jsonb, 'a setting changes');
SELECT results_eq(
    $$SELECT table_name, action, actor FROM ops.audit_log
      WHERE table_name <> 'incidents' OR row_key = (SELECT a::text FROM t) ORDER BY id$$,
    $$VALUES ('incidents', 'INSERT', 'ops-bot'), ('incidents', 'UPDATE', session_user::text COLLATE "default"),
             ('incidents', 'UPDATE', 'opsguard:tick'), ('incidents', 'UPDATE', 'alice'),
             ('guard_overrides', 'INSERT', 'ops-bot'), ('settings', 'UPDATE', 'alice')$$,
    'every change is in the audit log, with its actor');
SELECT is((SELECT changes -> 'escalation_level' FROM ops.audit_log WHERE actor = 'opsguard:tick'), '[1, 2]'::jsonb,
          'the tick''s audit row holds the real diff');
SELECT is((SELECT changes -> 'status' FROM ops.audit_log WHERE actor = 'alice' AND table_name = 'incidents'),
          '["open", "acknowledged"]'::jsonb, 'the ack''s too');
SELECT is(to_jsonb('x'::text), '"x"'::jsonb, 'and with the traps gone, the session''s own to_jsonb is the built-in again');

SELECT * FROM finish();
ROLLBACK;
