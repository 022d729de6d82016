-- 0025 undone: no re-open trigger; ops.authorize and ops.api_me as 0019/0020 left them
DROP TRIGGER incidents_before_reopen ON ops.incidents;
DROP FUNCTION ops._incidents_before_reopen();

-- noqa: disable=all
CREATE OR REPLACE FUNCTION ops.authorize(p_principal text, p_permission text, p_actor text DEFAULT NULL::text) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'ops', 'pg_temp'
    AS $$
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
            HINT = 'X-Ops-Actor must name an enabled principal: SELECT name FROM ops.principals;';
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
