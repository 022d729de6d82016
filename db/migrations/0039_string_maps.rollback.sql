-- 0039 undone: ops._is_string_map as 0028 wrote it (lax mode)
CREATE OR REPLACE FUNCTION ops._is_string_map(p_value jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE
RETURN CASE WHEN pg_catalog.jsonb_typeof(p_value) = 'object'
            THEN NOT pg_catalog.jsonb_path_exists(p_value, '$.* ? (@.type() != "string")')
            ELSE false END;
