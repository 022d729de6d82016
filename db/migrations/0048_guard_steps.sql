-- depends: 0047_tick_steps

-- The release guard in named steps (what blocks, the answer, storing it) with one definition of
-- what blocks, and a byte cap on what anonymous callers can make the database keep.

-- Anonymous (unsigned) evaluations are a capped history: their bytes are counted per row and in
-- one running total, so the cap is kept without counting the table on every call.
ALTER TABLE ops.guard_evaluations ADD COLUMN anonymous_bytes integer;
COMMENT ON COLUMN ops.guard_evaluations.anonymous_bytes IS
'NULL: a signed caller''s (or an operator''s) evaluation, kept in full. Else an anonymous one''s bytes (its values '
'uncompressed plus 200 for header and index entries), counted against guard_anonymous_history_mb.';
CREATE INDEX guard_evaluations_anonymous ON ops.guard_evaluations (id) INCLUDE (anonymous_bytes)
WHERE anonymous_bytes IS NOT NULL;

CREATE TABLE ops.guard_anonymous_usage (
    only_row boolean PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    bytes bigint NOT NULL
);
COMMENT ON TABLE ops.guard_anonymous_usage IS
'One row: the sum of guard_evaluations.anonymous_bytes, kept by triggers on every insert and delete.';
INSERT INTO ops.guard_anonymous_usage (bytes) VALUES (0);

INSERT INTO ops.settings (key, value, default_value, kind, min_value, max_value, description) VALUES
('guard_anonymous_history_mb', '50', '50', 'integer', 1, 10240,
 'Anonymous (unsigned) guard evaluations are kept up to this many MB; beyond it the oldest go as new ones come.');

CREATE FUNCTION ops._guard_usage_count() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = ops, pg_temp
    AS $$
DECLARE
    v_delta bigint;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE ops.guard_anonymous_usage SET bytes = 0;
        RETURN NULL;
    ELSIF TG_OP = 'INSERT' THEN
        SELECT sum(r.anonymous_bytes) INTO v_delta FROM new_rows AS r;
    ELSE
        SELECT -sum(r.anonymous_bytes) INTO v_delta FROM old_rows AS r;
    END IF;
    -- signed rows only: no lock on the running total
    IF v_delta IS NOT NULL THEN
        UPDATE ops.guard_anonymous_usage SET bytes = bytes + v_delta;
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ops._guard_usage_count() IS
'Trigger: keeps guard_anonymous_usage equal to the sum of guard_evaluations.anonymous_bytes, whoever deletes.';
CREATE TRIGGER guard_usage_insert AFTER INSERT ON ops.guard_evaluations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._guard_usage_count();
CREATE TRIGGER guard_usage_delete AFTER DELETE ON ops.guard_evaluations
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._guard_usage_count();
CREATE TRIGGER guard_usage_truncate AFTER TRUNCATE ON ops.guard_evaluations
    FOR EACH STATEMENT EXECUTE FUNCTION ops._guard_usage_count();

-- What blocks, defined once. SQL-standard bodies without SET: the planner inlines them into the
-- answer's query, so each use is still its own index scan (the 50,000-incident bound).
CREATE FUNCTION ops._guard_incidents(p_since timestamptz, p_route_prefix text) RETURNS TABLE (id uuid)
    LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT i.id
    FROM ops.incidents AS i
    WHERE i.status = 'open' AND i.acknowledged_at IS NULL AND i.severity = 'critical'
      AND i.last_seen >= p_since  -- noqa: RF03
      AND (p_route_prefix IS NULL OR pg_catalog.starts_with(i.route, p_route_prefix));  -- noqa: RF03
END;
COMMENT ON FUNCTION ops._guard_incidents(timestamptz, text) IS
'Internal: the incidents that block a release: open, unacknowledged, critical, seen since p_since (p_now minus '
'guard_lookback_min), on a route starting with p_route_prefix (NULL: every route).';

CREATE FUNCTION ops._guard_incident_item(p_incident ops.incidents) RETURNS jsonb
    LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT pg_catalog.jsonb_build_object('kind', 'incident', 'key', 'incident:' || (p_incident).id, 'id', (p_incident).id,
        'incidentKey', (p_incident).incident_key, 'route', (p_incident).route, 'severity', (p_incident).severity,
        'escalationLevel', (p_incident).escalation_level, 'lastSeen', (p_incident).last_seen);
END;
COMMENT ON FUNCTION ops._guard_incident_item(ops.incidents) IS 'Internal: a blocking incident as the guard lists it.';

CREATE FUNCTION ops._guard_findings(p_now timestamptz, p_route_prefix text, p_since timestamptz)
    RETURNS TABLE (item_key text, kind text, inconclusive boolean, blocks boolean, item jsonb)
    LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT
        f.route || '::' || f.reason AS item_key,
        CASE WHEN f.verdict = 'ticket' THEN 'ticket' ELSE 'violation' END AS kind,
        f.verdict <> 'violation' AS inconclusive,
        -- a ticket never blocks; an inconclusive finding only under guard_block_inconclusive
        f.verdict = 'violation'
        OR (f.verdict <> 'ticket' AND (SELECT ops.setting('guard_block_inconclusive')::boolean)) AS blocks,
        pg_catalog.jsonb_build_object(
            'kind', CASE WHEN f.verdict = 'ticket' THEN 'ticket' ELSE 'violation' END,
            'key', f.route || '::' || f.reason, 'route', f.route, 'reason', f.reason,
            'evidence', f.evidence || coalesce(rc.changes, '{}')
        ) AS item
    FROM ops.route_findings(p_now, p_route_prefix) AS f  -- noqa: RF03
    LEFT JOIN ops._guard_changes(p_since, p_now) AS rc ON f.route = rc.route;  -- noqa: RF03
END;
COMMENT ON FUNCTION ops._guard_findings(timestamptz, text, timestamptz) IS
'Internal: route findings as guard items (kind violation or ticket), whether each blocks, the evidence with the '
'route''s changes since p_since.';

CREATE FUNCTION ops._guard_overrides(p_now timestamptz)
    RETURNS TABLE (item_key text, incident_id uuid, override jsonb)
    LANGUAGE sql STABLE
BEGIN ATOMIC
    -- the active exemption of each item, the one that expires last
    SELECT DISTINCT ON (o.item_key)
        o.item_key,
        CASE WHEN o.item_key ~ '^incident:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                THEN pg_catalog.substr(o.item_key, 10)::uuid END AS incident_id,
        pg_catalog.jsonb_build_object('reason', o.reason, 'by', o.created_by, 'expiresAt', o.expires_at,
                                      'overrideId', o.id) AS override
    FROM ops.guard_overrides AS o
    WHERE o.created_at <= p_now AND o.expires_at > p_now  -- noqa: RF03
    ORDER BY o.item_key ASC, o.expires_at DESC;
END;
COMMENT ON FUNCTION ops._guard_overrides(timestamptz) IS
'Internal: per exempted item its active override (the one that expires last); incident_id for incident items.';

CREATE OR REPLACE FUNCTION ops._guard_items(p_now timestamptz, p_route_prefix text)
    RETURNS TABLE (item_key text, kind text, inconclusive boolean, item jsonb)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ops, pg_temp
    AS $$
    SELECT 'incident:' || i.id, 'incident', FALSE, ops._guard_incident_item(i)
    FROM ops.incidents AS i
    WHERE i.id IN (SELECT g.id FROM ops._guard_incidents(
        p_now - pg_catalog.make_interval(mins => ops.setting('guard_lookback_min')::int), p_route_prefix) AS g)
    UNION ALL
    SELECT f.item_key, f.kind, f.inconclusive, f.item
    FROM ops._guard_findings(p_now, p_route_prefix,
        p_now - pg_catalog.make_interval(mins => ops.setting('guard_lookback_min')::int)) AS f
$$;
COMMENT ON FUNCTION ops._guard_items(timestamptz, text) IS
'Internal: every guard item, exempted or not: the blocking incidents (_guard_incidents) and route findings and '
'tickets (_guard_findings), as release_guard lists them.';

CREATE FUNCTION ops._guard_warning(p_kind text, p_block_inconclusive boolean) RETURNS text
    LANGUAGE sql IMMUTABLE
BEGIN ATOMIC
    SELECT CASE WHEN p_kind = 'ticket'
                THEN 'error budget burning faster than it refills (3d and 6h): open a ticket; not blocking'
                ELSE 'too few samples to judge; not blocking'
                     || CASE WHEN p_block_inconclusive THEN ' (blocking: guard_block_inconclusive)' ELSE '' END
           END;
END;
COMMENT ON FUNCTION ops._guard_warning(text, boolean) IS 'Internal: the message of a warning item (ticket or inconclusive).';

CREATE FUNCTION ops._guard_thresholds(p_block_inconclusive boolean) RETURNS jsonb
    LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT pg_catalog.jsonb_build_object(
        'lookbackMin', ops.setting('guard_lookback_min'),
        'criticalErrorPct', ops.setting('guard_critical_error_pct'),
        'hardErrorPct', ops.setting('guard_hard_error_pct'),
        'burnRatePairs', '[{"windows": "5m/1h", "factor": 14.4}, {"windows": "30m/6h", "factor": 6}]'::jsonb,
        'blockInconclusive', p_block_inconclusive);
END;
COMMENT ON FUNCTION ops._guard_thresholds(boolean) IS 'Internal: the thresholds an answer states.';

CREATE FUNCTION ops._guard_answer(p_now timestamptz, p_route_prefix text) RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = ops, pg_temp
    SET jit = off
    SET plan_cache_mode = force_custom_plan
    AS $$
DECLARE
    -- at most this many items in each list of an answer
    c_listed constant int := 100;
    v_block_inconclusive boolean := ops.setting('guard_block_inconclusive')::boolean;
    v_since timestamptz := p_now - pg_catalog.make_interval(mins => ops.setting('guard_lookback_min')::int);
    v_result jsonb;
BEGIN
    -- Blocking incidents are counted on their ids and built as jsonb only when listed (inc is
    -- inlined where used: each use is its own index scan); route findings are one per route and rule.
    WITH ov AS MATERIALIZED (SELECT * FROM ops._guard_overrides(p_now)),
    inc AS NOT MATERIALIZED (SELECT g.id FROM ops._guard_incidents(v_since, p_route_prefix) AS g),
    inc_n AS MATERIALIZED (
        -- the exempted are the few active exemptions of blocking incidents: counted from those
        SELECT (SELECT count(*) FROM inc) AS total,
               (SELECT count(*) FROM ov INNER JOIN inc ON ov.incident_id = inc.id) AS exempted
    ),
    -- the first in key order, exempted or not (the incidents list), and those that count (failing)
    inc_listed AS (SELECT inc.id FROM inc ORDER BY inc.id LIMIT c_listed),
    inc_failing AS (
        SELECT inc.id FROM inc WHERE NOT EXISTS (SELECT FROM ov WHERE ov.incident_id = inc.id)
        ORDER BY inc.id LIMIT c_listed
    ),
    inc_items AS (
        SELECT 'incident:' || i.id AS item_key, 'incident' AS kind,
               ops._guard_incident_item(i) || CASE WHEN ov.override IS NOT NULL
                   THEN pg_catalog.jsonb_build_object('exempted', ov.override) ELSE '{}' END AS shown,
               i.id IN (SELECT inc_failing.id FROM inc_failing) AS in_failing,
               i.id IN (SELECT inc_listed.id FROM inc_listed) AS in_listed
        FROM ops.incidents AS i
        LEFT JOIN ov ON i.id = ov.incident_id
        WHERE i.id IN (SELECT inc_listed.id FROM inc_listed UNION SELECT inc_failing.id FROM inc_failing)
    ),
    findings AS MATERIALIZED (
        SELECT f.item_key, f.kind, f.inconclusive, ov.override IS NULL AND f.blocks AS counts,
               f.item || CASE WHEN ov.override IS NOT NULL
                   THEN pg_catalog.jsonb_build_object('exempted', ov.override) ELSE '{}' END AS shown
        FROM ops._guard_findings(p_now, p_route_prefix, v_since) AS f
        LEFT JOIN ov ON f.item_key = ov.item_key
    ),
    failing AS (
        -- incidents sort before violations (kind, then key)
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
    warnings AS (SELECT item_key, kind, shown FROM findings WHERE inconclusive ORDER BY item_key LIMIT c_listed),
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
        'incidents', coalesce((SELECT pg_catalog.jsonb_agg(shown ORDER BY item_key) FROM inc_items WHERE in_listed), '[]'),
        'violations', coalesce((SELECT pg_catalog.jsonb_agg(shown ORDER BY item_key) FROM violations), '[]'),
        'warnings', coalesce((SELECT pg_catalog.jsonb_agg(w.shown || pg_catalog.jsonb_build_object(
                                 'message', ops._guard_warning(w.kind, v_block_inconclusive)) ORDER BY w.item_key)
                              FROM warnings AS w), '[]'),
        'evaluatedAt', p_now,
        'routePrefix', p_route_prefix,
        'thresholds', ops._guard_thresholds(v_block_inconclusive))
    INTO v_result
    FROM n;
    RETURN v_result;
END;
$$;
COMMENT ON FUNCTION ops._guard_answer(timestamptz, text) IS
'Internal: the guard''s answer at p_now, not stored: verdict, counts, and each list''s first 100 items in key order.';

CREATE FUNCTION ops._guard_context(p_context jsonb, p_max_bytes integer, p_key_chars integer) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
BEGIN ATOMIC
    -- over the cap: only the CI headers the API sends (each cut), and the size; if even that is
    -- over the cap (multibyte text), the size alone
    SELECT CASE
        WHEN pg_catalog.octet_length(c.v::text) <= p_max_bytes THEN c.v
        WHEN pg_catalog.octet_length(k.kept::text) <= p_max_bytes THEN k.kept
        ELSE pg_catalog.jsonb_build_object('truncated', TRUE, 'bytes', pg_catalog.octet_length(c.v::text))
    END
    FROM (SELECT coalesce(p_context, '{}'::jsonb) AS v) AS c
    CROSS JOIN LATERAL (
        SELECT coalesce(pg_catalog.jsonb_object_agg(e.key, pg_catalog."left"(e.value, p_key_chars)), '{}'::jsonb)  -- noqa: RF03
               || pg_catalog.jsonb_build_object('truncated', TRUE, 'bytes', pg_catalog.octet_length(c.v::text)) AS kept
        FROM pg_catalog.jsonb_each_text(CASE WHEN pg_catalog.jsonb_typeof(c.v) = 'object' THEN c.v ELSE '{}' END) AS e
        WHERE e.key IN ('commit', 'pipeline', 'job', 'ref')
    ) AS k;
END;
COMMENT ON FUNCTION ops._guard_context(jsonb, integer, integer) IS
'Internal: a caller''s context as stored: whole up to p_max_bytes, else its CI keys (commit, pipeline, job, ref; '
'p_key_chars each), "truncated": true and its size in "bytes" (the size alone when even that is over).';

CREATE FUNCTION ops._guard_trim_anonymous() RETURNS integer
    LANGUAGE plpgsql
    SET search_path = ops, pg_temp
    AS $$
DECLARE
    v_over bigint;
    v_freed bigint;
    v_gone int;
    v_total int := 0;
BEGIN
    SELECT u.bytes - ops.setting('guard_anonymous_history_mb')::bigint * 1048576 INTO v_over
    FROM ops.guard_anonymous_usage AS u;
    -- the oldest anonymous rows go, just enough of them; rows another session holds (a purge, a
    -- repeat) are skipped, not waited for
    WHILE v_over > 0 LOOP
        WITH oldest AS (
            SELECT e.id, e.anonymous_bytes FROM ops.guard_evaluations AS e
            WHERE e.anonymous_bytes IS NOT NULL ORDER BY e.id LIMIT 64 FOR UPDATE SKIP LOCKED
        ),
        upto AS (SELECT o.id, sum(o.anonymous_bytes) OVER (ORDER BY o.id) - o.anonymous_bytes AS before FROM oldest AS o),
        gone AS (
            DELETE FROM ops.guard_evaluations AS e USING upto
            WHERE e.id = upto.id AND upto.before < v_over
            RETURNING e.ok, e.anonymous_bytes
        ),
        -- the metric opsguard_guard_evaluations counts rows plus counter_base: keep it counting
        added AS (
            INSERT INTO ops.counter_base AS c (name, label, value)
            SELECT 'guard_evaluations', CASE WHEN ok THEN 'ok' ELSE 'blocked' END, count(*) FROM gone GROUP BY ok
            ON CONFLICT (name, label) DO UPDATE SET value = c.value + EXCLUDED.value
        )
        SELECT coalesce(sum(gone.anonymous_bytes), 0), count(*) INTO v_freed, v_gone FROM gone;
        EXIT WHEN v_gone = 0;
        v_over := v_over - v_freed;
        v_total := v_total + v_gone;
    END LOOP;
    RETURN v_total;
END;
$$;
COMMENT ON FUNCTION ops._guard_trim_anonymous() IS
'Internal: deletes the oldest anonymous evaluations until their bytes are within guard_anonymous_history_mb; '
'returns how many went. Signed callers'' evaluations are never trimmed.';

CREATE FUNCTION ops._guard_store(p_now timestamptz, p_route_prefix text, p_caller text, p_context jsonb,
                                 p_result jsonb, p_anonymous boolean) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ops, pg_temp
    AS $$
DECLARE
    -- what a caller sends is stored capped; tighter for an anonymous one, whose rows are a capped history
    c_caller_chars constant int := 200;
    v_context jsonb := ops._guard_context(p_context, CASE WHEN p_anonymous THEN 512 ELSE 2048 END,
                                          CASE WHEN p_anonymous THEN 64 ELSE 200 END);
    v_fingerprint bytea := pg_catalog.sha256(pg_catalog.convert_to((p_result - 'evaluatedAt')::text, 'UTF8'));
    v_id bigint;
BEGIN
    -- An answer equal to the previous one stored for this prefix adds no row: that row counts
    -- the repeat. Two calls racing on a new answer may both store it; neither is lost.
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
        VALUES ('guard_evaluations', CASE WHEN (p_result ->> 'ok')::boolean THEN 'ok' ELSE 'blocked' END, 1)
        ON CONFLICT (name, label) DO UPDATE SET value = c.value + 1;
        RETURN v_id;
    END IF;
    INSERT INTO ops.guard_evaluations AS e (evaluated_at, last_evaluated_at, ok, failing_count, route_prefix, caller,
                                            context, result, fingerprint, anonymous_bytes)
    SELECT v.*, CASE WHEN p_anonymous THEN pg_catalog.pg_column_size(v.*) + 200 END
    FROM (VALUES (p_now, p_now, (p_result ->> 'ok')::boolean, (p_result ->> 'failingCount')::int, p_route_prefix,
                  pg_catalog."left"(p_caller, c_caller_chars), v_context, p_result, v_fingerprint)) AS v
    RETURNING e.id INTO v_id;
    IF p_anonymous THEN
        PERFORM ops._guard_trim_anonymous();
    END IF;
    RETURN v_id;
END;
$$;
COMMENT ON FUNCTION ops._guard_store(timestamptz, text, text, jsonb, jsonb, boolean) IS
'Internal: stores an answer (or counts a repeat of the previous one for the prefix) and returns its evaluation id. '
'Caller capped at 200 characters, context at 2 KiB (anonymous: 512 bytes, guard_anonymous_history_mb in all).';

DROP FUNCTION ops.release_guard(timestamptz, text, text, jsonb);
CREATE FUNCTION ops.release_guard(
    p_now timestamptz DEFAULT pg_catalog.now(), p_route_prefix text DEFAULT NULL,
    p_caller text DEFAULT NULL, p_context jsonb DEFAULT '{}', p_anonymous boolean DEFAULT FALSE
) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = ops, pg_temp
    AS $$
DECLARE
    v_result jsonb;
BEGIN
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'release_guard needs a time' USING ERRCODE = '22004';
    END IF;
    IF pg_catalog.length(p_route_prefix) > 500 THEN
        RAISE EXCEPTION 'a route prefix is at most 500 characters, not %', pg_catalog.length(p_route_prefix)
            USING ERRCODE = '22023', HINT = 'Incident keys are at most 500 characters: a longer prefix matches nothing.';
    END IF;
    v_result := ops._guard_answer(p_now, p_route_prefix);
    RETURN v_result || pg_catalog.jsonb_build_object('evaluationId',
        ops._guard_store(p_now, p_route_prefix, p_caller, p_context, v_result, coalesce(p_anonymous, TRUE)));
END;
$$;
COMMENT ON FUNCTION ops.release_guard(timestamptz, text, text, jsonb, boolean) IS
'May a release proceed? ok=false while an open unacknowledged critical incident was seen within guard_lookback_min '
'or a route violates a rule (route_findings). Exempted items stay listed, marked, and do not count; slo_burn_ticket '
'items are warnings only. Each list holds at most 100 items (failingCount, warningCount exact; truncated: a list was '
'cut). Stored unless equal to the previous answer for the prefix (then that row counts repeats); caller and context '
'capped; p_anonymous (an unsigned HTTP caller): kept in the capped history of guard_anonymous_history_mb.';

DROP FUNCTION ops.api_release_guard(text, text, jsonb);
CREATE FUNCTION ops.api_release_guard(p_route_prefix text, p_caller text, p_context jsonb, p_signed boolean)
    RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = ops, pg_temp
    AS $$
BEGIN
    RETURN ops.release_guard(pg_catalog.now(), nullif(p_route_prefix, ''), p_caller, p_context, NOT coalesce(p_signed, FALSE));
END;
$$;
COMMENT ON FUNCTION ops.api_release_guard(text, text, jsonb, boolean) IS
'GET/POST /ops/release-guard: open to CI, no signature; p_signed: the request carried a valid one (its evaluation '
'is kept in full, an unsigned one in the capped anonymous history).';

REVOKE ALL ON FUNCTION ops._guard_usage_count(), ops._guard_incidents(timestamptz, text),
    ops._guard_incident_item(ops.incidents), ops._guard_findings(timestamptz, text, timestamptz),
    ops._guard_overrides(timestamptz), ops._guard_warning(text, boolean), ops._guard_thresholds(boolean),
    ops._guard_answer(timestamptz, text), ops._guard_context(jsonb, integer, integer), ops._guard_trim_anonymous(),
    ops._guard_store(timestamptz, text, text, jsonb, jsonb, boolean),
    ops.release_guard(timestamptz, text, text, jsonb, boolean), ops.api_release_guard(text, text, jsonb, boolean)
FROM public;
-- operators ask the guard in psql (kept in full); the API asks for every HTTP caller
GRANT EXECUTE ON FUNCTION ops.release_guard(timestamptz, text, text, jsonb, boolean) TO opsguard_operator;
GRANT EXECUTE ON FUNCTION ops.api_release_guard(text, text, jsonb, boolean) TO opsguard_api;
-- the running total is the guard's own bookkeeping; operators may read it
REVOKE ALL ON ops.guard_anonymous_usage FROM public;
GRANT SELECT ON ops.guard_anonymous_usage TO opsguard_operator;

-- route_findings in steps: the per-window sums read from the minute rollups, from the coarser
-- ones, the burn rates against each route's objectives, then the rules. Every window is the
-- minutes (e - length, e]: e is the minute of p_now, counted whole; f starts the 5-minute bucket
-- of e, h its hour, d its UTC day. Bounds are variables: timestamptz arithmetic is not folded by
-- the planner, and inline it ran for every row.
CREATE FUNCTION ops._route_minute_sums(p_now timestamptz, p_route_prefix text)
    RETURNS TABLE (route text, n1 float8, e1 float8, n5 float8, e5 float8, s5 float8, n30 float8, e30 float8,
                   n60 float8, e60 float8, n360 float8, e360 float8)
    LANGUAGE plpgsql STABLE
    SET search_path = ops, pg_temp
    SET jit = off
    SET plan_cache_mode = force_custom_plan
    AS $$
#variable_conflict use_column
DECLARE
    v_e timestamptz := pg_catalog.date_trunc('minute', p_now);
    v_f timestamptz := pg_catalog.date_bin('5 minutes', pg_catalog.date_trunc('minute', p_now), '2000-01-01');
    v_1m timestamptz := v_e - interval '1 minute';      -- error_rate_critical: this minute and the one before
    v_5m timestamptz := v_e - interval '4 minutes';
    -- the oldest minutes of each window, up to its first whole 5-minute bucket; and [f, e]
    v_30m_from timestamptz := v_e - interval '29 minutes';
    v_30m_to timestamptz := v_f - interval '26 minutes';
    v_1h_from timestamptz := v_e - interval '59 minutes';
    v_1h_to timestamptz := v_f - interval '56 minutes';
    v_6h_from timestamptz := v_e - interval '359 minutes';
    v_6h_to timestamptz := v_f - interval '356 minutes';
BEGIN
    RETURN QUERY
    SELECT m.route,
           coalesce(sum(m.requests) FILTER (WHERE m.minute >= v_1m), 0)::float8,
           coalesce(sum(m.errors) FILTER (WHERE m.minute >= v_1m), 0)::float8,
           coalesce(sum(m.requests) FILTER (WHERE m.minute >= v_5m), 0)::float8,
           coalesce(sum(m.errors) FILTER (WHERE m.minute >= v_5m), 0)::float8,
           coalesce(sum(m.slow) FILTER (WHERE m.minute >= v_5m), 0)::float8,
           coalesce(sum(m.requests) FILTER (WHERE m.minute >= v_f OR m.minute BETWEEN v_30m_from AND v_30m_to), 0)::float8,
           coalesce(sum(m.errors) FILTER (WHERE m.minute >= v_f OR m.minute BETWEEN v_30m_from AND v_30m_to), 0)::float8,
           coalesce(sum(m.requests) FILTER (WHERE m.minute >= v_f OR m.minute BETWEEN v_1h_from AND v_1h_to), 0)::float8,
           coalesce(sum(m.errors) FILTER (WHERE m.minute >= v_f OR m.minute BETWEEN v_1h_from AND v_1h_to), 0)::float8,
           coalesce(sum(m.requests) FILTER (WHERE m.minute >= v_f OR m.minute BETWEEN v_6h_from AND v_6h_to), 0)::float8,
           coalesce(sum(m.errors) FILTER (WHERE m.minute >= v_f OR m.minute BETWEEN v_6h_from AND v_6h_to), 0)::float8
    FROM ops.route_minute_stats AS m
    WHERE (m.minute BETWEEN v_5m AND v_e
           OR m.minute BETWEEN v_30m_from AND v_30m_to
           OR m.minute BETWEEN v_1h_from AND v_1h_to
           OR m.minute BETWEEN v_6h_from AND v_6h_to)
      AND (p_route_prefix IS NULL OR pg_catalog.starts_with(m.route, p_route_prefix))
    GROUP BY m.route;
END;
$$;
COMMENT ON FUNCTION ops._route_minute_sums(timestamptz, text) IS
'Internal: per route, requests, errors (and slow requests for 5m) of each window read from minute rollups: all of '
'1m and 5m, and the minutes at both ends of 30m, 1h and 6h (the rest is in _route_coarse_sums).';

CREATE FUNCTION ops._route_coarse_sums(p_now timestamptz, p_route_prefix text)
    RETURNS TABLE (route text, n30 float8, e30 float8, n60 float8, e60 float8, n360 float8, e360 float8,
                   n3d float8, e3d float8)
    LANGUAGE plpgsql STABLE
    SET search_path = ops, pg_temp
    SET jit = off
    SET plan_cache_mode = force_custom_plan
    AS $$
#variable_conflict use_column
DECLARE
    v_f timestamptz := pg_catalog.date_bin('5 minutes', pg_catalog.date_trunc('minute', p_now), '2000-01-01');
    v_h timestamptz := pg_catalog.date_trunc('hour', p_now);
    v_d timestamptz := pg_catalog.date_bin('1 day', p_now, '2000-01-01 00:00+00');
    -- whole 5-minute buckets: [f - 25, f) for 30m, [f - 55, f) for 1h; for 6h [f - 355, h - 300)
    -- before its whole hours [h - 300, h) and [h, f) after them
    v_30m_buckets timestamptz := v_f - interval '25 minutes';
    v_1h_buckets timestamptz := v_f - interval '55 minutes';
    v_6h_buckets timestamptz := v_f - interval '355 minutes';
    v_6h_hours timestamptz := v_h - interval '300 minutes';
    v_3d_whole_days timestamptz := v_d - interval '2 days';
    v_3d_oldest_day timestamptz := v_d - interval '3 days';
    -- the share of the oldest of the 4 days the 3-day window touches (the others are whole,
    -- today up to e): the daily rollup is pro-rated, assuming even traffic that day
    v_oldest_day_share float8 := (1439 - pg_catalog.date_part('epoch', pg_catalog.date_trunc('minute', p_now) - v_d) / 60) / 1440;
BEGIN
    RETURN QUERY
    SELECT b.route,
           coalesce(sum(b.requests) FILTER (WHERE b.bucket >= v_30m_buckets), 0)::float8,
           coalesce(sum(b.errors) FILTER (WHERE b.bucket >= v_30m_buckets), 0)::float8,
           coalesce(sum(b.requests) FILTER (WHERE b.bucket >= v_1h_buckets), 0)::float8,
           coalesce(sum(b.errors) FILTER (WHERE b.bucket >= v_1h_buckets), 0)::float8,
           coalesce(sum(b.requests) FILTER (WHERE b.bucket >= v_h OR b.bucket < v_6h_hours), 0)::float8,
           coalesce(sum(b.errors) FILTER (WHERE b.bucket >= v_h OR b.bucket < v_6h_hours), 0)::float8, 0::float8, 0::float8
    FROM ops.route_5min_stats AS b
    WHERE (b.bucket >= v_1h_buckets AND b.bucket < v_f OR b.bucket >= v_6h_buckets AND b.bucket < v_6h_hours)
      AND (p_route_prefix IS NULL OR pg_catalog.starts_with(b.route, p_route_prefix))
    GROUP BY b.route
    UNION ALL
    SELECT h.route, 0, 0, 0, 0, sum(h.requests)::float8, sum(h.errors)::float8, 0, 0
    FROM ops.route_hour_stats AS h
    WHERE h.hour >= v_6h_hours AND h.hour < v_h
      AND (p_route_prefix IS NULL OR pg_catalog.starts_with(h.route, p_route_prefix))
    GROUP BY h.route
    UNION ALL
    SELECT y.route, 0, 0, 0, 0, 0, 0,
           sum(y.requests * CASE WHEN y.day < v_3d_whole_days THEN v_oldest_day_share ELSE 1 END::float8),
           sum(y.errors * CASE WHEN y.day < v_3d_whole_days THEN v_oldest_day_share ELSE 1 END::float8)
    FROM ops.route_day_stats AS y
    WHERE y.day >= v_3d_oldest_day AND y.day <= v_d
      AND (p_route_prefix IS NULL OR pg_catalog.starts_with(y.route, p_route_prefix))
    GROUP BY y.route;
END;
$$;
COMMENT ON FUNCTION ops._route_coarse_sums(timestamptz, text) IS
'Internal: per route and rollup table (a route may have up to 3 rows), the middle of the 30m, 1h and 6h windows '
'from 5-minute buckets and whole hours, and the 3-day window from daily rollups (its oldest day pro-rated).';

CREATE FUNCTION ops._route_burn_rates(p_now timestamptz, p_route_prefix text)
    RETURNS TABLE (route text, n1 float8, e1 float8, n5 float8, e5 float8, s5 float8, n30 float8, e30 float8,
                   n60 float8, e60 float8, n360 float8, e360 float8, n3d float8, e3d float8,
                   target numeric, min_n integer, lat_ms integer, lat_pct numeric,
                   fast_judged boolean, slow_judged boolean, burn5 float8, burn30 float8, burn60 float8,
                   burn360 float8, burn3d float8, fast_fired boolean, slow_fired boolean, ticket_fired boolean,
                   too_slow boolean)
    LANGUAGE plpgsql STABLE
    SET search_path = ops, pg_temp
    SET jit = off
    SET plan_cache_mode = force_custom_plan
    AS $$
#variable_conflict use_column
BEGIN
    -- burn rate: the error rate as a multiple of the error budget (the share of errors the SLO allows).
    -- Counts and verdicts are float8 (exact for counts below 2^53; numeric sums and divisions
    -- for 1,000 routes were most of the cost); the evidence of the few listed rows is numeric.
    RETURN QUERY
    WITH s AS (
        SELECT p.route, sum(p.n1) AS n1, sum(p.e1) AS e1, sum(p.n5) AS n5, sum(p.e5) AS e5, sum(p.s5) AS s5,
               sum(p.n30) AS n30, sum(p.e30) AS e30, sum(p.n60) AS n60, sum(p.e60) AS e60,
               sum(p.n360) AS n360, sum(p.e360) AS e360, sum(p.n3d) AS n3d, sum(p.e3d) AS e3d
        FROM (SELECT m.*, 0::float8 AS n3d, 0::float8 AS e3d FROM ops._route_minute_sums(p_now, p_route_prefix) AS m
              UNION ALL
              SELECT c.route, 0, 0, 0, 0, 0, c.n30, c.e30, c.n60, c.e60, c.n360, c.e360, c.n3d, c.e3d
              FROM ops._route_coarse_sums(p_now, p_route_prefix) AS c) AS p
        GROUP BY p.route
    ),
    b AS (
        SELECT s.*, coalesce(o.error_pct_target, d.error_pct_target) AS target,
               coalesce(o.min_samples, d.min_samples) AS min_n,
               coalesce(o.latency_threshold_ms, d.latency_threshold_ms) AS lat_ms,
               coalesce(o.latency_target_pct, d.latency_target_pct) AS lat_pct,
               coalesce(o.error_pct_target, d.error_pct_target)::float8 AS target_f
        FROM s
        CROSS JOIN (SELECT * FROM ops.route_slos WHERE route = '*') AS d
        LEFT JOIN ops.route_slos AS o ON s.route = o.route
    ),
    r AS (
        SELECT b.*,
               b.n5 >= b.min_n AND b.n60 >= b.min_n AS fast_judged,
               b.n30 >= b.min_n AND b.n360 >= b.min_n AS slow_judged,
               b.n3d >= b.min_n AND b.n360 >= b.min_n AS ticket_judged,
               CASE WHEN b.n5 > 0 THEN 100 * b.e5 / b.n5 / b.target_f END AS burn5,
               CASE WHEN b.n30 > 0 THEN 100 * b.e30 / b.n30 / b.target_f END AS burn30,
               CASE WHEN b.n60 > 0 THEN 100 * b.e60 / b.n60 / b.target_f END AS burn60,
               CASE WHEN b.n360 > 0 THEN 100 * b.e360 / b.n360 / b.target_f END AS burn360,
               CASE WHEN b.n3d > 0 THEN 100 * b.e3d / b.n3d / b.target_f END AS burn3d
        FROM b
    )
    SELECT r.route, r.n1, r.e1, r.n5, r.e5, r.s5, r.n30, r.e30, r.n60, r.e60, r.n360, r.e360, r.n3d, r.e3d,
           r.target, r.min_n, r.lat_ms, r.lat_pct, r.fast_judged, r.slow_judged,
           r.burn5, r.burn30, r.burn60, r.burn360, r.burn3d,
           r.fast_judged AND r.burn5 > 14.4 AND r.burn60 > 14.4,
           r.slow_judged AND r.burn30 > 6 AND r.burn360 > 6,
           r.ticket_judged AND r.burn3d > 1 AND r.burn360 > 1,
           CASE WHEN r.n5 > 0 THEN 100 * r.s5 / r.n5 > r.lat_pct::float8 END
    FROM r;
END;
$$;
COMMENT ON FUNCTION ops._route_burn_rates(timestamptz, text) IS
'Internal: per route with traffic in any window, each window''s counts (_route_minute_sums, _route_coarse_sums), '
'its objectives (own row, else ''*''), burn rates, which burn-rate pairs are judged and fired, and whether too slow.';

CREATE OR REPLACE FUNCTION ops.route_findings(p_now timestamptz DEFAULT pg_catalog.now(), p_route_prefix text DEFAULT NULL)
    RETURNS TABLE (route text, reason text, verdict text, evidence jsonb)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ops, pg_temp
    SET jit = off
    SET plan_cache_mode = force_custom_plan
    AS $$
#variable_conflict use_column
DECLARE
    v_crit_pct float8 := ops.setting('guard_critical_error_pct')::float8;
    v_hard_pct float8 := ops.setting('guard_hard_error_pct')::float8;
BEGIN
    RETURN QUERY
    WITH v AS (
        -- verdicts first; evidence is built below only for the few rows that have one
        SELECT p.*, f.reason, f.verdict
        FROM ops._route_burn_rates(p_now, p_route_prefix) AS p
        CROSS JOIN LATERAL (VALUES
            ('error_rate_critical',
             CASE WHEN p.n1 = 0 THEN NULL
                  WHEN p.n1 < p.min_n THEN 'inconclusive'
                  WHEN 100 * p.e1 / p.n1 >= v_crit_pct THEN 'violation' END),
            ('hard_error_threshold',
             CASE WHEN p.n5 = 0 THEN NULL
                  WHEN p.n5 < p.min_n THEN 'inconclusive'
                  WHEN 100 * p.e5 / p.n5 > v_hard_pct THEN 'violation' END),
            ('slo_violation',
             CASE WHEN p.fast_fired OR p.slow_fired THEN 'violation'
                  -- too little recent traffic to judge either pair; a route idle for 30 minutes is not listed
                  WHEN NOT p.fast_judged AND NOT p.slow_judged AND p.n30 > 0 THEN 'inconclusive' END),
            -- the ticket tier of the workbook: budget spent faster than it refills for days; a page supersedes it
            ('slo_burn_ticket',
             CASE WHEN p.ticket_fired AND NOT p.fast_fired AND NOT p.slow_fired THEN 'ticket' END),
            ('latency_slo',
             CASE WHEN p.lat_ms IS NULL OR p.n5 = 0 THEN NULL
                  WHEN p.n5 < p.min_n THEN 'inconclusive'
                  WHEN p.too_slow THEN 'violation' END)
        ) AS f (reason, verdict)
        WHERE f.verdict IS NOT NULL
    )
    SELECT v.route, v.reason, v.verdict,
           CASE v.reason
               WHEN 'error_rate_critical' THEN pg_catalog.jsonb_build_object(
                   'err_rate_1m', ops._pct(v.e1::numeric, v.n1::numeric), 'samples_1m', v.n1::numeric, 'threshold_pct', v_crit_pct::numeric,
                   'min_samples', v.min_n)
               WHEN 'hard_error_threshold' THEN pg_catalog.jsonb_build_object(
                   'err_rate_5m', ops._pct(v.e5::numeric, v.n5::numeric), 'samples_5m', v.n5::numeric, 'threshold_pct', v_hard_pct::numeric,
                   'min_samples', v.min_n)
               WHEN 'slo_violation' THEN pg_catalog.jsonb_build_object(
                   'error_pct_target', pg_catalog.trim_scale(v.target), 'min_samples', v.min_n,
                   'pairs', pg_catalog.jsonb_build_array(
                       pg_catalog.jsonb_build_object('windows', '5m/1h', 'factor', 14.4, 'judged', v.fast_judged,
                           'fired', v.fast_fired),
                       pg_catalog.jsonb_build_object('windows', '30m/6h', 'factor', 6, 'judged', v.slow_judged,
                           'fired', v.slow_fired)),
                   'windows', pg_catalog.jsonb_build_object(
                       '5m', ops._burn_window(v.e5, v.n5, v.burn5),
                       '30m', ops._burn_window(v.e30, v.n30, v.burn30),
                       '1h', ops._burn_window(v.e60, v.n60, v.burn60),
                       '6h', ops._burn_window(v.e360, v.n360, v.burn360)))
               WHEN 'slo_burn_ticket' THEN pg_catalog.jsonb_build_object(
                   'error_pct_target', pg_catalog.trim_scale(v.target), 'min_samples', v.min_n,
                   'pairs', pg_catalog.jsonb_build_array(
                       pg_catalog.jsonb_build_object('windows', '3d/6h', 'factor', 1, 'judged', TRUE,
                           'fired', TRUE)),
                   'windows', pg_catalog.jsonb_build_object(
                       '3d', ops._burn_window(round(v.e3d), round(v.n3d), v.burn3d),
                       '6h', ops._burn_window(v.e360, v.n360, v.burn360)))
               ELSE pg_catalog.jsonb_build_object(
                   'slow_pct_5m', ops._pct(v.s5::numeric, v.n5::numeric), 'samples_5m', v.n5::numeric, 'threshold_ms', v.lat_ms,
                   'target_pct', pg_catalog.trim_scale(v.lat_pct), 'min_samples', v.min_n)
           END
    FROM v;
END;
$$;
COMMENT ON FUNCTION ops.route_findings(timestamptz, text) IS
'Route health at p_now from the rollups: one row per route and rule that is a violation, inconclusive (too few '
'samples) or a ticket, with evidence. Rules: error_rate_critical (1m), hard_error_threshold (5m), slo_violation (burn '
'rates 5m&1h > 14.4x or 30m&6h > 6x), slo_burn_ticket (3d&6h > 1x, non-blocking), latency_slo (5m slow share). '
'Windows end with p_now''s minute and span exactly their length (3d: its oldest day pro-rated); the sums and burn '
'rates are _route_burn_rates''s.';

REVOKE ALL ON FUNCTION ops._route_minute_sums(timestamptz, text), ops._route_coarse_sums(timestamptz, text),
    ops._route_burn_rates(timestamptz, text) FROM public;
