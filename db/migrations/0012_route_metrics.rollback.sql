DROP FUNCTION ops.api_record_requests(text, text, text, jsonb);
DROP FUNCTION ops.record_requests(jsonb);
DROP FUNCTION ops._first_bad_sample(jsonb);
DROP FUNCTION ops.set_route_slo(text, numeric, integer, text, integer, numeric);
DROP FUNCTION ops.route_slo(text);
DROP TABLE ops.route_hour_stats;
DROP TABLE ops.route_5min_stats;
DROP TABLE ops.route_minute_stats;
DROP TABLE ops.route_slos;
