-- 0024 undone: GET /metrics back to the SQL names (as 0016 defined api_metrics), no mapping
CREATE OR REPLACE FUNCTION ops.api_metrics() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(m) ORDER BY m.metric), '[]') FROM ops.collect_metrics() AS m
$$;
COMMENT ON FUNCTION ops.api_metrics() IS 'GET /metrics: ops.metrics as a JSON array, for the Prometheus collector.';

DROP FUNCTION ops.exported_metrics(timestamptz);
DROP TABLE ops.metric_exports;
