-- Change events (POST /v2/change/enqueue, PagerDuty's shape): one row of ops.changes per event, on the
-- key's route (a routed key acts only there), else custom_details.route, else source; capped storage;
-- a bad key or event changes nothing; shown with incidents (the hour before first_seen) and with the
-- guard's route items (within the lookback); purged after change_retention_days; audited; privileges.
-- The clock: 2026-03-02 12:00:30 UTC, moved by p_now.
BEGIN;
SELECT plan(43);

CREATE TEMP TABLE k AS
SELECT
    ops.create_integration_key('ci', 'events_v2', 'alice') AS ci,
    ops.create_integration_key('ci-checkout', 'events_v2', 'alice', 'checkout') AS routed,
    ops.create_integration_key('am', 'alertmanager', 'alice') AS am,
    ops.create_integration_key('ci-old', 'events_v2', 'alice') AS old;
SELECT ops.revoke_integration_key('ci-old', 'alice');
GRANT SELECT ON k TO opsguard_api;

-- a valid change event with the key ci; each case below changes one thing in it
CREATE FUNCTION pg_temp.ev(p_patch jsonb, p_key text DEFAULT NULL) RETURNS jsonb LANGUAGE sql AS $$
    SELECT pg_catalog.jsonb_build_object(
        'routing_key', coalesce(p_key, (SELECT ci FROM k)),
        'payload', pg_catalog.jsonb_build_object('summary', 'deploy search v42', 'source', 'GET /search')
    ) || p_patch
$$;
CREATE FUNCTION pg_temp.problems(p_body jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_detail text;
BEGIN
    PERFORM ops.api_change_event(p_body, '2026-03-02 12:00:30Z');
    RETURN 'accepted';
EXCEPTION WHEN invalid_parameter_value THEN
    GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
    RETURN v_detail;
END;
$$;

-- the answer and the row
SELECT is(ops.api_change_event(pg_temp.ev(jsonb_build_object(
              'payload', jsonb_build_object('summary', 'deploy search v42', 'source', 'GET /search',
                                            'timestamp', '2026-03-02T11:50:00.315+0000',
                                            'custom_details', jsonb_build_object('build', '42')),
              'links', '[{"href": "https://ci.example/42", "text": "build 42"}, {"href": "https://git.example/x"}]'::jsonb)),
              '2026-03-02 12:00:30Z'),
          '{"status": "success", "message": "Change event processed"}'::jsonb,
          'a change event answers exactly PagerDuty''s 202 body');
SELECT is((SELECT (route, summary, source, occurred_at, received_at, key_name, details, links, truncated)
           FROM ops.changes ORDER BY id DESC LIMIT 1),
          row('GET /search'::text, 'deploy search v42'::text, 'GET /search'::text,
              '2026-03-02 11:50:00.315Z'::timestamptz, '2026-03-02 12:00:30Z'::timestamptz, 'ci'::text,
              '{"build": "42"}'::jsonb,
              '[{"href": "https://ci.example/42", "text": "build 42"}, {"href": "https://git.example/x"}]'::jsonb,
              FALSE),
          'the row: route from source, occurred_at from payload.timestamp, received_at p_now, the key''s name, details, links');
SELECT is((SELECT (actor, action) FROM ops.audit_log WHERE table_name = 'changes' ORDER BY id DESC LIMIT 1),
          row('ci'::text, 'INSERT'::text), 'audited with the key''s name as actor');
SELECT is(current_setting('opsguard.actor', TRUE), '',
          'a change event leaves the session''s actor as it was');

SELECT ops.api_change_event(pg_temp.ev('{"payload": {"summary": "no time", "source": "GET /search"}}'),
                            '2026-03-02 12:00:40Z');
SELECT is((SELECT occurred_at FROM ops.changes ORDER BY id DESC LIMIT 1), '2026-03-02 12:00:40Z'::timestamptz,
          'without payload.timestamp it occurred when received');
SELECT ops.api_change_event(pg_temp.ev(
    '{"payload": {"summary": "flag on", "source": "flagd", "custom_details": {"route": "GET /cart"}}}'), '2026-03-02 12:00:41Z');
SELECT is((SELECT route FROM ops.changes ORDER BY id DESC LIMIT 1), 'GET /cart',
          'a key without a route: custom_details.route before source');
SELECT ops.api_change_event(pg_temp.ev(
    '{"payload": {"summary": "deploy", "source": "GET /search", "custom_details": {"route": "GET /cart"}}}', (SELECT routed FROM k)),
    '2026-03-02 12:00:42Z');
SELECT is((SELECT (route, key_name) FROM ops.changes ORDER BY id DESC LIMIT 1), row('checkout'::text, 'ci-checkout'::text),
          'a key with a route acts only on it, whatever the event names');
SELECT ops.api_change_event(pg_temp.ev('{"payload": {"summary": "only a summary"}}', (SELECT routed FROM k)), '2026-03-02 12:00:43Z');
SELECT is((SELECT route FROM ops.changes ORDER BY id DESC LIMIT 1), 'checkout',
          'a routed key needs neither source nor custom_details.route (PagerDuty''s minimal body)');
SELECT is(pg_temp.problems(pg_temp.ev('{"images": [{"src": "https://x/i.png"}], "client": "ci", "extra": 1}')), 'accepted',
          'images and fields PagerDuty ignores are accepted');

-- caps: what one request stores is bounded
SELECT ops.api_change_event(pg_temp.ev(jsonb_build_object(
    'payload', jsonb_build_object('summary', 'big', 'source', 'GET /big',
                                  'custom_details', (SELECT jsonb_object_agg('k' || lpad(g::text, 3, '0'), repeat('x', 1000))
                                                     FROM generate_series(1, 100) AS g)),
    'links', (SELECT jsonb_agg(jsonb_build_object('href', 'https://ci.example/' || repeat('y', 500), 'text', 't'))
              FROM generate_series(1, 30) AS g))), '2026-03-02 12:00:44Z');
SELECT ok((SELECT octet_length(details::text) <= 16384 AND octet_length(details::text) > 15000
                  AND details ? 'k001' AND NOT details ? 'k100' FROM ops.changes WHERE route = 'GET /big'),
          'custom_details of 100 KB: the first keys that fit in 16 KiB are kept');
SELECT ok((SELECT jsonb_array_length(links) BETWEEN 1 AND 10 AND octet_length(links::text) <= 4096
           FROM ops.changes WHERE route = 'GET /big'), '30 links: the first that fit in 10 and 4 KiB are kept');
SELECT is((SELECT truncated FROM ops.changes WHERE route = 'GET /big'), TRUE,
          'a change with capped details or links is marked truncated');
SELECT throws_ok($$INSERT INTO ops.changes (route, summary, occurred_at, received_at, key_name, details)
                   VALUES ('r', 's', now(), now(), 'ci', jsonb_build_object('x', repeat('x', 20000)))$$,
                 '23514', NULL, 'the table itself refuses details over 16 KiB');

-- a bad key or a bad event changes nothing
CREATE TEMP TABLE before AS
SELECT
    count(*) AS n,
    (SELECT count(*) FROM ops.audit_log) AS a
FROM ops.changes;
SELECT throws_ok(format('SELECT ops.api_change_event(%L::jsonb, now())', pg_temp.ev('{}', k.x)), '28000', NULL,
                 'a bad key is 28000: ' || k.w)
FROM (VALUES ('unknown', 'ogk_' || repeat('0', 64)), ('revoked', (SELECT old FROM k)),
             ('alertmanager kind', (SELECT am FROM k))) AS k (w, x);
SELECT throws_ok($$SELECT ops.api_change_event('{"payload": {"summary": "s", "source": "r"}}', now())$$, '28000', NULL,
                 'no routing_key is 28000');
SELECT throws_ok($$SELECT ops.api_change_event('{"routing_key": "x", "payload": 1}', now())$$, '28000', NULL,
                 'the key is looked at before the event');
SELECT throws_ok($$SELECT ops.api_change_event('[1]', now())$$, '22023', NULL, 'a body that is no object is 22023');
SELECT is(pg_temp.problems(pg_temp.ev('{"payload": null}')), '["''payload'' is required: an object with summary"]',
          'no payload');
SELECT is(pg_temp.problems(pg_temp.ev('{"payload": {"summary": 1, "source": "r", "timestamp": "yesterday", "custom_details": [1]}}')),
          '["''payload.summary'' must be a string, not number",'
          '"''payload.timestamp'' must be an ISO 8601 time, e.g. 2026-12-01T08:00:00Z",'
          '"''payload.custom_details'' must be an object"]',
          'every problem is listed, in PagerDuty''s words');
SELECT is(pg_temp.problems(pg_temp.ev(jsonb_build_object('payload', jsonb_build_object('summary', repeat('s', 1025), 'source', 'r')))),
          '["''payload.summary'' is longer than 1024 characters"]', 'a summary over 1024 characters');
SELECT is(pg_temp.problems(pg_temp.ev('{"payload": {"summary": "  ", "source": "r"}}')),
          '["''payload.summary'' must not be blank"]', 'a blank summary');
SELECT is(pg_temp.problems(pg_temp.ev(jsonb_build_object('payload', jsonb_build_object('summary', 's', 'source', repeat('r', 256))))),
          '["''payload.source'' is longer than 255 characters"]', 'a source over 255 characters');
SELECT is(pg_temp.problems(pg_temp.ev('{"payload": {"summary": "s"}}')),
          '["a change needs a route: the key''s, else ''payload.custom_details.route'', else ''payload.source''"]',
          'a key without a route and an event that names none');
SELECT is(pg_temp.problems(pg_temp.ev('{"payload": {"summary": "s", "custom_details": {"route": 5}}}')),
          '["''payload.custom_details.route'' must be a string, not number"]', 'custom_details.route of the wrong type');
SELECT is(pg_temp.problems(pg_temp.ev('{"links": [{"href": 1}]}')),
          '["''links'' must be a list of {\"href\": string, \"text\": string}"]', 'a link without a string href');
SELECT is(pg_temp.problems(pg_temp.ev(jsonb_build_object('links', jsonb_build_array(jsonb_build_object('href', repeat('h', 2049)))))),
          '["''links'': an href is at most 2048 characters, a text at most 1024"]', 'an over-long href');
SELECT is((SELECT (count(*), (SELECT count(*) FROM ops.audit_log)) FROM ops.changes), (SELECT (n, a) FROM before),
          'none of the refused events stored a change or an audit row');

-- incidents: the changes of their route in the hour before they opened, most recent first, at most 10
SELECT ops.api_change_event(pg_temp.ev(jsonb_build_object('payload', jsonb_build_object(
           'summary', 'pay ' || g, 'source', 'GET /pay', 'timestamp', to_char(t, 'YYYY-MM-DD"T"HH24:MI:SS"Z"')))),
                            '2026-03-02 12:00:50Z')
FROM (
    SELECT
        g,
        '2026-03-02 12:00:00Z'::timestamptz - make_interval(mins => g * 5) AS t
    FROM generate_series(0, 13) AS g
) AS s;
SELECT ops.api_change_event(
    pg_temp.ev('{"payload": {"summary": "other route", "source": "GET /other", "timestamp": "2026-03-02T11:59:00Z"}}'),
                            '2026-03-02 12:00:50Z');
-- after first_seen: not the incident's, but within the guard's lookback below
SELECT ops.api_change_event(pg_temp.ev(jsonb_build_object('payload', jsonb_build_object(
           'summary', 'late ' || g, 'source', 'GET /pay', 'timestamp', '2026-03-02T12:00:0' || g || 'Z'))),
                            '2026-03-02 12:00:50Z')
FROM generate_series(1, 4) AS g;
CREATE TEMP TABLE inc AS SELECT (ops.trigger_incident('GET /pay::error_rate_critical', 'critical',
                                                      NULL, NULL, 'ops-bot', '2026-03-02 12:00:00Z')).id;
SELECT is(array(SELECT summary FROM ops.incident_changes((SELECT id FROM inc))),
          ARRAY['pay 0', 'pay 1', 'pay 2', 'pay 3', 'pay 4', 'pay 5', 'pay 6', 'pay 7', 'pay 8', 'pay 9'],
          'ops.incident_changes: its route only, from first_seen back (first_seen itself included), at most 10');
SELECT is(array(SELECT c.summary FROM ops.incident_changes((SELECT id FROM inc)) AS c ORDER BY c.occurred_at DESC OFFSET 9),
          ARRAY['pay 9'],
          'ops.incident_changes: the oldest shown is 45 minutes before (12 at exactly one hour is in range, but past the 10)');
SELECT is((SELECT jsonb_path_query_array(i -> 'changes', '$[*].summary')
           FROM jsonb_array_elements(ops.api_list_incidents('ops-bot', NULL, '{}') -> 'incidents') AS i
           WHERE i ->> 'id' = (SELECT id::text FROM inc)),
          '["pay 0", "pay 1", "pay 2", "pay 3", "pay 4", "pay 5", "pay 6", "pay 7", "pay 8", "pay 9"]'::jsonb,
          'GET /ops/incidents lists the same changes with each incident');
SELECT is((SELECT (i -> 'changes' -> 0) - 'id' - 'receivedAt'
           FROM jsonb_array_elements(ops.api_list_incidents('ops-bot', NULL, '{}') -> 'incidents') AS i
           WHERE i ->> 'id' = (SELECT id::text FROM inc)),
          jsonb_build_object('occurredAt', '2026-03-02T12:00:00+00:00', 'summary', 'pay 0', 'source', 'GET /pay',
                             'integrationKey', 'ci', 'links', '[]'::jsonb),
          'GET /ops/incidents shows each change with its time, summary, source, key and links');
CREATE TEMP TABLE early AS SELECT (ops.trigger_incident('GET /pay::other', 'warning', NULL, NULL, 'ops-bot',
                                                        '2026-03-02 11:00:00Z')).id;
SELECT is(array(SELECT summary FROM ops.incident_changes((SELECT id FROM early))), ARRAY['pay 12', 'pay 13'],
          'an incident that opened earlier sees the changes of its own hour (11:00 and 10:55, none later)');
SELECT ops.trigger_incident('GET /quiet::x', 'critical', NULL, NULL, 'ops-bot', '2026-03-02 12:00:00Z');
SELECT is((SELECT i -> 'changes' FROM jsonb_array_elements(
               ops.api_list_incidents('ops-bot', NULL, '{"route": "GET /quiet"}') -> 'incidents') AS i),
          '[]'::jsonb, 'an incident of a route without changes lists none');

-- the guard: a failing route item carries the route's changes within the lookback (10 min), at most 3
SELECT ops.record_requests(jsonb_agg(jsonb_build_object('route', 'GET /pay', 'status', CASE WHEN g <= 60 THEN 500 ELSE 200 END,
                                                        'latency_ms', 10, 'at', '2026-03-02 12:00:10Z')))
FROM generate_series(1, 100) AS g;
SELECT ops.record_requests(jsonb_agg(jsonb_build_object('route', 'GET /pay', 'status', CASE WHEN g <= 60 THEN 500 ELSE 200 END,
                                                        'latency_ms', 10, 'at', '2026-03-02 12:10:30Z')))
FROM generate_series(1, 100) AS g;
CREATE TEMP TABLE g AS SELECT ops.release_guard('2026-03-02 12:00:30Z') AS v;
SELECT is((SELECT jsonb_path_query_array(f -> 'evidence' -> 'changes', '$[*].summary')
           FROM jsonb_array_elements((SELECT v -> 'failing' FROM g)) AS f
           WHERE f ->> 'key' = 'GET /pay::error_rate_critical'),
          '["late 4", "late 3", "late 2"]'::jsonb,
          'a failing route item''s evidence: the 3 most recent changes of its route within the lookback');
SELECT is((SELECT (f -> 'evidence' -> 'changes' -> 0) - 'id'
           FROM jsonb_array_elements((SELECT v -> 'failing' FROM g)) AS f
           WHERE f ->> 'key' = 'GET /pay::error_rate_critical'),
          '{"occurredAt": "2026-03-02T12:00:04+00:00", "summary": "late 4", "source": "GET /pay"}'::jsonb,
          'a failing route item''s evidence shows each change with its time, summary and source');
SELECT is((SELECT f -> 'evidence' ? 'changes' FROM jsonb_array_elements(
               ops.release_guard('2026-03-02 12:10:45Z') -> 'failing') AS f
           WHERE f ->> 'key' = 'GET /pay::hard_error_threshold'),
          FALSE, 'once the changes are older than the lookback, the evidence is as before (no changes key)');

-- retention: change_retention_days (30) after receipt
SELECT is(ops.purge_history('2026-04-01 12:00:40Z') ->> 'changes', '2', 'purge_history drops changes received over 30 days ago');
CREATE TEMP TABLE left_over AS SELECT count(*) AS n FROM ops.changes;
SELECT is(ops.purge_history('2026-04-02') ->> 'changes', (SELECT n::text FROM left_over),
          'purge_history a day later drops the rest of the changes');
SELECT is_empty('SELECT 1 FROM ops.changes', 'after both purges no change is left');

-- privileges
SELECT ok(has_function_privilege('opsguard_api', 'ops.api_change_event(jsonb, timestamptz)', 'EXECUTE')
          AND NOT has_table_privilege('opsguard_api', 'ops.changes', 'SELECT, INSERT'),
          'the API role executes ops.api_change_event and touches no table');
SELECT ok(has_table_privilege('opsguard_operator', 'ops.changes', 'SELECT')
          AND NOT has_table_privilege('opsguard_operator', 'ops.changes', 'INSERT, UPDATE, DELETE')
          AND has_function_privilege('opsguard_operator', 'ops.incident_changes(uuid)', 'EXECUTE'),
          'operators read changes and run ops.incident_changes, and write nothing');

SELECT * FROM finish();
ROLLBACK;
