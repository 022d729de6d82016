-- Who may write audit_log (0019, 0038, 0045): only ops._audit_changes() and ops._audit_replay(),
-- run by the triggers on the audited tables, known by the role their INSERT runs as (they belong
-- to opsguard_audit_writer), never by the text of the call stack, which a statement can imitate.
-- 06-operator-writes.sql refuses the owner by hand, a code block and a borrowed name at the top
-- level; here the forger is itself a trigger function, as the real writers are (trigger depth 2).
-- And ops.current_actor(), which every audit row reads, gives the same answers while PostgreSQL
-- inlines it (0038).
BEGIN;
SELECT plan(16);

-- from inside a trigger function: the writer check then runs at trigger depth 2, as for the real ones
CREATE SCHEMA t71;
CREATE TABLE t71.poke (n int);
CREATE FUNCTION t71._audit_forger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ops.audit_log (actor, action, table_name, row_key, changes)
    VALUES ('mallory', 'UPDATE', 'incidents', 'x', '{}');
    RETURN NULL;
END;
$$;
-- an SQL-language function between: the line above the INSERT reads "SQL function"
CREATE FUNCTION t71.sql_forger() RETURNS void LANGUAGE sql AS $$
    INSERT INTO ops.audit_log (actor, action, table_name, row_key, changes)
    VALUES ('mallory', 'UPDATE', 'incidents', 'x', '{}');
$$;
CREATE FUNCTION t71._audit_via_sql() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM t71.sql_forger();
    RETURN NULL;
END;
$$;

CREATE TRIGGER a AFTER INSERT ON t71.poke FOR EACH STATEMENT EXECUTE FUNCTION t71._audit_forger();
SELECT throws_ok($$INSERT INTO t71.poke VALUES (1)$$, '42501', 'audit_log rows are written only by the audit triggers',
                 'a trigger function of another name cannot add one');
-- the same forger under the real trigger function's name, in another schema
ALTER FUNCTION t71._audit_forger() RENAME TO _audit_changes;
SELECT throws_ok($$INSERT INTO t71.poke VALUES (1)$$, '42501', 'audit_log rows are written only by the audit triggers',
                 'a trigger function named _audit_changes outside ops cannot add an audit row');
DROP TRIGGER a ON t71.poke;
CREATE TRIGGER a AFTER INSERT ON t71.poke FOR EACH STATEMENT EXECUTE FUNCTION t71._audit_via_sql();
SELECT throws_ok($$INSERT INTO t71.poke VALUES (1)$$, '42501', 'audit_log rows are written only by the audit triggers',
                 'an SQL function a trigger calls cannot add an audit row');
-- a statement that carries, in a comment, the very context line the real writer's INSERT shows:
-- a check that read the call stack's text took the copy for the caller
DROP TRIGGER a ON t71.poke;
CREATE FUNCTION t71.imitator() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ops.audit_log (actor, action, table_name, row_key, changes)
    VALUES ('mallory', 'UPDATE', 'incidents', 'x', '{}') /* "
PL/pgSQL function ops._audit_changes() line 9 at SQL statement
*/;
    RETURN NULL;
END;
$$;
CREATE TRIGGER a AFTER INSERT ON t71.poke FOR EACH STATEMENT EXECUTE FUNCTION t71.imitator();
SELECT throws_ok($$INSERT INTO t71.poke VALUES (1)$$, '42501', 'audit_log rows are written only by the audit triggers',
                 'a statement imitating the real writer''s context line cannot add an audit row');
SELECT is((SELECT count(*)::int FROM ops.audit_log WHERE actor = 'mallory'), 0, 'none of them left a row');

-- the writers are known by the role their INSERT runs as: one nobody logs in as or belongs to,
-- owning the two audit trigger functions and nothing else
SELECT results_eq(
    $$SELECT p.oid::regprocedure FROM pg_proc AS p WHERE p.proowner = 'opsguard_audit_writer'::regrole ORDER BY 1$$,
    $$VALUES ('ops._audit_changes()'::regprocedure), ('ops._audit_replay()'::regprocedure) ORDER BY 1$$,
    'opsguard_audit_writer owns the two audit trigger functions and no other function');
SELECT is_empty($$SELECT 1 FROM pg_class WHERE relowner = 'opsguard_audit_writer'::regrole$$, 'opsguard_audit_writer owns no table');
SELECT is((SELECT (NOT rolcanlogin AND NOT rolsuper AND NOT rolcreaterole AND NOT rolbypassrls)
           FROM pg_roles WHERE rolname = 'opsguard_audit_writer'), true, 'opsguard_audit_writer cannot log in and has no attribute');
SELECT is_empty($$SELECT member::regrole FROM pg_auth_members WHERE roleid = 'opsguard_audit_writer'::regrole$$,
                'no role is a member of opsguard_audit_writer');
-- the real writer (06-operator-writes.sql has the other, a dead letter put back in the queue)
SELECT ops.set_route_webhook('GET /w71', 'https://hooks.example.com/w71', 'alice');
SELECT is((SELECT actor FROM ops.audit_log WHERE table_name = 'route_webhooks' AND row_key = 'GET /w71'), 'alice',
          'the audit trigger still writes its row');

-- ops.current_actor(): the setting when set and not empty, else the database user
SELECT is(ops.current_actor(), session_user::text, 'no actor set: the database user');
SELECT set_config('opsguard.actor', 'bob', true);
SELECT is(ops.current_actor(), 'bob', 'opsguard.actor set: that name');
SELECT set_config('opsguard.actor', '', true);
SELECT is(ops.current_actor(), session_user::text, 'set to empty: the database user again');
SELECT ok(has_function_privilege('opsguard_operator', 'ops.current_actor()', 'EXECUTE'),
          'operators may still call it');
SELECT ok(NOT has_function_privilege('public', 'ops.current_actor()', 'EXECUTE'), 'PUBLIC still may not call ops.current_actor');
-- inlined: an inlined function is never called, so track_functions counts no call of it
SELECT set_config('track_functions', 'all', true);
SELECT count(ops.current_actor()) FROM generate_series(1, 10);
SELECT is((SELECT coalesce(sum(calls), 0)::int FROM pg_stat_xact_user_functions WHERE funcid = 'ops.current_actor()'::regprocedure),
          0, 'PostgreSQL inlines ops.current_actor() (a definer or a SET clause would stop it)');

SELECT * FROM finish();
ROLLBACK;
