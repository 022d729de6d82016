-- 0037 undone: ops._step_targets as 0033 defined it, calling ops.on_call directly
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
        CROSS JOIN LATERAL ops.on_call(sc.name, p_at) WITH ORDINALITY AS o (principal, k)
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
DROP FUNCTION ops._on_call_or_nobody(text, timestamptz);
