-- 0029 undone: no PagerDuty Events API v2 endpoint
DROP FUNCTION ops.api_events_v2(jsonb, timestamptz);
DROP FUNCTION ops._events_v2_timestamp(text);
DROP FUNCTION ops._events_v2_string_problem(jsonb, text, int, boolean);
