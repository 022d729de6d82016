-- Restores 0018's privileges, triggers and functions exactly (pg_dump is compared).

ALTER DEFAULT PRIVILEGES IN SCHEMA ops GRANT EXECUTE ON FUNCTIONS TO opsguard_operator;
ALTER DEFAULT PRIVILEGES IN SCHEMA ops GRANT INSERT, UPDATE ON TABLES TO opsguard_operator;
ALTER DEFAULT PRIVILEGES IN SCHEMA ops GRANT USAGE ON SEQUENCES TO opsguard_operator;

GRANT EXECUTE ON FUNCTION
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
TO opsguard_operator;
-- these had the operator before the API role or the dispatcher: re-grant in that order
REVOKE EXECUTE ON FUNCTION
    ops.api_slack_command(text, text, text, text, text),
    ops.api_metrics(),
    ops.api_record_requests(text, text, text, jsonb),
    ops.api_release_guard(text, text, jsonb),
    ops.api_override_guard_item(text, text, text, jsonb)
FROM opsguard_api;
GRANT EXECUTE ON FUNCTION
    ops.api_slack_command(text, text, text, text, text),
    ops.api_metrics(),
    ops.api_record_requests(text, text, text, jsonb),
    ops.api_release_guard(text, text, jsonb),
    ops.api_override_guard_item(text, text, text, jsonb)
TO opsguard_api;
REVOKE EXECUTE ON FUNCTION
    ops.claim_notifications(text, integer, timestamptz),
    ops.finish_notifications(text, jsonb, timestamptz),
    ops.notification_wait_s(timestamptz)
FROM opsguard_dispatcher;
GRANT EXECUTE ON FUNCTION
    ops.claim_notifications(text, integer, timestamptz),
    ops.finish_notifications(text, jsonb, timestamptz),
    ops.notification_wait_s(timestamptz)
TO opsguard_dispatcher;

GRANT USAGE ON ALL SEQUENCES IN SCHEMA ops TO opsguard_operator;
GRANT INSERT, UPDATE ON ALL TABLES IN SCHEMA ops TO opsguard_operator;
-- 0011 and 0014 had already taken these two away
REVOKE INSERT, UPDATE ON ops.cron_jobs, ops.notification_attempts FROM opsguard_operator;

DROP TRIGGER role_permissions_audit_delete ON ops.role_permissions;
DROP TRIGGER role_permissions_audit_insert ON ops.role_permissions;
DROP TRIGGER permissions_audit_delete ON ops.permissions;
DROP TRIGGER permissions_audit_update ON ops.permissions;
DROP TRIGGER permissions_audit_insert ON ops.permissions;
DROP TRIGGER roles_audit_delete ON ops.roles;
DROP TRIGGER roles_audit_update ON ops.roles;
DROP TRIGGER roles_audit_insert ON ops.roles;
DROP TRIGGER principal_roles_audit_update ON ops.principal_roles;
DROP TRIGGER principals_audit_delete ON ops.principals;
DROP TRIGGER principals_audit_update ON ops.principals;
DROP TRIGGER principals_audit_insert ON ops.principals;
DROP TRIGGER guard_overrides_no_truncate ON ops.guard_overrides;
DROP TRIGGER audit_log_only_from_triggers ON ops.audit_log;
DROP FUNCTION ops._audit_log_writer_check();
DROP TRIGGER notification_outbox_audit_replay ON ops.notification_outbox;
DROP FUNCTION ops._audit_replay();

-- 0014's body: it writes its own audit row again (no SECURITY DEFINER, no pinned search_path)
CREATE OR REPLACE FUNCTION ops.replay_dead_notifications(p_actor text, p_ids bigint[] DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_ids bigint[];
BEGIN
    PERFORM ops._require_actor(p_actor);
    WITH again AS (
        UPDATE ops.notification_outbox
        SET status = 'pending', attempts = 0, next_attempt_at = pg_catalog.now(), last_error = NULL
        WHERE status = 'dead' AND (p_ids IS NULL OR id = ANY (p_ids))
        RETURNING id
    )
    SELECT pg_catalog.array_agg(id ORDER BY id) INTO v_ids FROM again;
    IF v_ids IS NOT NULL THEN
        INSERT INTO ops.audit_log (actor, action, table_name, row_key, changes, note)
        VALUES (p_actor, 'UPDATE', 'notification_outbox', NULL,
                pg_catalog.jsonb_build_object('status', pg_catalog.jsonb_build_array('dead', 'pending'), 'ids', to_jsonb(v_ids)),
                'replay of dead letters');
    END IF;
    RETURN coalesce(pg_catalog.cardinality(v_ids), 0);
END;
$$;


ALTER FUNCTION ops._audit_changes() SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops._forbid_change() SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops._incidents_before_write() SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops._recalc_after_change() SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.ack_incident(uuid, text, text, timestamptz) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.add_principal(text, text, text[], text, text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.authorize(text, text, text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.collect_metrics(timestamptz) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.cron_job_last_run(text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.cron_matches(text, timestamptz) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.current_actor() SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.escalation_hash(uuid, integer) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.escalation_tick(timestamptz, text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.evaluate_alerts(timestamptz) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.evaluate_routes(timestamptz) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.grant_role(text, text, text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.has_permission(text, text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.incident_json(ops.incidents) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.install_cron_jobs() SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.installed_at() SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.link_chat_identity(text, text, text, text, text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.next_due(ops.incidents) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.override_guard_item(text, text, integer, text, timestamptz) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.pg_cron_status() SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.purge_guard_history(timestamptz) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.purge_history(timestamptz) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.recalc_next_due() SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.record_requests(jsonb) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.release_guard(timestamptz, text, text, jsonb) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.resolve_incident(uuid, text, text, timestamptz) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.revoke_role(text, text, text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.route_bucket(text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.route_findings(timestamptz, text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.route_in_canary(text, integer) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.route_slo(text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.set_route_slo(text, numeric, integer, text, integer, numeric) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.set_route_webhook(text, text, text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.set_setting(text, text, text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.set_sla(text, integer, text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.setting(text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.slack_escape(text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.slack_message(jsonb) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.snooze_incident(uuid, integer, text, timestamptz) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.trigger_incident(text, text, text, text, text, timestamptz) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.unlink_chat_identity(text, text, text, text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.use_ops_search_path() SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.use_utc() SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.validate_url(text, text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops.webhook_for(text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION ops._act_as(text, text) RESET search_path;
ALTER FUNCTION ops._api_begin(text, text, text, text) RESET search_path;
ALTER FUNCTION ops._counter(text, text) RESET search_path;
ALTER FUNCTION ops._cron_field(text, integer, integer, text[], integer, text) RESET search_path;
ALTER FUNCTION ops._cron_value(text, text[], integer, text) RESET search_path;
ALTER FUNCTION ops._first_bad_sample(jsonb) RESET search_path;
ALTER FUNCTION ops._guard_items(timestamptz, text) RESET search_path;
ALTER FUNCTION ops._incident_by_ref(text) RESET search_path;
ALTER FUNCTION ops._lock_incident(uuid) RESET search_path;
ALTER FUNCTION ops._pct(numeric, numeric) RESET search_path;
ALTER FUNCTION ops._redact_url(text, text) RESET search_path;
ALTER FUNCTION ops._require_actor(text) RESET search_path;
ALTER FUNCTION ops._slack_reply(boolean, text, text, jsonb) RESET search_path;
ALTER FUNCTION ops._transition(uuid, text, text, text, timestamptz) RESET search_path;
