-- depends: 0032_schedules
-- Escalation policies (SPEC 11, issue 13): level N of an incident pages step N of its route
-- policy (ops.route_policies, else the setting default_policy), and each escalation event
-- records whom it paged. A step names schedules (whoever ops.on_call says at escalation
-- time), principals and webhooks. The tick resolves each distinct (policy, step) once, not
-- once per incident, and queues one outbox message per destination: the route destination
-- (its webhook, else slack_webhook_url, resolved at send time as before) when someone is
-- paged, and each webhook target, each with its own dedup key. Without a policy nothing
-- changes: one message, dedup_key = unique_hash, the same payload byte for byte.
-- Webhook URLs (their path is a secret) stay in the step and the outbox row; events and
-- payloads carry a redacted form and a short hash.

CREATE TABLE ops.escalation_policies (
    name text PRIMARY KEY,
    repeat int NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    created_by text NOT NULL,
    CONSTRAINT escalation_policies_name_format CHECK (name ~ '^[A-Za-z0-9._@:-]{1,100}$'),
    CONSTRAINT escalation_policies_repeat_range CHECK (repeat BETWEEN 0 AND 20)
);
COMMENT ON TABLE ops.escalation_policies IS
'Whom each escalation level pages (SPEC 11). Level N pages step N; after the last step the steps start over repeat '
'times, then the last step repeats until max_esc_level. Create with ops.create_policy, steps with ops.add_policy_step; '
'routes use one through ops.set_route_policy or the default_policy setting.';
COMMENT ON COLUMN ops.escalation_policies.repeat IS
'How many times the steps start over after the last one (0-20); see ops.policy_step.';

CREATE TABLE ops.escalation_policy_steps (
    policy text NOT NULL REFERENCES ops.escalation_policies (name),
    step int NOT NULL,
    targets jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    updated_by text NOT NULL,
    PRIMARY KEY (policy, step),
    CONSTRAINT escalation_policy_steps_step_range CHECK (step BETWEEN 1 AND 50),
    CONSTRAINT escalation_policy_steps_targets_array CHECK (
        pg_catalog.jsonb_typeof(targets) = 'array' AND pg_catalog.jsonb_array_length(targets) BETWEEN 1 AND 20)
);
COMMENT ON TABLE ops.escalation_policy_steps IS
'The steps of a policy, numbered 1..n without gaps. targets: [{"schedule": name}, {"principal": name}, '
'{"webhook": url}], checked by ops.add_policy_step; a schedule target pages whoever is on call at escalation time.';

CREATE TABLE ops.route_policies (
    route text PRIMARY KEY,
    policy text NOT NULL REFERENCES ops.escalation_policies (name),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    updated_by text NOT NULL,
    CONSTRAINT route_policies_route_length CHECK (pg_catalog.length(route) BETWEEN 1 AND 300)
);
COMMENT ON TABLE ops.route_policies IS
'Which escalation policy a route uses; routes without a row use the default_policy setting, else none (the route '
'webhook, else slack_webhook_url, as before policies). Change with ops.set_route_policy.';

CREATE TRIGGER escalation_policies_audit_insert AFTER INSERT ON ops.escalation_policies
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('name');
CREATE TRIGGER escalation_policies_audit_update AFTER UPDATE ON ops.escalation_policies
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('name');
CREATE TRIGGER escalation_policies_audit_delete AFTER DELETE ON ops.escalation_policies
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('name');
-- steps have a two-column key: the row key is the policy, the changes name the step
CREATE TRIGGER escalation_policy_steps_audit_insert AFTER INSERT ON ops.escalation_policy_steps
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('policy');
CREATE TRIGGER escalation_policy_steps_audit_update AFTER UPDATE ON ops.escalation_policy_steps
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
EXECUTE FUNCTION ops._audit_changes('policy', 'updated_at', 'updated_by');
CREATE TRIGGER escalation_policy_steps_audit_delete AFTER DELETE ON ops.escalation_policy_steps
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('policy');
CREATE TRIGGER route_policies_audit_insert AFTER INSERT ON ops.route_policies
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('route');
CREATE TRIGGER route_policies_audit_update AFTER UPDATE ON ops.route_policies
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
EXECUTE FUNCTION ops._audit_changes('route', 'updated_at', 'updated_by');
CREATE TRIGGER route_policies_audit_delete AFTER DELETE ON ops.route_policies
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('route');

-- NULL: no policy (one message to the route destination, as before); else whom it paged
ALTER TABLE ops.escalation_events ADD COLUMN targets jsonb;
COMMENT ON COLUMN ops.escalation_events.targets IS
'Whom this escalation paged, resolved when it was sent: {"policy", "step", "principals": [...], "destinations": '
'[{"type": "route"} | {"type": "webhook", "url": redacted, "sha256": first 16 hex}], "mentions": ["<@U...>"]}. '
'NULL: no policy (the route destination only).';
ALTER TABLE ops.notification_outbox ADD COLUMN webhook_url text;
COMMENT ON COLUMN ops.notification_outbox.webhook_url IS
'A policy step''s webhook this message goes to; NULL: the route''s webhook, else slack_webhook_url, read at send time.';

-- the default policy is a setting of its own kind: set_setting refuses a name that is no policy
ALTER TABLE ops.settings DROP CONSTRAINT settings_kind_check;
ALTER TABLE ops.settings ADD CONSTRAINT settings_kind_check
CHECK (kind IN ('boolean', 'integer', 'cron', 'url', 'webhook', 'policy'));
COMMENT ON COLUMN ops.settings.kind IS
'How a value is validated: boolean, integer (min_value..max_value), cron (5 fields, empty = none), url, webhook '
'(https or loopback http), policy (an escalation policy name, empty = none).';
INSERT INTO ops.settings (key, value, kind, description) VALUES
('default_policy', '""', 'policy',
 'Escalation policy of routes without their own (ops.set_route_policy); empty: none, the route webhook as before');


CREATE OR REPLACE FUNCTION ops._setting_problem(p_kind text, p_value jsonb, p_min int, p_max int) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = ops, pg_temp
AS $$
BEGIN
    IF p_value IS NULL THEN
        RETURN 'no value';
    END IF;
    CASE p_kind
    WHEN 'boolean' THEN
        IF pg_catalog.jsonb_typeof(p_value) <> 'boolean' THEN
            RETURN pg_catalog.format('%s is not true or false', p_value);
        END IF;
    WHEN 'integer' THEN
        IF pg_catalog.jsonb_typeof(p_value) <> 'number' OR p_value::numeric <> pg_catalog.trunc(p_value::numeric) THEN
            RETURN pg_catalog.format('%s is not a whole number', p_value);
        END IF;
        IF p_value::numeric < p_min OR p_value::numeric > p_max THEN
            RETURN pg_catalog.format('%s is outside %s-%s', p_value, p_min, p_max);
        END IF;
    WHEN 'cron', 'url', 'webhook' THEN
        IF pg_catalog.jsonb_typeof(p_value) <> 'string' THEN
            RETURN pg_catalog.format('%s is not a string', p_value);
        END IF;
        IF pg_catalog.btrim(p_value #>> '{}') <> '' THEN
            BEGIN
                IF p_kind = 'cron' THEN
                    PERFORM ops._cron_sets(p_value #>> '{}');
                ELSE
                    PERFORM ops.validate_url(p_value #>> '{}', p_kind);
                END IF;
            EXCEPTION WHEN invalid_parameter_value THEN
                -- a webhook path is its secret
                RETURN CASE p_kind WHEN 'webhook' THEN ops._redact_url(SQLERRM, p_value #>> '{}') ELSE SQLERRM END;
            END;
        END IF;
    WHEN 'policy' THEN
        IF pg_catalog.jsonb_typeof(p_value) <> 'string' THEN
            RETURN pg_catalog.format('%s is not a string', p_value);
        END IF;
        IF p_value #>> '{}' <> '' AND NOT EXISTS (SELECT 1 FROM ops.escalation_policies WHERE name = p_value #>> '{}') THEN
            RETURN pg_catalog.format('no escalation policy is named %s', p_value);
        END IF;
    ELSE
        RETURN pg_catalog.format('unknown kind %s', p_kind);
    END CASE;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ops._setting_problem(text, jsonb, int, int) IS
'Internal: why a stored setting value is one set_setting would refuse (webhook URLs redacted, a policy that does not '
'exist); NULL when it is valid.';

CREATE OR REPLACE FUNCTION ops.set_setting(p_key text, p_value text, p_actor text) RETURNS ops.settings
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
AS $$
DECLARE
    v_def ops.settings;
    v_value jsonb;
    v_int bigint;
    v_prev text;
BEGIN
    IF p_key IS NULL OR p_value IS NULL OR coalesce(pg_catalog.btrim(p_actor), '') = '' THEN
        RAISE EXCEPTION 'set_setting needs a key, a value and an actor'
            USING ERRCODE = '22004', HINT = 'Example: SELECT ops.set_setting(''dry_run'', ''true'', ''alice'');';
    END IF;
    SELECT * INTO v_def FROM ops.settings WHERE key = p_key FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown setting "%"', p_key
            USING ERRCODE = '22023',
                  HINT = 'Known settings: ' || (SELECT pg_catalog.string_agg(key, ', ' ORDER BY key) FROM ops.settings);
    END IF;
    CASE v_def.kind
    WHEN 'boolean' THEN
        IF pg_catalog.lower(pg_catalog.btrim(p_value)) NOT IN ('true', 'false', 'on', 'off', 't', 'f', 'yes', 'no', '1', '0') THEN
            RAISE EXCEPTION 'setting % takes true or false, not "%"', p_key, p_value
                USING ERRCODE = '22023', HINT = 'true/false, on/off, yes/no or 1/0.';
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value)::boolean);
    WHEN 'integer' THEN
        IF p_value !~ '^\s*-?[0-9]{1,12}\s*$' THEN
            RAISE EXCEPTION 'setting % takes a whole number, not "%"', p_key, p_value
                USING ERRCODE = '22023', HINT = pg_catalog.format('A whole number from %s to %s: %s',
                                                                  v_def.min_value, v_def.max_value, v_def.description);
        END IF;
        v_int := p_value::bigint;
        IF v_int < v_def.min_value OR v_int > v_def.max_value THEN
            RAISE EXCEPTION 'setting % must be between % and %, not %', p_key, v_def.min_value, v_def.max_value, v_int
                USING ERRCODE = '22003', HINT = v_def.description;
        END IF;
        v_value := pg_catalog.to_jsonb(v_int);
    WHEN 'cron' THEN
        -- parsed in full, never matched against the clock: hour 99 is refused at any minute
        IF pg_catalog.btrim(p_value) <> '' THEN
            PERFORM ops._cron_sets(p_value);
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value));
    WHEN 'policy' THEN
        IF pg_catalog.btrim(p_value) <> ''
           AND NOT EXISTS (SELECT 1 FROM ops.escalation_policies WHERE name = pg_catalog.btrim(p_value)) THEN
            RAISE EXCEPTION 'setting % names no escalation policy: "%"', p_key, p_value
                USING ERRCODE = '22023',
                      HINT = coalesce('Policies: ' || (SELECT pg_catalog.string_agg(name, ', ' ORDER BY name)
                                                       FROM ops.escalation_policies) || '; ', '')
                             || 'create one with ops.create_policy, or pass an empty value for none.';
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value));
    ELSE
        IF pg_catalog.btrim(p_value) <> '' THEN
            PERFORM ops.validate_url(pg_catalog.btrim(p_value), v_def.kind);
        END IF;
        v_value := pg_catalog.to_jsonb(pg_catalog.btrim(p_value));
    END CASE;

    v_prev := ops._act_as(p_actor);
    UPDATE ops.settings SET value = v_value, updated_at = pg_catalog.now(), updated_by = p_actor
    WHERE key = p_key
    RETURNING * INTO v_def;
    PERFORM ops._act_as(v_prev);
    -- dispatchers wait on LISTEN: a webhook set or a pause lifted has messages to send at once
    IF p_key IN ('slack_webhook_url', 'notify_paused') THEN
        PERFORM pg_catalog.pg_notify('ops_outbox', 'settings');
    END IF;
    RETURN v_def;
END;
$$;
COMMENT ON FUNCTION ops.set_setting(text, text, text) IS
'Validates and changes one setting, audited with p_actor: SELECT ops.set_setting(''snooze_min'', ''15'', ''alice''). '
'Every value is checked in full whatever the clock. Unknown key or bad value: 22023; out of range: 22003; NULLs: 22004.';

-- Which step level N pages: levels 1..n*(repeat+1) go round the n steps, later ones stay on
-- the last. A SQL-standard body: inlined into the tick, bound when created.
-- noqa: disable=all
CREATE FUNCTION ops.policy_step(p_steps int, p_repeat int, p_level int) RETURNS int
LANGUAGE sql IMMUTABLE
RETURN CASE WHEN p_steps >= 1 AND p_repeat >= 0 AND p_level >= 1 THEN
    CASE WHEN p_level <= p_steps * (p_repeat + 1) THEN (p_level - 1) % p_steps + 1 ELSE p_steps END END;
-- noqa: enable=all
COMMENT ON FUNCTION ops.policy_step(int, int, int) IS
'The step that escalation level p_level pages in a policy of p_steps steps repeated p_repeat times: 1..n, then '
'1..n again p_repeat times, then n. NULL when there are no steps. SELECT ops.policy_step(3, 1, 7) is 3.';

CREATE FUNCTION ops.create_policy(p_name text, p_actor text, p_repeat int DEFAULT 0) RETURNS ops.escalation_policies
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_row ops.escalation_policies;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    IF p_name IS NULL OR p_name !~ '^[A-Za-z0-9._@:-]{1,100}$' THEN
        RAISE EXCEPTION 'invalid policy name "%"', p_name
            USING ERRCODE = '22023', HINT = 'Names: 1 to 100 letters, digits, . _ @ : -, e.g. ''payments-critical''.';
    END IF;
    IF p_repeat IS NULL OR p_repeat NOT BETWEEN 0 AND 20 THEN
        RAISE EXCEPTION 'repeat must be between 0 and 20, not %', coalesce(p_repeat::text, 'NULL')
            USING ERRCODE = '22003',
                  HINT = 'How many times the steps start over after the last one; later levels page the last step.';
    END IF;
    IF EXISTS (SELECT 1 FROM ops.escalation_policies WHERE name = p_name) THEN
        RAISE EXCEPTION 'escalation policy "%" exists', p_name
            USING ERRCODE = '23505', HINT = 'Change its steps with ops.add_policy_step, or choose another name.';
    END IF;
    v_prev := ops._act_as(p_actor);
    INSERT INTO ops.escalation_policies (name, repeat, created_by) VALUES (p_name, p_repeat, p_actor)
    RETURNING * INTO v_row;
    PERFORM ops._act_as(v_prev);
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops.create_policy(text, text, int) IS
'Creates an escalation policy without steps (audited): SELECT ops.create_policy(''payments'', ''alice'', 1). '
'Bad name 22023; repeat outside 0-20 22003; an existing name 23505.';

-- the policy, locked, or P0002 naming the known ones
CREATE FUNCTION ops._policy(p_name text) RETURNS ops.escalation_policies
LANGUAGE plpgsql SET search_path = ops, pg_temp AS $$
DECLARE
    v_row ops.escalation_policies;
BEGIN
    SELECT * INTO v_row FROM ops.escalation_policies WHERE name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown escalation policy "%"', p_name
            USING ERRCODE = 'P0002',
                  HINT = coalesce('Policies: ' || (SELECT pg_catalog.string_agg(name, ', ' ORDER BY name)
                                                   FROM ops.escalation_policies) || '; ', '')
                         || 'create one with SELECT ops.create_policy(''name'', ''actor'');';
    END IF;
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops._policy(text) IS 'Internal: one escalation policy, locked (FOR UPDATE); P0002 when there is none.';

CREATE FUNCTION ops.add_policy_step(p_policy text, p_step int, p_targets jsonb, p_actor text)
RETURNS ops.escalation_policy_steps
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_next int;
    v_el jsonb;
    v_i int;
    v_key text;
    v_val text;
    v_what text;
    v_hint text := 'Targets: a JSON array of 1 to 20 objects, each {"schedule": name}, {"principal": name} '
                   'or {"webhook": url}, e.g. [{"schedule": "primary"}, {"principal": "alice"}].';
    v_url text := '([A-Za-z][A-Za-z0-9+.-]*://[^/?#"\s]*)[^"\s]*';
    v_row ops.escalation_policy_steps;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    PERFORM ops._policy(p_policy);
    SELECT coalesce(max(step), 0) + 1 INTO v_next FROM ops.escalation_policy_steps WHERE policy = p_policy;
    IF p_step IS NULL OR p_step < 1 OR p_step > v_next OR p_step > 50 THEN
        RAISE EXCEPTION 'steps out of order: policy % has % step(s), so step % cannot be set',
                        p_policy, v_next - 1, coalesce(p_step::text, 'NULL')
            USING ERRCODE = '22023',
                  HINT = pg_catalog.format('Replace a step 1-%s or append step %s (at most 50 steps).',
                                           v_next - 1, v_next);
    END IF;
    IF p_targets IS NULL OR pg_catalog.jsonb_typeof(p_targets) <> 'array'
       OR pg_catalog.jsonb_array_length(p_targets) NOT BETWEEN 1 AND 20 THEN
        RAISE EXCEPTION 'step targets must be a JSON array of 1 to 20 targets, not %',
                        coalesce(pg_catalog.left(pg_catalog.regexp_replace(p_targets::text, v_url, '\1/…', 'g'), 200),
                                 'NULL')
            USING ERRCODE = '22023', HINT = v_hint;
    END IF;
    FOR v_el, v_i IN SELECT e.value, e.n FROM pg_catalog.jsonb_array_elements(p_targets) WITH ORDINALITY AS e (value, n)
    LOOP
        v_key := NULL;
        IF pg_catalog.jsonb_typeof(v_el) = 'object' AND (SELECT count(*) FROM pg_catalog.jsonb_object_keys(v_el)) = 1 THEN
            SELECT k INTO v_key FROM pg_catalog.jsonb_object_keys(v_el) AS k;
        END IF;
        -- a webhook path is its secret: messages show every URL redacted, whatever the target looks like
        v_what := pg_catalog.left(pg_catalog.regexp_replace(v_el::text, v_url, '\1/…', 'g'), 200);
        IF v_key IS NULL OR v_key NOT IN ('schedule', 'principal', 'webhook')
           OR pg_catalog.jsonb_typeof(v_el -> v_key) <> 'string' OR pg_catalog.btrim(v_el ->> v_key) = '' THEN
            RAISE EXCEPTION 'target % of the step is not a schedule, a principal or a webhook: %', v_i, v_what
                USING ERRCODE = '22023', HINT = v_hint;
        END IF;
        v_val := v_el ->> v_key;
        IF (SELECT count(*) FROM pg_catalog.jsonb_array_elements(p_targets) WITH ORDINALITY AS e (value, n)
            WHERE e.value = v_el AND e.n < v_i) > 0 THEN
            RAISE EXCEPTION 'target % of the step repeats an earlier one: %', v_i, v_what
                USING ERRCODE = '22023', HINT = 'Name each schedule, principal and webhook once per step.';
        END IF;
        IF v_key = 'schedule' AND NOT EXISTS (SELECT 1 FROM ops.schedules WHERE name = v_val) THEN
            RAISE EXCEPTION 'target % of the step names unknown schedule "%"', v_i, v_val
                USING ERRCODE = '23503',
                      HINT = 'Create it first: SELECT ops.create_schedule(''primary'', ''Europe/Berlin'', ''alice'');';
        ELSIF v_key = 'principal' AND NOT EXISTS (SELECT 1 FROM ops.principals WHERE name = v_val) THEN
            RAISE EXCEPTION 'target % of the step names unknown principal "%"', v_i, v_val
                USING ERRCODE = '23503',
                      HINT = 'Create it first: SELECT ops.add_principal(''alice'', ''human'', ''{ops_responder}'', ''admin'');';
        ELSIF v_key = 'principal' AND (SELECT disabled FROM ops.principals WHERE name = v_val) THEN
            RAISE EXCEPTION 'target % of the step names disabled principal "%"', v_i, v_val
                USING ERRCODE = '23503', HINT = 'A disabled principal is paged by no one: name someone else.';
        ELSIF v_key = 'webhook' THEN
            BEGIN
                PERFORM ops.validate_url(v_val, 'webhook');
            EXCEPTION WHEN invalid_parameter_value THEN
                RAISE EXCEPTION 'target % of the step: %', v_i, ops._redact_url(SQLERRM, v_val)
                    USING ERRCODE = '22023', HINT = 'A webhook is https, or http to a loopback host.';
            END;
        END IF;
    END LOOP;

    v_prev := ops._act_as(p_actor);
    INSERT INTO ops.escalation_policy_steps AS s (policy, step, targets, updated_by)
    VALUES (p_policy, p_step, p_targets, p_actor)
    ON CONFLICT (policy, step) DO UPDATE
    SET targets = excluded.targets, updated_at = pg_catalog.clock_timestamp(), updated_by = excluded.updated_by
    RETURNING * INTO v_row;
    PERFORM ops._act_as(v_prev);
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops.add_policy_step(text, int, jsonb, text) IS
'Sets step p_step of a policy (audited): replaces an existing step or appends the next one. '
'SELECT ops.add_policy_step(''payments'', 1, ''[{"schedule": "primary"}, {"webhook": "https://hooks.slack.com/..."}]'', '
'''alice''). Takes effect from the next escalation. Unknown policy P0002; a gap (steps out of order) or a bad target '
'22023; an unknown schedule or an unknown or disabled principal 23503; each error names the target.';

CREATE FUNCTION ops.remove_policy_step(p_policy text, p_step int, p_actor text) RETURNS ops.escalation_policy_steps
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_last int;
    v_row ops.escalation_policy_steps;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    PERFORM ops._policy(p_policy);
    SELECT max(step) INTO v_last FROM ops.escalation_policy_steps WHERE policy = p_policy;
    IF v_last IS NULL OR p_step IS DISTINCT FROM v_last THEN
        RAISE EXCEPTION 'only the last step can be removed: policy % has % step(s), not step %',
                        p_policy, coalesce(v_last, 0), coalesce(p_step::text, 'NULL')
            USING ERRCODE = '22023',
                  HINT = CASE WHEN v_last IS NULL THEN 'The policy has no steps.'
                              ELSE pg_catalog.format('Remove step %s, or replace step %s with ops.add_policy_step.',
                                                     v_last, coalesce(p_step::text, 'N')) END;
    END IF;
    v_prev := ops._act_as(p_actor);
    DELETE FROM ops.escalation_policy_steps WHERE policy = p_policy AND step = p_step RETURNING * INTO v_row;
    PERFORM ops._act_as(v_prev);
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops.remove_policy_step(text, int, text) IS
'Removes the last step of a policy (audited); returns it. Another step: 22023; unknown policy: P0002. '
'A policy left without steps pages as if there were none (the route destination).';

CREATE FUNCTION ops.set_route_policy(p_route text, p_policy text, p_actor text) RETURNS ops.route_policies
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_row ops.route_policies;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    IF p_route IS NULL OR pg_catalog.length(p_route) NOT BETWEEN 1 AND 300 THEN
        RAISE EXCEPTION 'a route must be 1 to 300 characters'
            USING ERRCODE = '22023', HINT = 'The route as incidents carry it, e.g. ''GET /projects''.';
    END IF;
    IF p_policy IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ops.escalation_policies WHERE name = p_policy) THEN
        RAISE EXCEPTION 'unknown escalation policy "%"', p_policy
            USING ERRCODE = '23503',
                  HINT = 'Create it first (ops.create_policy), or pass NULL to remove the route''s policy.';
    END IF;
    v_prev := ops._act_as(p_actor);
    IF p_policy IS NULL THEN
        DELETE FROM ops.route_policies WHERE route = p_route RETURNING * INTO v_row;
    ELSE
        INSERT INTO ops.route_policies AS r (route, policy, updated_by) VALUES (p_route, p_policy, p_actor)
        ON CONFLICT (route) DO UPDATE
        SET policy = excluded.policy, updated_at = pg_catalog.clock_timestamp(), updated_by = excluded.updated_by
        RETURNING * INTO v_row;
    END IF;
    PERFORM ops._act_as(v_prev);
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops.set_route_policy(text, text, text) IS
'Maps a route to an escalation policy (audited); p_policy NULL removes the mapping (the route then uses '
'default_policy). Returns the row set or removed. Unknown policy: 23503; bad route: 22023.';

-- Whom one step pages at p_at, and where its webhooks are. r_targets is what the escalation
-- event records (URLs redacted); r_webhooks the URLs themselves, for the outbox only.
-- Principals: the step targets in order, a schedule target giving whoever ops.on_call names;
-- each principal once, enabled ones only. A schedule removed since the step was set pages no
-- one (ops.config_problems names it). The route destination is there when someone is paged,
-- and when the step has no webhook: an escalation that reaches no one still posts to the
-- route channel rather than nowhere.
CREATE FUNCTION ops._step_targets(p_policy text, p_step int, p_at timestamptz, OUT r_targets jsonb, OUT r_webhooks text[])
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
COMMENT ON FUNCTION ops._step_targets(text, int, timestamptz) IS
'Internal: whom step p_step of a policy pages at p_at (the jsonb an escalation event records, URLs redacted) and '
'the webhook URLs of the step, for the outbox.';

CREATE FUNCTION ops.page_targets(p_policy text, p_level int, p_at timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_pol ops.escalation_policies;
    v_steps int;
BEGIN
    SELECT * INTO v_pol FROM ops.escalation_policies WHERE name = p_policy;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown escalation policy "%"', p_policy
            USING ERRCODE = 'P0002', HINT = 'SELECT name FROM ops.escalation_policies; lists them.';
    END IF;
    IF p_level IS NULL OR p_level < 1 OR p_at IS NULL THEN
        RAISE EXCEPTION 'page_targets needs a level of 1 or more and a time'
            USING ERRCODE = '22023', HINT = 'SELECT ops.page_targets(''payments'', 2, now());';
    END IF;
    SELECT count(*) INTO v_steps FROM ops.escalation_policy_steps WHERE policy = p_policy;
    IF v_steps = 0 THEN
        RETURN NULL;
    END IF;
    RETURN (ops._step_targets(p_policy, ops.policy_step(v_steps, v_pol.repeat, p_level), p_at)).r_targets;
END;
$$;
COMMENT ON FUNCTION ops.page_targets(text, int, timestamptz) IS
'Whom escalation level p_level of a policy would page at p_at, as the escalation event records it: '
'{"policy", "step", "principals", "destinations", "mentions"}; NULL when the policy has no steps. '
'SELECT ops.page_targets(''payments'', 2, now() + interval ''1 hour''). Unknown policy: P0002.';

-- jit off: the bigger statement crossed jit_optimize_above_cost, and compiling it took 2.2 s
-- of a 10k tick that runs in 3 (as release_guard, 0013)
CREATE OR REPLACE FUNCTION ops.escalation_tick(p_now timestamptz DEFAULT pg_catalog.now(), p_source text DEFAULT 'sql')
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = ops, pg_temp
SET jit = off
AS $$
DECLARE
    v_started timestamptz := pg_catalog.clock_timestamp();
    v_set jsonb;
    v_invalid jsonb;
    v_dry boolean;
    v_canary int;
    v_max int;
    v_ack_timeout int;
    v_pause text;
    v_paused boolean := false;
    v_state text := 'ran';
    v_tick_id bigint;
    v_prev_actor text;
    v_reopened int := 0;
    v_due int := 0;
    v_live int := 0;
    v_events int := 0;
    v_lag bigint := 0;
    v_would jsonb := '[]';
    v_ms numeric;
    v_summary jsonb;
    v_missed int := 0;
    v_policy text;
BEGIN
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'escalation_tick needs a time'
            USING ERRCODE = '22004', HINT = 'Call ops.escalation_tick() for now, or pass p_now.';
    END IF;

    -- the settings a tick reads, each valid or else unset (its install default): a value written
    -- around set_setting never stops ticks; it is named in the tick log and fires SettingInvalid
    SELECT pg_catalog.jsonb_object_agg(d.key, CASE WHEN v.problem IS NULL THEN s.value ELSE d.fallback END),
           coalesce(pg_catalog.jsonb_object_agg(d.key, v.problem) FILTER (WHERE v.problem IS NOT NULL), '{}')
    INTO v_set, v_invalid
    FROM (VALUES ('escalation_enabled', 'true'::jsonb), ('escalation_v1', 'true'), ('dry_run', 'false'),
                 ('canary_pct', '100'), ('max_esc_level', '7'), ('ack_timeout_min', '0'),
                 ('tick_batch_max', '10000'), ('pause_cron', '""'), ('app_base_url', '""'),
                 ('default_policy', '""')) AS d (key, fallback)
    LEFT JOIN ops.settings AS s ON d.key = s.key
    CROSS JOIN LATERAL (
        SELECT CASE WHEN s.key IS NULL THEN 'missing'
                    -- a cron string is parsed once, by the pause check below
                    WHEN s.kind = 'cron' AND pg_catalog.jsonb_typeof(s.value) = 'string' THEN NULL
                    ELSE ops._setting_problem(s.kind, s.value, s.min_value, s.max_value) END AS problem
    ) AS v;
    v_pause := pg_catalog.btrim(v_set ->> 'pause_cron');
    IF v_pause <> '' THEN
        BEGIN
            v_paused := ops.cron_matches(v_pause, p_now);
        EXCEPTION WHEN invalid_parameter_value THEN
            v_invalid := v_invalid || pg_catalog.jsonb_build_object('pause_cron', SQLERRM);
        END;
    END IF;
    IF v_invalid <> '{}' THEN
        RAISE WARNING 'escalation_tick: invalid settings treated as unset: %', v_invalid
            USING HINT = 'SELECT * FROM ops.setting_problems(); then fix each with ops.set_setting.';
    END IF;
    v_dry := (v_set -> 'dry_run')::boolean;
    v_canary := (v_set -> 'canary_pct')::int;
    v_max := (v_set -> 'max_esc_level')::int;
    v_ack_timeout := (v_set -> 'ack_timeout_min')::int;
    v_policy := nullif(v_set ->> 'default_policy', '');

    -- one tick at a time per database; a second caller reports busy rather than queueing behind it
    IF NOT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('opsguard.escalation_tick')) THEN
        v_state := 'busy';
    ELSIF NOT (v_set -> 'escalation_enabled')::boolean THEN
        v_state := 'disabled';
    ELSIF NOT (v_set -> 'escalation_v1')::boolean THEN
        v_state := 'flag_off';
    ELSIF v_paused THEN
        v_state := 'paused';
    ELSIF v_dry THEN
        v_state := 'dry_run';
    END IF;

    -- heartbeats whose pings stopped open heartbeat::<name> in every state but busy: pause_cron and
    -- the kill switches hold back escalation, not intake (an alert arriving meanwhile opens its
    -- incident too); a dry run only counts them. Due rows only, through heartbeats_due.
    IF v_state <> 'busy' THEN
        WITH missed AS (
            SELECT h.name, h.ping_interval, h.route, h.severity, h.due_at, h.last_ping_at, h.missed_at
            FROM ops.heartbeats AS h
            WHERE h.due_at <= p_now
            ORDER BY h.due_at
            LIMIT (v_set -> 'tick_batch_max')::int
            FOR UPDATE SKIP LOCKED
        ),
        opened AS (
            SELECT m.name, m.ping_interval, m.due_at, m.missed_at,
                   CASE WHEN NOT v_dry THEN (ops._intake_trigger(
                       'heartbeat::' || m.name, m.severity, m.route,
                       pg_catalog.format('heartbeat %s missed: no ping since %s (expected every %s)', m.name,
                                         coalesce(m.last_ping_at::text, 'it was set up'), m.ping_interval),
                       pg_catalog.jsonb_build_object('heartbeat', pg_catalog.jsonb_build_object(
                           'name', m.name, 'intervalSeconds', EXTRACT(epoch FROM m.ping_interval)::bigint,
                           'lastPingAt', m.last_ping_at, 'dueAt', m.due_at)),
                       'opsguard:tick', p_now)).id END AS incident_id
            FROM missed AS m
        ),
        moved AS (
            -- looked at again one interval on: a silence that goes on refreshes the incident, or opens
            -- a new occurrence when someone resolved it by hand
            UPDATE ops.heartbeats AS h
            SET due_at = p_now + o.ping_interval, missed_at = coalesce(o.missed_at, o.due_at)
            FROM opened AS o
            WHERE o.incident_id IS NOT NULL AND h.name = o.name
            RETURNING 1
        )
        SELECT count(*) INTO v_missed FROM opened;
    END IF;

    IF v_state IN ('ran', 'dry_run') THEN
        v_prev_actor := ops._act_as('opsguard:tick');

        -- ack timeout: acknowledged but unresolved for too long goes back to open
        IF v_ack_timeout > 0 AND NOT v_dry THEN
            WITH reopened AS (
                UPDATE ops.incidents SET status = 'open'
                WHERE status = 'acknowledged'
                  AND acknowledged_at <= p_now - pg_catalog.make_interval(mins => v_ack_timeout)
                  AND ops.route_in_canary(route, v_canary)
                RETURNING 1
            )
            SELECT count(*) INTO v_reopened FROM reopened;
        END IF;

        v_tick_id := pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('ops.tick_log', 'id'));

        WITH due AS (
            SELECT i.id, i.incident_key, i.route, i.severity, i.escalation_level, i.next_due_at
            FROM ops.incidents AS i
            WHERE i.next_due_at <= p_now
              AND i.escalation_level < v_max
            ORDER BY i.next_due_at
            LIMIT (v_set -> 'tick_batch_max')::int
            FOR UPDATE SKIP LOCKED
        ),
        plan AS (
            SELECT d.*,
                   d.escalation_level + 1 AS new_level,
                   NOT v_dry AND ops.route_in_canary(d.route, v_canary) AS live,
                   ops.escalation_hash(d.id, d.escalation_level + 1) AS hash,
                   coalesce(rp.policy, v_policy) AS policy
            FROM due AS d
            LEFT JOIN ops.route_policies AS rp ON d.route = rp.route
        ),
        policies AS (
            -- a policy without steps is no policy: its incidents page as before
            SELECT ep.name, ep.repeat, count(*)::int AS steps
            FROM ops.escalation_policies AS ep
            INNER JOIN ops.escalation_policy_steps AS s ON ep.name = s.policy
            GROUP BY ep.name, ep.repeat
        ),
        stepped AS (
            SELECT p.*, ops.policy_step(pol.steps, pol.repeat, p.new_level) AS step
            FROM plan AS p
            LEFT JOIN policies AS pol ON p.policy = pol.name
        ),
        resolved AS (
            -- each distinct (policy, step) once per tick: on_call runs a few times, not once per incident
            SELECT k.policy, k.step, r.r_targets, r.r_webhooks
            FROM (SELECT DISTINCT s.policy, s.step FROM stepped AS s WHERE s.step IS NOT NULL) AS k
            CROSS JOIN LATERAL ops._step_targets(k.policy, k.step, p_now) AS r
        ),
        paged AS (
            SELECT s.*, r.r_targets AS targets, r.r_webhooks AS webhooks
            FROM stepped AS s
            LEFT JOIN resolved AS r ON s.policy = r.policy AND s.step = r.step
        ),
        events AS (
            INSERT INTO ops.escalation_events
                (incident_id, incident_key, route, severity, escalation_level, escalated_at, unique_hash, tick_id,
                 targets)
            SELECT p.id, p.incident_key, p.route, p.severity, p.new_level, p_now, p.hash, v_tick_id, p.targets
            FROM paged AS p
            WHERE p.live
            ON CONFLICT (unique_hash) DO NOTHING
            RETURNING id, incident_id, incident_key, route, severity, escalation_level, escalated_at, unique_hash,
                      targets
        ),
        raised AS (
            -- an event that already exists (the level was lowered by hand and reached again) still
            -- moves the incident on, so it is not due forever; it only sends nothing twice
            UPDATE ops.incidents AS i
            SET escalation_level = p.new_level, last_escalated_at = p_now
            FROM plan AS p
            WHERE p.live AND i.id = p.id
            RETURNING i.id
        ),
        queued AS (
            -- one message per destination: the route one keeps dedup_key = unique_hash (and without a
            -- policy the payload of before), each webhook target gets sha256(unique_hash:url)
            INSERT INTO ops.notification_outbox (dedup_key, event_id, incident_id, route, payload, webhook_url)
            SELECT e.dedup_key, e.id, e.incident_id, e.route,
                   pg_catalog.jsonb_build_object(
                       'dedup_key', e.dedup_key,
                       'incident_id', e.incident_id,
                       'incident_key', e.incident_key,
                       'route', e.route,
                       'severity', e.severity,
                       'escalation_level', e.escalation_level,
                       'escalated_at', e.escalated_at,
                       'link', nullif(pg_catalog.rtrim(v_set ->> 'app_base_url', '/'), '')
                           || '/incidents/' || e.incident_id,
                       'text', pg_catalog.format('[%s] %s escalated to level %s',
                           pg_catalog.upper(e.severity), e.incident_key, e.escalation_level))
                   || CASE WHEN e.targets IS NOT NULL THEN pg_catalog.jsonb_build_object(
                          'policy', e.targets -> 'policy', 'step', e.targets -> 'step',
                          'principals', e.targets -> 'principals', 'mentions', e.targets -> 'mentions') ELSE '{}' END,
                   e.url
            FROM (
                SELECT e1.*, e1.unique_hash AS dedup_key, NULL::text AS url
                FROM events AS e1
                WHERE e1.targets IS NULL OR e1.targets -> 'destinations' @> '[{"type": "route"}]'
                UNION ALL
                SELECT e2.*,
                       pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(e2.unique_hash || ':' || w.url, 'UTF8')),
                                         'hex'),
                       w.url
                FROM events AS e2
                INNER JOIN paged AS p ON e2.incident_id = p.id
                CROSS JOIN LATERAL pg_catalog.unnest(p.webhooks) AS w (url)
                WHERE e2.targets IS NOT NULL AND p.webhooks <> '{}'
            ) AS e
            RETURNING 1
        )
        SELECT count(*),
               count(*) FILTER (WHERE p.live),
               (SELECT count(*) FROM events),
               coalesce(max(floor(EXTRACT(epoch FROM p_now - p.next_due_at) * 1000)), 0),
               coalesce((SELECT pg_catalog.jsonb_agg(w) FROM (
                   SELECT pg_catalog.jsonb_build_object('id', p2.id, 'incidentKey', p2.incident_key,
                       'fromLevel', p2.escalation_level, 'toLevel', p2.new_level,
                       'why', CASE WHEN v_dry THEN 'dry_run' ELSE 'canary' END)
                       || CASE WHEN p2.targets IS NOT NULL
                               THEN pg_catalog.jsonb_build_object('wouldPage', p2.targets -> 'principals')
                               ELSE '{}' END AS w
                   FROM paged AS p2 WHERE NOT p2.live ORDER BY p2.next_due_at LIMIT 100) AS x), '[]')
        INTO v_due, v_live, v_events, v_lag, v_would
        FROM paged AS p;

        IF v_events > 0 THEN
            PERFORM pg_catalog.pg_notify('ops_outbox', v_tick_id::text);
        END IF;
        PERFORM ops._act_as(v_prev_actor);
    END IF;

    v_ms := round((EXTRACT(epoch FROM pg_catalog.clock_timestamp() - v_started) * 1000)::numeric, 3);
    INSERT INTO ops.tick_log (id, tick_at, started_at, source, state, dry_run, paused, disabled, due_count,
                              escalations_count, skipped_idempotent, dry_run_count, reopened_count,
                              queue_lag_ms, escalation_tick_ms, invalid_settings)
    OVERRIDING SYSTEM VALUE
    VALUES (coalesce(v_tick_id, pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('ops.tick_log', 'id'))),
            p_now, v_started, coalesce(p_source, 'sql'), v_state, v_dry, v_state = 'paused',
            v_state IN ('disabled', 'flag_off'), v_due, v_events, v_live - v_events, v_due - v_live, v_reopened,
            v_lag, v_ms, v_invalid)
    RETURNING id INTO v_tick_id;

    v_summary := pg_catalog.jsonb_build_object(
        'ok', true,
        'tickId', v_tick_id,
        'state', v_state,
        'dryRun', v_dry,
        'paused', v_state = 'paused',
        'disabled', v_state IN ('disabled', 'flag_off'),
        'due', v_due,
        'escalationsCount', v_events,
        'skippedIdempotent', v_live - v_events,
        'dryRunCount', v_due - v_live,
        'reopened', v_reopened,
        'queueLagMs', v_lag,
        'escalationTickMs', v_ms,
        'wouldEscalate', v_would);
    -- present only when a setting was ignored, so a healthy summary keeps its shape
    IF v_invalid <> '{}' THEN
        v_summary := v_summary || pg_catalog.jsonb_build_object('invalidSettings', v_invalid);
    END IF;
    IF v_missed > 0 THEN
        v_summary := v_summary || pg_catalog.jsonb_build_object('heartbeatsMissed', v_missed);
    END IF;
    RETURN v_summary;
END;
$$;
COMMENT ON FUNCTION ops.escalation_tick(timestamptz, text) IS
'Escalates every incident due at p_now (up to tick_batch_max) by one level: one escalation_events row each, '
'idempotent by unique_hash, recording whom it paged (targets, from the route policy or default_policy; NULL without '
'one) and one outbox message per destination (without a policy: one, to the route webhook). '
'Honours escalation_enabled, escalation_v1, pause_cron, dry_run, canary_pct, '
'ack_timeout_min; a setting stored invalid is treated as unset and reported (invalidSettings, tick_log.invalid_settings). '
'Writes a tick_log row and returns a jsonb summary. Also opens heartbeat::<name> for each heartbeat due at p_now '
'(heartbeatsMissed; counted only on a dry run; done when paused or disabled too, skipped when busy). '
'Dry-run and canary entries of wouldEscalate carry wouldPage when a policy applies.';

CREATE OR REPLACE FUNCTION ops.claim_notifications(p_worker text, p_limit integer DEFAULT 100, p_now timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE (
    id bigint, claim_id bigint, dedup_key text, attempt integer, webhook_url text, message jsonb,
    lease_until timestamptz, lease_s integer
)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_global text := nullif(ops.setting('slack_webhook_url') #>> '{}', '');
    v_lease interval := pg_catalog.make_interval(secs => ops.setting('notify_lease_s')::int);
    v_max int := ops.setting('notify_max_attempts')::int;
    v_claim bigint;
BEGIN
    IF coalesce(pg_catalog.btrim(p_worker), '') = '' OR p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000
       OR p_now IS NULL THEN
        RAISE EXCEPTION 'claim_notifications needs a worker name, a limit of 1 to 1000 and a time'
            USING ERRCODE = '22023', HINT = 'SELECT * FROM ops.claim_notifications(''host:pid'', 100);';
    END IF;

    WITH lost AS (
        SELECT o.id, o.claimed_by, o.attempts
        FROM ops.notification_outbox AS o
        WHERE o.status = 'sending' AND o.lease_until <= p_now
        FOR UPDATE SKIP LOCKED
    ),
    back AS (
        UPDATE ops.notification_outbox AS o
        SET status = CASE WHEN l.attempts >= v_max THEN 'dead' ELSE 'pending' END,
            next_attempt_at = p_now,
            last_error = pg_catalog.format('lease expired: dispatcher %s stopped before reporting', l.claimed_by),
            claimed_by = NULL, claim_id = NULL, lease_until = NULL
        FROM lost AS l
        WHERE o.id = l.id
        RETURNING o.id
    )
    INSERT INTO ops.notification_attempts (outbox_id, attempt, worker, outcome, error, finished_at)
    SELECT l.id, l.attempts, l.claimed_by, 'lost', 'lease expired before the dispatcher reported', p_now
    FROM lost AS l INNER JOIN back AS b ON l.id = b.id;

    IF ops.setting('notify_paused')::boolean THEN
        RETURN;
    END IF;
    v_claim := pg_catalog.nextval('ops.notification_claim_seq');
    RETURN QUERY
    WITH due AS (
        -- the webhook of a policy step first (the row itself), else the route webhook, else the global one
        SELECT o.id, coalesce(o.webhook_url, w.webhook_url, v_global) AS url
        FROM ops.notification_outbox AS o
        LEFT JOIN ops.route_webhooks AS w ON o.route = w.route
        WHERE o.status = 'pending' AND o.next_attempt_at <= p_now
          AND (o.webhook_url IS NOT NULL OR w.webhook_url IS NOT NULL OR v_global IS NOT NULL)
        ORDER BY o.next_attempt_at, o.id
        LIMIT p_limit
        FOR UPDATE OF o SKIP LOCKED
    ),
    claimed AS (
        UPDATE ops.notification_outbox AS o
        SET status = 'sending', attempts = o.attempts + 1, claimed_by = p_worker, claim_id = v_claim,
            lease_until = p_now + v_lease
        FROM due AS d
        WHERE o.id = d.id
        RETURNING o.id, o.claim_id, o.dedup_key, o.attempts, d.url, ops.slack_message(o.payload), o.lease_until,
                  ops.setting('notify_lease_s')::int
    )
    SELECT * FROM claimed;
END;
$$;
COMMENT ON FUNCTION ops.claim_notifications(text, integer, timestamptz) IS
'Dispatchers only: claims due messages (status sending, lease notify_lease_s) with the webhook they go to now (the '
'message''s own policy webhook, else the route''s, else slack_webhook_url) and the Slack body. '
'Expired leases first go back to pending. Paused (notify_paused): claims nothing.';

CREATE OR REPLACE FUNCTION ops.slack_message(p_payload jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object(
        'text', (p_payload ->> 'text') || coalesce(' ' || m.mentions, ''),
        'blocks', pg_catalog.jsonb_build_array(
            pg_catalog.jsonb_build_object('type', 'section', 'text', pg_catalog.jsonb_build_object(
                'type', 'mrkdwn',
                'text', pg_catalog.format('%s *%s* `%s` escalated to level *%s*',
                                          CASE p_payload ->> 'severity' WHEN 'critical' THEN ':rotating_light:'
                                              ELSE ':warning:' END,
                                          pg_catalog.upper(p_payload ->> 'severity'),
                                          ops.slack_escape(p_payload ->> 'incident_key'),
                                          p_payload ->> 'escalation_level')
                        || coalesce(E'\nPaging ' || m.mentions, '')
                        || coalesce(E'\n<' || (p_payload ->> 'link') || '|Open the incident>', ''))),
            pg_catalog.jsonb_build_object('type', 'context', 'elements', pg_catalog.jsonb_build_array(
                pg_catalog.jsonb_build_object('type', 'mrkdwn', 'text', pg_catalog.format(
                    'incident %s · route %s · escalated %s · dedup %s',
                    p_payload ->> 'incident_id', ops.slack_escape(coalesce(p_payload ->> 'route', '-')),
                    p_payload ->> 'escalated_at', p_payload ->> 'dedup_key')
                    || coalesce(' · paged ' || ops.slack_escape(m.principals), ''))))),
        'dedup_key', p_payload ->> 'dedup_key')
    -- without a policy the payload has neither key and the message is what it was
    FROM (SELECT (SELECT pg_catalog.string_agg(v, ' ') FROM pg_catalog.jsonb_array_elements_text(
                      CASE pg_catalog.jsonb_typeof(p_payload -> 'mentions') WHEN 'array' THEN p_payload -> 'mentions' END)
                  AS v) AS mentions,
                 (SELECT pg_catalog.string_agg(v, ', ') FROM pg_catalog.jsonb_array_elements_text(
                      CASE pg_catalog.jsonb_typeof(p_payload -> 'principals') WHEN 'array' THEN p_payload -> 'principals' END)
                  AS v) AS principals) AS m
$$;
COMMENT ON FUNCTION ops.slack_message(jsonb) IS
'The Slack incoming-webhook body for an outbox payload: text (the notification fallback), blocks, and dedup_key. '
'A policy''s payload adds its mentions (<@U...>) to the text and the first block, and the paged principals to the '
'context line.';

-- The boot check gains what paging lacks. Those rows do not block start-up (blocking false):
-- a principal without a Slack user is still paged and recorded, and stopping the API and the
-- dispatcher over it would page no one at all. A new column changes the row type: drop, create.
DROP FUNCTION ops.config_problems(float8);
CREATE FUNCTION ops.config_problems(p_dispatch_timeout_s float8 DEFAULT NULL)
RETURNS TABLE (setting text, problem text, blocking boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_row record;
    v_lease int := ops.setting('notify_lease_s')::int;
BEGIN
    -- a dispatcher starts a message only while its lease outlasts the HTTP timeout
    IF p_dispatch_timeout_s IS NOT NULL AND v_lease < p_dispatch_timeout_s + 2 THEN
        setting := 'notify_lease_s';
        problem := pg_catalog.format('%s s is too short for a dispatcher HTTP timeout of %s s: make it at least %s',
                                     v_lease, p_dispatch_timeout_s, ceil(p_dispatch_timeout_s + 2));
        blocking := true;
        RETURN NEXT;
    END IF;
    -- timestamps render in the session's zone (to_jsonb, psql): opsguard shows UTC only
    IF pg_catalog.current_setting('TimeZone') NOT IN ('UTC', 'Etc/UTC', 'Etc/UCT', 'UCT', 'Universal', 'Zulu') THEN
        setting := 'TimeZone';
        problem := pg_catalog.format('the time zone is %s, not UTC: SELECT ops.use_utc(); then reconnect',
                                     pg_catalog.current_setting('TimeZone'));
        blocking := true;
        RETURN NEXT;
    END IF;
    FOR v_row IN
        SELECT s.key AS name, s.value #>> '{}' AS url, s.kind
        FROM ops.settings AS s WHERE s.kind IN ('url', 'webhook') AND s.value #>> '{}' <> ''
        UNION ALL
        SELECT pg_catalog.format('route_webhooks[%s]', w.route), w.webhook_url, 'webhook'
        FROM ops.route_webhooks AS w
        ORDER BY 1
    LOOP
        BEGIN
            PERFORM ops.validate_url(v_row.url, v_row.kind);
        EXCEPTION WHEN invalid_parameter_value THEN
            setting := v_row.name;
            problem := CASE v_row.kind WHEN 'webhook' THEN ops._redact_url(SQLERRM, v_row.url) ELSE SQLERRM END;
            blocking := true;
            RETURN NEXT;
        END;
    END LOOP;
    RETURN QUERY
    SELECT x.setting, x.problem, false
    FROM (
        -- a default policy written around set_setting: ticks treat it as none
        SELECT s.key AS setting,
               ops._setting_problem(s.kind, s.value, s.min_value, s.max_value)
               || ': routes without their own policy page as if there were none' AS problem
        FROM ops.settings AS s
        WHERE s.kind = 'policy' AND ops._setting_problem(s.kind, s.value, s.min_value, s.max_value) IS NOT NULL
        UNION ALL
        SELECT pg_catalog.format('escalation_policies[%s]', ep.name),
               'has no steps: the routes that use it page as if they had no policy; add one with ops.add_policy_step'
        FROM ops.escalation_policies AS ep
        WHERE NOT EXISTS (SELECT 1 FROM ops.escalation_policy_steps AS s WHERE s.policy = ep.name)
          AND (EXISTS (SELECT 1 FROM ops.route_policies AS r WHERE r.policy = ep.name)
               OR ep.name = ops.setting('default_policy') #>> '{}')
        UNION ALL
        SELECT pg_catalog.format('escalation_policy_steps[%s/%s]', s.policy, s.step),
               pg_catalog.format('target %s names schedule %s, which does not exist: it pages no one; replace the step '
                                 'with ops.add_policy_step', e.n, e.target -> 'schedule')
        FROM ops.escalation_policy_steps AS s
        CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(s.targets) WITH ORDINALITY AS e (target, n)
        WHERE e.target ? 'schedule'
          AND NOT EXISTS (SELECT 1 FROM ops.schedules AS sc WHERE sc.name = e.target ->> 'schedule')
        UNION ALL
        SELECT pg_catalog.format('principals[%s]', g.principal),
               pg_catalog.format('%s can be paged (%s) but has no linked Slack user: paged and recorded, mentioned by '
                                 'no one; SELECT ops.link_chat_identity(''slack'', <team id>, <user id>, %L, <actor>)',
                                 g.principal, g.via, g.principal)
        FROM (
            SELECT w.principal, pg_catalog.string_agg(DISTINCT w.via, ', ') AS via
            FROM (
                SELECT e.target ->> 'principal' AS principal,
                       pg_catalog.format('policy %s step %s', s.policy, s.step) AS via
                FROM ops.escalation_policy_steps AS s
                CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(s.targets) AS e (target)
                WHERE e.target ? 'principal'
                UNION ALL
                SELECT u.principal, pg_catalog.format('schedule %s', r.schedule)
                FROM ops.schedule_rotations AS r
                CROSS JOIN LATERAL pg_catalog.unnest(r.participants) AS u (principal)
                UNION ALL
                SELECT o.principal, pg_catalog.format('schedule %s override', o.schedule)
                FROM ops.schedule_overrides AS o
                WHERE o.ends_at > pg_catalog.now()
            ) AS w
            INNER JOIN ops.principals AS p ON w.principal = p.name AND NOT p.disabled
            WHERE NOT EXISTS (SELECT 1 FROM ops.chat_identities AS c
                              WHERE c.principal = w.principal AND c.provider = 'slack')
            GROUP BY w.principal
        ) AS g
    ) AS x
    ORDER BY 1;
END;
$$;
COMMENT ON FUNCTION ops.config_problems(float8) IS
'What is wrong with the configuration, one row per setting (empty: all is well): SELECT * FROM ops.config_problems(); '
'Checks URLs and webhooks, the time zone (UTC), and for a dispatcher its lease (blocking: the API and the dispatcher '
'refuse to start while such rows exist; a dispatcher passes its HTTP timeout). Rows with blocking false are paging gaps '
'that start-up and /healthz only warn about: a principal a policy or schedule can page with no linked Slack user, a '
'step naming a schedule that no longer exists, a default_policy naming no policy, a policy in use without steps.';
REVOKE ALL ON FUNCTION ops.config_problems(float8) FROM public;
-- every process checks its configuration at start; operators in the runbook
-- in the order 0014 and 0019 granted them, so a rollback restores the same ACL
GRANT EXECUTE ON FUNCTION ops.config_problems(float8) TO opsguard_operator;
GRANT EXECUTE ON FUNCTION ops.config_problems(float8) TO opsguard_dispatcher;
GRANT EXECUTE ON FUNCTION ops.config_problems(float8) TO opsguard_api;

-- The health answer: blocking configuration problems are reasons, paging gaps are warnings.
CREATE OR REPLACE FUNCTION ops.api_health(p_now timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_tick ops.tick_log;
    v_tick_ms float8 := ops.setting('tick_ms')::float8;
    v_age float8;
    v_cron record;
    v_status text := ops.pg_cron_status();
    v_reasons text[] := '{}';
    v_warnings text[];
BEGIN
    SELECT * INTO v_tick FROM ops.tick_log WHERE tick_at <= p_now ORDER BY tick_at DESC, id DESC LIMIT 1;
    v_age := round(EXTRACT(epoch FROM p_now - v_tick.tick_at)::numeric, 1);
    IF v_age IS NULL THEN
        IF p_now - coalesce(ops.installed_at(), '-infinity') > pg_catalog.make_interval(secs => 2 * v_tick_ms / 1000) THEN
            v_reasons := v_reasons || 'no escalation tick has run since opsguard was installed'::text;
        END IF;
    ELSIF v_age * 1000 > 2 * v_tick_ms THEN
        v_reasons := v_reasons || pg_catalog.format('the last tick was %s s ago (more than 2 x tick_ms)', v_age);
    END IF;
    SELECT * INTO v_cron FROM ops.cron_job_last_run('opsguard-escalation-tick');
    IF v_status = 'installed' AND v_cron.scheduled IS NULL THEN
        v_reasons := v_reasons || 'pg_cron is installed but the tick job is not scheduled: SELECT ops.install_cron_jobs()'::text;
    ELSIF v_cron.status = 'failed' THEN
        v_reasons := v_reasons || pg_catalog.format('the last pg_cron tick failed: %s', v_cron.return_message);
    END IF;
    v_reasons := v_reasons || ARRAY(SELECT c.setting || ': ' || c.problem FROM ops.config_problems() AS c WHERE c.blocking);
    v_warnings := ARRAY(SELECT c.setting || ': ' || c.problem FROM ops.config_problems() AS c WHERE NOT c.blocking);
    RETURN pg_catalog.jsonb_build_object(
        'database', 'ok',
        'reasons', pg_catalog.to_jsonb(v_reasons),
        'warnings', pg_catalog.to_jsonb(v_warnings),
        'migrations', (SELECT pg_catalog.jsonb_agg(migration_id ORDER BY migration_id) FROM public._yoyo_migration),
        'lastTickAt', v_tick.tick_at,
        'lastTickAgeSeconds', v_age,
        'tickMs', ops.setting('tick_ms'),
        'pgCron', v_status,
        'pgCronJob', CASE WHEN v_cron.scheduled THEN pg_catalog.jsonb_build_object(
            'lastStatus', v_cron.status, 'lastStart', v_cron.start_time, 'lastMessage', v_cron.return_message) END);
END;
$$;
COMMENT ON FUNCTION ops.api_health(timestamptz) IS
'GET /healthz: database, applied migrations, last tick and its age, pg_cron job and its last run, and the reasons it is '
'not healthy (a late or missing tick, a failing or missing pg_cron job, a blocking configuration problem); warnings: '
'the configuration problems that do not block (paging gaps).';

-- operators (admins at psql) set policies up and ask whom a level would page
GRANT EXECUTE ON FUNCTION ops.policy_step(int, int, int), ops.create_policy(text, text, int),
ops.add_policy_step(text, int, jsonb, text), ops.remove_policy_step(text, int, text),
ops.set_route_policy(text, text, text), ops.page_targets(text, int, timestamptz) TO opsguard_operator;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ops FROM public;
