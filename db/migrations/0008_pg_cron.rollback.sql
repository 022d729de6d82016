DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        PERFORM cron.unschedule(jobid) FROM cron.job WHERE jobname LIKE 'opsguard-%';
    END IF;
END;
$$;
DROP FUNCTION ops.install_cron_jobs();
DROP FUNCTION ops.pg_cron_status();
DROP TABLE ops.cron_jobs;
