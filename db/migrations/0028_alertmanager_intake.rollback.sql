-- 0028 undone: no Alertmanager intake
DROP FUNCTION ops.api_alertmanager(text, jsonb, timestamptz);
DROP FUNCTION ops._alertmanager_problem(jsonb);
DROP FUNCTION ops._is_string_map(jsonb);
