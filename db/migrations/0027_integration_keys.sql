-- depends: 0026_behaviour_fixes
-- Integration keys (SPEC 10): how the monitoring a team already runs (Alertmanager, Grafana,
-- PagerDuty Events API v2 senders, heartbeat pingers) authenticates without signing bodies.
-- A key is a random token shown once; only its SHA-256 is stored, so a database dump or an
-- operator reading the table learns nothing that opens an endpoint. The lookup is by the hash
-- through a unique index: timing can at most tell an attacker about hash prefixes of tokens
-- it does not have, never about a token (the usual construction for bearer tokens).
-- Also the intake primitives every sender shares: open or refresh an incident by key with the
-- sender's details (labels, annotations, links), acknowledge or resolve it by key.

CREATE TABLE ops.integration_keys (
    name text PRIMARY KEY,
    kind text NOT NULL,
    route text,
    token_sha256 bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    created_by text NOT NULL,
    revoked_at timestamptz,
    revoked_by text,
    CONSTRAINT integration_keys_name_format CHECK (name ~ '^[A-Za-z0-9._@:-]{1,100}$'),
    CONSTRAINT integration_keys_kind CHECK (kind IN ('alertmanager', 'events_v2', 'heartbeat')),
    CONSTRAINT integration_keys_route_length CHECK (pg_catalog.length(route) BETWEEN 1 AND 500),
    CONSTRAINT integration_keys_sha256 CHECK (pg_catalog.octet_length(token_sha256) = 32),
    CONSTRAINT integration_keys_revoked_by CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);
COMMENT ON TABLE ops.integration_keys IS
'Keys senders authenticate with (Authorization: Bearer, or routing_key for Events API v2). Only the SHA-256 of a '
'token is kept; ops.create_integration_key shows the token once. Revoked keys stay, for the audit trail.';
CREATE TRIGGER integration_keys_audit_insert AFTER INSERT ON ops.integration_keys
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('name');
CREATE TRIGGER integration_keys_audit_update AFTER UPDATE ON ops.integration_keys
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('name');
CREATE TRIGGER integration_keys_audit_delete AFTER DELETE ON ops.integration_keys
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('name');

-- what a sender said about an incident: labels, annotations, links, payload fields (bounded)
ALTER TABLE ops.incidents ADD COLUMN details jsonb NOT NULL DEFAULT '{}',
ADD CONSTRAINT incidents_details_object CHECK (pg_catalog.jsonb_typeof(details) = 'object');
COMMENT ON COLUMN ops.incidents.details IS
'What the sender said, as the last notification carried it: alert labels, annotations, links, Events API payload fields.';

CREATE FUNCTION ops.create_integration_key(p_name text, p_kind text, p_actor text, p_route text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_token text;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    IF p_name IS NULL OR p_name !~ '^[A-Za-z0-9._@:-]{1,100}$' THEN
        RAISE EXCEPTION 'invalid integration key name "%"', p_name
            USING ERRCODE = '22023', HINT = 'Names: 1 to 100 letters, digits, . _ @ : -, e.g. ''alertmanager-prod''.';
    END IF;
    IF p_kind IS NULL OR p_kind NOT IN ('alertmanager', 'events_v2', 'heartbeat') THEN
        RAISE EXCEPTION 'unknown integration key kind "%"', p_kind
            USING ERRCODE = '22023', HINT = 'Kinds: alertmanager (also Grafana), events_v2 (PagerDuty Events API v2), heartbeat.';
    END IF;
    IF p_route IS NOT NULL AND (pg_catalog.btrim(p_route) = '' OR pg_catalog.length(p_route) > 500) THEN
        RAISE EXCEPTION 'a route must be 1 to 500 characters' USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM ops.integration_keys WHERE name = p_name) THEN
        RAISE EXCEPTION 'integration key "%" exists', p_name
            USING ERRCODE = '23505', HINT = 'Names are never reused, revoked ones included: choose another name.';
    END IF;
    -- 244 random bits from the strong generator behind gen_random_uuid (two v4 uuids)
    v_token := 'ogk_' || pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', '')
                      || pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', '');
    v_prev := ops._act_as(p_actor);
    INSERT INTO ops.integration_keys (name, kind, route, token_sha256, created_by)
    VALUES (p_name, p_kind, p_route, pg_catalog.sha256(pg_catalog.convert_to(v_token, 'UTF8')), p_actor);
    PERFORM ops._act_as(v_prev);
    RETURN v_token;
END;
$$;
COMMENT ON FUNCTION ops.create_integration_key(text, text, text, text) IS
'Makes a key for a sender and returns its token, once (only the SHA-256 is stored): '
'SELECT ops.create_integration_key(''alertmanager-prod'', ''alertmanager'', ''alice'');';

CREATE FUNCTION ops.revoke_integration_key(p_name text, p_actor text) RETURNS ops.integration_keys
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_row ops.integration_keys;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    SELECT * INTO v_row FROM ops.integration_keys WHERE name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no integration key "%"', p_name
            USING ERRCODE = 'P0002', HINT = 'SELECT name, kind, revoked_at FROM ops.integration_keys;';
    END IF;
    IF v_row.revoked_at IS NULL THEN
        v_prev := ops._act_as(p_actor);
        UPDATE ops.integration_keys SET revoked_at = pg_catalog.clock_timestamp(), revoked_by = p_actor
        WHERE name = p_name
        RETURNING * INTO v_row;
        PERFORM ops._act_as(v_prev);
    END IF;
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops.revoke_integration_key(text, text) IS
'Revokes a key at once (audited; idempotent). Requests with it are refused from the next one on.';

CREATE FUNCTION ops._integration_key(p_token text, p_kind text) RETURNS ops.integration_keys
LANGUAGE plpgsql STABLE SET search_path = ops, pg_temp AS $$
DECLARE
    v_row ops.integration_keys;
BEGIN
    -- one answer for missing, unknown, revoked and wrong-kind keys: no oracle for which
    SELECT * INTO v_row FROM ops.integration_keys
    WHERE token_sha256 = pg_catalog.sha256(pg_catalog.convert_to(coalesce(p_token, ''), 'UTF8'))
      AND revoked_at IS NULL AND kind = p_kind;
    IF NOT FOUND OR p_token IS NULL OR pg_catalog.length(p_token) > 200 THEN
        RAISE EXCEPTION 'invalid integration key'
            USING ERRCODE = '28000',
                  HINT = pg_catalog.format('Send a key of kind %s made with ops.create_integration_key.', p_kind);
    END IF;
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops._integration_key(text, text) IS
'Internal: the live key of this kind with this token, else 28000 (the same for missing, unknown, revoked, wrong kind).';

-- the shared intake verbs: dedup as ops.trigger_incident (one not-resolved incident per key),
-- plus the sender details; each is one statement, audited with the key name as actor
CREATE FUNCTION ops._intake_trigger(
    p_incident_key text, p_severity text, p_route text, p_summary text, p_details jsonb, p_actor text,
    p_now timestamptz
) RETURNS ops.incidents
LANGUAGE plpgsql SET search_path = ops, pg_temp AS $$
DECLARE
    v_row ops.incidents;
    v_prev text;
BEGIN
    IF pg_catalog.octet_length(p_details::text) > 65536 THEN
        RAISE EXCEPTION 'incident details are % bytes, more than 64 KiB', pg_catalog.octet_length(p_details::text)
            USING ERRCODE = '22023', HINT = 'Send fewer or shorter labels, annotations and custom details.';
    END IF;
    IF pg_catalog.length(p_incident_key) > 500 OR pg_catalog.btrim(p_incident_key) = '' THEN
        RAISE EXCEPTION 'incident key must be 1 to 500 characters' USING ERRCODE = '22023';
    END IF;
    v_prev := ops._act_as(p_actor);
    INSERT INTO ops.incidents AS i (incident_key, route, severity, summary, details, first_seen, last_seen)
    VALUES (p_incident_key, pg_catalog.left(p_route, 500), p_severity, pg_catalog.left(p_summary, 1024),
            coalesce(p_details, '{}'), p_now, p_now)
    ON CONFLICT (incident_key) WHERE status <> 'resolved' DO UPDATE
    SET last_seen = GREATEST(i.last_seen, EXCLUDED.last_seen),
        severity = CASE WHEN EXCLUDED.severity = 'critical' THEN 'critical' ELSE i.severity END,
        summary = coalesce(EXCLUDED.summary, i.summary),
        -- a repeat usually says the same: keeping the stored value keeps its TOAST pointer,
        -- so a refresh does not write the details again
        details = CASE WHEN i.details = EXCLUDED.details THEN i.details ELSE EXCLUDED.details END
    RETURNING * INTO v_row;
    PERFORM ops._act_as(v_prev);
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops._intake_trigger(text, text, text, text, jsonb, text, timestamptz) IS
'Internal: opens or refreshes the not-resolved incident with this key (as ops.trigger_incident), keeping the sender '
'details (at most 64 KiB).';

CREATE FUNCTION ops._intake_transition(p_incident_key text, p_status text, p_actor text, p_now timestamptz)
RETURNS ops.incidents
LANGUAGE plpgsql SET search_path = ops, pg_temp AS $$
DECLARE
    v_id uuid;
BEGIN
    SELECT id INTO v_id FROM ops.incidents WHERE incident_key = p_incident_key AND status <> 'resolved';
    IF NOT FOUND THEN
        RETURN NULL;  -- nothing open under this key: a resolve or ack of it changes nothing
    END IF;
    RETURN ops._transition(v_id, p_status, p_actor, NULL, p_now);
END;
$$;
COMMENT ON FUNCTION ops._intake_transition(text, text, text, timestamptz) IS
'Internal: acknowledges or resolves the not-resolved incident with this key; NULL when there is none.';

-- operators (admins at psql) manage keys; the API verifies them inside its api_* functions
GRANT EXECUTE ON FUNCTION ops.create_integration_key(text, text, text, text),
ops.revoke_integration_key(text, text) TO opsguard_operator;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ops FROM public;
