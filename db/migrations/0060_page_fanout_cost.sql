-- depends: 0059_pager_attacks
-- The fan-out of a page to its notification rules, cheaper per row: a tick that pages 10k incidents
-- for principals with 3 rules writes 30k outbox rows in one statement, and a per-row cost of
-- that insert bought nothing.
--
-- The foreign key from notification_outbox.event_id to escalation_events: the tick takes each
-- event_id from the RETURNING of the event it inserted in the same statement, and events are
-- append-only (escalation_events_append_only refuses UPDATE and DELETE, a TRUNCATE trigger the
-- rest), so the event is always there; yet each row's check ran a query that locked its event (FOR KEY
-- SHARE, a tuple write), 40k of them in that tick: a tenth of its time.
ALTER TABLE ops.notification_outbox DROP CONSTRAINT notification_outbox_event_id_fkey;
COMMENT ON COLUMN ops.notification_outbox.event_id IS
'The escalation event a channel post or page belongs to (NULL for a verification code or a Slack reply). No foreign '
'key: the tick writes the event and its messages in one statement, and events are append-only.';

-- A page's payload is what its channel post says. The tick wrote it into every page row: 30k
-- copies of ~500 bytes in a tick paging 10k incidents for principals with 3 rules, a fifth of the
-- bytes that tick wrote. A page row now holds '{}' and the claim renders the payload from the
-- event, the row the tick made it from. A payload in the row (pages queued before) is used as is.
CREATE FUNCTION ops._page_payload(p_outbox ops.notification_outbox) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ops, pg_temp
AS $$
    SELECT CASE WHEN p_outbox.payload <> '{}' OR p_outbox.event_id IS NULL THEN p_outbox.payload
        ELSE (SELECT ops._tick_payload(e.unique_hash, e.incident_id, e.incident_key, e.route, e.severity,
                                       e.escalation_level, e.escalated_at, e.targets,
                                       nullif(pg_catalog.rtrim(ops.setting('app_base_url') #>> '{}', '/'), ''))
              FROM ops.escalation_events AS e WHERE e.id = p_outbox.event_id) END
$$;
COMMENT ON FUNCTION ops._page_payload(ops.notification_outbox) IS
'Internal: the payload an outbox row''s message is rendered from: its own, or for a page written without one (''{}'') '
'its escalation event''s, built as the tick builds a channel post''s (ops._tick_payload; the link from app_base_url '
'as it is now).';
REVOKE ALL ON FUNCTION ops._page_payload(ops.notification_outbox) FROM public;

-- pages are written without their payload
CREATE OR REPLACE FUNCTION ops._tick_due(
    p_now timestamptz, p_tick_id bigint, p_settings jsonb, p_dry boolean,
    OUT r_due integer, OUT r_live integer, OUT r_events integer, OUT r_lag bigint, OUT r_would jsonb
)
LANGUAGE plpgsql
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_base text := nullif(pg_catalog.rtrim(p_settings ->> 'app_base_url', '/'), '');
BEGIN
    WITH paged AS MATERIALIZED (
        SELECT * FROM ops._tick_claim(p_now, (p_settings -> 'max_esc_level')::int, (p_settings -> 'tick_batch_max')::int,
                                      p_dry, (p_settings -> 'canary_pct')::int, nullif(p_settings ->> 'default_policy', ''))
    ),
    events AS (
        INSERT INTO ops.escalation_events
            (incident_id, incident_key, route, severity, escalation_level, escalated_at, unique_hash, tick_id, targets)
        SELECT p.id, p.incident_key, p.route, p.severity, p.new_level, p_now, p.hash, p_tick_id, p.targets
        FROM paged AS p
        WHERE p.live
        ON CONFLICT (unique_hash) DO NOTHING
        -- the payload once per event, for its channel posts
        RETURNING id, incident_id, route, unique_hash, targets, ops._tick_payload(unique_hash, incident_id, incident_key,
                  route, severity, escalation_level, escalated_at, targets, v_base) AS payload, escalated_at
    ),
    raised AS (
        -- an event that already exists (the level was lowered by hand and reached again) still
        -- moves the incident on, so it is not due forever; it only sends nothing twice
        UPDATE ops.incidents AS i
        SET escalation_level = p.new_level, last_escalated_at = p_now
        FROM paged AS p
        WHERE p.live AND i.id = p.id
        RETURNING i.id
    ),
    queued AS (
        -- one message per destination: the route one keeps dedup_key = unique_hash (and without a
        -- policy the payload of before), each webhook target gets sha256(unique_hash:url)
        INSERT INTO ops.notification_outbox (dedup_key, event_id, incident_id, route, payload, webhook_url)
        SELECT e.dedup_key, e.id, e.incident_id, e.route,
               e.payload || pg_catalog.jsonb_build_object('dedup_key', e.dedup_key), e.url
        FROM (
            SELECT e1.*, e1.unique_hash AS dedup_key, NULL::text AS url
            FROM events AS e1
            WHERE e1.targets IS NULL OR e1.targets -> 'destinations' @> '[{"type": "route"}]'
            UNION ALL
            SELECT e2.*,
                   pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(e2.unique_hash || ':' || w.url, 'UTF8')),
                                     'hex'),
                   w.url
            FROM events AS e2
            INNER JOIN paged AS p ON e2.incident_id = p.id
            CROSS JOIN LATERAL pg_catalog.unnest(p.webhooks) AS w (url)
            WHERE e2.targets IS NOT NULL AND p.webhooks <> '{}'
        ) AS e
        RETURNING 1
    ),
    pages AS (
        -- a message per usable rule of each principal paged, due after its delay; never the address, nor
        -- the payload: the claim renders it from the event (ops._page_payload)
        INSERT INTO ops.notification_outbox
            (dedup_key, event_id, incident_id, route, channel, principal, contact_method, payload, due_at, next_attempt_at)
        SELECT k.dedup_key, e.id, e.incident_id, e.route, u.kind, u.principal, u.contact_method, '{}', k.due, k.due
        FROM events AS e CROSS JOIN LATERAL pg_catalog.jsonb_array_elements_text(e.targets -> 'principals') AS p (principal)
        INNER JOIN ops.usable_notification_rules AS u ON p.principal = u.principal
        CROSS JOIN LATERAL (SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
            e.unique_hash || ':rule:' || u.id, 'UTF8')), 'hex') AS dedup_key,
            e.escalated_at + pg_catalog.make_interval(mins => u.delay_min) AS due) AS k
    )
    SELECT count(*),
           count(*) FILTER (WHERE p.live),
           (SELECT count(*) FROM events),
           coalesce(max(floor(EXTRACT(epoch FROM p_now - p.next_due_at) * 1000)), 0),
           coalesce((SELECT pg_catalog.jsonb_agg(w) FROM (
               SELECT pg_catalog.jsonb_build_object('id', p2.id, 'incidentKey', p2.incident_key,
                   'fromLevel', p2.escalation_level, 'toLevel', p2.new_level,
                   'why', CASE WHEN p_dry THEN 'dry_run' ELSE 'canary' END)
                   || CASE WHEN p2.targets IS NOT NULL
                           THEN pg_catalog.jsonb_build_object('wouldPage', p2.targets -> 'principals')
                           ELSE '{}' END AS w
               FROM paged AS p2 WHERE NOT p2.live ORDER BY p2.next_due_at LIMIT 100) AS x), '[]')
    INTO r_due, r_live, r_events, r_lag, r_would
    FROM paged AS p;
END;
$$;


-- and a claimed page renders it from its event
CREATE OR REPLACE FUNCTION ops.claim_notifications(p_worker text, p_limit integer DEFAULT 100, p_now timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE (
    id bigint, claim_id bigint, dedup_key text, attempt integer, channel text, webhook_url text, message jsonb,
    lease_until timestamptz, lease_s integer
)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_global text := nullif(ops.setting('slack_webhook_url') #>> '{}', '');
    v_smtp text := nullif(ops.setting('smtp_host') #>> '{}', '');
    v_lease_s int := ops.setting('notify_lease_s')::int;
    v_max int := ops.setting('notify_max_attempts')::int;
    v_claim bigint;
    v_ids bigint[];
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
    PERFORM ops._cancel_unwanted_pages(p_now);
    v_claim := pg_catalog.nextval('ops.notification_claim_seq');
    WITH due AS (
        SELECT o.id
        FROM ops.notification_outbox AS o
        LEFT JOIN ops.route_webhooks AS w ON o.route = w.route
        WHERE o.status = 'pending' AND o.next_attempt_at <= p_now
          -- a contact method is reached by its address (an e-mail through smtp_host); a channel post
          -- needs a webhook to go to
          AND ((o.contact_method IS NOT NULL AND (o.channel <> 'email' OR v_smtp IS NOT NULL)) OR o.webhook_url IS NOT NULL
               OR (o.channel = 'slack' AND (w.webhook_url IS NOT NULL OR v_global IS NOT NULL)))
        ORDER BY o.next_attempt_at, o.id
        LIMIT p_limit
        FOR UPDATE OF o SKIP LOCKED
    ),
    claimed AS (
        UPDATE ops.notification_outbox AS o
        SET status = 'sending', attempts = o.attempts + 1, claimed_by = p_worker, claim_id = v_claim,
            lease_until = p_now + pg_catalog.make_interval(secs => v_lease_s)
        FROM due AS d
        WHERE o.id = d.id
        RETURNING o.id
    )
    SELECT pg_catalog.array_agg(c.id) INTO v_ids FROM claimed AS c;

    RETURN QUERY
    SELECT o.id, o.claim_id, o.dedup_key, o.attempts, o.channel,
           -- the webhook of a policy step first (the row itself), else the route webhook, else the global one
           CASE WHEN o.contact_method IS NOT NULL
                    THEN CASE m.kind WHEN 'webhook' THEN m.address
                                     WHEN 'email' THEN pg_catalog.format('smtp://%s:%s', v_smtp, ops.setting('smtp_port')) END
                WHEN o.channel = 'slack' THEN coalesce(o.webhook_url, w.webhook_url, v_global)
                ELSE o.webhook_url END,
           CASE WHEN o.contact_method IS NOT NULL
                    THEN ops._contact_message(o, m, ops._page_payload(o) || pg_catalog.jsonb_build_object('summary', i.summary),
                                              p_now)
                WHEN o.channel = 'slack' THEN ops.slack_message(o.payload)
                ELSE o.payload END,
           o.lease_until, v_lease_s
    FROM ops.notification_outbox AS o
    LEFT JOIN ops.route_webhooks AS w ON o.route = w.route
    LEFT JOIN ops.contact_methods AS m ON o.contact_method = m.id
    LEFT JOIN ops.incidents AS i ON o.incident_id = i.id
    WHERE o.id = ANY(v_ids)
    ORDER BY o.next_attempt_at, o.id;
END;
$$;
