-- 0057 undone: rate limits only in each API process's memory (or Redis)
DROP FUNCTION ops.api_rate_limit_clear(text);
DROP FUNCTION ops.api_rate_limit_window(text, int, timestamptz);
DROP FUNCTION ops.api_rate_limit_acquire(text, int, int, int, timestamptz);
DROP FUNCTION ops._rate_limit_checked(text, int, int, int);
DROP TABLE ops.rate_limit_hits;
