-- depends: 0009_rbac 0006_escalation_tick
-- The HTTP API's functions: one per endpoint. Each authorizes the caller, acts, and
-- returns the JSON the API sends; Flask only verifies the signature and maps SQLSTATEs.
-- SECURITY DEFINER (the API role may execute these and touch no table) with a pinned
-- search_path so a caller's objects can never stand in for ours.

CREATE TABLE ops.api_replay (
    replay_key text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX api_replay_expires ON ops.api_replay (expires_at);
COMMENT ON TABLE ops.api_replay IS
'Signatures of timestamped requests already used (X-Timestamp): a second use inside the window is refused as a replay.';

CREATE FUNCTION ops.incident_json(p_incident ops.incidents) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT pg_catalog.jsonb_build_object(
        'id', p_incident.id,
        'incidentKey', p_incident.incident_key,
        'route', p_incident.route,
        'status', p_incident.status,
        'severity', p_incident.severity,
        'summary', p_incident.summary,
        'escalationLevel', p_incident.escalation_level,
        'firstSeen', p_incident.first_seen,
        'lastSeen', p_incident.last_seen,
        'acknowledgedBy', p_incident.acknowledged_by,
        'acknowledgedAt', p_incident.acknowledged_at,
        'resolvedBy', p_incident.resolved_by,
        'resolvedAt', p_incident.resolved_at,
        'nextDueAt', p_incident.next_due_at)
$$;
COMMENT ON FUNCTION ops.incident_json(ops.incidents) IS 'An incident as the API shows it (camelCase keys).';

-- Every API function starts here: a replayed timestamped signature is refused (28000),
-- then the one RBAC decision; returns who acts.
CREATE FUNCTION ops._api_begin(p_principal text, p_actor text, p_permission text, p_replay_key text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_actor text;
BEGIN
    IF p_replay_key IS NOT NULL THEN
        DELETE FROM ops.api_replay WHERE expires_at < pg_catalog.now();
        INSERT INTO ops.api_replay (replay_key, expires_at) VALUES (p_replay_key, pg_catalog.now() + interval '10 minutes')
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'this signed request was already used' USING ERRCODE = '28000',
                HINT = 'Sign each request with a fresh X-Timestamp.';
        END IF;
    END IF;
    v_actor := ops.authorize(p_principal, p_permission, nullif(p_actor, ''));
    PERFORM ops._act_as(v_actor);
    RETURN v_actor;
END;
$$;
COMMENT ON FUNCTION ops._api_begin(text, text, text, text) IS
'Internal: replay check and authorization for an API call; sets and returns the acting principal.';

CREATE FUNCTION ops.api_tick(p_principal text, p_actor text, p_replay_key text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
BEGIN
    PERFORM ops._api_begin(p_principal, p_actor, 'escalation.tick', p_replay_key);
    RETURN ops.escalation_tick(pg_catalog.now(), 'api');
END;
$$;
COMMENT ON FUNCTION ops.api_tick(text, text, text) IS 'POST /ops/escalation/tick: the tick summary.';

CREATE FUNCTION ops.api_recalc(p_principal text, p_actor text, p_replay_key text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
BEGIN
    PERFORM ops._api_begin(p_principal, p_actor, 'escalation.recalc', p_replay_key);
    RETURN pg_catalog.jsonb_build_object('ok', true, 'recomputed', ops.recalc_next_due());
END;
$$;
COMMENT ON FUNCTION ops.api_recalc(text, text, text) IS 'POST /ops/escalation/recalc: {"ok": true, "recomputed": n}.';

-- ack and resolve: the body may carry a note as "note" or "reason" (the seeds send {"reason": ...})
CREATE FUNCTION ops.api_set_incident_status(
    p_principal text, p_actor text, p_replay_key text, p_id text, p_to text, p_body jsonb
) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_actor text;
    v_row ops.incidents;
    v_note text;
BEGIN
    IF p_to NOT IN ('acknowledged', 'resolved') THEN
        RAISE EXCEPTION 'unknown status "%"', p_to USING ERRCODE = '22023';
    END IF;
    v_actor := ops._api_begin(p_principal, p_actor,
                              CASE p_to WHEN 'acknowledged' THEN 'incidents.ack' ELSE 'incidents.resolve' END, p_replay_key);
    IF p_body IS NOT NULL AND pg_catalog.jsonb_typeof(p_body) <> 'object' THEN
        RAISE EXCEPTION 'the body must be a JSON object' USING ERRCODE = '22023';
    END IF;
    v_note := coalesce(p_body ->> 'note', p_body ->> 'reason');
    v_row := ops._transition(p_id::uuid, p_to, v_actor, v_note, pg_catalog.now());
    RETURN pg_catalog.jsonb_build_object('ok', true, 'incident', ops.incident_json(v_row));
END;
$$;
COMMENT ON FUNCTION ops.api_set_incident_status(text, text, text, text, text, jsonb) IS
'POST /ops/incidents/<id>/ack and /resolve: {"ok": true, "incident": {...}}. Bad id: 22P02; unknown: P0002; resolved: 55000.';

CREATE FUNCTION ops.api_trigger_incident(p_principal text, p_actor text, p_replay_key text, p_body jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_actor text;
    v_row ops.incidents;
    v_existed boolean;
BEGIN
    v_actor := ops._api_begin(p_principal, p_actor, 'incidents.trigger', p_replay_key);
    IF p_body IS NULL OR pg_catalog.jsonb_typeof(p_body) <> 'object' THEN
        RAISE EXCEPTION 'the body must be a JSON object' USING ERRCODE = '22023',
            HINT = '{"incident_key": "GET /projects::slo_violation", "severity": "critical"}';
    END IF;
    IF pg_catalog.jsonb_typeof(p_body -> 'incident_key') IS DISTINCT FROM 'string'
       OR pg_catalog.jsonb_typeof(p_body -> 'severity') IS DISTINCT FROM 'string' THEN
        RAISE EXCEPTION 'incident_key and severity are required strings' USING ERRCODE = '22023',
            HINT = '{"incident_key": "GET /projects::slo_violation", "severity": "critical"}';
    END IF;
    v_existed := EXISTS (SELECT 1 FROM ops.incidents WHERE incident_key = p_body ->> 'incident_key' AND status <> 'resolved');
    v_row := ops.trigger_incident(p_body ->> 'incident_key', p_body ->> 'severity', p_body ->> 'route',
                                  p_body ->> 'summary', v_actor, pg_catalog.now());
    RETURN pg_catalog.jsonb_build_object('ok', true, 'created', NOT v_existed, 'incident', ops.incident_json(v_row));
END;
$$;
COMMENT ON FUNCTION ops.api_trigger_incident(text, text, text, jsonb) IS
'POST /ops/incidents: opens or refreshes an incident by incident_key; "created" tells which.';

CREATE FUNCTION ops.api_list_incidents(p_principal text, p_actor text, p_filters jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
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
    SELECT coalesce(pg_catalog.jsonb_agg(ops.incident_json(i) ORDER BY i.last_seen DESC), '[]')
    INTO v_result
    FROM (
        SELECT * FROM ops.incidents AS i
        WHERE (v_status = 'all' OR (v_status = 'active' AND i.status <> 'resolved') OR i.status = v_status)
          AND (v_severity IS NULL OR i.severity = v_severity)
          AND (v_route IS NULL OR i.route = v_route)
        ORDER BY i.last_seen DESC
        LIMIT v_limit
    ) AS i;
    RETURN pg_catalog.jsonb_build_object('ok', true, 'count', pg_catalog.jsonb_array_length(v_result), 'incidents', v_result);
END;
$$;
COMMENT ON FUNCTION ops.api_list_incidents(text, text, jsonb) IS
'GET /ops/incidents?status=active|open|acknowledged|resolved|all&severity=&route=&limit=: newest first.';

CREATE FUNCTION ops.api_me(p_principal text, p_actor text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_who text := coalesce(nullif(p_actor, ''), p_principal);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ops.principals WHERE name = p_principal AND NOT disabled) THEN
        RAISE EXCEPTION 'unknown principal %', p_principal USING ERRCODE = '42501';
    END IF;
    IF v_who <> p_principal AND NOT ops.has_permission(p_principal, 'actors.delegate') THEN
        RAISE EXCEPTION '% may not act for others', p_principal USING ERRCODE = '42501';
    END IF;
    RETURN pg_catalog.jsonb_build_object(
        'ok', true,
        'principal', p_principal,
        'actor', v_who,
        'roles', coalesce((SELECT pg_catalog.jsonb_agg(role ORDER BY role) FROM ops.principal_roles WHERE principal = v_who), '[]'),
        'permissions', coalesce((SELECT pg_catalog.jsonb_agg(name ORDER BY name) FROM ops.permissions
                                 WHERE ops.has_permission(v_who, name)), '[]'));
END;
$$;
COMMENT ON FUNCTION ops.api_me(text, text) IS 'GET /me/permissions: the caller (or the actor it names), roles and permissions.';

CREATE FUNCTION ops.api_health(p_now timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object(
        'database', 'ok',
        'migrations', (SELECT pg_catalog.jsonb_agg(migration_id ORDER BY migration_id) FROM public._yoyo_migration),
        'lastTickAt', t.tick_at,
        'lastTickAgeSeconds', round(EXTRACT(epoch FROM p_now - t.started_at)::numeric, 1),
        'tickMs', ops.setting('tick_ms'),
        'pgCron', ops.pg_cron_status())
    FROM (SELECT NULL) AS one
    LEFT JOIN LATERAL (SELECT tick_at, started_at FROM ops.tick_log ORDER BY id DESC LIMIT 1) AS t ON true
$$;
COMMENT ON FUNCTION ops.api_health(timestamptz) IS 'GET /healthz: database, applied migrations, age of the last tick, pg_cron status.';
