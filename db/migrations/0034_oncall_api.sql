-- depends: 0033_policies
-- Who is on call, where people look (SPEC 11, the table in SPEC 7): GET /ops/oncall, the
-- Slack command /oncall [schedule], and a calendar feed (GET /ops/schedules/<name>/calendar.ics)
-- that calendar apps subscribe to. Everything is computed from ops.on_call_shifts; Flask only
-- renders. The feed cannot sign requests (a calendar app fetches a URL), so each schedule gets
-- a feed token as integration keys do (0027): random, shown once, only its SHA-256 stored,
-- looked up by that hash through a unique index, rotated at once, audited.

-- viewers and responders too: knowing who to call is what an incident needs first; ci
-- (pipelines) has no use for names of people, so it does not get it. Part of the install like
-- 0009's grants, not an operator's change: the audit log of a fresh install stays empty
ALTER TABLE ops.permissions DISABLE TRIGGER permissions_audit_insert;
ALTER TABLE ops.role_permissions DISABLE TRIGGER role_permissions_audit_insert;
INSERT INTO ops.permissions (name, description) VALUES
('oncall.read', 'See who is on call and until when (GET /ops/oncall, Slack /oncall)');
INSERT INTO ops.role_permissions (role, permission) VALUES
('ops_admin', 'oncall.read'), ('ops_responder', 'oncall.read'), ('ops_viewer', 'oncall.read');
ALTER TABLE ops.permissions ENABLE TRIGGER permissions_audit_insert;
ALTER TABLE ops.role_permissions ENABLE TRIGGER role_permissions_audit_insert;

CREATE TABLE ops.schedule_feeds (
    schedule text PRIMARY KEY REFERENCES ops.schedules (name) ON DELETE CASCADE,
    token_sha256 bytea NOT NULL UNIQUE,
    rotated_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    rotated_by text NOT NULL,
    CONSTRAINT schedule_feeds_sha256 CHECK (pg_catalog.octet_length(token_sha256) = 32)
);
COMMENT ON TABLE ops.schedule_feeds IS
'The calendar feed token of each schedule that has one (GET /ops/schedules/<name>/calendar.ics?token=...). Only the '
'SHA-256 of the token is kept; ops.schedule_feed_token issues or rotates it and shows it once; '
'ops.remove_schedule_feed turns the feed off.';
COMMENT ON COLUMN ops.schedule_feeds.rotated_at IS 'When the current token was issued; older tokens stopped working then.';
CREATE TRIGGER schedule_feeds_audit_insert AFTER INSERT ON ops.schedule_feeds
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('schedule');
CREATE TRIGGER schedule_feeds_audit_update AFTER UPDATE ON ops.schedule_feeds
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('schedule');
CREATE TRIGGER schedule_feeds_audit_delete AFTER DELETE ON ops.schedule_feeds
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('schedule');

CREATE FUNCTION ops.schedule_feed_token(p_schedule text, p_actor text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_token text;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    -- FOR KEY SHARE: the schedule cannot go away between this check and the insert
    PERFORM 1 FROM ops.schedules WHERE name = p_schedule FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no schedule "%"', pg_catalog.left(p_schedule, 100)
            USING ERRCODE = 'P0002', HINT = 'SELECT name, time_zone FROM ops.schedules;';
    END IF;
    -- 244 random bits from the strong generator behind gen_random_uuid (two v4 uuids), as 0027
    v_token := 'ogf_' || pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', '')
                      || pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', '');
    v_prev := ops._act_as(p_actor);
    INSERT INTO ops.schedule_feeds AS f (schedule, token_sha256, rotated_by)
    VALUES (p_schedule, pg_catalog.sha256(pg_catalog.convert_to(v_token, 'UTF8')), p_actor)
    ON CONFLICT (schedule) DO UPDATE
    SET token_sha256 = EXCLUDED.token_sha256, rotated_at = pg_catalog.clock_timestamp(), rotated_by = p_actor;
    PERFORM ops._act_as(v_prev);
    RETURN v_token;
END;
$$;
COMMENT ON FUNCTION ops.schedule_feed_token(text, text) IS
'Issues the calendar feed token of a schedule, or rotates it (the old one stops working at once), and returns it, '
'once (only the SHA-256 is stored; audited): SELECT ops.schedule_feed_token(''primary'', ''alice''); the subscribe '
'URL is <API>/ops/schedules/primary/calendar.ics?token=<token>. Unknown schedule: P0002.';

CREATE FUNCTION ops.remove_schedule_feed(p_schedule text, p_actor text) RETURNS ops.schedule_feeds
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_row ops.schedule_feeds;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    v_prev := ops._act_as(p_actor);
    DELETE FROM ops.schedule_feeds WHERE schedule = p_schedule RETURNING * INTO v_row;
    PERFORM ops._act_as(v_prev);  -- sets FOUND: the row says whether there was a feed
    IF v_row.schedule IS NULL THEN
        RAISE EXCEPTION 'schedule "%" has no calendar feed', pg_catalog.left(p_schedule, 100)
            USING ERRCODE = 'P0002', HINT = 'SELECT schedule, rotated_at, rotated_by FROM ops.schedule_feeds;';
    END IF;
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops.remove_schedule_feed(text, text) IS
'Turns the calendar feed of a schedule off (audited): its token gets 404 from then on; '
'ops.schedule_feed_token issues a new one. No feed: P0002.';

-- who is on call at p_at and until when, from the calendar SQL computes: a principal whose
-- shifts follow each other without a gap (a rotation shift, then an override of the same
-- person) is on call until the end of the last of them. The API, Slack and the view
-- ops.on_call_now all answer through this one function, so psql and the API agree.
CREATE FUNCTION ops.on_call_until(p_schedule text DEFAULT NULL, p_at timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE (schedule text, time_zone text, principal text, until timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
    SELECT s.name, s.time_zone, n.principal, n.until
    FROM ops.schedules AS s
    CROSS JOIN LATERAL (
        WITH shifts AS MATERIALIZED (
            SELECT x.principal, x.starts_at, x.ends_at
            FROM ops.on_call_shifts(s.name, p_at, p_at + interval '28 days') AS x
        ),
        marked AS (
            SELECT sh.principal, sh.starts_at, sh.ends_at,
                   CASE WHEN sh.starts_at <= max(sh.ends_at) OVER (
                            PARTITION BY sh.principal ORDER BY sh.starts_at
                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                        THEN 0 ELSE 1 END AS starts_span
            FROM shifts AS sh
        ),
        spans AS (
            SELECT m.principal, m.starts_at, m.ends_at,
                   sum(m.starts_span) OVER (PARTITION BY m.principal ORDER BY m.starts_at) AS span
            FROM marked AS m
        )
        -- the shifts are clipped to start at p_at at the earliest: those that do are on now
        SELECT sp.principal, CASE WHEN max(sp.ends_at) < p_at + interval '28 days' THEN max(sp.ends_at) END AS until
        FROM spans AS sp
        GROUP BY sp.principal, sp.span
        HAVING min(sp.starts_at) <= p_at
        UNION ALL
        -- nobody: a gap between restricted layers, or no layer yet; until the next shift starts
        SELECT NULL, (SELECT min(sh.starts_at) FROM shifts AS sh)
        WHERE NOT EXISTS (SELECT 1 FROM shifts AS sh WHERE sh.starts_at <= p_at)
    ) AS n
    WHERE (p_schedule IS NULL OR s.name = p_schedule)
      -- an unknown schedule is P0002, as in ops.on_call
      AND (p_schedule IS NULL OR ops._schedule_zone(p_schedule) IS NOT NULL)
    ORDER BY s.name, n.principal
$$;
COMMENT ON FUNCTION ops.on_call_until(text, timestamptz) IS
'Who is on call at p_at (default now) in one schedule (NULL: every schedule) and until when: the end of their shifts '
'that follow each other without a gap; NULL when not within 28 days. Nobody on call: one row with principal NULL, '
'until the next shift starts. GET /ops/oncall, Slack /oncall and ops.on_call_now answer through it. Unknown: P0002.';

-- the view 0032 made answers through the same function as the API (0032 ended until at the end of
-- the current row, without joining the same person next shift, so psql and the API could differ)
CREATE OR REPLACE VIEW ops.on_call_now AS
SELECT
    u.schedule,
    u.principal,
    u.until
FROM ops.on_call_until() AS u;
COMMENT ON VIEW ops.on_call_now IS
'Every schedule: who is on call now and until when (the end of their shifts that follow each other without a gap; '
'NULL when not within 28 days). Nobody on call: principal NULL, until when someone starts. See ops.on_call_until.';

CREATE FUNCTION ops.api_oncall(p_principal text, p_actor text, p_schedule text, p_now timestamptz DEFAULT pg_catalog.now())
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
BEGIN
    PERFORM ops.authorize(p_principal, 'oncall.read', nullif(p_actor, ''));
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'api_oncall needs a time' USING ERRCODE = '22004', HINT = 'Leave p_now out for now.';
    END IF;
    IF p_schedule IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ops.schedules WHERE name = p_schedule) THEN
        RAISE EXCEPTION 'no schedule "%"', pg_catalog.left(p_schedule, 100)
            USING ERRCODE = 'P0002',
                  HINT = 'GET /ops/oncall without ?schedule= lists every schedule; an operator adds one with '
                         'ops.create_schedule(name, time_zone, actor).';
    END IF;
    RETURN pg_catalog.jsonb_build_object(
        'ok', true,
        'at', p_now,
        'onCall', coalesce((
            SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                       'schedule', o.schedule, 'timeZone', o.time_zone, 'principal', o.principal, 'until', o.until)
                       ORDER BY o.schedule, o.principal)
            FROM ops.on_call_until(p_schedule, p_now) AS o), '[]'));
END;
$$;
COMMENT ON FUNCTION ops.api_oncall(text, text, text, timestamptz) IS
'GET /ops/oncall[?schedule=]: {"ok", "at", "onCall": [{"schedule", "timeZone", "principal", "until"}]}, one entry '
'per schedule and principal on call at p_now (principal null: nobody, until the next shift); until null: no change '
'within 28 days (the horizon of ops.on_call_now). Needs oncall.read (42501); unknown schedule: P0002.';

CREATE FUNCTION ops.api_schedule_feed(p_schedule text, p_token text, p_now timestamptz DEFAULT pg_catalog.now())
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_feed text;
    v_zone text;
    -- whole UTC days, so the first and last events (clipped to the window) keep their times and
    -- UIDs from one fetch to the next, changing once a day
    v_from timestamptz := pg_catalog.date_trunc('day', p_now, 'UTC') - interval '7 days';
    v_to timestamptz := pg_catalog.date_trunc('day', p_now, 'UTC') + interval '8 weeks';
BEGIN
    -- found by the hash of the token through its unique index: the schedule name is checked
    -- only on the row the token found, so a wrong token, a rotated-away one, none, and an
    -- unknown schedule take the same path to the same error and tell nothing apart
    SELECT f.schedule, s.time_zone INTO v_feed, v_zone
    FROM ops.schedule_feeds AS f INNER JOIN ops.schedules AS s ON f.schedule = s.name
    WHERE f.token_sha256 = pg_catalog.sha256(pg_catalog.convert_to(coalesce(p_token, ''), 'UTF8'));
    IF v_feed IS DISTINCT FROM p_schedule THEN
        RAISE EXCEPTION 'no calendar feed for this schedule and token'
            USING ERRCODE = 'P0002',
                  HINT = 'Subscribe with the URL an operator made with ops.schedule_feed_token(schedule, actor); '
                         'a rotated token stops working.';
    END IF;
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'api_schedule_feed needs a time' USING ERRCODE = '22004', HINT = 'Leave p_now out for now.';
    END IF;
    RETURN pg_catalog.jsonb_build_object(
        'ok', true,
        'schedule', p_schedule,
        'timeZone', v_zone,
        'from', v_from,
        'to', v_to,
        'name', p_schedule || ' on call',
        'shifts', coalesce((
            SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                       'uid', pg_catalog.left(pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
                                  pg_catalog.concat_ws(E'\n', p_schedule, x.principal,
                                                       EXTRACT(epoch FROM x.starts_at)::bigint), 'UTF8')), 'hex'), 32)
                              || '@opsguard',
                       'principal', x.principal,
                       'startsAt', x.starts_at,
                       'endsAt', x.ends_at,
                       'source', x.source,
                       'summary', pg_catalog.format('%s on call (%s)', x.principal, p_schedule))
                       ORDER BY x.starts_at, x.principal)
            FROM ops.on_call_shifts(p_schedule, v_from, v_to) AS x), '[]'));
END;
$$;
COMMENT ON FUNCTION ops.api_schedule_feed(text, text, timestamptz) IS
'GET /ops/schedules/<name>/calendar.ics?token=: the shifts of ops.on_call_shifts from 7 days before p_now to 8 weeks '
'after (whole UTC days), each with a UID stable across fetches (schedule, principal, start), for the API to render '
'as iCalendar. A wrong, rotated-away or missing token and an unknown schedule: the same P0002.';

-- the /oncall reply on its own, with the time as a parameter (the command itself answers for now)
CREATE FUNCTION ops._slack_oncall(p_schedule text, p_now timestamptz) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = ops, pg_temp AS $$
DECLARE
    v_lines text;
    v_rows jsonb;
BEGIN
    IF p_schedule <> '' AND NOT EXISTS (SELECT 1 FROM ops.schedules WHERE name = p_schedule) THEN
        RETURN ops._slack_reply(false, 'not_found', pg_catalog.format(
            'No schedule `%s`. Schedules: %s.', ops.slack_escape(pg_catalog.left(p_schedule, 100)),
            coalesce((SELECT pg_catalog.string_agg(ops.slack_escape(name), ', ' ORDER BY name) FROM ops.schedules),
                     'none yet')));
    END IF;
    -- <!date^...|...> shows each reader the time in their own zone; the fallback after | is the
    -- schedule local time, for clients that do not render it
    SELECT pg_catalog.string_agg(pg_catalog.format('• *%s*: %s%s', ops.slack_escape(o.schedule),
               coalesce(ops.slack_escape(o.principal), 'nobody'),
               CASE WHEN o.until IS NULL THEN
                        CASE WHEN o.principal IS NULL THEN ' (no shift in the next 28 days)' ELSE '' END
                    ELSE pg_catalog.format(' until <!date^%s^{date_short_pretty} {time}|%s %s>',
                             EXTRACT(epoch FROM o.until)::bigint,
                             pg_catalog.to_char(o.until AT TIME ZONE o.time_zone, 'Dy DD Mon HH24:MI'), o.time_zone)
               END), E'\n' ORDER BY o.schedule, o.principal),
           pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'schedule', o.schedule, 'timeZone', o.time_zone, 'principal', o.principal, 'until', o.until)
               ORDER BY o.schedule, o.principal)
    INTO v_lines, v_rows
    FROM ops.on_call_until(nullif(p_schedule, ''), p_now) AS o;
    RETURN ops._slack_reply(true, NULL,
        coalesce(E'On call now:\n' || v_lines, 'No schedules yet: an operator adds one with ops.create_schedule.'),
        pg_catalog.jsonb_build_object('onCall', coalesce(v_rows, '[]')));
END;
$$;
COMMENT ON FUNCTION ops._slack_oncall(text, timestamptz) IS
'Internal: the Slack reply to /oncall [schedule] at p_now: one line per schedule and principal on call, until when '
'(in the reader''s zone, the schedule''s as fallback); onCall as GET /ops/oncall has it.';

CREATE OR REPLACE FUNCTION ops.api_slack_command(
    p_workspace text, p_user text, p_command text, p_text text, p_replay_key text
) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_principal text;
    v_arg text := pg_catalog.btrim(coalesce(p_text, ''));
    v_to text;
    v_perm text;
    v_row ops.incidents;
    v_list text;
    v_count int;
BEGIN
    IF p_replay_key IS NULL THEN
        RAISE EXCEPTION 'a Slack command needs its signature as replay key' USING ERRCODE = '22004';
    END IF;
    DELETE FROM ops.api_replay WHERE expires_at < pg_catalog.now();
    INSERT INTO ops.api_replay (replay_key, expires_at) VALUES (p_replay_key, pg_catalog.now() + interval '10 minutes')
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'this Slack request was already received' USING ERRCODE = '28000',
            HINT = 'Slack signs every request afresh; a repeated signature is a replay.';
    END IF;

    SELECT c.principal INTO v_principal
    FROM ops.chat_identities AS c INNER JOIN ops.principals AS p ON c.principal = p.name
    WHERE c.provider = 'slack' AND c.workspace = p_workspace AND c.external_user = p_user AND NOT p.disabled;
    IF v_principal IS NULL THEN
        RETURN ops._slack_reply(false, 'unlinked_user', pg_catalog.format(
            'Your Slack user %s (team %s) is not linked to an opsguard principal. Ask an admin to run: '
            'SELECT ops.link_chat_identity(''slack'', ''%s'', ''%s'', ''<principal>'', ''<admin>'');',
            p_user, p_workspace, p_workspace, p_user));
    END IF;

    CASE p_command
    WHEN '/incident-ack', '/incident-resolve' THEN
        v_to := CASE p_command WHEN '/incident-ack' THEN 'acknowledged' ELSE 'resolved' END;
        v_perm := CASE p_command WHEN '/incident-ack' THEN 'incidents.ack' ELSE 'incidents.resolve' END;
        IF NOT ops.has_permission(v_principal, v_perm) THEN
            RETURN ops._slack_reply(false, 'forbidden',
                pg_catalog.format('%s may not %s (the permission %s is missing).', v_principal,
                                  CASE v_to WHEN 'acknowledged' THEN 'acknowledge' ELSE 'resolve' END || ' incidents', v_perm));
        END IF;
        IF v_arg = '' THEN
            RETURN ops._slack_reply(false, 'invalid_input',
                pg_catalog.format('Usage: %s <incident id or key>, e.g. %s GET /projects::slo_violation', p_command, p_command));
        END IF;
        v_row := ops._incident_by_ref(v_arg);
        IF v_row.id IS NULL THEN
            RETURN ops._slack_reply(false, 'not_found', pg_catalog.format(
                'No incident matches `%s`: give an incident id, or the key of one that is not resolved. /incident-list shows them.',
                ops.slack_escape(v_arg)));
        END IF;
        IF v_row.status = v_to THEN
            RETURN ops._slack_reply(true, NULL, pg_catalog.format('`%s` was already %s by %s.',
                ops.slack_escape(v_row.incident_key), v_to,
                CASE v_to WHEN 'acknowledged' THEN v_row.acknowledged_by ELSE v_row.resolved_by END),
                pg_catalog.jsonb_build_object('incident', ops.incident_json(v_row)));
        END IF;
        IF v_row.status = 'resolved' AND v_to = 'acknowledged' THEN
            RETURN ops._slack_reply(false, 'conflict', pg_catalog.format(
                '`%s` is already resolved (by %s).', ops.slack_escape(v_row.incident_key), v_row.resolved_by));
        END IF;
        v_row := ops._transition(v_row.id, v_to, v_principal, 'via Slack ' || p_command, pg_catalog.now());
        RETURN ops._slack_reply(true, NULL, pg_catalog.format('%s `%s` (%s, level %s) as %s.',
            CASE v_to WHEN 'acknowledged' THEN 'Acknowledged' ELSE 'Resolved' END,
            ops.slack_escape(v_row.incident_key), v_row.severity, v_row.escalation_level, v_principal),
            pg_catalog.jsonb_build_object('incident', ops.incident_json(v_row)));
    WHEN '/incident-list' THEN
        IF NOT ops.has_permission(v_principal, 'incidents.read') THEN
            RETURN ops._slack_reply(false, 'forbidden',
                pg_catalog.format('%s may not read incidents (the permission incidents.read is missing).', v_principal));
        END IF;
        SELECT pg_catalog.string_agg(pg_catalog.format('• `%s` %s, level %s, %s%s — %s',
                   ops.slack_escape(i.incident_key), i.severity, i.escalation_level, i.status,
                   coalesce(' by ' || i.acknowledged_by, ''), i.id), E'\n' ORDER BY i.rn),
               pg_catalog.max(i.total)
        INTO v_list, v_count
        FROM (
            SELECT x.*, pg_catalog.row_number() OVER w AS rn, count(*) OVER () AS total
            FROM ops.incidents AS x
            WHERE x.status <> 'resolved' AND (v_arg = '' OR x.incident_key ILIKE '%' || v_arg || '%')
            WINDOW w AS (ORDER BY x.severity = 'critical' DESC, x.escalation_level DESC, x.first_seen)
        ) AS i
        WHERE i.rn <= 20;
        RETURN ops._slack_reply(true, NULL, CASE
            WHEN v_list IS NULL THEN 'No open or acknowledged incidents' || CASE WHEN v_arg = '' THEN '.'
                ELSE pg_catalog.format(' match `%s`.', ops.slack_escape(v_arg)) END
            ELSE pg_catalog.format(E'%s open or acknowledged incident(s)%s:\n%s', v_count,
                                   CASE WHEN v_count > 20 THEN ', the first 20' ELSE '' END, v_list) END,
            pg_catalog.jsonb_build_object('count', coalesce(v_count, 0)));
    WHEN '/oncall' THEN
        IF NOT ops.has_permission(v_principal, 'oncall.read') THEN
            RETURN ops._slack_reply(false, 'forbidden',
                pg_catalog.format('%s may not see who is on call (the permission oncall.read is missing).', v_principal));
        END IF;
        RETURN ops._slack_oncall(v_arg, pg_catalog.now());
    ELSE
        RETURN ops._slack_reply(false, 'unknown_command', pg_catalog.format(
            'opsguard does not know %s. It answers /incident-ack, /incident-resolve, /incident-list and /oncall.',
            p_command));
    END CASE;
END;
$$;
COMMENT ON FUNCTION ops.api_slack_command(text, text, text, text, text) IS
'POST /chat/slack/commands (signature already verified): maps the Slack user to a principal, authorizes, acts, and '
'answers Slack''s ephemeral JSON: /incident-ack, /incident-resolve, /incident-list, /oncall [schedule]. A replayed '
'signature: 28000.';

-- operators issue, rotate and remove feed tokens at psql; the API checks them inside api_schedule_feed
GRANT EXECUTE ON FUNCTION ops.schedule_feed_token(text, text), ops.remove_schedule_feed(text, text),
ops.on_call_until(text, timestamptz) TO opsguard_operator;
-- the two endpoints (GET /ops/oncall, GET /ops/schedules/<name>/calendar.ics)
GRANT EXECUTE ON FUNCTION ops.api_oncall(text, text, text, timestamptz),
ops.api_schedule_feed(text, text, timestamptz) TO opsguard_api;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ops FROM public;
