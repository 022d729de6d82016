-- depends: 0019_least_privilege
-- GET /me/permissions named an actor without checking it: an unknown or disabled
-- X-Ops-Actor answered 200 with empty roles, where every other endpoint answers 403.
-- Now the actor must exist and be enabled (42501), as ops.authorize requires elsewhere.

CREATE OR REPLACE FUNCTION ops.api_me(p_principal text, p_actor text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
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

-- nothing in ops is for everyone (see 0011)
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ops FROM public;
