-- the body of ops.api_me from 0010_api, exactly
CREATE OR REPLACE FUNCTION ops.api_me(p_principal text, p_actor text) RETURNS jsonb
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
