-- One set of incident limits, whichever way an incident comes in: ops.trigger_incident (SQL and
-- POST /ops/incidents), Alertmanager, Events API v2, heartbeats. At the limit is accepted; one over
-- is refused with 22023 naming the field and changes nothing, but from a sender (who would not send
-- again) a summary or route past the limit is cut and the details say so, as details over 64 KiB are.
BEGIN;
SELECT plan(32);

CREATE TEMP TABLE k AS SELECT
    ops.create_integration_key('am', 'alertmanager', 'alice') AS am,
    ops.create_integration_key('pd', 'events_v2', 'alice') AS pd;
-- an Alertmanager notification with this route label and summary annotation
CREATE FUNCTION pg_temp.am(p_route text, p_summary text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('version', '4', 'groupKey', 'g', 'status', 'firing', 'receiver', 'r',
        'commonAnnotations', jsonb_build_object('summary', p_summary),
        'alerts', jsonb_build_array(jsonb_build_object('status', 'firing',
                                                       'labels', jsonb_build_object('alertname', 'A', 'route', p_route))))
$$;
-- an Events API v2 trigger whose route comes from payload.component
CREATE FUNCTION pg_temp.ev(p_component text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('routing_key', (SELECT pd FROM k), 'event_action', 'trigger', 'dedup_key', 'd',
        'payload', jsonb_build_object('summary', 's', 'source', 'db-1', 'severity', 'critical', 'component', p_component))
$$;

-- ops.trigger_incident: key, route, summary, severity, actor
SELECT is(length((ops.trigger_incident(repeat('k', 500), 'warning', repeat('r', 500), repeat('s', 1024), 'alice',
                                       '2026-12-01 10:00+00')).summary), 1024,
          'trigger_incident: a 500-character key and route and a 1024-character summary are accepted');
SELECT throws_ok($$SELECT ops.trigger_incident(repeat('k', 501), 'warning')$$, '22023',
                 'incident_key must be 1 to 500 characters, not 501', 'trigger_incident: a 501-character key is refused');
SELECT throws_ok($$SELECT ops.trigger_incident(' ', 'warning')$$, '22023',
                 'incident_key must be 1 to 500 characters, not 1', 'trigger_incident: a blank key is refused');
SELECT throws_ok($$SELECT ops.trigger_incident('t::1', 'warning', repeat('r', 501))$$, '22023',
                 'route must be at most 500 characters, not 501', 'trigger_incident: a 501-character route is refused');
SELECT throws_ok($$SELECT ops.trigger_incident('t::1', 'warning', p_summary => repeat('s', 1025))$$, '22023',
                 'summary must be at most 1024 characters, not 1025',
                 'trigger_incident: a 1025-character summary is refused');
SELECT throws_ok($$SELECT ops.trigger_incident(repeat('k', 500), 'warning', p_summary => repeat('s', 1025))$$, '22023',
                 'summary must be at most 1024 characters, not 1025',
                 'trigger_incident: a 1025-character summary is refused on a refresh too');
SELECT is((SELECT summary FROM ops.incidents WHERE incident_key = repeat('k', 500)), repeat('s', 1024),
          'a refused refresh leaves the incident''s summary as it was');
SELECT throws_ok($$SELECT ops.trigger_incident('t::1', 'page')$$, '22023', 'unknown severity "page"',
                 'trigger_incident: a severity other than critical or warning is refused');
SELECT throws_ok($$SELECT ops.trigger_incident('t::1', 'warning', p_actor => ' ')$$, '22004', 'an actor is required',
                 'trigger_incident: a blank actor is refused');
SELECT is((SELECT count(*)::int FROM ops.incidents WHERE incident_key = 't::1'), 0, 'nothing refused was opened');

-- trigger_incident refreshes an incident a sender opened without losing the sender's details
DO $$ BEGIN PERFORM ops._intake_trigger('am:keep', 'warning', NULL, 's', '{"labels": {"a": "1"}}', 'am', '2026-12-01 10:00+00'); END $$;
SELECT is((ops.trigger_incident('am:keep', 'critical', p_now => '2026-12-01 10:01+00')).details,
          '{"labels": {"a": "1"}}'::jsonb, 'trigger_incident keeps the details an intake sender stored');
SELECT is((SELECT count(*)::int FROM ops.audit_log WHERE table_name = 'incidents' AND action = 'UPDATE'
              AND row_key = (SELECT id::text FROM ops.incidents WHERE incident_key = 'am:keep')), 1,
          'that refresh is audited once, as intake refreshes are');
SELECT is((SELECT actor FROM ops.audit_log WHERE table_name = 'incidents' AND action = 'UPDATE'
              AND row_key = (SELECT id::text FROM ops.incidents WHERE incident_key = 'am:keep')), 'ops-bot',
          'the refresh by trigger_incident is audited under its actor');

-- details: exactly 64 KiB kept as sent, one byte more cut with the marker (trigger_incident has none)
SELECT is(octet_length((ops._intake_trigger('d:1', 'warning', NULL, 's',
                                            jsonb_build_object('d', jsonb_build_object('log', repeat('x', 65518))),
                                            'am', '2026-12-01 10:00+00')).details::text), 65536,
          'details of exactly 64 KiB are kept as sent');
SELECT is((ops._intake_trigger('d:2', 'warning', NULL, 's',
                               jsonb_build_object('d', jsonb_build_object('log', repeat('x', 65519))),
                               'am', '2026-12-01 10:00+00')).details,
          '{"d": {}, "truncated": [{"field": "d", "bytes": 65521}]}'::jsonb,
          'details one byte over 64 KiB are cut, with the marker saying what went');

-- Alertmanager: the route label and the summary annotation
SELECT is(ops.api_alertmanager((SELECT am FROM k), pg_temp.am(repeat('r', 500), repeat('s', 1024)),
                               '2026-12-01 10:00+00') #>> '{incidents,0,route}', repeat('r', 500),
          'Alertmanager: a 500-character route and a 1024-character summary are accepted');
SELECT is((SELECT length(summary) FROM ops.incidents WHERE details ->> 'groupKey' = 'g'), 1024,
          'Alertmanager: a 1024-character summary is kept whole');
-- past the limits a sender's text is cut and marked, not refused: Alertmanager does not retry a 4xx
SELECT is(ops.api_alertmanager((SELECT am FROM k), jsonb_set(pg_temp.am(repeat('r', 501), repeat('s', 1025)),
                                                             '{groupKey}', '"g2"'),
                               '2026-12-01 10:00+00') #>> '{incidents,0,route}', repeat('r', 500),
          'Alertmanager: a 501-character route label is cut to 500 characters, and the alert is kept');
SELECT is((SELECT length(summary) FROM ops.incidents WHERE details ->> 'groupKey' = 'g2'), 1024,
          'Alertmanager: a 1025-character summary is cut to 1024 characters, and the alert is kept');
SELECT is((SELECT details -> 'truncated' FROM ops.incidents WHERE details ->> 'groupKey' = 'g2'),
          '[{"field": "summary", "chars": 1025}, {"field": "route", "chars": 501}]'::jsonb,
          'Alertmanager: the details say what was cut from the summary and the route');

-- Events API v2: the route from payload.component (the summary is checked with PagerDuty's own errors)
SELECT is(ops.api_events_v2(pg_temp.ev(repeat('c', 500)), '2026-12-01 10:00+00') ->> 'status', 'success',
          'Events v2: a 500-character component (the route) is accepted');
SELECT is((SELECT length(route) FROM ops.incidents WHERE incident_key = 'events_v2:pd:d'), 500,
          'Events v2: a 500-character component is kept whole as the route');
SELECT is(ops.api_events_v2(jsonb_set(pg_temp.ev(repeat('c', 501)), '{dedup_key}', '"d2"')) ->> 'status', 'success',
          'Events v2: a 501-character component (the route) is accepted: the event is kept');
SELECT is((SELECT (length(route), details -> 'truncated') FROM ops.incidents WHERE incident_key = 'events_v2:pd:d2'),
          row(500, '[{"field": "route", "chars": 501}]'::jsonb),
          'Events v2: a 501-character component is cut to a 500-character route, and the details say so');
SELECT throws_ok($$SELECT ops.api_events_v2(jsonb_set(pg_temp.ev('c'), '{payload,summary}', to_jsonb(repeat('s', 1025))))$$,
                 '22023', '''payload.summary'' is longer than 1024 characters',
                 'Events v2: a 1025-character summary is refused');
SELECT is((SELECT (length(route), summary) FROM ops.incidents WHERE incident_key = 'events_v2:pd:d'),
          row(500, 's'::text), 'Events v2: the refused 1025-character summary changed nothing');

-- heartbeats: the route is checked by ops.set_heartbeat, so the tick never meets a refusal
SELECT lives_ok($$SELECT ops.set_heartbeat('hb', '5 minutes', 'alice', repeat('r', 500), p_now => '2026-12-01 10:00Z')$$,
                'heartbeat: a 500-character route is accepted');
SELECT throws_ok($$SELECT ops.set_heartbeat('hb2', '5 minutes', 'alice', repeat('r', 501))$$, '22023', NULL,
                 'heartbeat: a 501-character route is refused');
SELECT is(ops.escalation_tick('2026-12-01 10:06Z') -> 'heartbeatsMissed', '1'::jsonb, 'the missed heartbeat is counted');
SELECT is((SELECT length(route) FROM ops.incidents WHERE incident_key = 'heartbeat::hb'), 500,
          'the missed heartbeat opens its incident with the whole 500-character route');

-- the actor and the dedup rules of the one path
SELECT is(current_setting('opsguard.actor', TRUE), '', 'the actor of the caller is put back afterwards');
SELECT is((ops.trigger_incident(repeat('k', 500), 'critical', p_now => '2026-12-01 10:02+00')).severity, 'critical',
          'a warning that fires again as critical becomes critical');

SELECT * FROM finish();
ROLLBACK;
