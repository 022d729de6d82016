-- Demo incidents for `make run`, so the smoke test's `ORDER BY random() LIMIT 1` (step 1) finds rows.
-- Loaded once: nothing is added when incidents already exist. Every key is distinct,
-- so reopening any row by hand (smoke step 1) never collides with another active one.
-- No open critical incident was seen within guard_lookback_min: the release guard starts
-- clear, and blocks only on the incident the smoke test's step 1 re-opens.
SET "opsguard.actor" = 'demo-data';

INSERT INTO ops.incidents (incident_key, severity, status, first_seen, last_seen)
SELECT
    d.incident_key,
    d.severity,
    d.status,
    now() - d.age AS first_seen,
    now() - d.age / 2 AS last_seen
FROM (VALUES
    ('GET /projects::slo_violation', 'critical', 'open', interval '45 minutes'),
    ('GET /notifications/recent::error_rate_critical', 'critical', 'acknowledged', interval '40 minutes'),
    ('GET /me/permissions::hard_error_threshold', 'critical', 'resolved', interval '3 hours'),
    ('POST /deploys::slo_violation', 'warning', 'open', interval '10 minutes'),
    ('GET /search::latency_slo', 'warning', 'resolved', interval '1 day'),
    ('POST /login::error_rate_critical', 'critical', 'resolved', interval '2 days'),
    ('GET /billing/invoices::slo_violation', 'warning', 'acknowledged', interval '90 minutes'),
    ('GET /health::hard_error_threshold', 'critical', 'resolved', interval '6 hours')
) AS d (incident_key, severity, status, age)
WHERE NOT EXISTS (SELECT 1 FROM ops.incidents);

-- A demo on-call schedule for the runbook's "Who is on call" and "Swap a shift" (docs/oncall.md
-- explains schedules): dana, eli and fay take weekly turns on 'platform', handing off on Mondays at
-- 09:00 Berlin time, the first handoff a week before this one. Added once, like the incidents.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ops.schedules WHERE name = 'platform') THEN
        PERFORM ops.add_principal(p, 'human', ARRAY['ops_responder'], 'demo-data')
        FROM unnest(ARRAY['dana', 'eli', 'fay']) AS p
        WHERE NOT EXISTS (SELECT 1 FROM ops.principals WHERE name = p);
        PERFORM ops.create_schedule('platform', 'Europe/Berlin', 'demo-data');
        PERFORM ops.add_rotation(
            'platform', 'weekly', '1 week',
            (date_trunc('week', now() AT TIME ZONE 'Europe/Berlin') - interval '1 week' + interval '9 hours')
            AT TIME ZONE 'Europe/Berlin',
            ARRAY['dana', 'eli', 'fay'], 'demo-data');
    END IF;
END;
$$;

-- A demo Slack user for the slash commands make run prints a signed curl for: U0DEMO of the
-- workspace T0DEMO is dana (an ops_responder: /oncall, /incident-list, /incident-ack). Linked
-- once, and also on a cluster made before this link was part of the demo.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM ops.principals WHERE name = 'dana')
       AND NOT EXISTS (SELECT 1 FROM ops.chat_identities WHERE provider = 'slack' AND workspace = 'T0DEMO' AND external_user = 'U0DEMO') THEN
        PERFORM ops.link_chat_identity('slack', 'T0DEMO', 'U0DEMO', 'dana', 'demo-data');
    END IF;
END;
$$;
