DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        PERFORM cron.unschedule(jobid) FROM cron.job
        WHERE jobname IN ('opsguard-evaluate-routes', 'opsguard-guard-retention');
    END IF;
END;
$$;
DELETE FROM ops.cron_jobs WHERE name IN ('opsguard-evaluate-routes', 'opsguard-guard-retention');
DROP FUNCTION ops.api_override_guard_item(text, text, text, jsonb);
DROP FUNCTION ops.api_release_guard(text, text, jsonb);
DROP FUNCTION ops.purge_guard_history(timestamptz);
DROP FUNCTION ops.evaluate_routes(timestamptz);
DROP TABLE ops.route_violation_state;
DROP FUNCTION ops.override_guard_item(text, text, integer, text, timestamptz);
DROP FUNCTION ops.release_guard(timestamptz, text, text, jsonb);
DROP FUNCTION ops._guard_items(timestamptz, text);
DROP TABLE ops.guard_evaluations;
DROP TABLE ops.guard_overrides;
DROP FUNCTION ops.route_findings(timestamptz, text);
DROP FUNCTION ops._pct(numeric, numeric);
DELETE FROM ops.settings WHERE key IN ('guard_critical_error_pct', 'guard_hard_error_pct', 'guard_block_inconclusive',
                                       'guard_autoresolve_min', 'guard_rollup_retention_days',
                                       'guard_evaluation_retention_days');
