-- depends: 0031_intake_speed
-- On-call schedules (SPEC 11): a schedule in an IANA zone, layers of rotations (participants take
-- turns for a shift, handing off at the same local wall-clock time), optional weekday and time-of-day
-- restrictions, and overrides (a span of one principal over every layer). Who is on call is computed,
-- never stored (as GoAlert does): everything is kept in UTC and the zone is used only to turn local
-- handoffs and windows into instants. One internal function answers "who at t" in constant time,
-- whatever the history; ops.on_call and ops.on_call_shifts both go through it, so they cannot disagree.

CREATE TABLE ops.schedules (
    name text PRIMARY KEY,
    time_zone text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    created_by text NOT NULL,
    CONSTRAINT schedules_name_format CHECK (name ~ '^[A-Za-z0-9._@:-]{1,100}$')
);
COMMENT ON TABLE ops.schedules IS
'On-call schedules: layers of rotations (ops.schedule_rotations) and overrides (ops.schedule_overrides) in one time '
'zone. Create with ops.create_schedule; ask with ops.on_call, ops.on_call_shifts, ops.on_call_now.';
COMMENT ON COLUMN ops.schedules.time_zone IS
'IANA zone (a name of pg_timezone_names) in which handoffs and restriction windows are local wall-clock times.';

CREATE TABLE ops.schedule_rotations (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schedule text NOT NULL REFERENCES ops.schedules (name) ON DELETE CASCADE,
    name text NOT NULL,
    layer int NOT NULL,
    shift interval NOT NULL,
    handoff_at timestamptz NOT NULL,
    participants text[] NOT NULL,
    days int[],
    from_time time,
    to_time time,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    created_by text NOT NULL,
    CONSTRAINT schedule_rotations_name_format CHECK (name ~ '^[A-Za-z0-9._@:-]{1,100}$'),
    CONSTRAINT schedule_rotations_name_unique UNIQUE (schedule, name),
    CONSTRAINT schedule_rotations_layer_unique UNIQUE (schedule, layer),
    CONSTRAINT schedule_rotations_shift_range CHECK (
        pg_catalog.date_part('month', shift) = 0 AND pg_catalog.date_part('year', shift) = 0
        AND pg_catalog.date_part('epoch', shift) >= 3600
    ),
    CONSTRAINT schedule_rotations_participants CHECK (
        pg_catalog.cardinality(participants) >= 1 AND pg_catalog.array_position(participants, NULL) IS NULL
    ),
    CONSTRAINT schedule_rotations_days CHECK (days IS NULL OR (days <@ ARRAY[1, 2, 3, 4, 5, 6, 7] AND days <> '{}')),
    CONSTRAINT schedule_rotations_window CHECK (
        (from_time IS NULL AND to_time IS NULL) OR (from_time IS NOT NULL AND to_time IS NOT NULL AND from_time <> to_time)
    )
);
COMMENT ON TABLE ops.schedule_rotations IS
'Layers of a schedule: participants take turns for shift each, the first handoff at handoff_at, later ones at the '
'same local wall-clock time. The highest layer that applies at an instant wins; lower layers show through its gaps. '
'Add with ops.add_rotation, drop with ops.remove_rotation.';
COMMENT ON COLUMN ops.schedule_rotations.layer IS
'Order of the layers in the schedule (1 = the bottom one); a rotation added later gets the next number and wins.';
COMMENT ON COLUMN ops.schedule_rotations.shift IS
'Length of one turn in local wall-clock time (1 day = the same time tomorrow, 23 or 25 hours across a DST change); '
'no month part, at least 1 hour.';
COMMENT ON COLUMN ops.schedule_rotations.participants IS
'Principals in turn order; turn k (counted from handoff_at) is participants[k mod n + 1].';
COMMENT ON COLUMN ops.schedule_rotations.days IS
'ISO weekdays (1 = Monday) on which the layer applies; NULL = every day. With a window past midnight the day is the '
'one on which the window starts.';
COMMENT ON COLUMN ops.schedule_rotations.from_time IS
'Local start of the daily window in which the layer applies (NULL with to_time = all day); to_time < from_time '
'spans midnight.';

CREATE TABLE ops.schedule_overrides (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schedule text NOT NULL REFERENCES ops.schedules (name) ON DELETE CASCADE,
    principal text NOT NULL REFERENCES ops.principals (name),
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    reason text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    created_by text NOT NULL,
    CONSTRAINT schedule_overrides_span CHECK (ends_at > starts_at),
    CONSTRAINT schedule_overrides_reason CHECK (pg_catalog.btrim(reason) <> '')
);
COMMENT ON TABLE ops.schedule_overrides IS
'Spans [starts_at, ends_at) in which principal is on call for the schedule instead of every layer (a swap, a cover). '
'Spans of one schedule never overlap (ops.add_override refuses, under a lock on the schedule row). Add with '
'ops.add_override, drop with ops.remove_override; the reason is the audit note.';
-- "the last override starting at or before t": one index probe, however many past overrides there are
CREATE INDEX schedule_overrides_schedule_starts ON ops.schedule_overrides (schedule, starts_at);

-- schedules, layers and overrides are changed by operators: every change is an audit row with the actor
CREATE TRIGGER schedules_audit_insert AFTER INSERT ON ops.schedules
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('name');
CREATE TRIGGER schedules_audit_update AFTER UPDATE ON ops.schedules
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('name');
CREATE TRIGGER schedules_audit_delete AFTER DELETE ON ops.schedules
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('name');
CREATE TRIGGER schedule_rotations_audit_insert AFTER INSERT ON ops.schedule_rotations
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('id');
CREATE TRIGGER schedule_rotations_audit_update AFTER UPDATE ON ops.schedule_rotations
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('id');
CREATE TRIGGER schedule_rotations_audit_delete AFTER DELETE ON ops.schedule_rotations
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('id');
CREATE TRIGGER schedule_overrides_audit_insert AFTER INSERT ON ops.schedule_overrides
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('id');
CREATE TRIGGER schedule_overrides_audit_update AFTER UPDATE ON ops.schedule_overrides
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('id');
CREATE TRIGGER schedule_overrides_audit_delete AFTER DELETE ON ops.schedule_overrides
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ops._audit_changes('id');

-- The arithmetic below has SQL-standard bodies (bound when created, so no search_path to pin) and only
-- computes or reads: the planner inlines them into ops.on_call and ops.on_call_shifts, which call them for
-- every instant they ask about (a function with a pinned search_path is a call and a plan per use, and
-- the 43,200 minutes of tests/sql/54 took a minute that way; inlined they take about a second).
-- noqa: disable=all

-- handoff k of a rotation: the local wall-clock time of the first handoff plus k shifts, as an instant in the
-- zone. A local time that is skipped takes the offset before the change (02:30 becomes 03:30 summer time), a
-- repeated one is its second occurrence: the later reading, as PostgreSQL reads such a timestamp.
-- ops.add_rotation stores the first handoff as that same reading, so handoff 0 is handoff_at.
CREATE FUNCTION ops._rotation_handoff(p_handoff_at timestamptz, p_shift interval, p_zone text, p_k bigint)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE
RETURN pg_catalog.timezone(p_zone, pg_catalog.timezone(p_zone, p_handoff_at) + p_k * p_shift);
-- noqa: enable=all
COMMENT ON FUNCTION ops._rotation_handoff(timestamptz, interval, text, bigint) IS
'Internal: the instant of handoff k of a rotation (the first handoff plus k shifts of local wall-clock time).';

-- the turn in progress at p_at in constant time: the wall-clock estimate k0 (timestamp subtraction counts a
-- day as 86400 wall seconds) is one turn ahead only when handoff k0 fell in a skipped hour or on the second
-- reading of a repeated one and p_at comes before it; behind it never is, since after the later reading of
-- a local time the wall clock does not fall below it again (for clock changes shorter than the 1-hour
-- minimum shift). NULL before the first handoff.
-- noqa: disable=all
CREATE FUNCTION ops._rotation_turn(p_handoff_at timestamptz, p_shift interval, p_zone text, p_at timestamptz)
RETURNS bigint
LANGUAGE sql IMMUTABLE
RETURN CASE WHEN p_at >= p_handoff_at THEN
    pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.timezone(p_zone, p_at) - pg_catalog.timezone(p_zone, p_handoff_at))
                     / pg_catalog.date_part('epoch', p_shift))::bigint
    - CASE WHEN pg_catalog.timezone(p_zone, pg_catalog.timezone(p_zone, p_handoff_at)
                + pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.timezone(p_zone, p_at) - pg_catalog.timezone(p_zone, p_handoff_at))
                                   / pg_catalog.date_part('epoch', p_shift)) * p_shift) > p_at
           THEN 1 ELSE 0 END
END;
-- noqa: enable=all
COMMENT ON FUNCTION ops._rotation_turn(timestamptz, interval, text, timestamptz) IS
'Internal: the number of the turn in progress at p_at (0 from handoff_at on), NULL before the first handoff.';

-- the restriction window that opens on local day d, as instants: [d + from, d + to), past midnight
-- [d + from, d+1 + to), all day [d, d+1) when there are no times
-- noqa: disable=all
CREATE FUNCTION ops._window_start(p_day date, p_from time, p_zone text) RETURNS timestamptz
LANGUAGE sql IMMUTABLE
RETURN pg_catalog.timezone(p_zone, p_day + coalesce(p_from, time '00:00'));

CREATE FUNCTION ops._window_end(p_day date, p_from time, p_to time, p_zone text) RETURNS timestamptz
LANGUAGE sql IMMUTABLE
RETURN pg_catalog.timezone(p_zone, (p_day + CASE WHEN p_from IS NULL OR p_to < p_from THEN 1 ELSE 0 END)
                                   + coalesce(p_to, time '00:00'));

-- whether the window of local day d holds p_at (d a weekday of the layer)
CREATE FUNCTION ops._window_holds(p_day date, p_days int[], p_from time, p_to time, p_zone text, p_at timestamptz)
RETURNS boolean
LANGUAGE sql IMMUTABLE
RETURN (p_days IS NULL OR pg_catalog.date_part('isodow', p_day)::int = ANY (p_days))
       AND p_at >= ops._window_start(p_day, p_from, p_zone) AND p_at < ops._window_end(p_day, p_from, p_to, p_zone);

-- a window holding p_at opened on its local day or the day before (past midnight); not the day after, as
-- a local time never reads earlier than the wall clock at its instant
CREATE FUNCTION ops._layer_applies(p_days int[], p_from time, p_to time, p_zone text, p_at timestamptz)
RETURNS boolean
LANGUAGE sql IMMUTABLE
RETURN (p_days IS NULL AND p_from IS NULL)
       OR ops._window_holds(pg_catalog.timezone(p_zone, p_at)::date, p_days, p_from, p_to, p_zone, p_at)
       OR ops._window_holds(pg_catalog.timezone(p_zone, p_at)::date - 1, p_days, p_from, p_to, p_zone, p_at);

-- who is on call at p_at: the override whose span holds p_at (the last one starting at or before it, one
-- index probe), else the turn of the highest layer that has started and applies; nobody when none does
CREATE FUNCTION ops._on_call_at(p_schedule text, p_zone text, p_at timestamptz)
RETURNS TABLE (principal text, source text)
LANGUAGE sql STABLE
BEGIN ATOMIC
    WITH o AS (
        SELECT o.principal, o.ends_at
        FROM ops.schedule_overrides AS o
        WHERE o.schedule = p_schedule AND o.starts_at <= p_at
        ORDER BY o.starts_at DESC
        LIMIT 1
    )
    SELECT o.principal, 'override' FROM o WHERE o.ends_at > p_at
    UNION ALL
    (SELECT r.participants[
                (ops._rotation_turn(r.handoff_at, r.shift, p_zone, p_at)
                 % pg_catalog.cardinality(r.participants))::int + 1],
            'rotation:' || r.name
     FROM ops.schedule_rotations AS r
     WHERE r.schedule = p_schedule AND r.handoff_at <= p_at
       AND NOT EXISTS (SELECT 1 FROM o WHERE o.ends_at > p_at)
       AND ops._layer_applies(r.days, r.from_time, r.to_time, p_zone, p_at)
     ORDER BY r.layer DESC
     LIMIT 1);
END;
-- noqa: enable=all
COMMENT ON FUNCTION ops._window_start(date, time, text) IS
'Internal: the instant the restriction window of local day p_day opens.';
COMMENT ON FUNCTION ops._window_end(date, time, time, text) IS
'Internal: the instant the restriction window that opens on local day p_day closes (the next day past midnight).';
COMMENT ON FUNCTION ops._window_holds(date, int[], time, time, text, timestamptz) IS
'Internal: whether the restriction window that opens on local day p_day (one of p_days) holds p_at.';
COMMENT ON FUNCTION ops._layer_applies(int[], time, time, text, timestamptz) IS
'Internal: whether a layer restricted to ISO weekdays p_days and local times p_from-p_to applies at p_at.';
COMMENT ON FUNCTION ops._on_call_at(text, text, timestamptz) IS
'Internal: who is on call in a schedule (of zone p_zone) at p_at and why (override or rotation:<name>); '
'the one evaluation behind ops.on_call and ops.on_call_shifts.';

CREATE FUNCTION ops._schedule_zone(p_schedule text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = ops, pg_temp AS $$
DECLARE
    v_zone text;
BEGIN
    SELECT time_zone INTO v_zone FROM ops.schedules WHERE name = p_schedule;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no schedule "%"', pg_catalog.left(p_schedule, 100)
            USING ERRCODE = 'P0002', HINT = 'SELECT name, time_zone FROM ops.schedules; or ops.create_schedule(name, zone, actor)';
    END IF;
    RETURN v_zone;
END;
$$;
COMMENT ON FUNCTION ops._schedule_zone(text) IS 'Internal: the zone of a schedule; P0002 with a hint when there is none.';

CREATE FUNCTION ops.create_schedule(p_name text, p_time_zone text, p_actor text) RETURNS ops.schedules
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_zone text;
    v_row ops.schedules;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    IF p_name IS NULL OR p_name !~ '^[A-Za-z0-9._@:-]{1,100}$' THEN
        RAISE EXCEPTION 'invalid schedule name "%"', pg_catalog.left(p_name, 100)
            USING ERRCODE = '22023', HINT = 'Names: 1 to 100 letters, digits, . _ @ : -, e.g. ''platform-primary''.';
    END IF;
    -- the canonical spelling of the zone, so every schedule in Berlin says Europe/Berlin
    SELECT z.name INTO v_zone FROM pg_catalog.pg_timezone_names AS z
    WHERE pg_catalog.lower(z.name) = pg_catalog.lower(p_time_zone)
    ORDER BY z.name = p_time_zone DESC LIMIT 1;
    IF v_zone IS NULL THEN
        RAISE EXCEPTION 'unknown time zone "%"', pg_catalog.left(p_time_zone, 100)
            USING ERRCODE = '22023',
                  HINT = 'An IANA zone name, e.g. Europe/Berlin or America/New_York (SELECT name FROM pg_timezone_names).';
    END IF;
    IF EXISTS (SELECT 1 FROM ops.schedules WHERE name = p_name) THEN
        RAISE EXCEPTION 'schedule "%" exists', p_name
            USING ERRCODE = '23505', HINT = 'Pick another name, or add layers to it with ops.add_rotation.';
    END IF;
    v_prev := ops._act_as(p_actor);
    INSERT INTO ops.schedules (name, time_zone, created_by) VALUES (p_name, v_zone, p_actor)
    RETURNING * INTO v_row;
    PERFORM ops._act_as(v_prev);
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops.create_schedule(text, text, text) IS
'Creates an empty on-call schedule in an IANA zone (audited): SELECT ops.create_schedule(''primary'', '
'''Europe/Berlin'', ''alice''); then ops.add_rotation. Bad name or unknown zone: 22023; name taken: 23505.';

CREATE FUNCTION ops.add_rotation(
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
    SELECT pg_catalog.string_agg(pg_catalog.format('%L', u.p), ', ' ORDER BY u.ord) INTO v_missing
    FROM pg_catalog.unnest(p_participants) WITH ORDINALITY AS u (p, ord)
    WHERE NOT EXISTS (SELECT 1 FROM ops.principals AS pr WHERE pr.name = u.p AND NOT pr.disabled);
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'not an enabled principal: %', pg_catalog.left(v_missing, 200)
            USING ERRCODE = '23503',
                  HINT = 'SELECT name FROM ops.principals WHERE NOT disabled; add people with ops.add_principal(name, ''human'', roles, actor).';
    END IF;
    IF p_days IS NOT NULL AND (pg_catalog.cardinality(p_days) = 0 OR NOT p_days <@ ARRAY[1, 2, 3, 4, 5, 6, 7]
                               OR pg_catalog.array_position(p_days, NULL) IS NOT NULL) THEN
        RAISE EXCEPTION 'days % are not ISO weekdays', p_days
            USING ERRCODE = '22023', HINT = 'ISO weekdays 1 (Monday) to 7 (Sunday), e.g. ARRAY[1, 2, 3, 4, 5]; NULL = every day.';
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
'name, shift, days or window: 22023; unknown principal: 23503; name taken: 23505.';

CREATE FUNCTION ops.remove_rotation(p_schedule text, p_name text, p_actor text) RETURNS ops.schedule_rotations
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_row ops.schedule_rotations;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    PERFORM ops._schedule_zone(p_schedule);
    v_prev := ops._act_as(p_actor);
    DELETE FROM ops.schedule_rotations WHERE schedule = p_schedule AND name = p_name RETURNING * INTO v_row;
    PERFORM ops._act_as(v_prev);
    IF v_row.id IS NULL THEN
        RAISE EXCEPTION 'schedule "%" has no rotation "%"', p_schedule, pg_catalog.left(p_name, 100)
            USING ERRCODE = 'P0002', HINT = 'SELECT name, layer FROM ops.schedule_rotations WHERE schedule = ''<schedule>'';';
    END IF;
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops.remove_rotation(text, text, text) IS
'Drops a layer of a schedule (audited); the layers below show through where it applied. Unknown: P0002.';

CREATE FUNCTION ops.add_override(
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
'Unknown schedule: P0002; unknown principal: 23503; empty span: 22023; no reason: 22004; overlap: 23P01.';

CREATE FUNCTION ops.remove_override(p_id bigint, p_actor text) RETURNS ops.schedule_overrides
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_row ops.schedule_overrides;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    v_prev := ops._act_as(p_actor);
    DELETE FROM ops.schedule_overrides WHERE id = p_id RETURNING * INTO v_row;
    PERFORM ops._act_as(v_prev);
    IF v_row.id IS NULL THEN
        RAISE EXCEPTION 'no override %', p_id
            USING ERRCODE = 'P0002', HINT = 'SELECT id, schedule, principal, starts_at, ends_at FROM ops.schedule_overrides;';
    END IF;
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION ops.remove_override(bigint, text) IS 'Drops an override (audited); the layers apply again. Unknown: P0002.';

CREATE FUNCTION ops.on_call(p_schedule text, p_at timestamptz DEFAULT pg_catalog.now()) RETURNS SETOF text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_zone text := ops._schedule_zone(p_schedule);
BEGIN
    IF p_at IS NULL THEN
        RAISE EXCEPTION 'on_call needs a time' USING ERRCODE = '22004', HINT = 'Leave p_at out for now.';
    END IF;
    IF NOT pg_catalog.isfinite(p_at) THEN
        RAISE EXCEPTION 'on_call needs a finite time, not %', p_at
            USING ERRCODE = '22023', HINT = 'An instant, e.g. now() or ''2026-03-02 09:00 Europe/Berlin''.';
    END IF;
    RETURN QUERY SELECT a.principal FROM ops._on_call_at(p_schedule, v_zone, p_at) AS a;
END;
$$;
COMMENT ON FUNCTION ops.on_call(text, timestamptz) IS
'Who is on call in a schedule at p_at (default now): the override, else the turn of the highest layer that applies; '
'no row when nobody is. Unknown schedule: P0002.';

CREATE FUNCTION ops.on_call_shifts(p_schedule text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (principal text, starts_at timestamptz, ends_at timestamptz, source text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_zone text := ops._schedule_zone(p_schedule);
BEGIN
    IF p_from IS NULL OR p_to IS NULL OR p_to <= p_from OR p_to - p_from > interval '366 days'
       OR pg_catalog.isfinite(p_from) IS NOT TRUE OR pg_catalog.isfinite(p_to) IS NOT TRUE THEN
        RAISE EXCEPTION 'on_call_shifts needs from < to, at most 366 days apart (from %, to %)', p_from, p_to
            USING ERRCODE = '22023', HINT = 'e.g. ops.on_call_shifts(''primary'', now(), now() + interval ''28 days'')';
    END IF;
    -- every instant at which the answer can change: handoffs, window edges, override edges; each segment between
    -- two of them is asked once, through the same function as ops.on_call, then runs of one principal and source
    -- are merged
    RETURN QUERY
    WITH edges AS (
        SELECT p_from AS at
        UNION
        SELECT ops._rotation_handoff(r.handoff_at, r.shift, v_zone, k.k)
        FROM ops.schedule_rotations AS r
        CROSS JOIN LATERAL pg_catalog.generate_series(
            coalesce(ops._rotation_turn(r.handoff_at, r.shift, v_zone, p_from), 0),
            coalesce(ops._rotation_turn(r.handoff_at, r.shift, v_zone, p_to), -1)) AS k (k)
        WHERE r.schedule = p_schedule
        UNION
        SELECT w.at
        FROM ops.schedule_rotations AS r
        CROSS JOIN LATERAL pg_catalog.generate_series(
            pg_catalog.timezone(v_zone, p_from)::date - 1, pg_catalog.timezone(v_zone, p_to)::date + 1,
            interval '1 day') AS d (day)
        CROSS JOIN LATERAL (VALUES (ops._window_start(d.day::date, r.from_time, v_zone)),
                                   (ops._window_end(d.day::date, r.from_time, r.to_time, v_zone))) AS w (at)
        WHERE r.schedule = p_schedule AND (r.days IS NOT NULL OR r.from_time IS NOT NULL)
          AND (r.days IS NULL OR pg_catalog.date_part('isodow', d.day)::int = ANY (r.days))
        UNION
        SELECT w.at
        FROM ops.schedule_overrides AS o
        CROSS JOIN LATERAL (VALUES (o.starts_at), (o.ends_at)) AS w (at)
        WHERE o.schedule = p_schedule AND o.starts_at < p_to
          AND o.starts_at >= coalesce((SELECT pg_catalog.max(o2.starts_at) FROM ops.schedule_overrides AS o2
                                       WHERE o2.schedule = p_schedule AND o2.starts_at <= p_from), p_from)
    ),
    segments AS (
        SELECT e.at AS seg_start, pg_catalog.lead(e.at, 1, p_to) OVER (ORDER BY e.at) AS seg_end,
               pg_catalog.row_number() OVER (ORDER BY e.at) AS n
        FROM edges AS e
        WHERE e.at >= p_from AND e.at < p_to
    ),
    answered AS (
        SELECT s.seg_start, s.seg_end, s.n, a.principal, a.source,
               s.n - pg_catalog.row_number() OVER (PARTITION BY a.principal, a.source ORDER BY s.n) AS run
        FROM segments AS s
        CROSS JOIN LATERAL ops._on_call_at(p_schedule, v_zone, s.seg_start) AS a
    )
    SELECT a.principal, pg_catalog.min(a.seg_start), pg_catalog.max(a.seg_end), a.source
    FROM answered AS a
    GROUP BY a.principal, a.source, a.run
    ORDER BY 2, 1;
END;
$$;
COMMENT ON FUNCTION ops.on_call_shifts(text, timestamptz, timestamptz) IS
'Who is on call in [p_from, p_to) as rows (principal, starts_at, ends_at, source: override or rotation:<name>), '
'clipped to the range, adjacent rows of one principal and source merged, no row where nobody is. Ranges up to 366 '
'days; otherwise 22023. Unknown schedule: P0002.';

-- now and until when: the end of the current row within four weeks, NULL when nothing changes in that horizon;
-- nobody on call is a row with a NULL principal, until the next one starts
CREATE VIEW ops.on_call_now AS
SELECT
    s.name AS schedule,
    CASE WHEN f.starts_at = pg_catalog.now() THEN f.principal END AS principal,
    CASE
        WHEN f.starts_at > pg_catalog.now() THEN f.starts_at
        WHEN f.ends_at < pg_catalog.now() + interval '28 days' THEN f.ends_at
    END AS until
FROM ops.schedules AS s
LEFT JOIN LATERAL (
    SELECT
        sh.principal,
        sh.starts_at,
        sh.ends_at
    FROM ops.on_call_shifts(s.name, pg_catalog.now(), pg_catalog.now() + interval '28 days') AS sh
    ORDER BY sh.starts_at, sh.principal
    LIMIT 1
) AS f ON TRUE;
COMMENT ON VIEW ops.on_call_now IS
'Every schedule: who is on call now and until when (the end of their current shift; NULL when it does not end within '
'28 days). Nobody on call: principal NULL, until when someone starts (NULL if nobody within 28 days).';

-- operators (people at psql) manage schedules and ask who is on call; the API gets its own api_* functions
GRANT EXECUTE ON FUNCTION ops.create_schedule(text, text, text),
ops.add_rotation(text, text, interval, timestamptz, text[], text, int[], time, time),
ops.remove_rotation(text, text, text),
ops.add_override(text, text, timestamptz, timestamptz, text, text),
ops.remove_override(bigint, text),
ops.on_call(text, timestamptz),
ops.on_call_shifts(text, timestamptz, timestamptz) TO opsguard_operator;
GRANT SELECT ON ops.on_call_now TO opsguard_operator;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ops FROM public;
