-- depends: 0038_audit_write_speed
-- A label value that is a list passed as a string: ops._is_string_map asked jsonpath for a value
-- whose type is not string in lax mode, which looks inside a list at its elements, so
-- {"severity": ["critical"]} and {"job": []} were "objects of strings". Alertmanager and Grafana
-- never send that; a hand-written or broken sender that did got its labels stored and mapped as
-- text ('["critical"]' is no severity) instead of a 400 naming the field. Strict mode takes each
-- value as it is.
CREATE OR REPLACE FUNCTION ops._is_string_map(p_value jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE
RETURN CASE WHEN pg_catalog.jsonb_typeof(p_value) = 'object'
            THEN NOT pg_catalog.jsonb_path_exists(p_value, 'strict $.* ? (@.type() != "string")')
            ELSE false END;
