-- depends: 0013_release_guard 0011_db_roles
-- Delivering the outbox: per-route webhooks, claims with leases, retries with backoff and
-- jitter, dead letters, an attempt log, and the boot-time configuration check.
-- The dispatcher (api/opsguard/dispatcher.py) only moves bytes; every decision is here.
--   claim:  pending and due -> sending, with a lease; a lease that runs out (the dispatcher
--           died mid-delivery) puts the message back, and it is sent again with the same key
--   finish: sending -> sent, or back to pending after a backoff, or dead after N attempts

INSERT INTO ops.settings (key, value, kind, min_value, max_value, description) VALUES
('notify_paused', 'false', 'boolean', NULL, NULL,
 'true: dispatchers claim nothing; messages wait in the outbox (nothing is lost) until it is false again.'),
('notify_max_attempts', '8', 'integer', 1, 100,
 'A message that failed this many times becomes a dead letter (replay with ops.replay_dead_notifications).'),
('notify_backoff_ms', '2000', 'integer', 10, 3600000,
 'Delay before the first retry; it doubles with each attempt (with jitter) up to notify_backoff_max_ms.'),
('notify_backoff_max_ms', '300000', 'integer', 10, 86400000, 'The longest delay between two attempts.'),
('notify_lease_s', '60', 'integer', 3, 3600,
 'How long a dispatcher holds a claimed message. Longer than its HTTP timeout; a message whose lease ran out '
 '(the dispatcher died) is sent again with the same dedup key.');

ALTER TABLE ops.notification_outbox
ADD COLUMN claimed_by text,
ADD COLUMN claim_id bigint,
ADD COLUMN lease_until timestamptz,
ADD COLUMN last_http_status integer;
CREATE INDEX notification_outbox_sending ON ops.notification_outbox (lease_until) WHERE status = 'sending';
CREATE INDEX notification_outbox_dead ON ops.notification_outbox (id) WHERE status = 'dead';
COMMENT ON COLUMN ops.notification_outbox.status IS
'pending (waiting for next_attempt_at), sending (claimed, lease_until), sent, dead (gave up after notify_max_attempts).';
COMMENT ON COLUMN ops.notification_outbox.claim_id IS
'Which claim holds a sending message: a dispatcher''s report counts only for its own claim.';

CREATE SEQUENCE ops.notification_claim_seq;

-- One row per delivery attempt: why a message is late or dead, and the failure counters.
CREATE TABLE ops.notification_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id bigint NOT NULL REFERENCES ops.notification_outbox (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    worker text NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('sent', 'failed', 'lost')),
    http_status integer,
    error text,
    elapsed_ms numeric(12, 3),
    finished_at timestamptz NOT NULL
);
CREATE INDEX notification_attempts_outbox ON ops.notification_attempts (outbox_id);
CREATE INDEX notification_attempts_finished ON ops.notification_attempts (finished_at);
COMMENT ON TABLE ops.notification_attempts IS
'Every delivery attempt: sent, failed (an HTTP error, a timeout, a refused connection) or lost (the dispatcher '
'stopped before reporting; its lease ran out). slack_send_failures counts the failed ones.';

CREATE TABLE ops.route_webhooks (
    route text PRIMARY KEY CHECK (pg_catalog.length(route) BETWEEN 1 AND 300),
    webhook_url text NOT NULL CHECK (ops.validate_url(webhook_url, 'webhook') IS NOT NULL),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by text NOT NULL
);
COMMENT ON TABLE ops.route_webhooks IS
'Per-route Slack webhooks (SPEC §8); routes without one use the slack_webhook_url setting. Read at send time, so a '
'change reaches messages already queued. Change with ops.set_route_webhook.';
CREATE TRIGGER route_webhooks_audit_insert AFTER INSERT ON ops.route_webhooks
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('route');
CREATE TRIGGER route_webhooks_audit_update AFTER UPDATE ON ops.route_webhooks
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('route', 'updated_at', 'updated_by');
CREATE TRIGGER route_webhooks_audit_delete AFTER DELETE ON ops.route_webhooks
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('route');

CREATE FUNCTION ops.set_route_webhook(p_route text, p_webhook_url text, p_actor text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_prev text;
    v_url text := nullif(pg_catalog.btrim(p_webhook_url), '');
BEGIN
    PERFORM ops._require_actor(p_actor);
    IF coalesce(pg_catalog.btrim(p_route), '') = '' THEN
        RAISE EXCEPTION 'a route is required' USING ERRCODE = '22004',
            HINT = 'Example: SELECT ops.set_route_webhook(''GET /projects'', ''https://hooks.slack.com/services/...'', ''alice'');';
    END IF;
    IF v_url IS NOT NULL THEN
        PERFORM ops.validate_url(v_url, 'webhook');
    END IF;
    v_prev := ops._act_as(p_actor);
    IF v_url IS NULL THEN
        DELETE FROM ops.route_webhooks WHERE route = p_route;
    ELSE
        INSERT INTO ops.route_webhooks AS w (route, webhook_url, updated_by) VALUES (p_route, v_url, p_actor)
        ON CONFLICT (route) DO UPDATE SET webhook_url = EXCLUDED.webhook_url, updated_at = pg_catalog.now(),
                                          updated_by = EXCLUDED.updated_by;
    END IF;
    PERFORM ops._act_as(v_prev);
    RETURN v_url;
END;
$$;
COMMENT ON FUNCTION ops.set_route_webhook(text, text, text) IS
'Sets (or, with an empty URL, removes) one route''s Slack webhook, validated (https, or http to loopback) and audited.';

CREATE FUNCTION ops.webhook_for(p_route text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT webhook_url FROM ops.route_webhooks WHERE route = p_route),
                    nullif(ops.setting('slack_webhook_url') #>> '{}', ''))
$$;
COMMENT ON FUNCTION ops.webhook_for(text) IS
'Where a route''s messages go now: its own webhook, else slack_webhook_url, else NULL (nothing is sent; messages wait).';

-- Slack's mrkdwn needs &, < and > escaped; everything else is literal
CREATE FUNCTION ops.slack_escape(p_text text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(p_text, '&', '&amp;'), '<', '&lt;'), '>', '&gt;')
$$;
COMMENT ON FUNCTION ops.slack_escape(text) IS 'Escapes &, < and > for Slack mrkdwn.';

CREATE FUNCTION ops.slack_message(p_payload jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT pg_catalog.jsonb_build_object(
        'text', p_payload ->> 'text',
        'blocks', pg_catalog.jsonb_build_array(
            pg_catalog.jsonb_build_object('type', 'section', 'text', pg_catalog.jsonb_build_object(
                'type', 'mrkdwn',
                'text', pg_catalog.format('%s *%s* `%s` escalated to level *%s*',
                                          CASE p_payload ->> 'severity' WHEN 'critical' THEN ':rotating_light:'
                                              ELSE ':warning:' END,
                                          pg_catalog.upper(p_payload ->> 'severity'),
                                          ops.slack_escape(p_payload ->> 'incident_key'),
                                          p_payload ->> 'escalation_level')
                        || coalesce(E'\n<' || (p_payload ->> 'link') || '|Open the incident>', ''))),
            pg_catalog.jsonb_build_object('type', 'context', 'elements', pg_catalog.jsonb_build_array(
                pg_catalog.jsonb_build_object('type', 'mrkdwn', 'text', pg_catalog.format(
                    'incident %s · route %s · escalated %s · dedup %s',
                    p_payload ->> 'incident_id', ops.slack_escape(coalesce(p_payload ->> 'route', '-')),
                    p_payload ->> 'escalated_at', p_payload ->> 'dedup_key'))))),
        'dedup_key', p_payload ->> 'dedup_key')
$$;
COMMENT ON FUNCTION ops.slack_message(jsonb) IS
'The Slack incoming-webhook body for an outbox payload: text (the notification fallback), blocks, and dedup_key.';

-- Claims up to p_limit due messages for one dispatcher, in one FOR UPDATE SKIP LOCKED
-- statement, so dispatchers running side by side never hold the same message. First, any
-- lease that ran out goes back to pending (recorded as a lost attempt).
CREATE FUNCTION ops.claim_notifications(p_worker text, p_limit integer DEFAULT 100, p_now timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE (
    id bigint, claim_id bigint, dedup_key text, attempt integer, webhook_url text, message jsonb,
    lease_until timestamptz, lease_s integer
)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_global text := nullif(ops.setting('slack_webhook_url') #>> '{}', '');
    v_lease interval := pg_catalog.make_interval(secs => ops.setting('notify_lease_s')::int);
    v_max int := ops.setting('notify_max_attempts')::int;
    v_claim bigint;
BEGIN
    IF coalesce(pg_catalog.btrim(p_worker), '') = '' OR p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000
       OR p_now IS NULL THEN
        RAISE EXCEPTION 'claim_notifications needs a worker name, a limit of 1 to 1000 and a time'
            USING ERRCODE = '22023', HINT = 'SELECT * FROM ops.claim_notifications(''host:pid'', 100);';
    END IF;

    WITH lost AS (
        SELECT o.id, o.claimed_by, o.attempts
        FROM ops.notification_outbox AS o
        WHERE o.status = 'sending' AND o.lease_until <= p_now
        FOR UPDATE SKIP LOCKED
    ),
    back AS (
        UPDATE ops.notification_outbox AS o
        SET status = CASE WHEN l.attempts >= v_max THEN 'dead' ELSE 'pending' END,
            next_attempt_at = p_now,
            last_error = pg_catalog.format('lease expired: dispatcher %s stopped before reporting', l.claimed_by),
            claimed_by = NULL, claim_id = NULL, lease_until = NULL
        FROM lost AS l
        WHERE o.id = l.id
        RETURNING o.id
    )
    INSERT INTO ops.notification_attempts (outbox_id, attempt, worker, outcome, error, finished_at)
    SELECT l.id, l.attempts, l.claimed_by, 'lost', 'lease expired before the dispatcher reported', p_now
    FROM lost AS l INNER JOIN back AS b ON l.id = b.id;

    IF ops.setting('notify_paused')::boolean THEN
        RETURN;
    END IF;
    v_claim := pg_catalog.nextval('ops.notification_claim_seq');
    RETURN QUERY
    WITH due AS (
        SELECT o.id, coalesce(w.webhook_url, v_global) AS url
        FROM ops.notification_outbox AS o
        LEFT JOIN ops.route_webhooks AS w ON o.route = w.route
        WHERE o.status = 'pending' AND o.next_attempt_at <= p_now
          AND (w.webhook_url IS NOT NULL OR v_global IS NOT NULL)
        ORDER BY o.next_attempt_at, o.id
        LIMIT p_limit
        FOR UPDATE OF o SKIP LOCKED
    ),
    claimed AS (
        UPDATE ops.notification_outbox AS o
        SET status = 'sending', attempts = o.attempts + 1, claimed_by = p_worker, claim_id = v_claim,
            lease_until = p_now + v_lease
        FROM due AS d
        WHERE o.id = d.id
        RETURNING o.id, o.claim_id, o.dedup_key, o.attempts, d.url, ops.slack_message(o.payload), o.lease_until,
                  ops.setting('notify_lease_s')::int
    )
    SELECT * FROM claimed;
END;
$$;
COMMENT ON FUNCTION ops.claim_notifications(text, integer, timestamptz) IS
'Dispatchers only: claims due messages (status sending, lease notify_lease_s) with the webhook they go to now and '
'the Slack body. Expired leases first go back to pending. Paused (notify_paused): claims nothing.';

-- The dispatcher's report for one batch: [{"id", "claim", "outcome": "sent"|"failed"|"skipped",
-- "status", "error", "retry_after_s", "ms"}]. skipped: not attempted (its lease was about to
-- run out); it goes back as it was. A report for a claim that is no longer current is logged,
-- and a late "sent" still marks a message that is waiting to be sent again.
CREATE FUNCTION ops.finish_notifications(p_worker text, p_results jsonb, p_now timestamptz DEFAULT pg_catalog.now())
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_max int := ops.setting('notify_max_attempts')::int;
    v_base float8 := ops.setting('notify_backoff_ms')::float8;
    v_cap float8 := ops.setting('notify_backoff_max_ms')::float8;
    v_result jsonb;
BEGIN
    IF coalesce(pg_catalog.btrim(p_worker), '') = '' OR pg_catalog.jsonb_typeof(p_results) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'finish_notifications needs a worker name and an array of results'
            USING ERRCODE = '22023', HINT = '[{"id": 1, "claim": 7, "outcome": "sent", "status": 200, "ms": 12.5}]';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(p_results) AS e
               WHERE e ->> 'outcome' IS NULL OR e ->> 'outcome' NOT IN ('sent', 'failed', 'skipped')
                  OR e ->> 'id' IS NULL OR e ->> 'claim' IS NULL) THEN
        RAISE EXCEPTION 'each result needs id, claim and an outcome of sent, failed or skipped' USING ERRCODE = '22023';
    END IF;

    WITH r AS (
        SELECT x.*
        FROM pg_catalog.jsonb_to_recordset(p_results) AS x (
            id bigint, claim bigint, outcome text, status integer, error text, retry_after_s float8, ms numeric
        )
    ),
    upd AS (
        UPDATE ops.notification_outbox AS o
        SET status = CASE
                WHEN r.outcome = 'sent' THEN 'sent'
                WHEN r.outcome = 'skipped' OR o.attempts < v_max THEN 'pending'
                ELSE 'dead' END,
            attempts = o.attempts - (r.outcome = 'skipped')::int,
            sent_at = CASE WHEN r.outcome = 'sent' THEN p_now END,
            next_attempt_at = CASE
                WHEN r.outcome = 'failed' THEN p_now + pg_catalog.make_interval(secs => greatest(
                    -- exponential, capped, with "equal jitter": half fixed, half random
                    least(v_cap, v_base * 2 ^ (o.attempts - 1)) * (0.5 + random() * 0.5) / 1000,
                    coalesce(r.retry_after_s, 0)))
                ELSE p_now END,
            last_error = CASE WHEN r.outcome = 'failed' THEN left(r.error, 500) ELSE o.last_error END,
            last_http_status = coalesce(r.status, CASE WHEN r.outcome = 'skipped' THEN o.last_http_status END),
            claimed_by = NULL, claim_id = NULL, lease_until = NULL
        FROM r
        WHERE o.id = r.id
          AND ((o.status = 'sending' AND o.claim_id = r.claim) OR (r.outcome = 'sent' AND o.status = 'pending'))
        RETURNING o.id, o.status, o.attempts
    ),
    logged AS (
        INSERT INTO ops.notification_attempts (outbox_id, attempt, worker, outcome, http_status, error, elapsed_ms, finished_at)
        SELECT r.id, coalesce(u.attempts, (SELECT o.attempts FROM ops.notification_outbox AS o WHERE o.id = r.id)), p_worker,
               r.outcome, r.status, left(r.error, 500), r.ms, p_now
        FROM r
        LEFT JOIN upd AS u ON r.id = u.id
        WHERE r.outcome <> 'skipped' AND EXISTS (SELECT 1 FROM ops.notification_outbox AS o WHERE o.id = r.id)
        RETURNING 1
    )
    SELECT pg_catalog.jsonb_build_object(
        'sent', count(*) FILTER (WHERE u.status = 'sent'),
        'retrying', count(*) FILTER (WHERE u.status = 'pending' AND r.outcome = 'failed'),
        'dead', count(*) FILTER (WHERE u.status = 'dead'),
        'released', count(*) FILTER (WHERE r.outcome = 'skipped' AND u.id IS NOT NULL),
        'stale', count(*) FILTER (WHERE u.id IS NULL),
        'logged', (SELECT count(*) FROM logged))
    INTO v_result
    FROM r LEFT JOIN upd AS u ON r.id = u.id;
    RETURN v_result;
END;
$$;
COMMENT ON FUNCTION ops.finish_notifications(text, jsonb, timestamptz) IS
'Dispatchers only: records a batch''s outcomes. failed: retried after notify_backoff_ms * 2^(attempt-1) (capped, jittered, '
'at least Retry-After), dead after notify_max_attempts. Returns {"sent", "retrying", "dead", "released", "stale"}.';

CREATE FUNCTION ops.notification_wait_s(p_now timestamptz DEFAULT pg_catalog.now()) RETURNS float8
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
    SELECT greatest(0, EXTRACT(epoch FROM least(
        (SELECT min(next_attempt_at) FROM ops.notification_outbox WHERE status = 'pending'),
        (SELECT min(lease_until) FROM ops.notification_outbox WHERE status = 'sending')) - p_now))::float8
$$;
COMMENT ON FUNCTION ops.notification_wait_s(timestamptz) IS
'Dispatchers only: seconds until a message is next due (a retry or an expiring lease); NULL when none is waiting.';

CREATE FUNCTION ops.replay_dead_notifications(p_actor text, p_ids bigint[] DEFAULT NULL) RETURNS integer
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
COMMENT ON FUNCTION ops.replay_dead_notifications(text, bigint[]) IS
'Puts dead letters (all, or those in p_ids) back in the queue with a fresh attempt count; audited. Returns how many.';

CREATE VIEW ops.notification_stats AS
SELECT
    (SELECT count(*) FROM ops.notification_outbox WHERE status = 'sent') AS sent,
    (SELECT count(*) FROM ops.notification_attempts WHERE outcome = 'failed') AS slack_send_failures,
    (SELECT count(*) FROM ops.notification_outbox WHERE status = 'dead') AS dead_letters,
    (SELECT count(*) FROM ops.notification_outbox WHERE status = 'pending') AS pending,
    (SELECT count(*) FROM ops.notification_outbox WHERE status = 'sending') AS sending,
    (SELECT extract(EPOCH FROM pg_catalog.now() - min(created_at))::float8
     FROM ops.notification_outbox WHERE status IN ('pending', 'sending')) AS oldest_pending_age_s,
    (SELECT count(*) FROM ops.notification_attempts
     WHERE outcome = 'failed' AND finished_at > pg_catalog.now() - interval '5 minutes') AS failures_last_5m;
COMMENT ON VIEW ops.notification_stats IS
'Delivery counters: sent, slack_send_failures (failed attempts, ever), dead letters, pending, sending, the age of the '
'oldest undelivered message in seconds, and failed attempts in the last 5 minutes.';

-- Replaces the URL in a validation message by its scheme and host: webhook paths are secrets.
CREATE FUNCTION ops._redact_url(p_text text, p_url text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT pg_catalog.replace(p_text, p_url,
                              coalesce(pg_catalog.substring(p_url, '^[A-Za-z]+://[^/?#]*') || '/…', '…'))
$$;
COMMENT ON FUNCTION ops._redact_url(text, text) IS 'Internal: hides a URL''s path (a webhook''s secret) in a message.';

CREATE FUNCTION ops.config_problems(p_dispatch_timeout_s float8 DEFAULT NULL) RETURNS TABLE (setting text, problem text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_row record;
    v_lease int := ops.setting('notify_lease_s')::int;
BEGIN
    -- a dispatcher starts a message only while its lease outlasts the HTTP timeout
    IF p_dispatch_timeout_s IS NOT NULL AND v_lease < p_dispatch_timeout_s + 2 THEN
        setting := 'notify_lease_s';
        problem := pg_catalog.format('%s s is too short for a dispatcher HTTP timeout of %s s: make it at least %s',
                                     v_lease, p_dispatch_timeout_s, ceil(p_dispatch_timeout_s + 2));
        RETURN NEXT;
    END IF;
    FOR v_row IN
        SELECT s.key AS name, s.value #>> '{}' AS url, s.kind
        FROM ops.settings AS s WHERE s.kind IN ('url', 'webhook') AND s.value #>> '{}' <> ''
        UNION ALL
        SELECT pg_catalog.format('route_webhooks[%s]', w.route), w.webhook_url, 'webhook'
        FROM ops.route_webhooks AS w
        ORDER BY 1
    LOOP
        BEGIN
            PERFORM ops.validate_url(v_row.url, v_row.kind);
        EXCEPTION WHEN invalid_parameter_value THEN
            setting := v_row.name;
            problem := CASE v_row.kind WHEN 'webhook' THEN ops._redact_url(SQLERRM, v_row.url) ELSE SQLERRM END;
            RETURN NEXT;
        END;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION ops.config_problems(float8) IS
'What is wrong with the configuration, one row per setting (empty: all is well): SELECT * FROM ops.config_problems(); '
'The API and the dispatcher refuse to start while it has rows; a dispatcher passes its HTTP timeout.';

-- The dispatcher's connections: claim, report, wait, and the boot check; no table access.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'opsguard_dispatcher') THEN
        CREATE ROLE opsguard_dispatcher NOLOGIN;
    END IF;
END;
$$;
GRANT USAGE ON SCHEMA ops TO opsguard_dispatcher;
GRANT EXECUTE ON FUNCTION
    ops.claim_notifications(text, integer, timestamptz),
    ops.finish_notifications(text, jsonb, timestamptz),
    ops.notification_wait_s(timestamptz),
    ops.config_problems(float8)
TO opsguard_dispatcher;
GRANT EXECUTE ON FUNCTION ops.config_problems(float8) TO opsguard_api;
REVOKE INSERT, UPDATE ON ops.notification_attempts FROM opsguard_operator;

-- nothing in ops is for everyone (see 0011)
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ops FROM public;
