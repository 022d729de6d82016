-- depends: 0056_metrics_sources
-- Rate limits every API instance shares: with two API processes or hosts (two gunicorns behind a
-- balancer, or on two nodes of a Patroni cluster) a budget kept in each process's memory is one
-- budget per process, and a principal gets it once per instance. The API keeps its moving windows
-- here instead when RATELIMIT_STORAGE_URI is opsguard-database:// (api/opsguard/limit_storage.py).
--
-- UNLOGGED: a hit is written on every limited request, and a logged write would cost every
-- request a WAL flush and, on a synchronous cluster, a wait for the standby. The price is that
-- the windows start empty after a crash or a failover (an unlogged table is not replicated), which
-- lets a principal at most one more minute's budget: rate limits bound load, they keep no record.

CREATE UNLOGGED TABLE ops.rate_limit_hits (
    key text NOT NULL,
    at timestamptz NOT NULL
);
CREATE INDEX rate_limit_hits_key_at ON ops.rate_limit_hits (key, at);
COMMENT ON TABLE ops.rate_limit_hits IS
'One row per request counted against a rate limit (flask-limiter''s moving window), shared by every API instance. '
'Unlogged: empty again after a crash or a failover. Rows older than their window are removed by the next hit of their key.';

CREATE FUNCTION ops._rate_limit_checked(p_key text, p_limit int, p_window_s int, p_amount int)
RETURNS void
LANGUAGE plpgsql SET search_path = ops, pg_temp AS $$
BEGIN
    IF p_key IS NULL OR pg_catalog.length(p_key) NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'a rate limit key is 1 to 1000 characters' USING ERRCODE = '22023',
            HINT = 'flask-limiter builds the key from the limit and the caller';
    END IF;
    IF p_limit IS NULL OR p_limit < 1 OR p_window_s IS NULL OR p_window_s NOT BETWEEN 1 AND 31622400
        OR p_amount IS NULL OR p_amount < 1 THEN
        RAISE EXCEPTION 'a rate limit needs a limit and an amount of at least 1 and a window of 1 s to a year'
            USING ERRCODE = '22023', DETAIL = pg_catalog.format('limit %s, window %s s, amount %s', p_limit, p_window_s, p_amount);
    END IF;
END;
$$;
COMMENT ON FUNCTION ops._rate_limit_checked(text, int, int, int) IS
'Internal: 22023 unless a rate limit call''s key, limit, window and amount are usable.';

CREATE FUNCTION ops.api_rate_limit_acquire(
    p_key text, p_limit int, p_window_s int, p_amount int DEFAULT 1, p_now timestamptz DEFAULT pg_catalog.now()
) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_since timestamptz := p_now - pg_catalog.make_interval(secs => p_window_s);
    v_used int;
BEGIN
    PERFORM ops._rate_limit_checked(p_key, p_limit, p_window_s, p_amount);
    -- one caller per key at a time, from any instance: two cannot both take the last slot
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('opsguard.rate_limit:' || p_key, 0));
    DELETE FROM ops.rate_limit_hits WHERE key = p_key AND at <= v_since;
    SELECT pg_catalog.count(*) INTO v_used FROM ops.rate_limit_hits WHERE key = p_key;
    IF v_used + p_amount > p_limit THEN
        RETURN false;
    END IF;
    INSERT INTO ops.rate_limit_hits (key, at) SELECT p_key, p_now FROM pg_catalog.generate_series(1, p_amount);
    RETURN true;
END;
$$;
COMMENT ON FUNCTION ops.api_rate_limit_acquire(text, int, int, int, timestamptz) IS
'Counts p_amount requests against key p_key when the moving window of p_window_s seconds ending at p_now has room '
'for them under p_limit, and says whether it had. The API''s shared rate limit storage (RATELIMIT_STORAGE_URI opsguard-database://).';

CREATE FUNCTION ops.api_rate_limit_window(
    p_key text, p_window_s int, p_now timestamptz DEFAULT pg_catalog.now(),
    OUT r_start double precision, OUT r_count int
)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
    SELECT pg_catalog.date_part('epoch', coalesce(pg_catalog.min(h.at), p_now)),
           pg_catalog.count(*)::int
    FROM ops.rate_limit_hits AS h
    WHERE h.key = p_key AND h.at > p_now - pg_catalog.make_interval(secs => p_window_s);
$$;
COMMENT ON FUNCTION ops.api_rate_limit_window(text, int, timestamptz) IS
'The moving window of key p_key at p_now: when its oldest counted request was (unix seconds; p_now when none) '
'and how many it holds. For the X-RateLimit-* headers.';

CREATE FUNCTION ops.api_rate_limit_clear(p_key text DEFAULT NULL) RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
    WITH gone AS (DELETE FROM ops.rate_limit_hits WHERE p_key IS NULL OR key = p_key RETURNING 1)
    SELECT pg_catalog.count(*)::int FROM gone;
$$;
COMMENT ON FUNCTION ops.api_rate_limit_clear(text) IS
'Empties the window of key p_key, or of every key when NULL; returns the requests forgotten.';

REVOKE ALL ON TABLE ops.rate_limit_hits FROM public;
REVOKE ALL ON FUNCTION ops._rate_limit_checked(text, int, int, int),
    ops.api_rate_limit_acquire(text, int, int, int, timestamptz),
    ops.api_rate_limit_window(text, int, timestamptz), ops.api_rate_limit_clear(text)
FROM public;
-- the API's limiter, and only it, counts requests
GRANT EXECUTE ON FUNCTION ops.api_rate_limit_acquire(text, int, int, int, timestamptz),
    ops.api_rate_limit_window(text, int, timestamptz), ops.api_rate_limit_clear(text)
TO opsguard_api;
