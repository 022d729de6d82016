-- depends: 0036_oncall_fixes
-- One schedule that cannot say who is on call must not stop every escalation: ops.on_call raises
-- for a schedule whose zone this server no longer knows (a tzdata change) or a row written around
-- the checking functions, and the tick resolves every step in one statement, so that one error
-- failed the whole tick, every minute, for every incident. Now the step pages no one through that
-- schedule (its other targets and the route message still go out), with a WARNING naming it,
-- and ops.page_targets says the same.
CREATE FUNCTION ops._on_call_or_nobody(p_schedule text, p_at timestamptz) RETURNS SETOF text
LANGUAGE plpgsql STABLE SET search_path = ops, pg_temp AS $$
BEGIN
    RETURN QUERY SELECT o.p FROM ops.on_call(p_schedule, p_at) AS o (p);
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'schedule % cannot say who is on call at %: %; its policy steps page no one through it',
        p_schedule, p_at, SQLERRM
        USING HINT = pg_catalog.format('SELECT * FROM ops.on_call(%L); shows the error; fix the schedule or the step.',
                                       p_schedule);
    RETURN;
END;
$$;
COMMENT ON FUNCTION ops._on_call_or_nobody(text, timestamptz) IS
'Internal: ops.on_call for the tick and page_targets; a schedule that raises names no one (WARNING) instead of '
'failing the escalation of every incident.';

-- as 0033, with ops._on_call_or_nobody for ops.on_call
CREATE OR REPLACE FUNCTION ops._step_targets(p_policy text, p_step int, p_at timestamptz, OUT r_targets jsonb, OUT r_webhooks text[])
RETURNS record
LANGUAGE sql STABLE SET search_path = ops, pg_temp AS $$
    WITH t AS (
        SELECT e.target, e.n
        FROM ops.escalation_policy_steps AS s
        CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(s.targets) WITH ORDINALITY AS e (target, n)
        WHERE s.policy = p_policy AND s.step = p_step
    ),
    named AS (
        SELECT t.target ->> 'principal' AS principal, t.n * 1000 AS pos
        FROM t WHERE t.target ? 'principal'
        UNION ALL
        SELECT o.principal, t.n * 1000 + o.k
        FROM t
        INNER JOIN ops.schedules AS sc ON t.target ->> 'schedule' = sc.name
        CROSS JOIN LATERAL ops._on_call_or_nobody(sc.name, p_at) WITH ORDINALITY AS o (principal, k)
    ),
    who AS (
        SELECT n.principal, min(n.pos) AS pos
        FROM named AS n
        INNER JOIN ops.principals AS p ON n.principal = p.name AND NOT p.disabled
        GROUP BY n.principal
    ),
    hooks AS (
        SELECT t.target ->> 'webhook' AS url, t.n FROM t WHERE t.target ? 'webhook'
    ),
    dest AS (
        SELECT 0 AS n, pg_catalog.jsonb_build_object('type', 'route') AS d
        WHERE EXISTS (SELECT 1 FROM who) OR NOT EXISTS (SELECT 1 FROM hooks)
        UNION ALL
        SELECT h.n, pg_catalog.jsonb_build_object(
            'type', 'webhook', 'url', ops._redact_url(h.url, h.url),
            'sha256', pg_catalog.left(pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(h.url, 'UTF8')), 'hex'), 16))
        FROM hooks AS h
    )
    SELECT pg_catalog.jsonb_build_object(
               'policy', p_policy,
               'step', p_step,
               'principals', coalesce((SELECT pg_catalog.jsonb_agg(w.principal ORDER BY w.pos) FROM who AS w), '[]'),
               'destinations', (SELECT pg_catalog.jsonb_agg(d.d ORDER BY d.n) FROM dest AS d),
               -- Slack user ids only: anything else in a mention could become another markup
               'mentions', coalesce((
                   SELECT pg_catalog.jsonb_agg('<@' || c.external_user || '>' ORDER BY w.pos, c.external_user)
                   FROM who AS w
                   INNER JOIN ops.chat_identities AS c ON w.principal = c.principal
                   WHERE c.provider = 'slack' AND c.external_user ~ '^[A-Z0-9]{1,40}$'), '[]')),
           ARRAY(SELECT h.url FROM hooks AS h ORDER BY h.n)
$$;

-- internal: nobody but the tick and page_targets (definer code) calls it
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ops FROM public;
