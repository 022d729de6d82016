-- ops.api_alertmanager (docs/intake.md): one incident per alert group, severity from the firing alerts,
-- route from the key's route else route/service/job labels, summary, bounded details, dedup and
-- refresh without a second escalation, resolve by the resolved notification, refused keys and
-- payloads that change nothing, 10k alerts kept small, the clock moved by p_now.
BEGIN;
SELECT plan(60);

CREATE TEMP TABLE k AS
SELECT
    ops.create_integration_key('am-prod', 'alertmanager', 'alice', 'platform') AS am,
    ops.create_integration_key('am-bare', 'alertmanager', 'alice') AS bare,
    ops.create_integration_key('pd', 'events_v2', 'alice') AS pd,
    ops.create_integration_key('am-old', 'alertmanager', 'alice') AS old;
CREATE TEMP TABLE revoked AS SELECT ops.revoke_integration_key('am-old', 'alice');

-- an Alertmanager notification: group g, status s, alerts as (status, labels) pairs
CREATE FUNCTION pg_temp.am(p_group text, p_status text, p_alerts jsonb, p_extra jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object(
        'receiver', 'opsguard', 'status', p_status, 'alerts', p_alerts,
        'groupLabels', jsonb_build_object('alertname', p_group),
        'commonLabels', jsonb_build_object('alertname', p_group),
        'commonAnnotations', '{}'::jsonb,
        'externalURL', 'http://alertmanager:9093', 'version', '4',
        'groupKey', '{}:{alertname="' || p_group || '"}', 'truncatedAlerts', 0) || p_extra
$$;
CREATE FUNCTION pg_temp.alert(p_status text, p_labels jsonb) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('status', p_status, 'labels', p_labels,
                              'annotations', jsonb_build_object('description', 'from ' || coalesce(p_labels ->> 'instance', 'nowhere')),
                              'startsAt', '2026-12-01T10:00:00Z', 'endsAt', '0001-01-01T00:00:00Z',
                              'generatorURL', 'http://prometheus:9090/graph?g0.expr=up', 'fingerprint', 'c6eadffa33fcdf37')
$$;
CREATE FUNCTION pg_temp.send(p_token text, p_body jsonb, p_now timestamptz) RETURNS jsonb
LANGUAGE sql AS $$ SELECT ops.api_alertmanager(p_token, p_body, p_now) $$;

-- grouping
CREATE TEMP TABLE r1 AS
SELECT pg_temp.send((SELECT am FROM k), pg_temp.am('DiskFull', 'firing', jsonb_build_array(
    pg_temp.alert('firing', '{"alertname": "DiskFull", "instance": "db1", "severity": "warning", "service": "db"}'),
    pg_temp.alert('firing', '{"alertname": "DiskFull", "instance": "db2", "severity": "critical", "service": "db"}'))),
    '2026-12-01 10:00+00') AS answer;
SELECT is((SELECT answer -> 'ok' FROM r1), 'true'::jsonb, 'a firing group answers ok');
SELECT is((SELECT jsonb_array_length(answer -> 'incidents') FROM r1), 1,
          'a firing group answers with the one incident of the group');
SELECT is((SELECT answer #>> '{incidents,0,incidentKey}' FROM r1),
          'alertmanager:am-prod:' || encode(sha256(convert_to('{}:{alertname="DiskFull"}', 'UTF8')), 'hex'),
          'the incident key: alertmanager, the key name, the SHA-256 of groupKey');
SELECT is((SELECT count(*)::int FROM ops.incidents WHERE incident_key LIKE 'alertmanager:%'), 1,
          'two alerts of one group make one incident');
SELECT lives_ok($$SELECT pg_temp.send((SELECT am FROM k), pg_temp.am('CpuHot', 'firing', jsonb_build_array(
    pg_temp.alert('firing', '{"alertname": "CpuHot", "instance": "web1"}'))), '2026-12-01 10:00+00')$$,
    'another group');
SELECT is((SELECT count(*)::int FROM ops.incidents WHERE incident_key LIKE 'alertmanager:%'), 2,
          'another group is another incident');
SELECT lives_ok($$SELECT pg_temp.send((SELECT bare FROM k), pg_temp.am('DiskFull', 'firing', jsonb_build_array(
    pg_temp.alert('firing', '{"alertname": "DiskFull", "instance": "db9"}'))), '2026-12-01 10:00+00')$$,
    'the same groupKey from another key');
SELECT is((SELECT count(*)::int FROM ops.incidents WHERE incident_key LIKE 'alertmanager:%'), 3,
          'the same groupKey from another key is its own incident: groups are scoped by key');

-- what the incident keeps
SELECT is((SELECT (severity, route, summary, status) FROM ops.incidents WHERE id = (SELECT (answer #>> '{incidents,0,id}')::uuid FROM r1)),
          row('critical'::text, 'platform'::text, 'DiskFull'::text, 'open'::text),
          'critical from the highest firing severity, route from the key (service db does not move it), summary from alertname');
SELECT is((SELECT details #> '{alerts,1,labels,instance}' FROM ops.incidents
           WHERE id = (SELECT (answer #>> '{incidents,0,id}')::uuid FROM r1)), '"db2"'::jsonb,
          'details keep the alert labels');
SELECT is((SELECT (details ->> 'externalURL', details #>> '{alerts,0,generatorURL}', details #>> '{alerts,0,annotations,description}',
                   details ->> 'alertsTotal', details ->> 'source')
           FROM ops.incidents WHERE id = (SELECT (answer #>> '{incidents,0,id}')::uuid FROM r1)),
          row('http://alertmanager:9093'::text, 'http://prometheus:9090/graph?g0.expr=up'::text, 'from db1'::text, '2'::text,
              'alertmanager'::text),
          'details keep externalURL, generatorURL, annotations and the count');
SELECT is((SELECT (first_seen, last_seen) FROM ops.incidents WHERE id = (SELECT (answer #>> '{incidents,0,id}')::uuid FROM r1)),
          row('2026-12-01 10:00+00'::timestamptz, '2026-12-01 10:00+00'::timestamptz), 'the clock is p_now');
SELECT is((SELECT count(*)::int FROM ops.audit_log WHERE table_name = 'incidents' AND action = 'INSERT' AND actor = 'am-prod'),
          2, 'opening is audited with the key name as actor');

-- severity mapping
CREATE FUNCTION pg_temp.severity_of(p_labels jsonb, p_status text DEFAULT 'firing') RETURNS text
LANGUAGE sql AS $$
    SELECT pg_temp.send((SELECT am FROM k), pg_temp.am('Sev' || md5(p_labels::text || p_status), 'firing', jsonb_build_array(
        pg_temp.alert('firing', '{"alertname": "x", "severity": "info"}'), pg_temp.alert(p_status, p_labels))),
        '2026-12-01 10:00+00') #>> '{incidents,0,severity}'
$$;
SELECT is(pg_temp.severity_of('{"severity": "page"}'), 'critical', 'severity page is critical');
SELECT is(pg_temp.severity_of('{"severity": "error"}'), 'critical', 'severity error is critical');
SELECT is(pg_temp.severity_of('{"severity": "CRITICAL"}'), 'critical', 'severity CRITICAL is critical');
SELECT is(pg_temp.severity_of('{"severity": "warning"}'), 'warning', 'severity warning is warning');
SELECT is(pg_temp.severity_of('{"team": "x"}'), 'warning', 'no severity label is warning');
SELECT is(pg_temp.severity_of('{"severity": "critical"}', 'resolved'), 'warning',
          'a resolved alert in a firing group does not raise the severity');

-- route choice
CREATE FUNCTION pg_temp.route_of(p_token text, p_labels jsonb) RETURNS text
LANGUAGE sql AS $$
    SELECT pg_temp.send(p_token, pg_temp.am('Route' || md5(p_labels::text), 'firing', jsonb_build_array(
        pg_temp.alert('firing', p_labels))), '2026-12-01 10:00+00') #>> '{incidents,0,route}'
$$;
SELECT is(pg_temp.route_of((SELECT bare FROM k), '{"route": "checkout", "service": "cart", "job": "node"}'), 'checkout',
          'a key without a route: the route label comes first');
SELECT is(pg_temp.route_of((SELECT bare FROM k), '{"service": "cart", "job": "node"}'), 'cart', 'then service');
SELECT is(pg_temp.route_of((SELECT bare FROM k), '{"job": "node"}'), 'node', 'then job');
-- a key bound to a route acts on that route only: labels naming another do not move the incident
SELECT is(pg_temp.route_of((SELECT am FROM k), labels), 'platform', 'the key''s route, whatever the labels: ' || labels::text)
FROM unnest(ARRAY['{"route": "checkout", "service": "cart", "job": "node"}', '{"service": "cart"}', '{"job": "node"}',
                  '{"instance": "x"}']::jsonb[]) AS labels;
SELECT is((SELECT (route, details #>> '{alerts,0,labels,route}') FROM ops.incidents
           WHERE incident_key = 'alertmanager:am-prod:' || encode(sha256(convert_to(
               '{}:{alertname="Route' || md5('{"route": "checkout", "service": "cart", "job": "node"}'::jsonb::text) || '"}',
               'UTF8')), 'hex')),
          row('platform'::text, 'checkout'::text),
          'a route-bound key keeps its route, and a label naming another route is kept in the details');
SELECT is((SELECT count(*)::int FROM ops.incidents
           WHERE route IN ('checkout', 'cart', 'node') AND incident_key LIKE 'alertmanager:am-prod:%'),
          0, 'no incident of the route-bound key landed on another route');
SELECT matches(pg_temp.route_of((SELECT bare FROM k), '{"instance": "y"}'), '^alertmanager:am-bare:[0-9a-f]{64}$',
               'no route anywhere: the incident key, as for every incident without a route');

-- summary
SELECT is(pg_temp.send((SELECT am FROM k), pg_temp.am('Sum', 'firing', jsonb_build_array(pg_temp.alert('firing', '{"a": "1"}')),
                                                      '{"commonAnnotations": {"summary": "disk 95% full on db1"}}'),
                       '2026-12-01 10:00+00') #>> '{incidents,0,summary}',
          'disk 95% full on db1', 'the summary comes from commonAnnotations.summary first');

-- dedup and refresh: one incident, last_seen moves, no second escalation
SELECT is((ops.escalation_tick('2026-12-01 11:00+00')) ->> 'escalationsCount' <> '0', true, 'the tick escalates the groups');
CREATE TEMP TABLE before_repeat AS
SELECT
    id,
    escalation_level,
    next_due_at,
    first_seen
FROM ops.incidents
WHERE id = (SELECT (answer #>> '{incidents,0,id}')::uuid FROM r1);
CREATE TEMP TABLE r2 AS
SELECT pg_temp.send((SELECT am FROM k), pg_temp.am('DiskFull', 'firing', jsonb_build_array(
    pg_temp.alert('firing', '{"alertname": "DiskFull", "instance": "db1", "severity": "warning", "service": "db"}'))),
    '2026-12-01 11:00+00') AS answer;
SELECT is((SELECT answer #>> '{incidents,0,id}' FROM r2), (SELECT answer #>> '{incidents,0,id}' FROM r1),
          'a repeated notification answers the same incident');
SELECT is((SELECT count(*)::int FROM ops.incidents WHERE incident_key = (SELECT answer #>> '{incidents,0,incidentKey}' FROM r1)),
          1, 'a repeated notification opens no second incident');
SELECT is((SELECT (last_seen, first_seen, escalation_level, next_due_at) FROM ops.incidents
           WHERE id = (SELECT id FROM before_repeat)),
          (SELECT ('2026-12-01 11:00+00'::timestamptz, first_seen, escalation_level, next_due_at) FROM before_repeat),
          'it refreshes last_seen and leaves first_seen and the escalation alone');
SELECT is((SELECT (details ->> 'alertsTotal', severity) FROM ops.incidents WHERE id = (SELECT id FROM before_repeat)),
          row('1'::text, 'critical'::text), 'the details follow the latest notification; severity never drops');
SELECT is((ops.escalation_tick('2026-12-01 11:00+00')) ->> 'escalationsCount', '0',
          'the same tick again after the repeat escalates nothing');
SELECT is((SELECT escalation_level FROM ops.incidents WHERE id = (SELECT id FROM before_repeat)),
          (SELECT escalation_level FROM before_repeat), 'the level is unchanged');

-- resolve
CREATE TEMP TABLE r3 AS
SELECT pg_temp.send((SELECT am FROM k), pg_temp.am('DiskFull', 'resolved', jsonb_build_array(
    pg_temp.alert('resolved', '{"alertname": "DiskFull", "instance": "db1"}'))), '2026-12-01 11:30+00') AS answer;
SELECT is((SELECT (status, resolved_by, resolved_at) FROM ops.incidents WHERE id = (SELECT id FROM before_repeat)),
          row('resolved'::text, 'am-prod'::text, '2026-12-01 11:30+00'::timestamptz),
          'the resolved notification resolves the incident, by the key name, at p_now');
SELECT is((SELECT answer #>> '{incidents,0,status}' FROM r3), 'resolved',
          'the resolved notification answers the incident it resolved');
SELECT is(pg_temp.send((SELECT am FROM k), pg_temp.am('DiskFull', 'resolved', '[]'), '2026-12-01 11:31+00'),
          '{"ok": true, "incidents": []}'::jsonb, 'a resolved group with nothing open answers no incident');
SELECT isnt(pg_temp.send((SELECT am FROM k), pg_temp.am('DiskFull', 'firing', jsonb_build_array(
    pg_temp.alert('firing', '{"alertname": "DiskFull"}'))), '2026-12-01 12:00+00') #>> '{incidents,0,id}',
    (SELECT id::text FROM before_repeat), 'firing again after the resolve opens a new incident');

-- refused keys and payloads change nothing
CREATE TEMP TABLE counts AS
SELECT
    (SELECT count(*) FROM ops.incidents) AS incidents,
    (SELECT count(*) FROM ops.audit_log) AS audit;
SELECT throws_ok(format('SELECT ops.api_alertmanager(%L, %L)', (SELECT old FROM k), pg_temp.am('New', 'firing', '[]')),
                 '28000', 'invalid integration key', 'a revoked key is refused');
SELECT throws_ok(format('SELECT ops.api_alertmanager(%L, %L)', (SELECT pd FROM k), pg_temp.am('New', 'firing', '[]')),
                 '28000', 'invalid integration key', 'a key of another kind is refused');
SELECT throws_ok(format('SELECT ops.api_alertmanager(NULL, %L)', pg_temp.am('New', 'firing', '[]')),
                 '28000', 'invalid integration key', 'no key is refused');
SELECT throws_ok(format('SELECT ops.api_alertmanager(%L, %L)', (SELECT old FROM k), '"not an object"'),
                 '28000', 'invalid integration key', 'a bad key is refused before the payload is looked at');
SELECT throws_ok(format('SELECT ops.api_alertmanager(%L, %L)', (SELECT am FROM k), pg_temp.am('New', 'firing', '[]') - 'groupKey'),
                 '22023', 'groupKey must be a non-empty string', 'a payload without groupKey is refused, naming it');
SELECT throws_ok(format('SELECT ops.api_alertmanager(%L, %L)', (SELECT am FROM k), pg_temp.am('New', 'firing', '[]', '{"version": "3"}')),
                 '22023', 'version must be "4" (Alertmanager) or "1" with orgId (Grafana)', 'version 3 is refused');
SELECT throws_ok(format('SELECT ops.api_alertmanager(%L, %L)', (SELECT am FROM k),
                        pg_temp.am('New', 'firing', jsonb_build_array(pg_temp.alert('firing', '{"a": "1"}'),
                                                                      pg_temp.alert('firing', '{"a": 1}')))),
                 '22023', 'alerts[1].labels must be an object of strings', 'a label that is not a string is refused, naming the alert');
SELECT throws_ok(format('SELECT ops.api_alertmanager(%L, %L)', (SELECT am FROM k),
                        pg_temp.am('New', 'firing', jsonb_build_array(pg_temp.alert('firing', '{"a": ["1"]}')))),
                 '22023', 'alerts[0].labels must be an object of strings', 'a label that is a list of strings is refused (0039)');
SELECT throws_ok(format('SELECT ops.api_alertmanager(%L, %L)', (SELECT am FROM k),
                        pg_temp.am('New', 'firing', jsonb_build_array(pg_temp.alert('firing', '{"a": "1"}')
                            || jsonb_build_object('values', (repeat('{"x": ', 30) || '1' || repeat('}', 30))::jsonb)))),
                 '22023', 'the body is nested deeper than 32 levels', 'a body 33 levels deep is refused (0040)');
SELECT ok(NOT ops._is_string_map('{"a": []}') AND NOT ops._is_string_map('{"a": "x", "b": [["y"]]}')
          AND ops._is_string_map('{"a": "x", "b": ""}') AND ops._is_string_map('{}'),
          'an object of strings is one whose every value is a string, not a list of them');
SELECT is((SELECT (count(*), (SELECT count(*) FROM ops.audit_log)) FROM ops.incidents),
          (SELECT (incidents, audit) FROM counts), 'the refused requests changed nothing');

-- Grafana: version 1 with orgId, values, title
SELECT is(pg_temp.send((SELECT am FROM k), pg_temp.am('GrafanaRule', 'firing', jsonb_build_array(
              pg_temp.alert('firing', '{"alertname": "High memory", "severity": "page"}')
              || '{"values": {"B": 44.2, "C": 1}, "silenceURL": "https://grafana/silence", "dashboardURL": ""}'),
              '{"version": "1", "orgId": 1, "title": "[FIRING:1] (blue)", "state": "alerting", "message": "m"}'),
              '2026-12-01 10:00+00') #>> '{incidents,0,severity}', 'critical', 'a Grafana payload is accepted');
SELECT is((SELECT (details ->> 'source', details #>> '{alerts,0,values,B}', details #>> '{alerts,0,silenceURL}')
           FROM ops.incidents WHERE details ->> 'title' = '[FIRING:1] (blue)'),
          row('grafana'::text, '44.2'::text, 'https://grafana/silence'::text),
          'a Grafana payload''s incident keeps its values and links');

-- 10k alerts in one group stay small
CREATE TEMP TABLE big AS
SELECT pg_temp.send((SELECT am FROM k), pg_temp.am('Storm', 'firing',
    (SELECT jsonb_agg(pg_temp.alert('firing', jsonb_build_object('alertname', 'Storm', 'instance', 'host' || g)))
     FROM generate_series(1, 10000) AS g)), '2026-12-01 10:00+00') AS answer;
SELECT is((SELECT (details ->> 'alertsTotal', details ->> 'alertsOmitted', jsonb_array_length(details -> 'alerts'))
           FROM ops.incidents WHERE id = (SELECT (answer #>> '{incidents,0,id}')::uuid FROM big)),
          row('10000'::text, '9980'::text, 20), '10k alerts: the first 20 kept, the rest counted');
SELECT cmp_ok((SELECT octet_length(details::text) FROM ops.incidents WHERE id = (SELECT (answer #>> '{incidents,0,id}')::uuid FROM big)),
              '<', 24000, '10k alerts in one group make details under 24 kB');

-- 50 alerts with 2 kB annotations each: as many kept as fit 16 KiB, so the details never pass 64 KiB
CREATE TEMP TABLE wide AS
SELECT pg_temp.send((SELECT am FROM k), pg_temp.am('Wide', 'firing',
    (SELECT jsonb_agg(pg_temp.alert('firing', jsonb_build_object('alertname', 'Wide', 'instance', 'host' || g))
                      || jsonb_build_object('annotations', jsonb_build_object('description', repeat('x', 2000))))
     FROM generate_series(1, 50) AS g)), '2026-12-01 10:00+00') AS answer;
SELECT is((SELECT (details ->> 'alertsTotal', (details ->> 'alertsOmitted')::int > 30) FROM ops.incidents
           WHERE id = (SELECT (answer #>> '{incidents,0,id}')::uuid FROM wide)),
          row('50'::text, true), 'big alerts: kept up to 16 KiB of them, the rest counted');
SELECT cmp_ok((SELECT octet_length(details::text) FROM ops.incidents WHERE id = (SELECT (answer #>> '{incidents,0,id}')::uuid FROM wide)),
              '<', 24000, '50 alerts of 2 kB annotations make details under the 64 KiB the intake allows');

-- label maps over 64 KiB altogether: the largest entries are cut, with a marker, and the alert is kept
CREATE TEMP TABLE huge AS
SELECT pg_temp.send((SELECT am FROM k), pg_temp.am('Huge', 'firing',
    jsonb_build_array(pg_temp.alert('firing', '{"alertname": "Huge", "severity": "critical"}')),
    jsonb_build_object('commonAnnotations', jsonb_build_object('summary', 'disk full', 'dump', repeat('x', 100000)),
                       'commonLabels', jsonb_build_object('alertname', 'Huge', 'blob', repeat('y', 30000)))),
    '2026-12-01 10:00+00') AS answer;
SELECT is((SELECT (status, severity, summary) FROM ops.incidents WHERE id = (SELECT (answer #>> '{incidents,0,id}')::uuid FROM huge)),
          row('open'::text, 'critical'::text, 'disk full'::text),
          '130 KB of labels and annotations: the incident is opened, its summary and severity kept');
SELECT is((SELECT (details -> 'truncated', details #>> '{commonAnnotations,summary}', details -> 'commonLabels' ? 'blob',
                   details #>> '{alerts,0,labels,alertname}', octet_length(details::text) <= 65536)
           FROM ops.incidents WHERE id = (SELECT (answer #>> '{incidents,0,id}')::uuid FROM huge)),
          row('[{"field": "commonAnnotations", "bytes": 100002}]'::jsonb, 'disk full'::text, true, 'Huge'::text, true),
          '130 KB of labels and annotations: the largest entry is cut and marked, the rest kept, within 64 KiB');

SELECT * FROM finish();
ROLLBACK;
