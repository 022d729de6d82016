-- PagerDuty Events API v2 (docs/intake.md, POST /v2/enqueue): trigger / acknowledge / resolve by dedup_key,
-- severity mapping, a generated dedup_key, route from the key else component else source; a bad key
-- or a bad event (wrong types in every field, an image not on https) is refused and changes nothing;
-- oversized custom_details are cut with a marker, not refused; a key acts only on its own incidents;
-- times come from p_now (the clock is moved, never slept).
BEGIN;
SELECT plan(72);

CREATE TEMP TABLE k AS
SELECT
    ops.create_integration_key('pd-prod', 'events_v2', 'alice') AS pd,
    ops.create_integration_key('pd-checkout', 'events_v2', 'alice', 'checkout') AS routed,
    ops.create_integration_key('am', 'alertmanager', 'alice') AS am,
    ops.create_integration_key('pd-old', 'events_v2', 'alice') AS old;
SELECT ops.revoke_integration_key('pd-old', 'alice');

-- a valid trigger with the key pd-prod; each case below changes one thing in it
CREATE FUNCTION pg_temp.ev(p_patch jsonb, p_key text DEFAULT NULL) RETURNS jsonb LANGUAGE sql AS $$
    SELECT pg_catalog.jsonb_build_object(
        'routing_key', coalesce(p_key, (SELECT pd FROM k)), 'event_action', 'trigger', 'dedup_key', 'db-1/disk',
        'payload', pg_catalog.jsonb_build_object('summary', 'disk full on db-1', 'source', 'db-1', 'severity', 'error')
    ) || p_patch
$$;
CREATE FUNCTION pg_temp.inc(p_dedup text, p_key text DEFAULT 'pd-prod') RETURNS ops.incidents LANGUAGE sql AS $$
    SELECT * FROM ops.incidents WHERE incident_key = 'events_v2:' || p_key || ':' || p_dedup
    ORDER BY created_at DESC LIMIT 1
$$;
GRANT SELECT ON k TO opsguard_api;

-- the answer and the incident
SELECT is(ops.api_events_v2(pg_temp.ev('{}'), '2026-12-01 10:00+00'),
          '{"status": "success", "message": "Event processed", "dedup_key": "db-1/disk"}'::jsonb,
          'a trigger answers PagerDuty''s success with its dedup_key');
SELECT is((SELECT (status, severity, route, summary, first_seen, last_seen) FROM pg_temp.inc('db-1/disk')),
          row('open'::text, 'critical'::text, 'db-1'::text, 'disk full on db-1'::text,
              '2026-12-01 10:00+00'::timestamptz, '2026-12-01 10:00+00'::timestamptz),
          'it opens events_v2:<key>:<dedup_key>: error -> critical, route from source, summary, times from p_now');
SELECT is((SELECT details FROM pg_temp.inc('db-1/disk')),
          '{"sender": "events_v2", "dedup_key": "db-1/disk", "source": "db-1", "severity": "error"}'::jsonb,
          'the details keep what the sender set, and no JSON nulls');
SELECT is((SELECT actor FROM ops.audit_log WHERE table_name = 'incidents' AND action = 'INSERT'
           ORDER BY id DESC LIMIT 1), 'pd-prod', 'audited with the key name as actor');

-- dedup and a moved clock
SELECT ops.api_events_v2(pg_temp.ev('{"payload": {"summary": "disk still full", "source": "db-1",
    "severity": "warning", "timestamp": "2020-01-01T00:00:00Z", "component": "postgres", "group": "db",
    "class": "disk", "custom_details": {"free": "0%", "empty": null}}, "client": "Zabbix",
    "client_url": "https://zabbix.example/", "links": [{"href": "https://runbook.example/disk", "text": "runbook"}],
    "images": [{"src": "https://graph.example/disk.png", "alt": "disk"}]}'), '2026-12-01 10:30+00');
SELECT is((SELECT (count(*)::int, max(first_seen), max(last_seen), max(severity), max(summary))
           FROM ops.incidents WHERE incident_key = 'events_v2:pd-prod:db-1/disk'),
          row(1, '2026-12-01 10:00+00'::timestamptz, '2026-12-01 10:30+00'::timestamptz, 'critical'::text,
              'disk still full'::text),
          'the same dedup_key refreshes the one incident: last_seen from p_now, severity never lowered, new summary');
SELECT is((SELECT details FROM pg_temp.inc('db-1/disk')),
          '{"sender": "events_v2", "dedup_key": "db-1/disk", "source": "db-1", "severity": "warning",
            "timestamp": "2020-01-01T00:00:00Z", "component": "postgres", "group": "db", "class": "disk",
            "custom_details": {"free": "0%", "empty": null}, "links": [{"href": "https://runbook.example/disk",
            "text": "runbook"}], "images": [{"src": "https://graph.example/disk.png", "alt": "disk"}],
            "client": "Zabbix", "client_url": "https://zabbix.example/"}'::jsonb,
          'component, group, class, custom_details (as sent), links, images, client, timestamp are kept');
SELECT is((SELECT first_seen FROM pg_temp.inc('db-1/disk')), '2026-12-01 10:00+00'::timestamptz,
          'the sender''s payload.timestamp (2020) moves no time of ours');
SELECT ops.api_events_v2(pg_temp.ev('{}'), '2026-12-01 09:00+00');
SELECT is((SELECT last_seen FROM pg_temp.inc('db-1/disk')), '2026-12-01 10:30+00'::timestamptz,
          'a late event (older p_now) does not move last_seen back');

-- severity mapping and routes
SELECT ops.api_events_v2(pg_temp.ev(pg_catalog.jsonb_build_object('dedup_key', 'sev-' || s,
    'payload', pg_catalog.jsonb_build_object('summary', 's', 'source', 'h', 'severity', s))), '2026-12-01 10:00+00')
FROM unnest(ARRAY['critical', 'error', 'warning', 'info']) AS s;
SELECT results_eq($$SELECT severity FROM ops.incidents WHERE incident_key LIKE 'events_v2:pd-prod:sev-%'
                    ORDER BY array_position(ARRAY['critical', 'error', 'warning', 'info'], split_part(incident_key, '-', 3))$$,
                  ARRAY['critical', 'critical', 'warning', 'warning'],
                  'critical and error page as critical, warning and info as warning');
SELECT results_eq($$SELECT details ->> 'severity' FROM ops.incidents WHERE incident_key LIKE 'events_v2:pd-prod:sev-%'
                    ORDER BY array_position(ARRAY['critical', 'error', 'warning', 'info'], split_part(incident_key, '-', 3))$$,
                  ARRAY['critical', 'error', 'warning', 'info'],
                  'the incident details keep the severity as the sender sent it');
SELECT ops.api_events_v2(pg_temp.ev('{"dedup_key": "c", "payload": {"summary": "s", "source": "h", "severity": "info",
    "component": "payments"}}'), '2026-12-01 10:00+00');
SELECT is((pg_temp.inc('c')).route, 'payments', 'no route on the key: payload.component, before source');
SELECT ops.api_events_v2(pg_temp.ev('{"dedup_key": "e", "payload": {"summary": "s", "source": "h", "severity": "info",
    "component": " "}}'), '2026-12-01 10:00+00');
SELECT is((pg_temp.inc('e')).route, 'h', 'a blank component (a template that rendered empty) is none: source');
SELECT ops.api_events_v2(pg_temp.ev('{"payload": {"summary": "s", "source": "h", "severity": "info",
    "component": "payments"}}', (SELECT routed FROM k)), '2026-12-01 10:00+00');
SELECT is((pg_temp.inc('db-1/disk', 'pd-checkout')).route, 'checkout', 'the key''s route comes first');
SELECT is((SELECT count(*)::int FROM ops.incidents WHERE incident_key LIKE 'events_v2:%:db-1/disk'), 2,
          'two keys with one dedup_key are two incidents (the key name is part of the incident key)');

-- a trigger without a dedup_key gets one
CREATE TEMP TABLE gen AS
SELECT
    ops.api_events_v2(pg_temp.ev('{"dedup_key": null}'), '2026-12-01 10:00+00') ->> 'dedup_key' AS a,
    ops.api_events_v2(pg_temp.ev('{}') - 'dedup_key', '2026-12-01 10:00+00') ->> 'dedup_key' AS b;
SELECT matches((SELECT a FROM gen), '^[0-9a-f]{32}$', 'a trigger without dedup_key gets a generated one (32 hex)');
SELECT isnt((SELECT a FROM gen), (SELECT b FROM gen), 'each trigger without dedup_key gets a generated key of its own');
SELECT is((SELECT count(*)::int FROM ops.incidents, gen WHERE incident_key IN ('events_v2:pd-prod:' || a,
                                                                           'events_v2:pd-prod:' || b)), 2,
          'each trigger without dedup_key opens its own incident, found by the answered key');

-- acknowledge and resolve by dedup_key
SELECT is(ops.api_events_v2('{"event_action": "acknowledge", "dedup_key": "db-1/disk"}'::jsonb
                            || jsonb_build_object('routing_key', (SELECT pd FROM k)), '2026-12-01 11:00+00'),
          '{"status": "success", "message": "Event processed", "dedup_key": "db-1/disk"}'::jsonb,
          'acknowledge answers success');
SELECT is((SELECT (status, acknowledged_by, acknowledged_at) FROM pg_temp.inc('db-1/disk')),
          row('acknowledged'::text, 'pd-prod'::text, '2026-12-01 11:00+00'::timestamptz),
          'acknowledge acknowledges, by the key, at p_now');
SELECT ops.api_events_v2(pg_temp.ev('{}'), '2026-12-01 11:05+00');
SELECT is((SELECT (count(*)::int, max(status)) FROM ops.incidents WHERE incident_key = 'events_v2:pd-prod:db-1/disk'),
          row(1, 'acknowledged'::text), 'a trigger of an acknowledged alert refreshes it and keeps it acknowledged');
SELECT lives_ok(format($$SELECT ops.api_events_v2('{"event_action": "acknowledge", "dedup_key": "db-1/disk",
    "routing_key": %s}', '2026-12-01 11:06+00')$$, to_json((SELECT pd FROM k))), 'acknowledging twice is fine');
SELECT is((pg_temp.inc('db-1/disk')).acknowledged_at, '2026-12-01 11:00+00'::timestamptz,
          'acknowledging twice keeps the first acknowledged_at');
SELECT ops.api_events_v2(jsonb_build_object('routing_key', (SELECT pd FROM k), 'event_action', 'resolve',
                                            'dedup_key', 'db-1/disk', 'payload', 'ignored'), '2026-12-01 12:00+00');
SELECT is((SELECT (status, resolved_by, resolved_at) FROM pg_temp.inc('db-1/disk')),
          row('resolved'::text, 'pd-prod'::text, '2026-12-01 12:00+00'::timestamptz),
          'resolve resolves, by the key, at p_now (a payload is not looked at)');
SELECT is((pg_temp.inc('db-1/disk', 'pd-checkout')).status, 'open', 'the other key''s incident with that dedup_key stays open');
-- a key acts only on the incidents it opened: pd-checkout (route checkout) acknowledging and
-- resolving pd-prod's dedup_key reaches events_v2:pd-checkout:<dedup_key>, never pd-prod's incident
SELECT ops.api_events_v2(pg_temp.ev('{"dedup_key": "prod-only"}'), '2026-12-01 12:10+00');
SELECT ops.api_events_v2(jsonb_build_object('routing_key', (SELECT routed FROM k), 'event_action', a,
                                            'dedup_key', 'prod-only'), '2026-12-01 12:11+00')
FROM unnest(ARRAY['acknowledge', 'resolve']) AS a;
SELECT is((SELECT (status, acknowledged_by, route) FROM pg_temp.inc('prod-only')), row('open'::text, NULL::text, 'db-1'::text),
          'another key (bound to route checkout) can neither acknowledge nor resolve an incident it did not open');

CREATE TEMP TABLE before AS
SELECT
    (SELECT count(*) FROM ops.incidents) AS incidents,
    (SELECT count(*) FROM ops.audit_log) AS audit,
    (SELECT md5(string_agg(i::text, ',' ORDER BY id)) FROM ops.incidents AS i) AS sum;
SELECT is(ops.api_events_v2(jsonb_build_object('routing_key', (SELECT pd FROM k), 'event_action', a,
                                               'dedup_key', 'never-seen'), '2026-12-01 12:00+00') ->> 'status',
          'success', a || ' of a dedup_key with nothing open still answers success')
FROM unnest(ARRAY['acknowledge', 'resolve']) AS a;
SELECT ops.api_events_v2(jsonb_build_object('routing_key', (SELECT pd FROM k), 'event_action', 'resolve',
                                            'dedup_key', 'db-1/disk'), '2026-12-01 13:00+00');
SELECT is((pg_temp.inc('db-1/disk')).resolved_at, '2026-12-01 12:00+00'::timestamptz, 'resolving a resolved alert again changes nothing');

-- bad keys: one 28000 for each, before the event is looked at
SELECT throws_ok(format('SELECT ops.api_events_v2(%L)', pg_temp.ev('{"event_action": "explode"}', key)),
                 '28000', 'invalid integration key', descr)
FROM (VALUES ((SELECT am FROM k), 'a key of another kind (alertmanager) is refused'),
             ((SELECT old FROM k), 'a revoked key is refused'),
             ('ogk_' || repeat('0', 64), 'an unknown key is refused'),
             ('R0UTINGKEYR0UTINGKEYR0UTINGKEY00', 'a PagerDuty-shaped (32 character) key is refused')) AS c (key, descr);
SELECT throws_ok(format('SELECT ops.api_events_v2(%L)', pg_temp.ev('{}') - 'routing_key'), '28000',
                 'invalid integration key', 'a missing routing_key is refused');
SELECT throws_ok(format('SELECT ops.api_events_v2(%L)', pg_temp.ev('{}') || jsonb_build_object('routing_key',
                 jsonb_build_array((SELECT pd FROM k)))), '28000', 'invalid integration key',
                 'a routing_key that is no string (the token in a list) is refused');

-- wrong types in every field, and values out of range: 22023, the message names the field
SELECT throws_ok(format('SELECT ops.api_events_v2(%L)', pg_temp.ev(patch)), '22023', msg, 'refused: ' || left(patch::text, 100))
FROM (VALUES
    ('{"event_action": "escalate"}'::jsonb, '''event_action'' must be one of trigger, acknowledge, resolve'),
    ('{"event_action": 1}', '''event_action'' must be one of trigger, acknowledge, resolve'),
    ('{"dedup_key": 42}', '''dedup_key'' must be a string, not number'),
    ('{"dedup_key": ""}', '''dedup_key'' must not be empty'),
    (jsonb_build_object('dedup_key', repeat('d', 256)), '''dedup_key'' is longer than 255 characters'),
    ('{"payload": "disk full"}', '''payload'' is required: an object with summary, source and severity'),
    ('{"payload": {"source": "h", "severity": "info"}}', '''payload.summary'' is required'),
    ('{"payload": {"summary": ["s"], "source": "h", "severity": "info"}}', '''payload.summary'' must be a string, not array'),
    ('{"payload": {"summary": "  ", "source": "h", "severity": "info"}}', '''payload.summary'' must not be blank'),
    (jsonb_build_object('payload', jsonb_build_object('summary', repeat('s', 1025), 'source', 'h', 'severity', 'info')),
     '''payload.summary'' is longer than 1024 characters'),
    ('{"payload": {"summary": "s", "source": true, "severity": "info"}}', '''payload.source'' must be a string, not boolean'),
    ('{"payload": {"summary": "s", "source": "h"}}', '''payload.severity'' must be one of critical, error, warning, info'),
    ('{"payload": {"summary": "s", "source": "h", "severity": "CRITICAL"}}',
     '''payload.severity'' must be one of critical, error, warning, info'),
    ('{"payload": {"summary": "s", "source": "h", "severity": "info", "timestamp": 1764576000}}',
     '''payload.timestamp'' must be a string, not number'),
    ('{"payload": {"summary": "s", "source": "h", "severity": "info", "timestamp": "2026-13-01T00:00:00Z"}}',
     '''payload.timestamp'' must be an ISO 8601 time, e.g. 2026-12-01T08:00:00Z'),
    ('{"payload": {"summary": "s", "source": "h", "severity": "info", "timestamp": "now"}}',
     '''payload.timestamp'' must be an ISO 8601 time, e.g. 2026-12-01T08:00:00Z'),
    ('{"payload": {"summary": "s", "source": "h", "severity": "info", "component": {}}}',
     '''payload.component'' must be a string, not object'),
    ('{"payload": {"summary": "s", "source": "h", "severity": "info", "group": 1}}', '''payload.group'' must be a string, not number'),
    ('{"payload": {"summary": "s", "source": "h", "severity": "info", "class": false}}',
     '''payload.class'' must be a string, not boolean'),
    ('{"payload": {"summary": "s", "source": "h", "severity": "info", "custom_details": "free: 0%"}}',
     '''payload.custom_details'' must be an object'),
    ('{"links": {"href": "https://x"}}', '''links'' must be a list of {"href": string, "text": string}'),
    ('{"links": [{"text": "no href"}]}', '''links'' must be a list of {"href": string, "text": string}'),
    ('{"images": ["https://x/y.png"]}', '''images'' must be a list of {"src": string, "href": string, "alt": string}'),
    ('{"images": [{"src": "http://graph.example/disk.png"}]}', '''images[0].src'' must be an https:// URL'),
    ('{"images": [{"src": "https://ok.example/a.png"}, {"src": "javascript:alert(1)"}]}',
     '''images[1].src'' must be an https:// URL'),
    ('{"images": [{"src": "https:///no-host.png"}]}', '''images[0].src'' must be an https:// URL'),
    ('{"client": 7}', '''client'' must be a string, not number'),
    ('{"client_url": ["https://x"]}', '''client_url'' must be a string, not array')
) AS c (patch, msg);
SELECT throws_ok($$SELECT ops.api_events_v2('[1, 2]')$$, '22023', 'the body must be a JSON object',
                 'a body that is not an object is refused');
SELECT throws_ok(format('SELECT ops.api_events_v2(%L)', jsonb_build_object('routing_key', (SELECT pd FROM k),
                 'event_action', 'resolve')), '22023', '''dedup_key'' is required', 'resolve needs a dedup_key');
SELECT is((SELECT (count(*), (SELECT count(*) FROM ops.audit_log), md5(string_agg(i::text, ',' ORDER BY id)))
           FROM ops.incidents AS i),
          (SELECT (incidents, audit, sum) FROM before),
          'no refused event, and no ack or resolve of nothing open, changed an incident or the audit log');

-- 100 KB of custom_details (Alertmanager and most senders do not retry a 400): accepted, the
-- largest entries cut to 64 KiB with a marker; summary, severity, source, dedup_key, links kept
SELECT is(ops.api_events_v2(pg_temp.ev(jsonb_build_object('dedup_key', 'big', 'payload',
              jsonb_build_object('summary', 'disk full', 'source', 'db-1', 'severity', 'warning',
                                 'custom_details', jsonb_build_object('log', repeat('x', 102400), 'free', '0%')),
              'links', '[{"href": "https://runbook.example/disk", "text": "runbook"}]'::jsonb)), '2026-12-01 13:00+00') ->> 'status',
          'success', 'custom_details of 100 KB are accepted');
SELECT is((SELECT (summary, severity, details -> 'truncated', details -> 'custom_details', details ->> 'source',
                   details ->> 'severity', details ->> 'dedup_key', details #>> '{links,0,href}')
           FROM pg_temp.inc('big')),
          row('disk full'::text, 'warning'::text, '[{"field": "custom_details", "bytes": 102402}]'::jsonb,
              '{"free": "0%"}'::jsonb, 'db-1'::text, 'warning'::text, 'big'::text, 'https://runbook.example/disk'::text),
          'custom_details of 100 KB: the log entry cut and marked, the rest kept');
SELECT is(ops._intake_fit_details('{"custom_details": {"a": "b"}}'), '{"custom_details": {"a": "b"}}'::jsonb,
          'details within 64 KiB are kept as they are, with no marker');
SELECT throws_ok($$SELECT ops._intake_fit_details(jsonb_build_object('note', repeat('x', 70000)))$$, '22023', NULL,
                 'a top-level string over 64 KiB (no sender sends one: their checks bound them) is refused, not stored');

-- every problem at once, as PagerDuty lists them
CREATE FUNCTION pg_temp.detail(p_body jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_detail text;
BEGIN
    PERFORM ops.api_events_v2(p_body);
    RETURN NULL;
EXCEPTION WHEN invalid_parameter_value THEN
    GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
    RETURN v_detail::jsonb;
END;
$$;
SELECT is(pg_temp.detail(pg_temp.ev('{"payload": {"summary": 1, "severity": "fatal"}}')),
          '["''payload.summary'' must be a string, not number", "''payload.source'' is required",
            "''payload.severity'' must be one of critical, error, warning, info"]'::jsonb,
          'DETAIL lists every problem of the event as a JSON array');

SET LOCAL ROLE opsguard_api;
SELECT is(ops.api_events_v2(pg_temp.ev('{"dedup_key": "as-api"}')) ->> 'status', 'success', 'opsguard_api may call it');
RESET ROLE;
SELECT ok(NOT has_function_privilege('opsguard_operator', 'ops.api_events_v2(jsonb, timestamptz)', 'EXECUTE'),
          'operators may not (they have ops.trigger_incident)');

SELECT * FROM finish();
ROLLBACK;
