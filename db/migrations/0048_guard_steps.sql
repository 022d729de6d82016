-- depends: 0046_http_hardening

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
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    bytes bigint NOT NULL
);
COMMENT ON TABLE ops.guard_anonymous_usage IS
'One row: the sum of guard_evaluations.anonymous_bytes, kept by triggers on every insert and delete.';
INSERT INTO ops.guard_anonymous_usage (bytes) VALUES (0);

INSERT INTO ops.settings (key, value, kind, min_value, max_value, description) VALUES
('guard_anonymous_history_mb', '50', 'integer', 1, 10240,
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
      AND i.last_seen >= p_since
      AND (p_route_prefix IS NULL OR pg_catalog.starts_with(i.route, p_route_prefix));
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
    SELECT f.route || '::' || f.reason, k.kind, f.verdict <> 'violation',
           -- a ticket never blocks; an inconclusive finding only under guard_block_inconclusive
           f.verdict = 'violation'
               OR (f.verdict <> 'ticket' AND (SELECT ops.setting('guard_block_inconclusive')::boolean)),
           pg_catalog.jsonb_build_object('kind', k.kind, 'key', f.route || '::' || f.reason,
               'route', f.route, 'reason', f.reason, 'evidence', f.evidence || coalesce(rc.changes, '{}'))
    FROM ops.route_findings(p_now, p_route_prefix) AS f
    CROSS JOIN LATERAL (SELECT CASE WHEN f.verdict = 'ticket' THEN 'ticket' ELSE 'violation' END) AS k (kind)
    LEFT JOIN ops._guard_changes(p_since, p_now) AS rc ON f.route = rc.route;
END;
COMMENT ON FUNCTION ops._guard_findings(timestamptz, text, timestamptz) IS
'Internal: route findings as guard items (kind violation or ticket), whether each blocks, the evidence with the '
'route''s changes since p_since.';

CREATE FUNCTION ops._guard_overrides(p_now timestamptz)
    RETURNS TABLE (item_key text, incident_id uuid, override jsonb)
    LANGUAGE sql STABLE
BEGIN ATOMIC
    -- the active exemption of each item, the one that expires last
    SELECT DISTINCT ON (o.item_key) o.item_key,
           CASE WHEN o.item_key ~ '^incident:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                THEN pg_catalog.substr(o.item_key, 10)::uuid END,
           pg_catalog.jsonb_build_object('reason', o.reason, 'by', o.created_by, 'expiresAt', o.expires_at,
                                         'overrideId', o.id)
    FROM ops.guard_overrides AS o
    WHERE o.created_at <= p_now AND o.expires_at > p_now
    ORDER BY o.item_key, o.expires_at DESC;
END;
COMMENT ON FUNCTION ops._guard_overrides(timestamptz) IS
'Internal: per exempted item its active override (the one that expires last); incident_id for incident items.';

CREATE OR REPLACE FUNCTION ops._guard_items(p_now timestamptz, p_route_prefix text)
    RETURNS TABLE (item_key text, kind text, inconclusive boolean, item jsonb)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ops, pg_temp
    AS $$
    SELECT 'incident:' || i.id, 'incident', false, ops._guard_incident_item(i)
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
        ELSE pg_catalog.jsonb_build_object('truncated', true, 'bytes', pg_catalog.octet_length(c.v::text))
    END
    FROM (SELECT coalesce(p_context, '{}'::jsonb) AS v) AS c
    CROSS JOIN LATERAL (
        SELECT coalesce(pg_catalog.jsonb_object_agg(e.key, pg_catalog."left"(e.value, p_key_chars)), '{}'::jsonb)
               || pg_catalog.jsonb_build_object('truncated', true, 'bytes', pg_catalog.octet_length(c.v::text)) AS kept
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
    p_caller text DEFAULT NULL, p_context jsonb DEFAULT '{}', p_anonymous boolean DEFAULT false
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
        ops._guard_store(p_now, p_route_prefix, p_caller, p_context, v_result, coalesce(p_anonymous, true)));
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
    RETURN ops.release_guard(pg_catalog.now(), nullif(p_route_prefix, ''), p_caller, p_context, NOT coalesce(p_signed, false));
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
FROM PUBLIC;
-- operators ask the guard in psql (kept in full); the API asks for every HTTP caller
GRANT EXECUTE ON FUNCTION ops.release_guard(timestamptz, text, text, jsonb, boolean) TO opsguard_operator;
GRANT EXECUTE ON FUNCTION ops.api_release_guard(text, text, jsonb, boolean) TO opsguard_api;
-- the running total is the guard's own bookkeeping; operators may read it
REVOKE ALL ON ops.guard_anonymous_usage FROM PUBLIC;
GRANT SELECT ON ops.guard_anonymous_usage TO opsguard_operator;
