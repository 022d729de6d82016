-- depends: 0002_audit 0003_cron_matches
-- Settings and the SLA table: in the database, so pg_cron jobs see them; changed
-- through validated, audited functions.

CREATE TABLE ops.settings (
    key text PRIMARY KEY,
    value jsonb NOT NULL,
    kind text NOT NULL CHECK (kind IN ('boolean', 'integer', 'cron', 'url', 'webhook')),
    min_value integer,
    max_value integer,
    description text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by text NOT NULL DEFAULT 'install'
);
COMMENT ON TABLE ops.settings IS
'Runtime settings (SPEC §3). Read with ops.setting(key); change with ops.set_setting(key, value, actor).';
COMMENT ON COLUMN ops.settings.kind IS
'How a value is validated: boolean, integer (min_value..max_value), cron (5 fields, empty = none), url, webhook (https or loopback http).';

INSERT INTO ops.settings (key, value, kind, min_value, max_value, description) VALUES
('escalation_enabled', 'true', 'boolean', NULL, NULL,
 'false: ticks do nothing but log that they were disabled (ESCALATION_WORKER_ENABLED).'),
('escalation_v1', 'true', 'boolean', NULL, NULL, 'Feature flag: false turns escalation off for every incident.'),
('dry_run', 'false', 'boolean', NULL, NULL,
 'true: a tick reports what it would do and changes no incident, records no event, sends nothing (ESC_DRY_RUN).'),
('max_esc_level', '7', 'integer', 1, 100, 'No escalation beyond this level (MAX_ESC_LEVEL).'),
('snooze_min', '30', 'integer', 0, 10080, 'After an escalation the next is not due for this many minutes (ESC_SNOOZE_MIN).'),
('pause_cron', '""', 'cron', NULL, NULL,
 'Maintenance window, 5-field cron in UTC; a tick in a matching minute escalates nothing. Empty: never paused.'),
('canary_pct', '100', 'integer', 0, 100,
 'Only incidents whose route falls in this stable share of routes escalate for real; the rest are treated as dry run.'),
('tick_ms', '60000', 'integer', 1000, 3600000, 'Expected tick interval in ms; alerts fire when ticks are late or slow.'),
('tick_batch_max', '10000', 'integer', 1, 1000000,
 'At most this many due incidents escalate in one tick; the rest wait for the next (bounded transactions).'),
('app_base_url', '""', 'url', NULL, NULL, 'Base URL for links in notifications (APP_BASE_URL). Empty: no links.'),
('guard_lookback_min', '10', 'integer', 1, 1440, 'Incidents seen within this many minutes can block a release.'),
('ack_timeout_min', '0', 'integer', 0, 10080,
 '0 = off; else an acknowledged incident not resolved within this many minutes returns to open and escalates again.'),
('slack_webhook_url', '""', 'webhook', NULL, NULL,
 'Global Slack webhook, fallback for routes without their own. Empty: nothing is sent.');

CREATE TABLE ops.sla (
    severity text PRIMARY KEY CHECK (severity IN ('critical', 'warning')),
    ack_minutes integer NOT NULL CHECK (ack_minutes BETWEEN 1 AND 10080),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by text NOT NULL DEFAULT 'install'
);
COMMENT ON TABLE ops.sla IS
'Minutes to acknowledge, per severity (ESC_CRIT_ACK_MIN, ESC_WARN_ACK_MIN). Level n is due at first_seen + ack_minutes * (n + 1).';
INSERT INTO ops.sla (severity, ack_minutes) VALUES ('critical', 5), ('warning', 30);

CREATE FUNCTION ops.setting(p_key text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT value FROM ops.settings WHERE key = p_key
$$;
COMMENT ON FUNCTION ops.setting(text) IS
'A setting''s value as jsonb: ops.setting(''dry_run'')::boolean, ops.setting(''snooze_min'')::int, ops.setting(''pause_cron'') #>> ''{}''.';

CREATE FUNCTION ops.validate_url(p_url text, p_kind text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_m text[] := pg_catalog.regexp_match(p_url, '^(https?)://([^/:?#@\s\[\]]+|\[[0-9a-fA-F:.]+\])(:[0-9]{1,5})?([/?#]\S*)?$');
BEGIN
    IF v_m IS NULL THEN
        RAISE EXCEPTION '"%" is not an http(s) URL', p_url
            USING ERRCODE = '22023', HINT = 'Example: https://ops.example.com';
    END IF;
    IF p_kind = 'webhook' AND v_m[1] = 'http'
       AND pg_catalog.lower(v_m[2]) NOT IN ('localhost', '[::1]') AND v_m[2] !~ '^127\.[0-9]+\.[0-9]+\.[0-9]+$' THEN
        RAISE EXCEPTION 'webhook "%" must use https', p_url
            USING ERRCODE = '22023', HINT = 'Plain http is allowed only to a loopback host (localhost, 127.0.0.1, [::1]).';
    END IF;
    RETURN p_url;
END;
$$;
COMMENT ON FUNCTION ops.validate_url(text, text) IS
'Returns p_url when valid, else raises 22023. Kind ''url'': http(s) with a host; ''webhook'': https, or http to a loopback host.';

CREATE FUNCTION ops.set_setting(p_key text, p_value text, p_actor text) RETURNS ops.settings
LANGUAGE plpgsql AS $$
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
        IF pg_catalog.lower(p_value) NOT IN ('true', 'false', 'on', 'off', 't', 'f', 'yes', 'no', '1', '0') THEN
            RAISE EXCEPTION 'setting % takes true or false, not "%"', p_key, p_value USING ERRCODE = '22023';
        END IF;
        v_value := to_jsonb(p_value::boolean);
    WHEN 'integer' THEN
        IF p_value !~ '^\s*-?[0-9]{1,12}\s*$' THEN
            RAISE EXCEPTION 'setting % takes a whole number, not "%"', p_key, p_value USING ERRCODE = '22023';
        END IF;
        v_int := p_value::bigint;
        IF v_int < v_def.min_value OR v_int > v_def.max_value THEN
            RAISE EXCEPTION 'setting % must be between % and %, not %', p_key, v_def.min_value, v_def.max_value, v_int
                USING ERRCODE = '22003', HINT = v_def.description;
        END IF;
        v_value := to_jsonb(v_int);
    WHEN 'cron' THEN
        IF pg_catalog.btrim(p_value) <> '' THEN
            PERFORM ops.cron_matches(p_value, pg_catalog.now());
        END IF;
        v_value := to_jsonb(pg_catalog.btrim(p_value));
    ELSE
        IF pg_catalog.btrim(p_value) <> '' THEN
            PERFORM ops.validate_url(pg_catalog.btrim(p_value), v_def.kind);
        END IF;
        v_value := to_jsonb(pg_catalog.btrim(p_value));
    END CASE;

    v_prev := ops._act_as(p_actor);
    UPDATE ops.settings SET value = v_value, updated_at = pg_catalog.now(), updated_by = p_actor
    WHERE key = p_key
    RETURNING * INTO v_def;
    PERFORM ops._act_as(v_prev);
    RETURN v_def;
END;
$$;
COMMENT ON FUNCTION ops.set_setting(text, text, text) IS
'Validates and changes one setting, audited with p_actor: SELECT ops.set_setting(''snooze_min'', ''15'', ''alice''). '
'Unknown key or bad value: 22023; out of range: 22003; NULLs: 22004.';

CREATE FUNCTION ops.set_sla(p_severity text, p_ack_minutes integer, p_actor text) RETURNS ops.sla
LANGUAGE plpgsql AS $$
DECLARE
    v_row ops.sla;
    v_prev text;
BEGIN
    IF p_severity IS NULL OR p_ack_minutes IS NULL OR coalesce(pg_catalog.btrim(p_actor), '') = '' THEN
        RAISE EXCEPTION 'set_sla needs a severity, minutes and an actor'
            USING ERRCODE = '22004', HINT = 'Example: SELECT ops.set_sla(''critical'', 10, ''alice'');';
    END IF;
    IF p_ack_minutes NOT BETWEEN 1 AND 10080 THEN
        RAISE EXCEPTION 'ack minutes must be between 1 and 10080, not %', p_ack_minutes USING ERRCODE = '22003';
    END IF;
    v_prev := ops._act_as(p_actor);
    UPDATE ops.sla SET ack_minutes = p_ack_minutes, updated_at = pg_catalog.now(), updated_by = p_actor
    WHERE severity = p_severity
    RETURNING * INTO v_row;
    PERFORM ops._act_as(v_prev);
    IF v_row IS NULL THEN
        RAISE EXCEPTION 'unknown severity "%"', p_severity
            USING ERRCODE = '22023', HINT = 'Severities: critical, warning.';
    END IF;
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops.set_sla(text, integer, text) IS
'Changes the minutes to acknowledge one severity, audited; next_due_at of active incidents is recomputed at once.';

CREATE TRIGGER settings_audit_update AFTER UPDATE ON ops.settings
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('key', 'updated_at', 'updated_by');
CREATE TRIGGER sla_audit_update AFTER UPDATE ON ops.sla
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('severity', 'updated_at', 'updated_by');
