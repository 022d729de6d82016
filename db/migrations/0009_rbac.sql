-- depends: 0007_incident_functions
-- Who may do what: principals, roles, permissions and grants, decided in one SQL
-- function so psql and the API always agree.

CREATE TABLE ops.principals (
    name text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9._@:-]{1,100}$'),
    kind text NOT NULL CHECK (kind IN ('human', 'service')),
    display_name text,
    disabled boolean NOT NULL DEFAULT FALSE,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE ops.principals IS
'People and services that act on opsguard. ops-bot is the key in OPS_HMAC_SECRET; humans are named by X-Ops-Actor or chat identity.';

CREATE TABLE ops.roles (
    name text PRIMARY KEY,
    description text NOT NULL
);
COMMENT ON TABLE ops.roles IS 'Named sets of permissions: ops_admin, ops_responder, ops_viewer, ci.';

CREATE TABLE ops.permissions (
    name text PRIMARY KEY,
    description text NOT NULL
);
COMMENT ON TABLE ops.permissions IS 'What can be allowed, e.g. incidents.ack. The API asks ops.authorize() for one per request.';

CREATE TABLE ops.role_permissions (
    role text NOT NULL REFERENCES ops.roles (name) ON DELETE CASCADE,
    permission text NOT NULL REFERENCES ops.permissions (name) ON DELETE CASCADE,
    PRIMARY KEY (role, permission)
);
COMMENT ON TABLE ops.role_permissions IS 'Which permissions each role carries.';

CREATE TABLE ops.principal_roles (
    principal text NOT NULL REFERENCES ops.principals (name) ON DELETE CASCADE,
    role text NOT NULL REFERENCES ops.roles (name) ON DELETE CASCADE,
    granted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    granted_by text NOT NULL DEFAULT 'install',
    PRIMARY KEY (principal, role)
);
COMMENT ON TABLE ops.principal_roles IS 'Grants: which roles each principal holds. Change with ops.grant_role / ops.revoke_role (audited).';

INSERT INTO ops.roles (name, description) VALUES
('ops_admin', 'Everything, including forced ticks, recalc, guard overrides and acting for others'),
('ops_responder', 'On-call: read, trigger, ack and resolve incidents'),
('ops_viewer', 'Read incidents'),
('ci', 'Pipelines: read incidents, send request metrics');

INSERT INTO ops.permissions (name, description) VALUES
('escalation.tick', 'Force an escalation tick (POST /ops/escalation/tick)'),
('escalation.recalc', 'Recompute next_due_at (POST /ops/escalation/recalc)'),
('incidents.read', 'List and read incidents'),
('incidents.trigger', 'Open or refresh an incident'),
('incidents.ack', 'Acknowledge an incident'),
('incidents.resolve', 'Resolve an incident'),
('metrics.write', 'Send request metrics batches'),
('guard.override', 'Exempt one failing release-guard item, with a reason and an expiry'),
('actors.delegate', 'A trusted signer: may name the human it acts for (X-Ops-Actor)');

INSERT INTO ops.role_permissions (role, permission)
SELECT
    'ops_admin' AS role,
    name AS permission
FROM ops.permissions
UNION ALL
SELECT
    r.role,
    r.permission
FROM (VALUES
    ('ops_responder', 'incidents.read'), ('ops_responder', 'incidents.trigger'),
    ('ops_responder', 'incidents.ack'), ('ops_responder', 'incidents.resolve'),
    ('ops_viewer', 'incidents.read'),
    ('ci', 'incidents.read'), ('ci', 'metrics.write')
) AS r (role, permission);

INSERT INTO ops.principals (name, kind, display_name) VALUES ('ops-bot', 'service', 'The OPS_HMAC_SECRET key');
INSERT INTO ops.principal_roles (principal, role) VALUES ('ops-bot', 'ops_admin');

CREATE TRIGGER principal_roles_audit_insert AFTER INSERT ON ops.principal_roles
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('principal');
CREATE TRIGGER principal_roles_audit_delete AFTER DELETE ON ops.principal_roles
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('principal');

CREATE FUNCTION ops.has_permission(p_principal text, p_permission text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1
        FROM ops.principals AS p
        INNER JOIN ops.principal_roles AS pr ON p.name = pr.principal
        INNER JOIN ops.role_permissions AS rp ON pr.role = rp.role
        WHERE p.name = p_principal AND NOT p.disabled AND rp.permission = p_permission
    )
$$;
COMMENT ON FUNCTION ops.has_permission(text, text) IS
'True when the principal exists, is enabled, and one of its roles carries the permission.';

CREATE FUNCTION ops.authorize(p_principal text, p_permission text, p_actor text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ops.permissions WHERE name = p_permission) THEN
        RAISE EXCEPTION 'unknown permission "%"', p_permission USING ERRCODE = '22023';
    END IF;
    IF p_actor IS NULL OR p_actor = p_principal THEN
        IF NOT ops.has_permission(p_principal, p_permission) THEN
            RAISE EXCEPTION '% may not %', coalesce(p_principal, 'nobody'), p_permission
                USING ERRCODE = '42501',
                      HINT = 'Grant a role that carries it: SELECT ops.grant_role(principal, role, actor);';
        END IF;
        RETURN p_principal;
    END IF;
    IF NOT ops.has_permission(p_principal, 'actors.delegate') THEN
        RAISE EXCEPTION '% may not act for others', p_principal
            USING ERRCODE = '42501', HINT = 'Only principals with actors.delegate (ops_admin) may send X-Ops-Actor.';
    END IF;
    IF NOT ops.has_permission(p_actor, p_permission) THEN
        RAISE EXCEPTION '% may not %', p_actor, p_permission
            USING ERRCODE = '42501',
                  DETAIL = CASE WHEN EXISTS (SELECT 1 FROM ops.principals WHERE name = p_actor AND NOT disabled)
                                THEN 'its roles do not carry the permission' ELSE 'no such principal, or disabled' END,
                  HINT = 'The named actor must exist and hold the permission themselves.';
    END IF;
    RETURN p_actor;
END;
$$;
COMMENT ON FUNCTION ops.authorize(text, text, text) IS
'The one RBAC decision: returns who acts (p_actor if the signer may delegate and the actor holds the permission, '
'else the signer) or raises 42501.';

CREATE FUNCTION ops.add_principal(p_name text, p_kind text, p_roles text[], p_actor text, p_display_name text DEFAULT NULL)
RETURNS ops.principals
LANGUAGE plpgsql AS $$
DECLARE
    v_row ops.principals;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    IF p_name IS NULL OR p_kind IS NULL THEN
        RAISE EXCEPTION 'add_principal needs a name and a kind' USING ERRCODE = '22004';
    END IF;
    IF p_name !~ '^[A-Za-z0-9._@:-]{1,100}$' OR p_kind NOT IN ('human', 'service') THEN
        RAISE EXCEPTION 'invalid principal "%" of kind "%"', p_name, p_kind
            USING ERRCODE = '22023', HINT = 'Names: letters, digits, . _ @ : -; kinds: human, service.';
    END IF;
    v_prev := ops._act_as(p_actor);
    INSERT INTO ops.principals (name, kind, display_name) VALUES (p_name, p_kind, p_display_name)
    RETURNING * INTO v_row;
    PERFORM ops.grant_role(p_name, r, p_actor) FROM pg_catalog.unnest(coalesce(p_roles, '{}')) AS r;
    PERFORM ops._act_as(v_prev);
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops.add_principal(text, text, text[], text, text) IS
'Adds a person or service with roles: SELECT ops.add_principal(''alice'', ''human'', ''{ops_responder}'', ''admin'').';

CREATE FUNCTION ops.grant_role(p_principal text, p_role text, p_actor text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_prev text;
    v_done boolean;
BEGIN
    PERFORM ops._require_actor(p_actor);
    IF NOT EXISTS (SELECT 1 FROM ops.roles WHERE name = p_role) THEN
        RAISE EXCEPTION 'unknown role "%"', p_role
            USING ERRCODE = '22023', HINT = 'Roles: ' || (SELECT pg_catalog.string_agg(name, ', ' ORDER BY name) FROM ops.roles);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ops.principals WHERE name = p_principal) THEN
        RAISE EXCEPTION 'unknown principal "%"', p_principal USING ERRCODE = 'P0002';
    END IF;
    v_prev := ops._act_as(p_actor);
    INSERT INTO ops.principal_roles (principal, role, granted_by) VALUES (p_principal, p_role, p_actor)
    ON CONFLICT DO NOTHING;
    v_done := FOUND;
    PERFORM ops._act_as(v_prev);
    RETURN v_done;
END;
$$;
COMMENT ON FUNCTION ops.grant_role(text, text, text) IS 'Grants a role (audited); false when it was already held.';

CREATE FUNCTION ops.revoke_role(p_principal text, p_role text, p_actor text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_prev text;
    v_done boolean;
BEGIN
    PERFORM ops._require_actor(p_actor);
    v_prev := ops._act_as(p_actor);
    DELETE FROM ops.principal_roles WHERE principal = p_principal AND role = p_role;
    v_done := FOUND;
    PERFORM ops._act_as(v_prev);
    RETURN v_done;
END;
$$;
COMMENT ON FUNCTION ops.revoke_role(text, text, text) IS 'Revokes a role (audited); false when it was not held.';
