-- depends: 0028_alertmanager_intake
-- PagerDuty Events API v2 (SPEC 10): POST /v2/enqueue takes what any Events API v2 sender posts
-- (Alertmanager pagerduty_configs with url:, Grafana PagerDuty contact point, PagerDuty client
-- libraries), so moving off PagerDuty is changing one URL. The routing_key is an integration key
-- of kind events_v2; the incident key is events_v2:<key name>:<dedup_key> (at most 100 + 255 + 10
-- characters), so two senders never share incidents by choosing the same dedup_key.
-- Every problem of an event is reported at once, as PagerDuty does: the 22023 message is the
-- first problem, its DETAIL a JSON array of all of them (the API answers them as "errors").

CREATE FUNCTION ops._events_v2_string_problem(p_value jsonb, p_field text, p_max int, p_required boolean)
RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = ops, pg_temp AS $$
BEGIN
    -- JSON null is the same as leaving a field out, as PagerDuty treats it
    IF p_value IS NULL OR p_value = 'null'::jsonb THEN
        RETURN CASE WHEN p_required THEN pg_catalog.format('''%s'' is required', p_field) END;
    END IF;
    IF pg_catalog.jsonb_typeof(p_value) <> 'string' THEN
        RETURN pg_catalog.format('''%s'' must be a string, not %s', p_field, pg_catalog.jsonb_typeof(p_value));
    END IF;
    IF p_required AND pg_catalog.btrim(p_value #>> '{}') = '' THEN
        RETURN pg_catalog.format('''%s'' must not be blank', p_field);
    END IF;
    IF pg_catalog.length(p_value #>> '{}') > p_max THEN
        RETURN pg_catalog.format('''%s'' is longer than %s characters', p_field, p_max);
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ops._events_v2_string_problem(jsonb, text, int, boolean) IS
'Internal: what is wrong with an Events API v2 string field (wrong type, blank, too long), else NULL.';

CREATE FUNCTION ops._events_v2_timestamp(p_value text) RETURNS timestamptz
LANGUAGE plpgsql STABLE SET search_path = ops, pg_temp AS $$
BEGIN
    -- ISO 8601 only (what the Events API documents), so a word like now or epoch is no time
    IF p_value !~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?$' THEN
        RETURN NULL;
    END IF;
    RETURN p_value::timestamptz;
EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
    RETURN NULL;  -- shaped like a time but none (month 13, 25 oclock)
END;
$$;
COMMENT ON FUNCTION ops._events_v2_timestamp(text) IS
'Internal: an Events API v2 payload.timestamp (ISO 8601) as a timestamptz, NULL when it is none.';

CREATE FUNCTION ops.api_events_v2(p_body jsonb, p_now timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_key ops.integration_keys;
    v_action text := CASE WHEN pg_catalog.jsonb_typeof(p_body -> 'event_action') = 'string'
                          THEN p_body ->> 'event_action' END;
    v_payload jsonb := p_body -> 'payload';
    v_dedup text;
    v_errors text[];
    v_details jsonb;
BEGIN
    IF p_body IS NULL OR pg_catalog.jsonb_typeof(p_body) <> 'object' OR p_now IS NULL THEN
        RAISE EXCEPTION 'the body must be a JSON object' USING ERRCODE = '22023',
            DETAIL = '["the body must be a JSON object"]',
            HINT = '{"routing_key": "ogk_...", "event_action": "trigger", "payload": '
                   '{"summary": "disk full", "source": "db-1", "severity": "critical"}}';
    END IF;
    -- the key first: without a live key nothing else is looked at (one 28000 for every bad key)
    v_key := ops._integration_key(
        CASE WHEN pg_catalog.jsonb_typeof(p_body -> 'routing_key') = 'string' THEN p_body ->> 'routing_key' END,
        'events_v2');

    -- payload fields are looked at only when there is a payload object: a missing payload is one error
    SELECT pg_catalog.array_remove(ARRAY[
        CASE WHEN v_action IS NULL OR v_action NOT IN ('trigger', 'acknowledge', 'resolve')
             THEN '''event_action'' must be one of trigger, acknowledge, resolve' END,
        ops._events_v2_string_problem(p_body -> 'dedup_key', 'dedup_key', 255, v_action IN ('acknowledge', 'resolve')),
        CASE WHEN pg_catalog.jsonb_typeof(p_body -> 'dedup_key') = 'string' AND p_body ->> 'dedup_key' = ''
             THEN '''dedup_key'' must not be empty' END
    ] || CASE WHEN v_action = 'trigger' AND pg_catalog.jsonb_typeof(v_payload) IS DISTINCT FROM 'object' THEN ARRAY[
        '''payload'' is required: an object with summary, source and severity'
    ] ELSE '{}' END || CASE WHEN v_action = 'trigger' AND pg_catalog.jsonb_typeof(v_payload) = 'object' THEN ARRAY[
        ops._events_v2_string_problem(v_payload -> 'summary', 'payload.summary', 1024, true),
        ops._events_v2_string_problem(v_payload -> 'source', 'payload.source', 255, true),
        CASE WHEN pg_catalog.jsonb_typeof(v_payload -> 'severity') IS DISTINCT FROM 'string'
                  OR v_payload ->> 'severity' NOT IN ('critical', 'error', 'warning', 'info')
             THEN '''payload.severity'' must be one of critical, error, warning, info' END,
        ops._events_v2_string_problem(v_payload -> 'timestamp', 'payload.timestamp', 64, false),
        CASE WHEN pg_catalog.jsonb_typeof(v_payload -> 'timestamp') = 'string'
                  AND pg_catalog.length(v_payload ->> 'timestamp') <= 64
                  AND ops._events_v2_timestamp(v_payload ->> 'timestamp') IS NULL
             THEN '''payload.timestamp'' must be an ISO 8601 time, e.g. 2026-12-01T08:00:00Z' END,
        ops._events_v2_string_problem(v_payload -> 'component', 'payload.component', 1024, false),
        ops._events_v2_string_problem(v_payload -> 'group', 'payload.group', 1024, false),
        ops._events_v2_string_problem(v_payload -> 'class', 'payload.class', 1024, false),
        CASE WHEN coalesce(pg_catalog.jsonb_typeof(v_payload -> 'custom_details'), 'null') NOT IN ('object', 'null')
             THEN '''payload.custom_details'' must be an object' END
    ] ELSE '{}' END || CASE WHEN v_action = 'trigger' THEN ARRAY[
        CASE WHEN coalesce(pg_catalog.jsonb_typeof(p_body -> 'links'), 'null') NOT IN ('array', 'null')
                  OR pg_catalog.jsonb_typeof(p_body -> 'links') = 'array' AND EXISTS (
                      SELECT 1 FROM pg_catalog.jsonb_array_elements(p_body -> 'links') AS l (e)
                      WHERE pg_catalog.jsonb_typeof(l.e) <> 'object'
                         OR pg_catalog.jsonb_typeof(l.e -> 'href') IS DISTINCT FROM 'string'
                         OR coalesce(pg_catalog.jsonb_typeof(l.e -> 'text'), 'null') NOT IN ('string', 'null'))
             THEN '''links'' must be a list of {"href": string, "text": string}' END,
        CASE WHEN coalesce(pg_catalog.jsonb_typeof(p_body -> 'images'), 'null') NOT IN ('array', 'null')
                  OR pg_catalog.jsonb_typeof(p_body -> 'images') = 'array' AND EXISTS (
                      SELECT 1 FROM pg_catalog.jsonb_array_elements(p_body -> 'images') AS i (e)
                      WHERE pg_catalog.jsonb_typeof(i.e) <> 'object'
                         OR pg_catalog.jsonb_typeof(i.e -> 'src') IS DISTINCT FROM 'string'
                         OR coalesce(pg_catalog.jsonb_typeof(i.e -> 'href'), 'null') NOT IN ('string', 'null')
                         OR coalesce(pg_catalog.jsonb_typeof(i.e -> 'alt'), 'null') NOT IN ('string', 'null'))
             THEN '''images'' must be a list of {"src": string, "href": string, "alt": string}' END,
        ops._events_v2_string_problem(p_body -> 'client', 'client', 1024, false),
        ops._events_v2_string_problem(p_body -> 'client_url', 'client_url', 2048, false)
    ] ELSE '{}' END, NULL) INTO v_errors;
    IF pg_catalog.cardinality(v_errors) > 0 THEN
        RAISE EXCEPTION '%', v_errors[1] USING ERRCODE = '22023',
            DETAIL = pg_catalog.array_to_json(v_errors)::text,
            HINT = '{"routing_key": "ogk_...", "event_action": "trigger", "dedup_key": "db-1/disk", "payload": '
                   '{"summary": "disk full", "source": "db-1", "severity": "critical"}}';
    END IF;

    -- PagerDuty makes a dedup_key for a trigger without one, and answers it
    v_dedup := coalesce(p_body ->> 'dedup_key', pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', ''));
    IF v_action = 'trigger' THEN
        -- the fields the sender set, JSON nulls dropped (custom_details is kept as sent)
        SELECT coalesce(pg_catalog.jsonb_object_agg(f.k, f.v), '{}') INTO v_details
        FROM pg_catalog.jsonb_each(pg_catalog.jsonb_build_object(
            'sender', 'events_v2', 'dedup_key', v_dedup,
            'source', v_payload -> 'source', 'severity', v_payload -> 'severity',
            'timestamp', v_payload -> 'timestamp', 'component', v_payload -> 'component',
            'group', v_payload -> 'group', 'class', v_payload -> 'class',
            'custom_details', v_payload -> 'custom_details', 'links', p_body -> 'links', 'images', p_body -> 'images',
            'client', p_body -> 'client', 'client_url', p_body -> 'client_url')) AS f (k, v)
        WHERE f.v <> 'null'::jsonb;
        PERFORM ops._intake_trigger(
            pg_catalog.format('events_v2:%s:%s', v_key.name, v_dedup),
            CASE WHEN v_payload ->> 'severity' IN ('critical', 'error') THEN 'critical' ELSE 'warning' END,
            -- a template that rendered empty (a component label the alerts lack) is none
            coalesce(v_key.route, NULLIF(pg_catalog.btrim(v_payload ->> 'component'), ''), v_payload ->> 'source'),
            v_payload ->> 'summary', v_details, v_key.name, p_now);
    ELSE
        -- nothing open under the key: PagerDuty answers success too, and nothing changes
        PERFORM ops._intake_transition(
            pg_catalog.format('events_v2:%s:%s', v_key.name, v_dedup),
            CASE v_action WHEN 'acknowledge' THEN 'acknowledged' ELSE 'resolved' END, v_key.name, p_now);
    END IF;
    RETURN pg_catalog.jsonb_build_object('status', 'success', 'message', 'Event processed', 'dedup_key', v_dedup);
END;
$$;
COMMENT ON FUNCTION ops.api_events_v2(jsonb, timestamptz) IS
'POST /v2/enqueue (PagerDuty Events API v2): trigger, acknowledge or resolve incident events_v2:<key>:<dedup_key>. '
'Bad key: 28000; bad event: 22023 with every problem as a JSON array in DETAIL.';

-- the API calls it with the key it was sent; operators have their own verbs (ops.trigger_incident)
REVOKE ALL ON FUNCTION ops._events_v2_string_problem(jsonb, text, int, boolean), ops._events_v2_timestamp(text),
ops.api_events_v2(jsonb, timestamptz) FROM public;
GRANT EXECUTE ON FUNCTION ops.api_events_v2(jsonb, timestamptz) TO opsguard_api;
