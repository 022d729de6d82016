DROP FUNCTION ops.cron_matches(text, timestamptz);
DROP FUNCTION ops._cron_field(text, int, int, text[], int, text);
DROP FUNCTION ops._cron_value(text, text[], int, text);
