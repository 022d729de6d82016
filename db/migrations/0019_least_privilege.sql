-- depends: 0018_tick_speed
-- Least privilege (issue 10, points 3-4). Until now an operator could write every table:
-- mark a page sent, forge audit rows and escalation events (a forged next unique_hash made
-- the real escalation skip its notification), edit RBAC with no audit row, and run every
-- internal function. And no function pinned its search_path, so a to_jsonb() created in
-- public (the default before PostgreSQL 15) broke every audited write, pg_cron ticks included.
--
-- After this migration:
--   * every function in ops runs with search_path = ops, pg_temp (pg_catalog is searched
--     first implicitly), so objects created in public cannot change what it does;
--   * operator verbs (names not starting with _ or api_) and trigger functions are SECURITY
--     DEFINER: they validate and audit, so operators need no table write privilege;
--   * operators keep SELECT on everything and UPDATE on ops.incidents (the seeds' SQL, audited
--     by its triggers), and EXECUTE on the verbs only: not on _* internals, api_* (the API's
--     own authorization) or the dispatcher's claim/finish/wait;
--   * audit_log rows come only from the audit triggers; the RBAC tables are audited;
--     guard_overrides cannot be truncated, like the audit log and the events.

-- trigger functions: definer, so a direct UPDATE by an operator can write the audit log and events
ALTER FUNCTION ops._audit_changes() SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._forbid_change() SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._incidents_before_write() SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._recalc_after_change() SECURITY DEFINER SET search_path = ops, pg_temp;
-- operator verbs: definer, so operators need no table write privilege
ALTER FUNCTION ops.ack_incident(uuid, text, text, timestamptz) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.add_principal(text, text, text[], text, text) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.authorize(text, text, text) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.collect_metrics(timestamptz) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.cron_job_last_run(text) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.cron_matches(text, timestamptz) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.current_actor() SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.escalation_hash(uuid, integer) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.escalation_tick(timestamptz, text) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.evaluate_alerts(timestamptz) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.evaluate_routes(timestamptz) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.grant_role(text, text, text) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.has_permission(text, text) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.incident_json(ops.incidents) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.install_cron_jobs() SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.installed_at() SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.link_chat_identity(text, text, text, text, text) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.next_due(ops.incidents) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.override_guard_item(text, text, integer, text, timestamptz) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.pg_cron_status() SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.purge_guard_history(timestamptz) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.purge_history(timestamptz) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.recalc_next_due() SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.record_requests(jsonb) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.release_guard(timestamptz, text, text, jsonb) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.resolve_incident(uuid, text, text, timestamptz) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.revoke_role(text, text, text) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.route_bucket(text) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.route_findings(timestamptz, text) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.route_in_canary(text, integer) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.route_slo(text) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.set_route_slo(text, numeric, integer, text, integer, numeric) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.set_route_webhook(text, text, text) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.set_setting(text, text, text) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.set_sla(text, integer, text) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.setting(text) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.slack_escape(text) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.slack_message(jsonb) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.snooze_incident(uuid, integer, text, timestamptz) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.trigger_incident(text, text, text, text, text, timestamptz) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.unlink_chat_identity(text, text, text, text) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.use_ops_search_path() SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.use_utc() SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.validate_url(text, text) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.webhook_for(text) SECURITY DEFINER SET search_path = ops, pg_temp;
-- internal helpers: pinned, and run as whoever calls them (always definer code: operators may not)
ALTER FUNCTION ops._act_as(text, text) SECURITY INVOKER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._api_begin(text, text, text, text) SECURITY INVOKER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._counter(text, text) SECURITY INVOKER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._cron_field(text, integer, integer, text[], integer, text) SECURITY INVOKER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._cron_value(text, text[], integer, text) SECURITY INVOKER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._first_bad_sample(jsonb) SECURITY INVOKER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._guard_items(timestamptz, text) SECURITY INVOKER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._incident_by_ref(text) SECURITY INVOKER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._lock_incident(uuid) SECURITY INVOKER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._pct(numeric, numeric) SECURITY INVOKER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._redact_url(text, text) SECURITY INVOKER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._require_actor(text) SECURITY INVOKER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._slack_reply(boolean, text, text, jsonb) SECURITY INVOKER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._transition(uuid, text, text, text, timestamptz) SECURITY INVOKER SET search_path = ops, pg_temp;

-- replay_dead_notifications wrote its own audit row; audit rows now come only from triggers,
-- so the replay sets the actor and a row trigger on the outbox records each dead letter it revives
CREATE OR REPLACE FUNCTION ops.replay_dead_notifications(p_actor text, p_ids bigint[] DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_prev_actor text;
    v_count int;
BEGIN
    PERFORM ops._require_actor(p_actor);
    v_prev_actor := ops._act_as(p_actor, 'replay of dead letters');
    UPDATE ops.notification_outbox
    SET status = 'pending', attempts = 0, next_attempt_at = pg_catalog.now(), last_error = NULL
    WHERE status = 'dead' AND (p_ids IS NULL OR id = ANY (p_ids));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    PERFORM ops._act_as(v_prev_actor);
    RETURN v_count;
END;
$$;

-- a row trigger with a WHEN clause: the dispatcher's own updates (pending -> sending -> sent)
-- never call it, so delivery pays nothing for this
CREATE FUNCTION ops._audit_replay() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
BEGIN
    INSERT INTO ops.audit_log (actor, action, table_name, row_key, changes, note)
    VALUES (ops.current_actor(), 'UPDATE', TG_TABLE_NAME, NEW.id::text,
            pg_catalog.jsonb_build_object(
                'status', pg_catalog.jsonb_build_array(OLD.status, NEW.status),
                'attempts', pg_catalog.jsonb_build_array(OLD.attempts, NEW.attempts),
                'last_error', pg_catalog.jsonb_build_array(OLD.last_error, NEW.last_error)),
            nullif(pg_catalog.current_setting('opsguard.note', true), ''));
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ops._audit_replay() IS
'Internal row trigger: one audit_log row for each dead letter put back in the queue, with the actor.';
CREATE TRIGGER notification_outbox_audit_replay AFTER UPDATE ON ops.notification_outbox
FOR EACH ROW WHEN (old.status = 'dead' AND new.status <> 'dead')
EXECUTE FUNCTION ops._audit_replay();

-- Only the audit triggers write audit_log. Privileges already keep every role but the owner
-- out; this keeps the owner (and so anything running as it: migrations, definer code, a
-- superuser's psql) from adding a row by hand. The INSERT must be issued by an ops._audit_*
-- trigger function, which names neither db_user, at nor txid: those come from the column
-- defaults (session_user, clock_timestamp(), txid_current()), never from a caller.
-- Statement level: a 10k-row tick checks once, not 10k times.
CREATE FUNCTION ops._audit_log_writer_check() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_stack text;
    v_caller text;
BEGIN
    GET DIAGNOSTICS v_stack = PG_CONTEXT;
    -- the stack reads: this function; SQL statement "<the INSERT, maybe several lines>"; the
    -- function that ran it. The first quote-newline-function after our own line ends the INSERT.
    v_caller := pg_catalog.substring(
        pg_catalog.substr(v_stack, pg_catalog.strpos(v_stack, E'\n') + 1),
        E'"\n((?:PL/pgSQL|SQL) function [^\n]*)');
    IF pg_catalog.pg_trigger_depth() < 2
       OR v_caller IS NULL
       OR v_caller !~ '^PL/pgSQL function (ops\.)?_audit_(changes|replay)\(\) line [0-9]+ at SQL statement$' THEN
        RAISE EXCEPTION 'audit_log rows are written only by the audit triggers'
            USING ERRCODE = '42501',
                  HINT = 'Change the audited table (or call the ops.* function that does); its trigger records the change.';
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ops._audit_log_writer_check() IS
'Internal trigger: refuses an INSERT into audit_log that does not come from an audit trigger.';
CREATE TRIGGER audit_log_only_from_triggers BEFORE INSERT ON ops.audit_log
FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_log_writer_check();

-- guard_overrides is append-only (0013) but a TRUNCATE went around its row trigger
CREATE TRIGGER guard_overrides_no_truncate BEFORE TRUNCATE ON ops.guard_overrides
FOR EACH STATEMENT EXECUTE FUNCTION ops._forbid_change();

-- RBAC changes are audited like incidents (principal_roles already was, for insert and delete)
CREATE TRIGGER principals_audit_insert AFTER INSERT ON ops.principals
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('name');
CREATE TRIGGER principals_audit_update AFTER UPDATE ON ops.principals
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('name');
CREATE TRIGGER principals_audit_delete AFTER DELETE ON ops.principals
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('name');
CREATE TRIGGER principal_roles_audit_update AFTER UPDATE ON ops.principal_roles
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('principal');
CREATE TRIGGER roles_audit_insert AFTER INSERT ON ops.roles
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('name');
CREATE TRIGGER roles_audit_update AFTER UPDATE ON ops.roles
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('name');
CREATE TRIGGER roles_audit_delete AFTER DELETE ON ops.roles
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('name');
CREATE TRIGGER permissions_audit_insert AFTER INSERT ON ops.permissions
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('name');
CREATE TRIGGER permissions_audit_update AFTER UPDATE ON ops.permissions
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('name');
CREATE TRIGGER permissions_audit_delete AFTER DELETE ON ops.permissions
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('name');
-- role_permissions has no single-column key: the row key is the role, the changes name the permission
CREATE TRIGGER role_permissions_audit_insert AFTER INSERT ON ops.role_permissions
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('role');
CREATE TRIGGER role_permissions_audit_delete AFTER DELETE ON ops.role_permissions
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('role');

-- Operators: read everything, UPDATE incidents directly (the seeds' SQL; its triggers audit it
-- and recompute next_due_at), every other change through a verb. Nobody had DELETE.
REVOKE INSERT, UPDATE ON ALL TABLES IN SCHEMA ops FROM opsguard_operator;
GRANT UPDATE ON ops.incidents TO opsguard_operator;
REVOKE USAGE ON ALL SEQUENCES IN SCHEMA ops FROM opsguard_operator;
-- internals, the API's entry points (each authorizes a principal it is told about) and the
-- dispatcher's claim/finish (which could mark a page sent) are not for people in psql
REVOKE EXECUTE ON FUNCTION
    ops._act_as(text, text),
    ops._api_begin(text, text, text, text),
    ops._audit_changes(),
    ops._counter(text, text),
    ops._cron_field(text, integer, integer, text[], integer, text),
    ops._cron_value(text, text[], integer, text),
    ops._first_bad_sample(jsonb),
    ops._forbid_change(),
    ops._guard_items(timestamptz, text),
    ops._incident_by_ref(text),
    ops._incidents_before_write(),
    ops._lock_incident(uuid),
    ops._pct(numeric, numeric),
    ops._recalc_after_change(),
    ops._redact_url(text, text),
    ops._require_actor(text),
    ops._slack_reply(boolean, text, text, jsonb),
    ops._transition(uuid, text, text, text, timestamptz),
    ops.api_health(timestamptz),
    ops.api_list_incidents(text, text, jsonb),
    ops.api_me(text, text),
    ops.api_metrics(),
    ops.api_override_guard_item(text, text, text, jsonb),
    ops.api_recalc(text, text, text),
    ops.api_record_requests(text, text, text, jsonb),
    ops.api_release_guard(text, text, jsonb),
    ops.api_set_incident_status(text, text, text, text, text, jsonb),
    ops.api_slack_command(text, text, text, text, text),
    ops.api_tick(text, text, text),
    ops.api_trigger_incident(text, text, text, jsonb),
    ops.claim_notifications(text, integer, timestamptz),
    ops.finish_notifications(text, jsonb, timestamptz),
    ops.notification_wait_s(timestamptz)
FROM opsguard_operator;
-- what later migrations create is granted explicitly next to it, as for the API role
ALTER DEFAULT PRIVILEGES IN SCHEMA ops REVOKE EXECUTE ON FUNCTIONS FROM opsguard_operator;
ALTER DEFAULT PRIVILEGES IN SCHEMA ops REVOKE INSERT, UPDATE ON TABLES FROM opsguard_operator;
ALTER DEFAULT PRIVILEGES IN SCHEMA ops REVOKE USAGE ON SEQUENCES FROM opsguard_operator;
-- the two trigger functions above were created under the old default
REVOKE EXECUTE ON FUNCTION ops._audit_replay(), ops._audit_log_writer_check() FROM opsguard_operator;

-- nothing in ops is for everyone (see 0011)
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ops FROM public;
