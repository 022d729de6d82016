-- depends: 0024_metric_names
-- A newcomer's first hour: errors that say what to do next.
--
-- 1. Re-opening a resolved incident by plain SQL (UPDATE incidents SET status = 'open' WHERE
--    id = ...) while its key has an active incident again failed with the unique index's bare
--    23505, naming neither incident. A small BEFORE UPDATE trigger now raises the same SQLSTATE
--    and constraint name, with a message and hint naming the active incident (id and key). Its
--    WHEN clause (a resolved row leaving resolved) means ticks and acks never call it.
-- 2. An X-Ops-Actor that is no principal got a 403 with no pointer: ops.authorize and
--    ops.api_me now hint at the SQL that adds one (README, "Acting for a person").

CREATE FUNCTION ops._incidents_before_reopen() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_active uuid;
BEGIN
    -- the unique index incidents_one_active_per_key still decides under concurrency; this only words it
    SELECT i.id INTO v_active
    FROM ops.incidents AS i
    WHERE i.incident_key = NEW.incident_key AND i.status <> 'resolved' AND i.id <> NEW.id
    LIMIT 1;
    IF v_active IS NOT NULL THEN
        RAISE EXCEPTION 'cannot re-open incident %: incident % is already active for key %',
            OLD.id, v_active, pg_catalog.quote_literal(NEW.incident_key)
            USING ERRCODE = '23505',
                  CONSTRAINT = 'incidents_one_active_per_key',
                  SCHEMA = 'ops',
                  TABLE = 'incidents',
                  DETAIL = 'At most one incident per incident_key is not resolved.',
                  HINT = pg_catalog.format(
                      'Work on the active incident %s (key %L) instead: ack, update or resolve it; '
                      'or resolve it first, then re-open this one.', v_active, NEW.incident_key);
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION ops._incidents_before_reopen() IS
'Internal trigger: re-opening a resolved incident whose key is active again raises 23505 naming the active incident.';
REVOKE ALL ON FUNCTION ops._incidents_before_reopen() FROM public;

CREATE TRIGGER incidents_before_reopen BEFORE UPDATE ON ops.incidents
FOR EACH ROW
WHEN (old.status = 'resolved' AND new.status <> 'resolved')
EXECUTE FUNCTION ops._incidents_before_reopen();

-- noqa: disable=all
CREATE OR REPLACE FUNCTION ops.authorize(p_principal text, p_permission text, p_actor text DEFAULT NULL::text) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    AS $$
DECLARE
    v_actor_exists boolean;
    v_role text;
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
        v_actor_exists := EXISTS (SELECT 1 FROM ops.principals WHERE name = p_actor AND NOT disabled);
        -- for the hint: the narrowest role that carries the permission
        SELECT rp.role INTO v_role FROM ops.role_permissions AS rp
        WHERE rp.permission = p_permission
        ORDER BY (SELECT pg_catalog.count(*) FROM ops.role_permissions AS o WHERE o.role = rp.role), rp.role
        LIMIT 1;
        v_role := coalesce(v_role, 'ops_admin');  -- a permission no role carries yet
        RAISE EXCEPTION '% may not %', p_actor, p_permission
            USING ERRCODE = '42501',
                  DETAIL = CASE WHEN v_actor_exists
                                THEN 'its roles do not carry the permission' ELSE 'no such principal, or disabled' END,
                  HINT = CASE WHEN v_actor_exists
                      THEN pg_catalog.format('The named actor must hold the permission themselves; an operator '
                           'grants a role that carries it in psql: SELECT ops.grant_role(%L, %L, %L); '
                           '(README, Acting for a person)', p_actor, v_role, 'your-name')
                      ELSE pg_catalog.format('X-Ops-Actor must name an enabled principal; an operator adds one '
                           'in psql: SELECT ops.add_principal(%L, %L, ARRAY[%L], %L); (README, Acting for a person)',
                           p_actor, 'human', v_role, 'your-name') END;
    END IF;
    RETURN p_actor;
END;
$$;

CREATE OR REPLACE FUNCTION ops.api_me(p_principal text, p_actor text) RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    AS $$
DECLARE
    v_who text := coalesce(nullif(p_actor, ''), p_principal);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ops.principals WHERE name = p_principal AND NOT disabled) THEN
        RAISE EXCEPTION 'unknown principal %', p_principal USING ERRCODE = '42501';
    END IF;
    IF v_who <> p_principal AND NOT ops.has_permission(p_principal, 'actors.delegate') THEN
        RAISE EXCEPTION '% may not act for others', p_principal USING ERRCODE = '42501',
            HINT = 'Only principals with actors.delegate (ops_admin) may send X-Ops-Actor.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ops.principals WHERE name = v_who AND NOT disabled) THEN
        RAISE EXCEPTION 'unknown actor %', v_who USING ERRCODE = '42501',
            DETAIL = 'no such principal, or disabled',
            HINT = pg_catalog.format('X-Ops-Actor must name an enabled principal; an operator adds one '
                   'in psql: SELECT ops.add_principal(%L, %L, ARRAY[%L], %L); (README, Acting for a person)',
                   v_who, 'human', 'ops_responder', 'your-name');
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
