-- depends: 0042_intake_keys_and_limits
-- Change events: PagerDuty's POST /v2/change/enqueue (a deploy, a config push, a flag flip),
-- kept per route so that a responder sees what changed before an incident opened and a release
-- engineer sees what changed on a route the guard blocks on. Senders use the events_v2 key they
-- already have (PagerDuty takes alert and change events with the same routing key).
--
-- Bounded storage: the key is a bearer secret in CI configuration, so what one request may store
-- is capped: summary 1024 characters (PagerDuty's limit), source 255, custom_details 16 KiB (the
-- first keys that fit), links 10 and 4 KiB; rows older than change_retention_days (30) are purged
-- daily with the other history.

INSERT INTO ops.settings (key, value, kind, min_value, max_value, description) VALUES
('change_retention_days', '30', 'integer', 1, 3650, 'Change events received longer ago than this are purged daily.');

CREATE TABLE ops.changes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    route text NOT NULL,
    summary text NOT NULL,
    source text,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    key_name text NOT NULL,
    details jsonb NOT NULL DEFAULT '{}',
    links jsonb NOT NULL DEFAULT '[]',
    truncated boolean NOT NULL DEFAULT FALSE,
    CONSTRAINT changes_route_length CHECK (pg_catalog.length(route) BETWEEN 1 AND 500),
    CONSTRAINT changes_summary_length CHECK (pg_catalog.length(summary) BETWEEN 1 AND 1024),
    CONSTRAINT changes_source_length CHECK (pg_catalog.length(source) <= 255),
    CONSTRAINT changes_details_cap CHECK (pg_catalog.jsonb_typeof(details) = 'object'
                                          AND pg_catalog.octet_length(details::text) <= 16384),
    CONSTRAINT changes_links_cap CHECK (pg_catalog.jsonb_typeof(links) = 'array'
                                        AND pg_catalog.jsonb_array_length(links) <= 10
                                        AND pg_catalog.octet_length(links::text) <= 4096)
);
COMMENT ON TABLE ops.changes IS
'Change events (POST /v2/change/enqueue, a key of kind events_v2): what changed on a route and when. Written only '
'by ops.api_change_event; shown with incidents (the hour before they opened) and with the guard''s route items; '
'purged after change_retention_days.';
COMMENT ON COLUMN ops.changes.route IS
'The key''s route when it has one, else payload.custom_details.route, else payload.source.';
COMMENT ON COLUMN ops.changes.occurred_at IS 'payload.timestamp, else the time it was received.';
COMMENT ON COLUMN ops.changes.details IS 'payload.custom_details: the first keys that fit in 16 KiB.';
COMMENT ON COLUMN ops.changes.links IS 'links as {href, text}: the first that fit in 10 and 4 KiB.';
COMMENT ON COLUMN ops.changes.truncated IS 'true when custom_details keys or links were left out to fit the caps.';
-- an incident's hour is one route and a time range, listed most recent first: read in index order
CREATE INDEX changes_route_occurred ON ops.changes (route, occurred_at DESC, id DESC);
-- retention deletes by receipt time (a sender's timestamp may be anything)
CREATE INDEX changes_received ON ops.changes (received_at);
-- the guard reads the lookback's changes of every route at once
CREATE INDEX changes_occurred ON ops.changes (occurred_at);
-- operators read it as every table (0019); the API reaches it only through its functions
GRANT SELECT ON ops.changes TO opsguard_operator;
-- audited like the incidents intake opens: the actor is the key's name
CREATE TRIGGER changes_audit_insert AFTER INSERT ON ops.changes
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('id');

CREATE FUNCTION ops._change_event_problems(p_body jsonb, p_key_route text) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = ops, pg_temp AS $$
DECLARE
    v_payload jsonb := p_body -> 'payload';
    v_details jsonb := CASE WHEN pg_catalog.jsonb_typeof(p_body -> 'payload') = 'object' THEN v_payload -> 'custom_details' END;
BEGIN
    IF pg_catalog.jsonb_typeof(v_payload) IS DISTINCT FROM 'object' THEN
        RETURN ARRAY['''payload'' is required: an object with summary'];
    END IF;
    RETURN pg_catalog.array_remove(ARRAY[
        ops._events_v2_string_problem(v_payload -> 'summary', 'payload.summary', 1024, true),
        ops._events_v2_string_problem(v_payload -> 'source', 'payload.source', 255, false),
        ops._events_v2_string_problem(v_payload -> 'timestamp', 'payload.timestamp', 64, false),
        CASE WHEN pg_catalog.jsonb_typeof(v_payload -> 'timestamp') = 'string'
                  AND pg_catalog.length(v_payload ->> 'timestamp') <= 64
                  AND ops._events_v2_timestamp(v_payload ->> 'timestamp') IS NULL
             THEN '''payload.timestamp'' must be an ISO 8601 time, e.g. 2026-12-01T08:00:00Z' END,
        CASE WHEN coalesce(pg_catalog.jsonb_typeof(v_details), 'null') NOT IN ('object', 'null')
             THEN '''payload.custom_details'' must be an object' END,
        -- the route from the event is read only when the key has none (a key's route is final)
        CASE WHEN p_key_route IS NULL AND pg_catalog.jsonb_typeof(v_details) = 'object'
             THEN ops._events_v2_string_problem(v_details -> 'route', 'payload.custom_details.route', 500, false) END,
        CASE WHEN p_key_route IS NULL
                  AND coalesce(pg_catalog.jsonb_typeof(v_details -> 'route'), 'null') IN ('string', 'null')
                  AND coalesce(pg_catalog.jsonb_typeof(v_payload -> 'source'), 'null') IN ('string', 'null')
                  AND coalesce(pg_catalog.btrim(v_details ->> 'route'), '') = ''
                  AND coalesce(pg_catalog.btrim(v_payload ->> 'source'), '') = ''
             THEN 'a change needs a route: the key''s, else ''payload.custom_details.route'', else ''payload.source''' END,
        CASE WHEN coalesce(pg_catalog.jsonb_typeof(p_body -> 'links'), 'null') NOT IN ('array', 'null')
                  OR pg_catalog.jsonb_typeof(p_body -> 'links') = 'array' AND EXISTS (
                      SELECT 1 FROM pg_catalog.jsonb_array_elements(p_body -> 'links') AS l (e)
                      WHERE pg_catalog.jsonb_typeof(l.e) <> 'object'
                         OR pg_catalog.jsonb_typeof(l.e -> 'href') IS DISTINCT FROM 'string'
                         OR coalesce(pg_catalog.jsonb_typeof(l.e -> 'text'), 'null') NOT IN ('string', 'null'))
             THEN '''links'' must be a list of {"href": string, "text": string}'
             WHEN pg_catalog.jsonb_typeof(p_body -> 'links') = 'array' AND EXISTS (
                      SELECT 1 FROM pg_catalog.jsonb_array_elements(p_body -> 'links') AS l (e)
                      WHERE pg_catalog.length(l.e ->> 'href') > 2048 OR pg_catalog.length(l.e ->> 'text') > 1024)
             THEN '''links'': an href is at most 2048 characters, a text at most 1024' END
    ], NULL);
END;
$$;
COMMENT ON FUNCTION ops._change_event_problems(jsonb, text) IS
'Internal: every problem of a change event body (PagerDuty''s shape), in order; empty when it is valid. '
'p_key_route: the key''s route, NULL when the event must name one.';

CREATE FUNCTION ops._change_details(p_details jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
-- an entry costs its key and value as text plus ": " and ", ": a running sum that bounds the object's text
RETURN CASE
    WHEN pg_catalog.jsonb_typeof(p_details) IS DISTINCT FROM 'object' THEN '{}'::jsonb
    WHEN pg_catalog.octet_length(p_details::text) <= 16384 THEN p_details
    ELSE (
        SELECT coalesce(pg_catalog.jsonb_object_agg(k.key, k.value), '{}')
        FROM (
            SELECT
                e.key,
                e.value,
                pg_catalog.sum(pg_catalog.octet_length(pg_catalog.to_jsonb(e.key)::text)
                               + pg_catalog.octet_length(e.value::text) + 4) OVER (ORDER BY e.n) AS running
            FROM pg_catalog.jsonb_each(p_details) WITH ORDINALITY AS e (key, value, n)  -- noqa: RF03
        ) AS k
        WHERE k.running <= 16384 - 2
    )
END;
COMMENT ON FUNCTION ops._change_details(jsonb) IS
'Internal: a change''s custom_details as kept: whole up to 16 KiB, else the first keys (jsonb order) that fit.';

CREATE FUNCTION ops._change_links(p_links jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
RETURN CASE
    WHEN pg_catalog.jsonb_typeof(p_links) IS DISTINCT FROM 'array' THEN '[]'::jsonb
    ELSE (
        SELECT coalesce(pg_catalog.jsonb_agg(k.link ORDER BY k.n), '[]')
        FROM (
            SELECT
                l.n,
                l.link,
                pg_catalog.sum(pg_catalog.octet_length(l.link::text) + 2) OVER (ORDER BY l.n) AS running
            FROM (
                SELECT
                    e.n,
                    pg_catalog.jsonb_strip_nulls(
                        pg_catalog.jsonb_build_object('href', e.v -> 'href', 'text', e.v -> 'text')) AS link
                FROM pg_catalog.jsonb_array_elements(p_links) WITH ORDINALITY AS e (v, n)  -- noqa: RF03
                ORDER BY e.n
                LIMIT 10
            ) AS l
        ) AS k
        WHERE k.running <= 4096 - 2
    )
END;
COMMENT ON FUNCTION ops._change_links(jsonb) IS
'Internal: a change''s links as kept: {href, text} of the first 10 that fit in 4 KiB.';

CREATE FUNCTION ops.api_change_event(p_body jsonb, p_now timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_key ops.integration_keys;
    v_payload jsonb := p_body -> 'payload';
    v_errors text[];
    v_details jsonb;
    v_links jsonb;
    v_prev text;
BEGIN
    IF p_body IS NULL OR pg_catalog.jsonb_typeof(p_body) <> 'object' OR p_now IS NULL THEN
        RAISE EXCEPTION 'the body must be a JSON object' USING ERRCODE = '22023',
            DETAIL = '["the body must be a JSON object"]',
            HINT = '{"routing_key": "ogk_...", "payload": {"summary": "deploy checkout v42", "source": "checkout"}}';
    END IF;
    -- the key first: without a live key nothing else is looked at (one 28000 for every bad key)
    v_key := ops._integration_key(
        CASE WHEN pg_catalog.jsonb_typeof(p_body -> 'routing_key') = 'string' THEN p_body ->> 'routing_key' END,
        'events_v2');
    v_errors := ops._change_event_problems(p_body, v_key.route);
    IF pg_catalog.cardinality(v_errors) > 0 THEN
        RAISE EXCEPTION '%', v_errors[1] USING ERRCODE = '22023',
            DETAIL = pg_catalog.array_to_json(v_errors)::text,
            HINT = '{"routing_key": "ogk_...", "payload": {"summary": "deploy checkout v42", "source": "checkout", '
                   '"timestamp": "2026-12-01T08:00:00Z"}, "links": [{"href": "https://ci.example/42", "text": "build"}]}';
    END IF;
    v_details := ops._change_details(v_payload -> 'custom_details');
    v_links := ops._change_links(p_body -> 'links');
    v_prev := ops._act_as(v_key.name);
    INSERT INTO ops.changes (route, summary, source, occurred_at, received_at, key_name, details, links, truncated)
    VALUES (coalesce(v_key.route, NULLIF(pg_catalog.btrim(v_payload #>> '{custom_details,route}'), ''),
                     NULLIF(pg_catalog.btrim(v_payload ->> 'source'), '')),
            v_payload ->> 'summary', v_payload ->> 'source',
            coalesce(ops._events_v2_timestamp(v_payload ->> 'timestamp'), p_now), p_now, v_key.name,
            v_details, v_links,
            v_details IS DISTINCT FROM coalesce(NULLIF(v_payload -> 'custom_details', 'null'), '{}')
                OR pg_catalog.jsonb_array_length(v_links)
                   < coalesce(pg_catalog.jsonb_array_length(NULLIF(p_body -> 'links', 'null')), 0));
    PERFORM ops._act_as(v_prev);
    -- what PagerDuty answers (no id: a change event is not addressed again)
    RETURN '{"status": "success", "message": "Change event processed"}'::jsonb;
END;
$$;
COMMENT ON FUNCTION ops.api_change_event(jsonb, timestamptz) IS
'POST /v2/change/enqueue (PagerDuty change events, a key of kind events_v2): records one row in ops.changes. '
'Bad key: 28000; bad event: 22023 with every problem as a JSON array in DETAIL.';

CREATE FUNCTION ops.incident_changes(p_id uuid) RETURNS SETOF ops.changes
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT c.* FROM ops.incidents AS i
    INNER JOIN ops.changes AS c
        ON i.route = c.route AND c.occurred_at BETWEEN i.first_seen - interval '1 hour' AND i.first_seen
    WHERE i.id = p_id
    ORDER BY c.occurred_at DESC, c.id DESC
    LIMIT 10;
END;
COMMENT ON FUNCTION ops.incident_changes(uuid) IS
'The changes on an incident''s route in the hour before it opened (first_seen), most recent first, at most 10: '
'what GET /ops/incidents lists as its changes.';

CREATE FUNCTION ops._guard_changes(p_since timestamptz, p_now timestamptz) RETURNS TABLE (route text, changes jsonb)
LANGUAGE sql STABLE
BEGIN ATOMIC
    -- one scan of the lookback's few changes for every route item at once (a lookup per item
    -- cost 0.05 ms each: 15 ms for 300 failing items); the guard is open to anyone and lists up
    -- to 200 route items, so three short entries each
    SELECT
        r.route,
        pg_catalog.jsonb_build_object('changes', pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
            'id', r.id, 'occurredAt', r.occurred_at, 'summary', pg_catalog.left(r.summary, 200), 'source', r.source)
            ORDER BY r.occurred_at DESC, r.id DESC)) AS changes
    FROM (
        SELECT
            c.id,
            c.route,
            c.occurred_at,
            c.summary,
            c.source,
            pg_catalog.row_number() OVER (PARTITION BY c.route ORDER BY c.occurred_at DESC, c.id DESC) AS n
        FROM ops.changes AS c
        WHERE c.occurred_at BETWEEN p_since AND p_now  -- noqa: RF03
    ) AS r
    WHERE r.n <= 3
    GROUP BY r.route;
END;
COMMENT ON FUNCTION ops._guard_changes(timestamptz, timestamptz) IS
'Internal: per route, {"changes": [...]}: its 3 most recent changes within [p_since, p_now] (summary cut to 200 '
'characters), what the guard adds to a route item''s evidence.';

CREATE FUNCTION ops._purge_changes(p_now timestamptz) RETURNS bigint
LANGUAGE sql
SET search_path = ops, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM ops.changes
        WHERE received_at < p_now - pg_catalog.make_interval(days => ops.setting('change_retention_days')::int)
        RETURNING 1
    )
    SELECT pg_catalog.count(*) FROM gone;
$$;
COMMENT ON FUNCTION ops._purge_changes(timestamptz) IS
'Internal: deletes the changes received more than change_retention_days before p_now; returns how many.';

-- GET /ops/incidents: each incident with the changes of its route in the hour before it opened, one
-- LATERAL index scan each (a function call per incident cost 0.05 ms more: 27 ms for 500 incidents)
CREATE OR REPLACE FUNCTION ops.api_list_incidents(
    p_principal text, p_actor text, p_filters jsonb
) RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    AS $_$
DECLARE
    v_status text := coalesce(p_filters ->> 'status', 'active');
    v_severity text := p_filters ->> 'severity';
    v_route text := p_filters ->> 'route';
    v_limit int;
    v_result jsonb;
BEGIN
    PERFORM ops.authorize(p_principal, 'incidents.read', nullif(p_actor, ''));
    IF v_status NOT IN ('active', 'open', 'acknowledged', 'resolved', 'all') THEN
        RAISE EXCEPTION 'status must be active, open, acknowledged, resolved or all' USING ERRCODE = '22023';
    END IF;
    IF v_severity IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ops.sla WHERE severity = v_severity) THEN
        RAISE EXCEPTION 'unknown severity "%"', v_severity USING ERRCODE = '22023';
    END IF;
    IF coalesce(p_filters ->> 'limit', '100') !~ '^[0-9]{1,4}$' THEN
        RAISE EXCEPTION 'limit must be a number from 1 to 500' USING ERRCODE = '22023';
    END IF;
    v_limit := coalesce(p_filters ->> 'limit', '100')::int;
    IF v_limit NOT BETWEEN 1 AND 500 THEN
        RAISE EXCEPTION 'limit must be a number from 1 to 500' USING ERRCODE = '22023';
    END IF;
    SELECT coalesce(pg_catalog.jsonb_agg(ops.incident_json(i) || pg_catalog.jsonb_build_object('changes', ch.changes)
                                         ORDER BY i.last_seen DESC), '[]')
    INTO v_result
    FROM (
        SELECT * FROM ops.incidents AS i
        WHERE (v_status = 'all' OR (v_status = 'active' AND i.status <> 'resolved') OR i.status = v_status)
          AND (v_severity IS NULL OR i.severity = v_severity)
          AND (v_route IS NULL OR i.route = v_route)
        ORDER BY i.last_seen DESC
        LIMIT v_limit
    ) AS i
    -- the changes of its route in the hour before it opened, as ops.incident_changes lists them
    CROSS JOIN LATERAL (
        SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'id', c.id, 'occurredAt', c.occurred_at, 'receivedAt', c.received_at, 'summary', c.summary,
                   'source', c.source, 'integrationKey', c.key_name, 'links', c.links)
                   ORDER BY c.occurred_at DESC, c.id DESC), '[]') AS changes
        FROM (SELECT * FROM ops.changes AS x
              WHERE x.route = i.route AND x.occurred_at BETWEEN i.first_seen - interval '1 hour' AND i.first_seen
              ORDER BY x.occurred_at DESC, x.id DESC
              LIMIT 10) AS c
    ) AS ch;
    RETURN pg_catalog.jsonb_build_object('ok', true, 'count', pg_catalog.jsonb_array_length(v_result), 'incidents', v_result);
END;
$_$;
COMMENT ON FUNCTION ops.api_list_incidents(text, text, jsonb) IS
'GET /ops/incidents?status=active|open|acknowledged|resolved|all&severity=&route=&limit=: newest first, each with '
'"changes": its route''s changes in the hour before it opened (ops.incident_changes, at most 10).';

-- the guard: a route item's evidence carries the route's changes within the lookback (one join,
-- ops._guard_changes; the rest of the body is 0022's)
CREATE OR REPLACE FUNCTION ops.release_guard(
    p_now timestamp with time zone DEFAULT now(), p_route_prefix text DEFAULT NULL::text,
    p_caller text DEFAULT NULL::text, p_context jsonb DEFAULT '{}'::jsonb
) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    SET jit TO 'off'
    SET plan_cache_mode TO 'force_custom_plan'
    AS $_$
DECLARE
    -- at most this many items in each list of an answer
    c_listed constant int := 100;
    -- caller and context are what an anonymous client sent: stored capped
    c_caller_chars constant int := 200;
    c_context_bytes constant int := 2048;
    v_block_inconclusive boolean := ops.setting('guard_block_inconclusive')::boolean;
    v_since timestamptz;
    v_context jsonb;
    v_result jsonb;
    v_fingerprint bytea;
    v_id bigint;
BEGIN
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'release_guard needs a time' USING ERRCODE = '22004';
    END IF;
    IF pg_catalog.length(p_route_prefix) > 500 THEN
        RAISE EXCEPTION 'a route prefix is at most 500 characters, not %', pg_catalog.length(p_route_prefix)
            USING ERRCODE = '22023', HINT = 'Incident keys are at most 500 characters: a longer prefix matches nothing.';
    END IF;
    v_since := p_now - pg_catalog.make_interval(mins => ops.setting('guard_lookback_min')::int);

    -- The items of _guard_items, kept apart: blocking incidents are counted on their keys and
    -- built as jsonb only when listed; route findings (one per route and rule at most) as 0021.
    WITH ov AS MATERIALIZED (
        -- the active exemption of each item, the one that expires last (as 0021)
        SELECT DISTINCT ON (o.item_key) o.item_key,
               CASE WHEN o.item_key ~ '^incident:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                    THEN pg_catalog.substr(o.item_key, 10)::uuid END AS incident_id,
               pg_catalog.jsonb_build_object('reason', o.reason, 'by', o.created_by, 'expiresAt', o.expires_at,
                                             'overrideId', o.id) AS override
        FROM ops.guard_overrides AS o
        WHERE o.created_at <= p_now AND o.expires_at > p_now
        ORDER BY o.item_key, o.expires_at DESC
    ),
    inc AS NOT MATERIALIZED (
        -- blocking incidents as _guard_items selects them: open, unacknowledged, critical, seen
        -- within guard_lookback_min; ids only (inlined where used: each use is its own index scan)
        SELECT i.id
        FROM ops.incidents AS i
        WHERE i.status = 'open' AND i.acknowledged_at IS NULL AND i.severity = 'critical'
          AND i.last_seen >= v_since
          AND (p_route_prefix IS NULL OR pg_catalog.starts_with(i.route, p_route_prefix))
    ),
    inc_n AS MATERIALIZED (
        -- the exempted are the few active exemptions of blocking incidents: counted from those
        SELECT (SELECT count(*) FROM inc) AS total,
               (SELECT count(*) FROM ov INNER JOIN inc ON ov.incident_id = inc.id) AS exempted
    ),
    inc_listed AS (
        -- the first of them in key order, exempted or not (the incidents list) ...
        SELECT inc.id FROM inc ORDER BY inc.id LIMIT c_listed
    ),
    inc_failing AS (
        -- ... and those that count (the head of the failing list)
        SELECT inc.id FROM inc
        WHERE NOT EXISTS (SELECT FROM ov WHERE ov.incident_id = inc.id)
        ORDER BY inc.id LIMIT c_listed
    ),
    inc_items AS (
        SELECT 'incident:' || i.id AS item_key, 'incident' AS kind, false AS inconclusive,
               pg_catalog.jsonb_build_object('kind', 'incident', 'key', 'incident:' || i.id, 'id', i.id,
                   'incidentKey', i.incident_key, 'route', i.route, 'severity', i.severity,
                   'escalationLevel', i.escalation_level, 'lastSeen', i.last_seen)
               || CASE WHEN ov.override IS NOT NULL THEN pg_catalog.jsonb_build_object('exempted', ov.override)
                       ELSE '{}' END AS shown,
               ov.override IS NULL AS counts,
               i.id IN (SELECT inc_failing.id FROM inc_failing) AS in_failing
        FROM ops.incidents AS i
        LEFT JOIN ov ON i.id = ov.incident_id
        WHERE i.id IN (SELECT inc_listed.id FROM inc_listed UNION SELECT inc_failing.id FROM inc_failing)
    ),
    findings AS MATERIALIZED (
        SELECT f.route || '::' || f.reason AS item_key,
               CASE WHEN f.verdict = 'ticket' THEN 'ticket' ELSE 'violation' END AS kind,
               f.verdict <> 'violation' AS inconclusive,
               pg_catalog.jsonb_build_object('kind', CASE WHEN f.verdict = 'ticket' THEN 'ticket' ELSE 'violation' END,
                   'key', f.route || '::' || f.reason,
                   'route', f.route, 'reason', f.reason, 'evidence', f.evidence || coalesce(rc.changes, '{}'))
               || CASE WHEN ov.override IS NOT NULL THEN pg_catalog.jsonb_build_object('exempted', ov.override)
                       ELSE '{}' END AS shown,
               ov.override IS NULL
                   AND (f.verdict = 'violation' OR (v_block_inconclusive AND f.verdict <> 'ticket')) AS counts
        FROM ops.route_findings(p_now, p_route_prefix) AS f
        LEFT JOIN ov ON f.route || '::' || f.reason = ov.item_key
        LEFT JOIN ops._guard_changes(v_since, p_now) AS rc ON f.route = rc.route
    ),
    failing AS (
        -- incidents sort before violations (kind, then key), as in 0021
        SELECT s.kind, s.item_key, s.shown
        FROM (SELECT kind, item_key, shown FROM inc_items WHERE in_failing
              UNION ALL
              SELECT kind, item_key, shown FROM findings WHERE counts) AS s
        ORDER BY s.kind, s.item_key
        LIMIT c_listed
    ),
    violations AS (
        SELECT item_key, shown FROM findings WHERE kind = 'violation' AND NOT inconclusive ORDER BY item_key LIMIT c_listed
    ),
    warnings AS (
        SELECT item_key, kind, shown FROM findings WHERE inconclusive ORDER BY item_key LIMIT c_listed
    ),
    n AS MATERIALIZED (
        SELECT inc_n.total AS incidents,
               inc_n.total - inc_n.exempted + (SELECT count(*) FROM findings WHERE counts) AS failing,
               (SELECT count(*) FROM findings WHERE kind = 'violation' AND NOT inconclusive) AS violations,
               (SELECT count(*) FROM findings WHERE inconclusive) AS warnings
        FROM inc_n
    )
    SELECT pg_catalog.jsonb_build_object(
        'ok', n.failing = 0,
        'failingCount', n.failing,
        'warningCount', n.warnings,
        'truncated', GREATEST(n.failing, n.incidents, n.violations, n.warnings) > c_listed,
        'failing', coalesce((SELECT pg_catalog.jsonb_agg(shown ORDER BY kind, item_key) FROM failing), '[]'),
        'incidents', coalesce((SELECT pg_catalog.jsonb_agg(shown ORDER BY item_key) FROM inc_items
                               WHERE inc_items.item_key IN (SELECT 'incident:' || inc_listed.id FROM inc_listed)), '[]'),
        'violations', coalesce((SELECT pg_catalog.jsonb_agg(shown ORDER BY item_key) FROM violations), '[]'),
        'warnings', coalesce((SELECT pg_catalog.jsonb_agg(w.shown || pg_catalog.jsonb_build_object(
                                 'message', CASE WHEN w.kind = 'ticket'
                                                 THEN 'error budget burning faster than it refills (3d and 6h): '
                                                      || 'open a ticket; not blocking'
                                                 ELSE 'too few samples to judge; not blocking'
                                                      || CASE WHEN v_block_inconclusive
                                                              THEN ' (blocking: guard_block_inconclusive)' ELSE '' END
                                            END) ORDER BY w.item_key)
                              FROM warnings AS w), '[]'),
        'evaluatedAt', p_now,
        'routePrefix', p_route_prefix,
        'thresholds', pg_catalog.jsonb_build_object(
            'lookbackMin', ops.setting('guard_lookback_min'),
            'criticalErrorPct', ops.setting('guard_critical_error_pct'),
            'hardErrorPct', ops.setting('guard_hard_error_pct'),
            'burnRatePairs', '[{"windows": "5m/1h", "factor": 14.4}, {"windows": "30m/6h", "factor": 6}]'::jsonb,
            'blockInconclusive', v_block_inconclusive))
    INTO v_result
    FROM n;

    -- An answer equal to the previous one stored for this prefix adds no row: that row counts
    -- the repeat. Two calls racing on a new answer may both store it; neither is lost.
    v_fingerprint := pg_catalog.sha256(pg_catalog.convert_to((v_result - 'evaluatedAt')::text, 'UTF8'));
    UPDATE ops.guard_evaluations AS e
    SET repeats = e.repeats + 1, last_evaluated_at = GREATEST(e.last_evaluated_at, p_now)
    WHERE e.id = (SELECT l.id FROM ops.guard_evaluations AS l
                  WHERE coalesce(l.route_prefix, '') = coalesce(p_route_prefix, '')
                  ORDER BY l.id DESC
                  LIMIT 1)
      AND e.fingerprint = v_fingerprint
    RETURNING e.id INTO v_id;
    IF v_id IS NOT NULL THEN
        -- the metric opsguard_guard_evaluations counts rows plus counter_base: a repeat has no row
        INSERT INTO ops.counter_base AS c (name, label, value)
        VALUES ('guard_evaluations', CASE WHEN (v_result ->> 'ok')::boolean THEN 'ok' ELSE 'blocked' END, 1)
        ON CONFLICT (name, label) DO UPDATE SET value = c.value + 1;
    ELSE
        -- a context over the cap keeps only the CI headers the API sends (each capped) and its size
        v_context := coalesce(p_context, '{}');
        IF pg_catalog.octet_length(v_context::text) > c_context_bytes THEN
            v_context := (SELECT coalesce(pg_catalog.jsonb_object_agg(k.key, pg_catalog.left(k.value, c_caller_chars)), '{}')
                          FROM pg_catalog.jsonb_each_text(
                              CASE WHEN pg_catalog.jsonb_typeof(v_context) = 'object' THEN v_context ELSE '{}' END) AS k
                          WHERE k.key IN ('commit', 'pipeline', 'job', 'ref'))
                         || pg_catalog.jsonb_build_object('truncated', true, 'bytes', pg_catalog.octet_length(v_context::text));
        END IF;
        INSERT INTO ops.guard_evaluations (evaluated_at, last_evaluated_at, ok, failing_count, route_prefix, caller, context,
                                           result, fingerprint)
        VALUES (p_now, p_now, (v_result ->> 'ok')::boolean, (v_result ->> 'failingCount')::int, p_route_prefix,
                pg_catalog.left(p_caller, c_caller_chars), v_context, v_result, v_fingerprint)
        RETURNING id INTO v_id;
    END IF;
    RETURN v_result || pg_catalog.jsonb_build_object('evaluationId', v_id);
END;
$_$;

-- retention: changes with the other history
CREATE OR REPLACE FUNCTION ops.purge_history(p_now timestamp with time zone DEFAULT now()) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    AS $_$
DECLARE
    v_ticks bigint;
    v_sent bigint;
    v_evals bigint;
    v_cron bigint := 0;
    v_guard jsonb;
    v_changes bigint;
BEGIN
    WITH gone AS (
        DELETE FROM ops.tick_log
        WHERE tick_at < p_now - pg_catalog.make_interval(days => ops.setting('tick_log_retention_days')::int)
        RETURNING state, escalations_count, skipped_idempotent
    ),
    sums AS (
        SELECT 'escalations_count' AS name, '' AS label, sum(escalations_count)::bigint AS n FROM gone
        UNION ALL
        SELECT 'skipped_idempotent', '', sum(skipped_idempotent)::bigint FROM gone
        UNION ALL
        SELECT 'ticks', state, count(*) FROM gone GROUP BY state
    ),
    added AS (
        INSERT INTO ops.counter_base AS c (name, label, value)
        SELECT name, label, n FROM sums WHERE n > 0
        ON CONFLICT (name, label) DO UPDATE SET value = c.value + EXCLUDED.value
    )
    SELECT count(*) INTO v_ticks FROM gone;

    WITH gone AS (
        DELETE FROM ops.notification_outbox
        WHERE status = 'sent'
          AND sent_at < p_now - pg_catalog.make_interval(days => ops.setting('notify_retention_days')::int)
        RETURNING id
    ),
    sums AS (
        SELECT 'notifications_sent' AS name, count(*) AS n FROM gone
        UNION ALL
        SELECT 'slack_send_failures', count(*) FROM ops.notification_attempts  -- deleted with them (cascade)
        WHERE outcome = 'failed' AND outbox_id IN (SELECT id FROM gone)
    ),
    added AS (
        INSERT INTO ops.counter_base AS c (name, label, value)
        SELECT name, '', n FROM sums WHERE n > 0
        ON CONFLICT (name, label) DO UPDATE SET value = c.value + EXCLUDED.value
    )
    SELECT count(*) INTO v_sent FROM gone;

    WITH gone AS (
        DELETE FROM ops.guard_evaluations
        WHERE evaluated_at < p_now - pg_catalog.make_interval(days => ops.setting('guard_evaluation_retention_days')::int)
        RETURNING ok
    ),
    added AS (
        INSERT INTO ops.counter_base AS c (name, label, value)
        SELECT 'guard_evaluations', CASE WHEN ok THEN 'ok' ELSE 'blocked' END, count(*) FROM gone GROUP BY ok
        ON CONFLICT (name, label) DO UPDATE SET value = c.value + EXCLUDED.value
    )
    SELECT count(*) INTO v_evals FROM gone;
    v_guard := ops.purge_guard_history(p_now);  -- the rollups, and the replay keys
    v_changes := ops._purge_changes(p_now);

    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        EXECUTE 'DELETE FROM cron.job_run_details
                 WHERE end_time < $1 AND jobid IN (SELECT jobid FROM cron.job WHERE jobname LIKE ''opsguard-%'')'
        USING p_now - pg_catalog.make_interval(days => ops.setting('cron_history_retention_days')::int);
        GET DIAGNOSTICS v_cron = ROW_COUNT;
    END IF;
    RETURN pg_catalog.jsonb_build_object('tickLog', v_ticks, 'notifications', v_sent, 'evaluations', v_evals,
                                         'rollups', v_guard -> 'rollups', 'cronRunDetails', v_cron,
                                         'changes', v_changes);
END;
$_$;
COMMENT ON FUNCTION ops.purge_history(timestamptz) IS
'Daily retention (pg_cron job opsguard-retention): tick_log, sent notifications and their attempts, guard '
'evaluations and rollups, change events, pg_cron run details of our jobs, each by its *_retention_days setting. '
'Counters keep what was purged.';

REVOKE ALL ON FUNCTION ops._change_event_problems(jsonb, text), ops._change_details(jsonb), ops._change_links(jsonb),
    ops.api_change_event(jsonb, timestamptz),
    ops.incident_changes(uuid), ops._guard_changes(timestamptz, timestamptz), ops._purge_changes(timestamptz)
FROM public;
-- the endpoint's one function; a key holder reaches nothing else
GRANT EXECUTE ON FUNCTION ops.api_change_event(jsonb, timestamptz) TO opsguard_api;
-- a verb for psql, like the other reads operators run
GRANT EXECUTE ON FUNCTION ops.incident_changes(uuid) TO opsguard_operator;
