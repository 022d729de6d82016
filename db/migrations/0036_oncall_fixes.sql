-- depends: 0035_remove_heartbeat
-- On-call fixes found by attacking issue 13 (h18): ops.add_rotation refuses an infinite first handoff (stored,
-- it made ops.on_call of the schedule, the view ops.on_call_now for every schedule and page_targets fail) and
-- more than 200 participants or 7 days; ops.add_override refuses a reason over 1000 characters; ops._rotation_turn
-- counts back over clock changes of up to three shifts (on_call was wrong in Antarctica/Troll each October);
-- ops.add_policy_step refuses a webhook over 2048 characters and quotes at most 100 of an unknown name;
-- ops.config_problems warns of a disabled principal still on call in a schedule (their turns paged no one, silently).

-- the turn in progress at p_at in constant time (0036: it was one correction, wrong across a clock change of at
-- least one shift backwards: Antarctica/Troll falls back two hours every October, and an hourly rotation there
-- named in on_call someone other than on_call_shifts). The wall-clock estimate k0 (timestamp subtraction counts
-- a day as 86400 wall seconds) is never behind the turn and is ahead by the handoffs k0, k0-1, ... that fell on
-- the second reading of a repeated hour (or in a skipped one) and come after p_at. Handoffs do not decrease
-- with k, so counting which of k0 to k0-3 come after p_at gives the turn for clock changes of up to three
-- shifts backwards (the largest in the zone database is three hours, Antarctica/Casey in 2010); the probes are
-- nested, so an instant outside such a change costs one handoff, as before. NULL before the first handoff.
-- noqa: disable=all
CREATE OR REPLACE FUNCTION ops._rotation_turn(p_handoff_at timestamptz, p_shift interval, p_zone text, p_at timestamptz)
RETURNS bigint
LANGUAGE sql IMMUTABLE
RETURN CASE WHEN p_at >= p_handoff_at THEN
    pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.timezone(p_zone, p_at) - pg_catalog.timezone(p_zone, p_handoff_at))
                     / pg_catalog.date_part('epoch', p_shift))::bigint
    - (
      CASE WHEN ops._rotation_handoff(p_handoff_at, p_shift, p_zone,
                                        pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.timezone(p_zone, p_at) - pg_catalog.timezone(p_zone, p_handoff_at))
                                            / pg_catalog.date_part('epoch', p_shift))::bigint - 0) > p_at
           THEN 1 +
          CASE WHEN ops._rotation_handoff(p_handoff_at, p_shift, p_zone,
                                            pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.timezone(p_zone, p_at) - pg_catalog.timezone(p_zone, p_handoff_at))
                                                / pg_catalog.date_part('epoch', p_shift))::bigint - 1) > p_at
               THEN 1 +
              CASE WHEN ops._rotation_handoff(p_handoff_at, p_shift, p_zone,
                                                pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.timezone(p_zone, p_at) - pg_catalog.timezone(p_zone, p_handoff_at))
                                                    / pg_catalog.date_part('epoch', p_shift))::bigint - 2) > p_at
                   THEN 1 +
                  CASE WHEN ops._rotation_handoff(p_handoff_at, p_shift, p_zone,
                                                    pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.timezone(p_zone, p_at) - pg_catalog.timezone(p_zone, p_handoff_at))
                                                        / pg_catalog.date_part('epoch', p_shift))::bigint - 3) > p_at
                       THEN 1 ELSE 0 END
                   ELSE 0 END
               ELSE 0 END
           ELSE 0 END
    )
END;
-- noqa: enable=all
COMMENT ON FUNCTION ops._rotation_turn(timestamptz, interval, text, timestamptz) IS
'Internal: the number of the turn in progress at p_at (0 from handoff_at on), NULL before the first handoff.';

CREATE OR REPLACE FUNCTION ops.add_rotation(
    p_schedule text, p_name text, p_shift interval, p_handoff_at timestamptz, p_participants text[], p_actor text,
    p_days int[] DEFAULT NULL, p_from time DEFAULT NULL, p_to time DEFAULT NULL
) RETURNS ops.schedule_rotations
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_row ops.schedule_rotations;
    v_missing text;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    -- the lock orders concurrent add_rotation calls on one schedule, so layer numbers stay unique
    PERFORM 1 FROM ops.schedules WHERE name = p_schedule FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM ops._schedule_zone(p_schedule);
    END IF;
    IF p_name IS NULL OR p_name !~ '^[A-Za-z0-9._@:-]{1,100}$' THEN
        RAISE EXCEPTION 'invalid rotation name "%"', pg_catalog.left(p_name, 100)
            USING ERRCODE = '22023', HINT = 'Names: 1 to 100 letters, digits, . _ @ : -, e.g. ''weekly'' or ''business-hours''.';
    END IF;
    IF EXISTS (SELECT 1 FROM ops.schedule_rotations WHERE schedule = p_schedule AND name = p_name) THEN
        RAISE EXCEPTION 'schedule "%" already has a rotation "%"', p_schedule, p_name
            USING ERRCODE = '23505', HINT = 'Pick another name, or ops.remove_rotation(schedule, name, actor) first.';
    END IF;
    IF p_shift IS NULL OR p_handoff_at IS NULL THEN
        RAISE EXCEPTION 'a rotation needs a shift and a first handoff'
            USING ERRCODE = '22004',
                  HINT = 'e.g. ops.add_rotation(''primary'', ''weekly'', ''1 week'', ''2026-03-02 09:00 Europe/Berlin'', ARRAY[''alice'', ''bob''], ''alice'')';
    END IF;
    -- an infinite first handoff made every later on_call of the schedule fail (cannot subtract infinite
    -- timestamps), and with it ops.on_call_now for all schedules and the tick of every policy naming it
    IF NOT pg_catalog.isfinite(p_handoff_at) THEN
        RAISE EXCEPTION 'the first handoff must be a finite time, not %', p_handoff_at
            USING ERRCODE = '22023', HINT = 'An instant, e.g. ''2026-03-02 09:00 Europe/Berlin''.';
    END IF;
    IF pg_catalog.date_part('month', p_shift) <> 0 OR pg_catalog.date_part('year', p_shift) <> 0
       OR pg_catalog.date_part('epoch', p_shift) < 3600 THEN
        RAISE EXCEPTION 'shift % is not a usable turn length', p_shift
            USING ERRCODE = '22023',
                  HINT = 'At least 1 hour, in hours, days or weeks (''12 hours'', ''1 day'', ''1 week''); no months, they vary in length.';
    END IF;
    IF p_participants IS NULL OR pg_catalog.cardinality(p_participants) = 0
       OR pg_catalog.array_position(p_participants, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'a rotation needs participants'
            USING ERRCODE = '22023', HINT = 'Principals in turn order, e.g. ARRAY[''alice'', ''bob''].';
    END IF;
    -- repeats are allowed (a weighted turn order), so the principal check alone does not bound what is stored
    IF pg_catalog.cardinality(p_participants) > 200 THEN
        RAISE EXCEPTION 'a rotation takes at most 200 turns, not %', pg_catalog.cardinality(p_participants)
            USING ERRCODE = '22023', HINT = 'Principals in turn order, at most 200 entries; split a larger team into schedules.';
    END IF;
    SELECT pg_catalog.string_agg(pg_catalog.format('%L', u.p), ', ' ORDER BY u.ord) INTO v_missing
    FROM pg_catalog.unnest(p_participants) WITH ORDINALITY AS u (p, ord)
    WHERE NOT EXISTS (SELECT 1 FROM ops.principals AS pr WHERE pr.name = u.p AND NOT pr.disabled);
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'not an enabled principal: %', pg_catalog.left(v_missing, 200)
            USING ERRCODE = '23503',
                  HINT = 'SELECT name FROM ops.principals WHERE NOT disabled; add people with ops.add_principal(name, ''human'', roles, actor).';
    END IF;
    IF p_days IS NOT NULL AND (pg_catalog.cardinality(p_days) NOT BETWEEN 1 AND 7 OR NOT p_days <@ ARRAY[1, 2, 3, 4, 5, 6, 7]
                               OR pg_catalog.array_position(p_days, NULL) IS NOT NULL) THEN
        RAISE EXCEPTION 'days % are not ISO weekdays', pg_catalog.left(p_days::text, 100)
            USING ERRCODE = '22023', HINT = 'ISO weekdays 1 (Monday) to 7 (Sunday), at most 7, e.g. ARRAY[1, 2, 3, 4, 5]; NULL = every day.';
    END IF;
    IF (p_from IS NULL) <> (p_to IS NULL) OR p_from = p_to THEN
        RAISE EXCEPTION 'a window needs two different times (from %, to %)', p_from, p_to
            USING ERRCODE = '22023',
                  HINT = 'Give both p_from and p_to (local times, e.g. ''09:00'' and ''17:00''; to before from spans midnight), or neither for all day.';
    END IF;
    v_prev := ops._act_as(p_actor);
    -- the first handoff as its local wall-clock time reads (see ops._rotation_handoff): only a handoff in the
    -- first occurrence of a repeated hour moves, to the second, like every later handoff at that local time
    INSERT INTO ops.schedule_rotations (schedule, name, layer, shift, handoff_at, participants, days, from_time, to_time,
                                        created_by)
    SELECT p_schedule, p_name, coalesce(pg_catalog.max(r.layer), 0) + 1, p_shift,
           pg_catalog.timezone(s.time_zone, pg_catalog.timezone(s.time_zone, p_handoff_at)), p_participants,
           p_days, p_from, p_to, p_actor
    FROM ops.schedules AS s LEFT JOIN ops.schedule_rotations AS r ON r.schedule = s.name
    WHERE s.name = p_schedule
    GROUP BY s.time_zone
    RETURNING * INTO v_row;
    PERFORM ops._act_as(v_prev);
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops.add_rotation(text, text, interval, timestamptz, text[], text, int[], time, time) IS
'Adds a layer on top of a schedule (audited): participants take turns for p_shift from p_handoff_at on, handing off '
'at the same local time; optional ISO weekdays p_days and local window p_from-p_to. Unknown schedule: P0002; bad '
'name, shift, infinite handoff, over 200 participants, days or window: 22023; unknown principal: 23503; name taken: 23505.';

CREATE OR REPLACE FUNCTION ops.add_override(
    p_schedule text, p_principal text, p_from timestamptz, p_to timestamptz, p_actor text, p_reason text
) RETURNS ops.schedule_overrides
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_row ops.schedule_overrides;
    v_clash ops.schedule_overrides;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    -- the lock serializes overrides per schedule: two callers cannot both find no overlap and both insert
    PERFORM 1 FROM ops.schedules WHERE name = p_schedule FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM ops._schedule_zone(p_schedule);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ops.principals WHERE name = p_principal AND NOT disabled) THEN
        RAISE EXCEPTION 'not an enabled principal: "%"', pg_catalog.left(p_principal, 100)
            USING ERRCODE = '23503', HINT = 'SELECT name FROM ops.principals WHERE NOT disabled;';
    END IF;
    IF p_from IS NULL OR p_to IS NULL OR p_to <= p_from OR pg_catalog.isfinite(p_from) IS NOT TRUE
       OR pg_catalog.isfinite(p_to) IS NOT TRUE THEN
        RAISE EXCEPTION 'an override needs a span from < to (from %, to %)', p_from, p_to
            USING ERRCODE = '22023', HINT = 'e.g. ''2026-03-07 09:00 Europe/Berlin'' to ''2026-03-08 09:00 Europe/Berlin''.';
    END IF;
    IF coalesce(pg_catalog.btrim(p_reason), '') = '' THEN
        RAISE EXCEPTION 'an override needs a reason'
            USING ERRCODE = '22004', HINT = 'Say why, for the audit log: e.g. ''swap: bob covers alice, dentist''.';
    END IF;
    -- the reason is stored twice (the override and its audit note): bounded like other audit notes
    IF pg_catalog.length(p_reason) > 1000 THEN
        RAISE EXCEPTION 'an override reason has at most 1000 characters, not %', pg_catalog.length(p_reason)
            USING ERRCODE = '22023', HINT = 'Say why in a sentence; link to a ticket for more.';
    END IF;
    -- spans never overlap, so only the last one starting before p_to can reach into the new one
    SELECT * INTO v_clash FROM ops.schedule_overrides
    WHERE schedule = p_schedule AND starts_at < p_to ORDER BY starts_at DESC LIMIT 1;
    IF FOUND AND v_clash.ends_at > p_from THEN
        RAISE EXCEPTION 'override % (% from % to %) overlaps', v_clash.id, v_clash.principal, v_clash.starts_at,
                        v_clash.ends_at
            USING ERRCODE = '23P01',
                  HINT = pg_catalog.format('Overrides of a schedule may not overlap: ops.remove_override(%s, actor) first, '
                                           'or pick a span around it.', v_clash.id);
    END IF;
    v_prev := ops._act_as(p_actor, p_reason);
    INSERT INTO ops.schedule_overrides (schedule, principal, starts_at, ends_at, reason, created_by)
    VALUES (p_schedule, p_principal, p_from, p_to, p_reason, p_actor)
    RETURNING * INTO v_row;
    PERFORM ops._act_as(v_prev);
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops.add_override(text, text, timestamptz, timestamptz, text, text) IS
'Puts p_principal on call for [p_from, p_to) over every layer (audited, the reason as note): a swap or a cover. '
'Unknown schedule: P0002; unknown principal: 23503; empty span or a reason over 1000 characters: 22023; no reason: '
'22004; overlap: 23P01.';

CREATE OR REPLACE FUNCTION ops.add_policy_step(p_policy text, p_step int, p_targets jsonb, p_actor text)
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
        -- a webhook is stored in the step, its audit row and every page: bounded like other URLs (2048)
        IF v_key = 'webhook' AND pg_catalog.length(v_val) > 2048 THEN
            RAISE EXCEPTION 'target % of the step: a webhook of % characters, more than 2048', v_i, pg_catalog.length(v_val)
                USING ERRCODE = '22023', HINT = 'A webhook is https, or http to a loopback host, at most 2048 characters.';
        END IF;
        IF (SELECT count(*) FROM pg_catalog.jsonb_array_elements(p_targets) WITH ORDINALITY AS e (value, n)
            WHERE e.value = v_el AND e.n < v_i) > 0 THEN
            RAISE EXCEPTION 'target % of the step repeats an earlier one: %', v_i, v_what
                USING ERRCODE = '22023', HINT = 'Name each schedule, principal and webhook once per step.';
        END IF;
        IF v_key = 'schedule' AND NOT EXISTS (SELECT 1 FROM ops.schedules WHERE name = v_val) THEN
            RAISE EXCEPTION 'target % of the step names unknown schedule "%"', v_i, pg_catalog.left(v_val, 100)
                USING ERRCODE = '23503',
                      HINT = 'Create it first: SELECT ops.create_schedule(''primary'', ''Europe/Berlin'', ''alice'');';
        ELSIF v_key = 'principal' AND NOT EXISTS (SELECT 1 FROM ops.principals WHERE name = v_val) THEN
            RAISE EXCEPTION 'target % of the step names unknown principal "%"', v_i, pg_catalog.left(v_val, 100)
                USING ERRCODE = '23503',
                      HINT = 'Create it first: SELECT ops.add_principal(''alice'', ''human'', ''{ops_responder}'', ''admin'');';
        ELSIF v_key = 'principal' AND (SELECT disabled FROM ops.principals WHERE name = v_val) THEN
            RAISE EXCEPTION 'target % of the step names disabled principal "%"', v_i, pg_catalog.left(v_val, 100)
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
'22023 (so is a webhook over 2048 characters); an unknown schedule or an unknown or disabled principal 23503; each '
'error names the target.';

CREATE OR REPLACE FUNCTION ops.config_problems(p_dispatch_timeout_s float8 DEFAULT NULL)
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
        -- a disabled principal still takes their turns: ops.on_call names them, and the tick pages no one for
        -- the schedule in those turns
        SELECT pg_catalog.format('principals[%s]', d.principal),
               pg_catalog.format('%s is disabled but on call in %s: those turns page no one; replace the rotation '
                                 '(ops.remove_rotation, ops.add_rotation) or the override (ops.remove_override)',
                                 d.principal, d.via)
        FROM (
            SELECT w.principal, pg_catalog.string_agg(DISTINCT w.via, ', ') AS via
            FROM (
                SELECT u.principal, pg_catalog.format('schedule %s rotation %s', r.schedule, r.name) AS via
                FROM ops.schedule_rotations AS r
                CROSS JOIN LATERAL pg_catalog.unnest(r.participants) AS u (principal)
                UNION ALL
                SELECT o.principal, pg_catalog.format('schedule %s override %s', o.schedule, o.id)
                FROM ops.schedule_overrides AS o
                WHERE o.ends_at > pg_catalog.now()
            ) AS w
            INNER JOIN ops.principals AS p ON w.principal = p.name AND p.disabled
            GROUP BY w.principal
        ) AS d
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
'step naming a schedule that no longer exists, a disabled principal still on call in a schedule, a default_policy '
'naming no policy, a policy in use without steps.';
