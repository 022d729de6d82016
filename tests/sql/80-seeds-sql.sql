-- The seeds' SQL, verbatim, against the demo data `make run` loads: smoke step 1
-- (reopen a random incident by hand), step 4 (ack by hand), and the runbook's audit query.
BEGIN;
SELECT plan(8);

\ir ../../scripts/demo_data.sql
SELECT cmp_ok((SELECT count(*)::int FROM incidents), '>=', 5, 'demo data gives ORDER BY random() LIMIT 1 rows to pick');

-- step 1, verbatim (psql variables stand in for the shell's $INCIDENT_ID)
-- noqa: disable=LT01,LT08
WITH pick AS (SELECT id FROM incidents ORDER BY random() LIMIT 1)
UPDATE incidents
SET status='open',
    severity='critical',
    acknowledged_at=NULL,
    escalation_level=1,
    first_seen=now() - interval '6 minutes',
    last_seen=now()
WHERE id IN (SELECT id FROM pick)
RETURNING id AS "INCIDENT_ID" \gset

SELECT results_eq(
    format($$SELECT status, acknowledged_at, acknowledged_by, resolved_at, next_due_at FROM incidents WHERE id = %L$$,
           :'INCIDENT_ID'),
    $$VALUES ('open', NULL::timestamptz, NULL::text, NULL::timestamptz, now() + interval '4 minutes')$$,
    'step 1 leaves a consistent open incident, due at first_seen + 5 min * (1 + 1)');
SELECT ops.escalation_tick(now());
SELECT is((SELECT escalation_level FROM incidents WHERE id = :'INCIDENT_ID'), 1, 'not due yet at step 2''s tick');
SELECT ops.escalation_tick(now() + interval '4 minutes');
SELECT is((SELECT escalation_level FROM incidents WHERE id = :'INCIDENT_ID'), 2, 'escalated from 1 to 2');

-- step 4, verbatim
UPDATE incidents
SET status='acknowledged',
    acknowledged_by='backend-smoke',
    acknowledged_at=now()
WHERE id=:'INCIDENT_ID';
-- noqa: enable=all

SELECT results_eq(format($$SELECT status, acknowledged_by, next_due_at FROM incidents WHERE id = %L$$, :'INCIDENT_ID'),
                  $$VALUES ('acknowledged', 'backend-smoke', NULL::timestamptz)$$,
                  'step 4 acknowledges: escalation stops');
SELECT is((SELECT changes -> 'acknowledged_by' ->> 1 FROM audit_log ORDER BY id DESC LIMIT 1), 'backend-smoke',
          'and the change is in the audit log');

-- the runbook's audit query, verbatim
SELECT set_has(
    $$SELECT incident_key, escalation_level, escalated_at
FROM escalation_events
WHERE created_at > now() - interval '24 hours'
ORDER BY created_at DESC;$$,
    format($$SELECT incident_key, 2 AS level, now() + interval '4 minutes' AS at FROM incidents WHERE id = %L$$, :'INCIDENT_ID'),
    'the 24 h audit query lists the escalation');
SELECT is((SELECT count(*)::int AS n FROM incidents WHERE status <> 'resolved' GROUP BY incident_key ORDER BY n DESC LIMIT 1), 1,
          'still at most one active incident per key');

SELECT * FROM finish();
ROLLBACK;
