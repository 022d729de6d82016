-- 0055 undone: no senders for contact methods; the claim, finish and settings as before
DROP FUNCTION ops.notification_still_wanted(bigint[]);
CREATE OR REPLACE FUNCTION ops.finish_notifications(p_worker text, p_results jsonb, p_now timestamptz DEFAULT pg_catalog.now())
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
'Dispatchers only: records a batch''s outcomes. failed: retried after notify_backoff_ms * 2^(attempt-1) '
'(capped, jittered, at least Retry-After), dead after notify_max_attempts. Returns {"sent", "retrying", "dead", '
'"released", "stale"}.';

DROP FUNCTION ops.claim_notifications(text, integer, timestamptz);
CREATE OR REPLACE FUNCTION ops.claim_notifications(p_worker text, p_limit integer DEFAULT 100, p_now timestamptz DEFAULT pg_catalog.now())
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
        -- the webhook of a policy step first (the row itself), else the route webhook, else the global one
        SELECT o.id, coalesce(o.webhook_url, w.webhook_url, v_global) AS url
        FROM ops.notification_outbox AS o
        LEFT JOIN ops.route_webhooks AS w ON o.route = w.route
        WHERE o.status = 'pending' AND o.next_attempt_at <= p_now
          AND (o.webhook_url IS NOT NULL OR w.webhook_url IS NOT NULL OR v_global IS NOT NULL)
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
'Dispatchers only: claims due messages (status sending, lease notify_lease_s) with the webhook they go to now '
'(the message''s own policy webhook, else the route''s, else slack_webhook_url) and the Slack body. Expired '
'leases first go back to pending. Paused (notify_paused): claims nothing.';
REVOKE ALL ON FUNCTION ops.claim_notifications(text, integer, timestamptz) FROM public;
GRANT EXECUTE ON FUNCTION ops.claim_notifications(text, integer, timestamptz) TO opsguard_dispatcher;

DROP FUNCTION ops._cancel_unwanted_pages(timestamptz);
DROP FUNCTION ops._page_wanted(uuid, uuid);
DROP FUNCTION ops._contact_message(ops.notification_outbox, ops.contact_methods, jsonb, timestamptz);
DROP FUNCTION ops._mint_verification_code(uuid, timestamptz);
DROP FUNCTION ops.verification_message(text, text);
DROP FUNCTION ops.page_webhook(jsonb, text);
DROP FUNCTION ops.page_slack_dm(jsonb, text, text);
DROP FUNCTION ops.page_voice(jsonb, text);
DROP FUNCTION ops.page_sms(jsonb, text, text);
DROP FUNCTION ops.page_email(jsonb, text);
DROP FUNCTION ops.page_summary(jsonb);
DROP FUNCTION ops.html_escape(text);

CREATE OR REPLACE FUNCTION ops.set_setting(p_key text, p_value text, p_actor text) RETURNS ops.settings
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_def ops.settings;
    v_value jsonb;
    v_int bigint;
    v_prev text;
BEGIN
    IF p_key IS NULL OR p_value IS NULL OR coalesce(pg_catalog.btrim(p_actor), '') = '' THEN
        RAISE EXCEPTION 'set_setting needs a key, a value and an actor'
            USING ERRCODE = '22004', HINT = 'Example: SELECT ops.set_setting(''dry_run'', ''true'', ''alice'');';
    END IF;
    SELECT * INTO v_def FROM ops.settings WHERE key = p_key FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown setting "%"', p_key
            USING ERRCODE = '22023',
                  HINT = 'Known settings: ' || (SELECT pg_catalog.string_agg(key, ', ' ORDER BY key) FROM ops.settings);
    END IF;
    CASE v_def.kind
    WHEN 'boolean' THEN
        IF pg_catalog.lower(pg_catalog.btrim(p_value)) NOT IN ('true', 'false', 'on', 'off', 't', 'f', 'yes', 'no', '1', '0') THEN
            RAISE EXCEPTION 'setting % takes true or false, not "%"', p_key, p_value
                USING ERRCODE = '22023', HINT = 'true/false, on/off, yes/no or 1/0.';
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value)::boolean);
    WHEN 'integer' THEN
        IF p_value !~ '^\s*-?[0-9]{1,12}\s*$' THEN
            RAISE EXCEPTION 'setting % takes a whole number, not "%"', p_key, p_value
                USING ERRCODE = '22023', HINT = pg_catalog.format('A whole number from %s to %s: %s',
                                                                  v_def.min_value, v_def.max_value, v_def.description);
        END IF;
        v_int := p_value::bigint;
        IF v_int < v_def.min_value OR v_int > v_def.max_value THEN
            RAISE EXCEPTION 'setting % must be between % and %, not %', p_key, v_def.min_value, v_def.max_value, v_int
                USING ERRCODE = '22003', HINT = v_def.description;
        END IF;
        v_value := pg_catalog.to_jsonb(v_int);
    WHEN 'cron' THEN
        -- parsed in full, never matched against the clock: hour 99 is refused at any minute
        IF pg_catalog.btrim(p_value) <> '' THEN
            PERFORM ops._cron_sets(p_value);
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value));
    WHEN 'policy' THEN
        IF pg_catalog.btrim(p_value) <> ''
           AND NOT EXISTS (SELECT 1 FROM ops.escalation_policies WHERE name = pg_catalog.btrim(p_value)) THEN
            RAISE EXCEPTION 'setting % names no escalation policy: "%"', p_key, p_value
                USING ERRCODE = '22023',
                      HINT = coalesce('Policies: ' || (SELECT pg_catalog.string_agg(name, ', ' ORDER BY name)
                                                       FROM ops.escalation_policies) || '; ', '')
                             || 'create one with ops.create_policy, or pass an empty value for none.';
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value));
    ELSE
        IF pg_catalog.btrim(p_value) <> '' THEN
            PERFORM ops.validate_url(pg_catalog.btrim(p_value), v_def.kind);
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value));
    END CASE;

    v_prev := ops._act_as(p_actor);
    UPDATE ops.settings SET value = v_value, updated_at = pg_catalog.now(), updated_by = p_actor
    WHERE key = p_key
    RETURNING * INTO v_def;
    PERFORM ops._act_as(v_prev);
    -- dispatchers wait on LISTEN: a webhook set or a pause lifted has messages to send at once
    IF p_key IN ('slack_webhook_url', 'notify_paused') THEN
        PERFORM pg_catalog.pg_notify('ops_outbox', 'settings');
    END IF;
    RETURN v_def;
END;
$$;

CREATE OR REPLACE FUNCTION ops._setting_problem(p_kind text, p_value jsonb, p_min int, p_max int) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = ops, pg_temp
AS $$
BEGIN
    IF p_value IS NULL THEN
        RETURN 'no value';
    END IF;
    CASE p_kind
    WHEN 'boolean' THEN
        IF pg_catalog.jsonb_typeof(p_value) <> 'boolean' THEN
            RETURN pg_catalog.format('%s is not true or false', p_value);
        END IF;
    WHEN 'integer' THEN
        IF pg_catalog.jsonb_typeof(p_value) <> 'number' OR p_value::numeric <> pg_catalog.trunc(p_value::numeric) THEN
            RETURN pg_catalog.format('%s is not a whole number', p_value);
        END IF;
        IF p_value::numeric < p_min OR p_value::numeric > p_max THEN
            RETURN pg_catalog.format('%s is outside %s-%s', p_value, p_min, p_max);
        END IF;
    WHEN 'cron', 'url', 'webhook' THEN
        IF pg_catalog.jsonb_typeof(p_value) <> 'string' THEN
            RETURN pg_catalog.format('%s is not a string', p_value);
        END IF;
        IF pg_catalog.btrim(p_value #>> '{}') <> '' THEN
            BEGIN
                IF p_kind = 'cron' THEN
                    PERFORM ops._cron_sets(p_value #>> '{}');
                ELSE
                    PERFORM ops.validate_url(p_value #>> '{}', p_kind);
                END IF;
            EXCEPTION WHEN invalid_parameter_value THEN
                -- a webhook path is its secret
                RETURN CASE p_kind WHEN 'webhook' THEN ops._redact_url(SQLERRM, p_value #>> '{}') ELSE SQLERRM END;
            END;
        END IF;
    WHEN 'policy' THEN
        IF pg_catalog.jsonb_typeof(p_value) <> 'string' THEN
            RETURN pg_catalog.format('%s is not a string', p_value);
        END IF;
        IF p_value #>> '{}' <> '' AND NOT EXISTS (SELECT 1 FROM ops.escalation_policies WHERE name = p_value #>> '{}') THEN
            RETURN pg_catalog.format('no escalation policy is named %s', p_value);
        END IF;
    ELSE
        RETURN pg_catalog.format('unknown kind %s', p_kind);
    END CASE;
    RETURN NULL;
END;
$$;
DROP FUNCTION ops._check_setting_text(text, text);

DELETE FROM ops.settings WHERE key IN ('smtp_host', 'smtp_port', 'smtp_from');
ALTER TABLE ops.settings DROP CONSTRAINT settings_kind_check,
ADD CONSTRAINT settings_kind_check CHECK (kind IN ('boolean', 'integer', 'cron', 'url', 'webhook', 'policy'));
COMMENT ON COLUMN ops.settings.kind IS
'How a value is validated: boolean, integer (min_value..max_value), cron (5 fields, empty = none), url, webhook '
'(https or loopback http), policy (an escalation policy name, empty = none).';
