-- depends: 0018_tick_speed
-- Least privilege (issue 10, points 3-4). Until now an operator could write every table:
-- mark a page sent, forge audit rows and escalation events (a forged next unique_hash made
-- the real escalation skip its notification), edit RBAC with no audit row, and run every
-- internal function. And no function pinned its search_path, so a to_jsonb() created in
-- public (the default before PostgreSQL 15) broke every audited write, pg_cron ticks included.
--
-- After this migration:
--   * every function in ops runs with search_path = ops, pg_temp (pg_catalog is searched
--     first implicitly), or has a SQL-standard body bound when it was created, so objects
--     created in public cannot change what it does;
--   * operator verbs (names not starting with _ or api_) and trigger functions are SECURITY
--     DEFINER: they validate and audit, so operators need no table write privilege (the six
--     SQL-standard bodies only compute or read, and stay invoker);
--   * operators keep SELECT on everything and UPDATE on ops.incidents (the seeds' SQL, audited
--     by its triggers), and EXECUTE on the verbs only: not on _* internals, api_* (the API's
--     own authorization) or the dispatcher's claim/finish/wait;
--   * audit_log rows come only from the audit triggers; the RBAC tables are audited;
--     guard_overrides cannot be truncated, like the audit log and the events.
--
-- Cost: a function with SET search_path is never inlined, and each call saves and restores the
-- setting (~3-6 us here). The few that sat in per-row paths get SQL-standard bodies instead
-- (below): parsed when created, so a search_path cannot change them, and still inlined.

-- the bodies below bind their names now: bind them to ops and pg_catalog, not to public
SET LOCAL search_path = ops, pg_temp;

-- trigger functions: definer, so a direct UPDATE by an operator can write the audit log and events
ALTER FUNCTION ops._audit_changes() SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._forbid_change() SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._recalc_after_change() SECURITY DEFINER SET search_path = ops, pg_temp;
-- operator verbs: definer, so operators need no table write privilege
ALTER FUNCTION ops.ack_incident(uuid, text, text, timestamptz) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.add_principal(text, text, text[], text, text) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.authorize(text, text, text) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.collect_metrics(timestamptz) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.cron_job_last_run(text) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.cron_matches(text, timestamptz) SECURITY DEFINER SET search_path = ops, pg_temp;
ALTER FUNCTION ops.current_actor() SECURITY DEFINER SET search_path = ops, pg_temp;
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
ALTER FUNCTION ops._incident_by_ref(text) SECURITY INVOKER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._lock_incident(uuid) SECURITY INVOKER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._redact_url(text, text) SECURITY INVOKER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._require_actor(text) SECURITY INVOKER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._slack_reply(boolean, text, text, jsonb) SECURITY INVOKER SET search_path = ops, pg_temp;
ALTER FUNCTION ops._transition(uuid, text, text, text, timestamptz) SECURITY INVOKER SET search_path = ops, pg_temp;

-- SQL-standard bodies (RETURN / BEGIN ATOMIC) for the functions in hot paths: the tick calls
-- route_in_canary and escalation_hash for every due row, the guard reads route_findings (through
-- _guard_items) for 1,000 routes, and inlined into the caller's query it is planned with the
-- caller's p_now (a pinned SQL function plans generically: window bounds unknown, ~40 % slower).
-- These only compute or read, so they stay SECURITY INVOKER: an operator reads these tables anyway.
-- The bodies are 0005's, 0006's and 0013's verbatim (sqlfluff lints them now that they are not strings).
-- noqa: disable=all
CREATE OR REPLACE FUNCTION ops.route_bucket(p_route text) RETURNS integer
LANGUAGE sql IMMUTABLE
RETURN (('x' || pg_catalog.left(pg_catalog.md5(coalesce(p_route, '')), 8))::bit(32)::bigint % 100)::int;

CREATE OR REPLACE FUNCTION ops.route_in_canary(p_route text, p_pct integer) RETURNS boolean
LANGUAGE sql IMMUTABLE
RETURN p_pct >= 100 OR ops.route_bucket(p_route) < p_pct;

CREATE OR REPLACE FUNCTION ops.escalation_hash(p_incident_id uuid, p_level integer) RETURNS text
LANGUAGE sql IMMUTABLE
RETURN pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(p_incident_id::text || ':' || p_level, 'UTF8')), 'hex');

CREATE OR REPLACE FUNCTION ops._pct(p_part numeric, p_whole numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE
RETURN CASE WHEN p_whole > 0 THEN pg_catalog.trim_scale(round(100.0 * p_part / p_whole, 2)) END;

CREATE OR REPLACE FUNCTION ops.route_findings(p_now timestamptz DEFAULT pg_catalog.now(), p_route_prefix text DEFAULT NULL)
RETURNS TABLE (route text, reason text, verdict text, evidence jsonb)
LANGUAGE sql STABLE
BEGIN ATOMIC
    WITH cfg AS MATERIALIZED (
        -- read once: inlined, each reference below re-ran the settings lookups for every route
        SELECT ops.setting('guard_critical_error_pct')::float8 AS crit_pct,
               ops.setting('guard_hard_error_pct')::float8 AS hard_pct
    ),
    d AS (
        SELECT * FROM ops.route_slos WHERE route = '*'
    ),
    w AS (
        -- window starts, computed once (date_trunc is not folded; per row it was most of the cost).
        -- A window of w covers the buckets that overlap the last w: minutes for 1m and 5m,
        -- 5-minute buckets for 30m and 1h, hours for 6h, so an evaluation reads ~26 rows per route
        SELECT pg_catalog.date_trunc('minute', p_now - interval '1 minute') AS t1,
               pg_catalog.date_trunc('minute', p_now - interval '5 minutes') AS t5,
               pg_catalog.date_bin('5 minutes', p_now - interval '30 minutes', '2000-01-01') AS t30,
               pg_catalog.date_bin('5 minutes', p_now - interval '1 hour', '2000-01-01') AS t60,
               pg_catalog.date_trunc('hour', p_now - interval '6 hours') AS t360
    ),
    parts AS (
        SELECT m.route,
               CASE WHEN m.minute >= w.t1 THEN m.requests ELSE 0 END AS n1,
               CASE WHEN m.minute >= w.t1 THEN m.errors ELSE 0 END AS e1,
               m.requests AS n5, m.errors AS e5, m.slow AS s5,
               0 AS n30, 0 AS e30, 0 AS n60, 0 AS e60, 0 AS n360, 0 AS e360
        FROM w
        INNER JOIN ops.route_minute_stats AS m ON m.minute >= w.t5 AND m.minute <= p_now
        WHERE p_route_prefix IS NULL OR pg_catalog.starts_with(m.route, p_route_prefix)
        UNION ALL
        SELECT f.route, 0, 0, 0, 0, 0,
               CASE WHEN f.bucket >= w.t30 THEN f.requests ELSE 0 END,
               CASE WHEN f.bucket >= w.t30 THEN f.errors ELSE 0 END,
               f.requests, f.errors, 0, 0
        FROM w
        INNER JOIN ops.route_5min_stats AS f ON f.bucket >= w.t60 AND f.bucket <= p_now
        WHERE p_route_prefix IS NULL OR pg_catalog.starts_with(f.route, p_route_prefix)
        UNION ALL
        SELECT h.route, 0, 0, 0, 0, 0, 0, 0, 0, 0, h.requests, h.errors
        FROM w
        INNER JOIN ops.route_hour_stats AS h ON h.hour >= w.t360 AND h.hour <= p_now
        WHERE p_route_prefix IS NULL OR pg_catalog.starts_with(h.route, p_route_prefix)
    ),
    s AS (
        SELECT parts.route, sum(parts.n1) AS n1, sum(parts.e1) AS e1, sum(parts.n5) AS n5, sum(parts.e5) AS e5,
               sum(parts.s5) AS s5, sum(parts.n30) AS n30, sum(parts.e30) AS e30, sum(parts.n60) AS n60,
               sum(parts.e60) AS e60, sum(parts.n360) AS n360, sum(parts.e360) AS e360
        FROM parts
        GROUP BY parts.route
    ),
    r AS (
        SELECT s.*,
               coalesce(o.error_pct_target, d.error_pct_target) AS target,
               coalesce(o.min_samples, d.min_samples) AS min_n,
               coalesce(o.latency_threshold_ms, d.latency_threshold_ms) AS lat_ms,
               coalesce(o.latency_target_pct, d.latency_target_pct) AS lat_pct,
               cfg.crit_pct, cfg.hard_pct
        FROM s
        CROSS JOIN d
        CROSS JOIN cfg
        LEFT JOIN ops.route_slos AS o ON s.route = o.route
    ),
    b AS (
        -- burn rate: the error rate as a multiple of the error budget (the SLO's allowed error share).
        -- Verdicts use float8 (numeric division for 1000 routes x 4 rules was half the cost);
        -- the evidence of the few failing rows is exact numeric
        SELECT r.*,
               r.n5 >= r.min_n AND r.n60 >= r.min_n AS fast_judged,
               r.n30 >= r.min_n AND r.n360 >= r.min_n AS slow_judged,
               CASE WHEN r.n5 > 0 THEN 100 * r.e5::float8 / r.n5 / r.target::float8 END AS burn5,
               CASE WHEN r.n60 > 0 THEN 100 * r.e60::float8 / r.n60 / r.target::float8 END AS burn60,
               CASE WHEN r.n30 > 0 THEN 100 * r.e30::float8 / r.n30 / r.target::float8 END AS burn30,
               CASE WHEN r.n360 > 0 THEN 100 * r.e360::float8 / r.n360 / r.target::float8 END AS burn360
        FROM r
    ),
    v AS (
        -- verdicts first; evidence is built below only for the few rows that have one
        SELECT b.*, f.reason, f.verdict
        FROM b
        CROSS JOIN LATERAL (VALUES
            ('error_rate_critical',
             CASE WHEN b.n1 = 0 THEN NULL
                  WHEN b.n1 < b.min_n THEN 'inconclusive'
                  WHEN 100 * b.e1::float8 / b.n1 >= b.crit_pct THEN 'violation' END),
            ('hard_error_threshold',
             CASE WHEN b.n5 = 0 THEN NULL
                  WHEN b.n5 < b.min_n THEN 'inconclusive'
                  WHEN 100 * b.e5::float8 / b.n5 > b.hard_pct THEN 'violation' END),
            ('slo_violation',
             CASE WHEN (b.fast_judged AND b.burn5 > 14.4 AND b.burn60 > 14.4)
                       OR (b.slow_judged AND b.burn30 > 6 AND b.burn360 > 6) THEN 'violation'
                  -- too little recent traffic to judge either pair; a route idle for 30 minutes is not listed
                  WHEN NOT b.fast_judged AND NOT b.slow_judged AND b.n30 > 0 THEN 'inconclusive' END),
            ('latency_slo',
             CASE WHEN b.lat_ms IS NULL OR b.n5 = 0 THEN NULL
                  WHEN b.n5 < b.min_n THEN 'inconclusive'
                  WHEN 100 * b.s5::float8 / b.n5 > b.lat_pct::float8 THEN 'violation' END)
        ) AS f (reason, verdict)
        WHERE f.verdict IS NOT NULL
    )
    SELECT v.route, v.reason, v.verdict,
           CASE v.reason
               WHEN 'error_rate_critical' THEN pg_catalog.jsonb_build_object(
                   'err_rate_1m', ops._pct(v.e1, v.n1), 'samples_1m', v.n1, 'threshold_pct', v.crit_pct::numeric,
                   'min_samples', v.min_n)
               WHEN 'hard_error_threshold' THEN pg_catalog.jsonb_build_object(
                   'err_rate_5m', ops._pct(v.e5, v.n5), 'samples_5m', v.n5, 'threshold_pct', v.hard_pct::numeric,
                   'min_samples', v.min_n)
               WHEN 'slo_violation' THEN pg_catalog.jsonb_build_object(
                   'error_pct_target', pg_catalog.trim_scale(v.target), 'min_samples', v.min_n,
                   'pairs', pg_catalog.jsonb_build_array(
                       pg_catalog.jsonb_build_object('windows', '5m/1h', 'factor', 14.4, 'judged', v.fast_judged,
                           'fired', v.fast_judged AND v.burn5 > 14.4 AND v.burn60 > 14.4),
                       pg_catalog.jsonb_build_object('windows', '30m/6h', 'factor', 6, 'judged', v.slow_judged,
                           'fired', v.slow_judged AND v.burn30 > 6 AND v.burn360 > 6)),
                   'windows', pg_catalog.jsonb_build_object(
                       '5m', pg_catalog.jsonb_build_object('err_rate', ops._pct(v.e5, v.n5), 'samples', v.n5,
                                                           'burn_rate', pg_catalog.trim_scale(round(v.burn5::numeric, 2))),
                       '30m', pg_catalog.jsonb_build_object('err_rate', ops._pct(v.e30, v.n30), 'samples', v.n30,
                                                            'burn_rate', pg_catalog.trim_scale(round(v.burn30::numeric, 2))),
                       '1h', pg_catalog.jsonb_build_object('err_rate', ops._pct(v.e60, v.n60), 'samples', v.n60,
                                                           'burn_rate', pg_catalog.trim_scale(round(v.burn60::numeric, 2))),
                       '6h', pg_catalog.jsonb_build_object('err_rate', ops._pct(v.e360, v.n360), 'samples', v.n360,
                                                           'burn_rate', pg_catalog.trim_scale(round(v.burn360::numeric, 2)))))
               ELSE pg_catalog.jsonb_build_object(
                   'slow_pct_5m', ops._pct(v.s5, v.n5), 'samples_5m', v.n5, 'threshold_ms', v.lat_ms,
                   'target_pct', pg_catalog.trim_scale(v.lat_pct), 'min_samples', v.min_n)
           END
    FROM v;
END;

CREATE OR REPLACE FUNCTION ops._guard_items(p_now timestamptz, p_route_prefix text)
RETURNS TABLE (item_key text, kind text, inconclusive boolean, item jsonb)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT 'incident:' || i.id, 'incident', false,
           pg_catalog.jsonb_build_object('kind', 'incident', 'key', 'incident:' || i.id, 'id', i.id,
               'incidentKey', i.incident_key, 'route', i.route, 'severity', i.severity,
               'escalationLevel', i.escalation_level, 'lastSeen', i.last_seen)
    FROM ops.incidents AS i
    WHERE i.status = 'open' AND i.acknowledged_at IS NULL AND i.severity = 'critical'
      AND i.last_seen >= p_now - pg_catalog.make_interval(mins => ops.setting('guard_lookback_min')::int)
      AND (p_route_prefix IS NULL OR pg_catalog.starts_with(i.route, p_route_prefix))
    UNION ALL
    SELECT f.route || '::' || f.reason, 'violation', f.verdict = 'inconclusive',
           pg_catalog.jsonb_build_object('kind', 'violation', 'key', f.route || '::' || f.reason,
               'route', f.route, 'reason', f.reason, 'evidence', f.evidence)
    FROM ops.route_findings(p_now, p_route_prefix) AS f;
END;
-- noqa: enable=all

-- The incidents' row trigger runs for every row a tick escalates; its call of ops.next_due
-- would pay a second search_path switch per row, so the formula is written out in it.
CREATE OR REPLACE FUNCTION ops._incidents_before_write() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_ack_minutes int;
BEGIN
    NEW.route := coalesce(nullif(NEW.route, ''), nullif(pg_catalog.split_part(NEW.incident_key, '::', 1), ''));
    IF TG_OP = 'UPDATE' THEN
        -- reopening (status back to open) clears the old acknowledgement unless the UPDATE sets one
        IF NEW.status = 'open' AND OLD.status <> 'open'
           AND NEW.acknowledged_at IS NOT DISTINCT FROM OLD.acknowledged_at THEN
            NEW.acknowledged_at := NULL;
            NEW.acknowledged_by := NULL;
        END IF;
        NEW.updated_at := pg_catalog.now();
    END IF;
    -- an UPDATE that only sets acknowledged_at is an acknowledgement
    IF NEW.status = 'open' AND NEW.acknowledged_at IS NOT NULL THEN
        NEW.status := 'acknowledged';
    END IF;
    IF NEW.status = 'acknowledged' THEN
        NEW.acknowledged_at := coalesce(NEW.acknowledged_at, pg_catalog.now());
        NEW.acknowledged_by := coalesce(NEW.acknowledged_by, ops.current_actor());
    ELSIF NEW.status = 'open' THEN
        NEW.acknowledged_by := NULL;  -- no acknowledgement, so nobody acknowledged it
    END IF;
    IF NEW.status = 'resolved' THEN
        NEW.resolved_at := coalesce(NEW.resolved_at, pg_catalog.now());
        NEW.resolved_by := coalesce(NEW.resolved_by, ops.current_actor());
    ELSE
        NEW.resolved_at := NULL;
        NEW.resolved_by := NULL;
    END IF;
    -- ops.next_due(NEW), written out: a call would switch search_path a second time for every row
    -- (ops.recalc_next_due() counts rows where the two disagree: 30-next-due.sql and the bench expect none)
    IF NEW.acknowledged_at IS NOT NULL
       OR NEW.status <> 'open'
       OR NEW.escalation_level >= (SELECT s.value FROM ops.settings AS s WHERE s.key = 'max_esc_level')::int THEN
        NEW.next_due_at := NULL;
    ELSE
        SELECT sla.ack_minutes INTO v_ack_minutes FROM ops.sla WHERE sla.severity = NEW.severity;
        NEW.next_due_at := CASE WHEN v_ack_minutes IS NOT NULL THEN GREATEST(
            NEW.first_seen + pg_catalog.make_interval(mins => v_ack_minutes * (NEW.escalation_level + 1)),
            NEW.last_escalated_at
                + pg_catalog.make_interval(mins => (SELECT s.value FROM ops.settings AS s WHERE s.key = 'snooze_min')::int),
            NEW.snoozed_until) END;
    END IF;
    RETURN NEW;
END;
$$;

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
-- the runbook's health check: it takes no principal, authorizes no one and only reads
GRANT EXECUTE ON FUNCTION ops.api_health(timestamptz) TO opsguard_operator;
-- what later migrations create is granted explicitly next to it, as for the API role
ALTER DEFAULT PRIVILEGES IN SCHEMA ops REVOKE EXECUTE ON FUNCTIONS FROM opsguard_operator;
ALTER DEFAULT PRIVILEGES IN SCHEMA ops REVOKE INSERT, UPDATE ON TABLES FROM opsguard_operator;
ALTER DEFAULT PRIVILEGES IN SCHEMA ops REVOKE USAGE ON SEQUENCES FROM opsguard_operator;
-- the two trigger functions above were created under the old default
REVOKE EXECUTE ON FUNCTION ops._audit_replay(), ops._audit_log_writer_check() FROM opsguard_operator;

-- nothing in ops is for everyone (see 0011)
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ops FROM public;
