-- depends: 0043_change_events
-- On-call instants, as docs/oncall.md states them, checked against an independent model of the rules:
-- * a first handoff is the instant given (ops.add_rotation moved one in the first of two repeated 01:30s to the
--   second, an hour later, and nobody was on call in between); overrides and handoffs keep whole seconds, as the
--   calendar feed carries them (a fraction made the feed start an override up to a second early);
-- * ops._rotation_turn counts back over clock changes of any size (Antarctica/Vostok went from +07 to +00 in
--   February 1994: with 1-hour shifts ops.on_call named the wrong person for hours), still one probe outside them;
-- * a restriction window open across a skipped local day (Pacific/Apia skipped 30 December 2011) holds until its
--   end, read with the offset before the skip, as the restriction rule says; it ended at the skip;
-- * the feed gives each event a lastModified and a sequence that grow when its end can have changed, from the
--   schedule's change time (ops.schedule_versions, kept by triggers) and the window's daily move.

-- handoff 0 is the first handoff itself; handoff k (k >= 1) the local wall-clock time of the first plus k shifts,
-- read in the zone as PostgreSQL reads a local time (a skipped one with the offset before the change, a
-- repeated one as its second occurrence)
-- noqa: disable=all
CREATE OR REPLACE FUNCTION ops._rotation_handoff(p_handoff_at timestamptz, p_shift interval, p_zone text, p_k bigint)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE
RETURN CASE WHEN p_k = 0 THEN p_handoff_at
            ELSE pg_catalog.timezone(p_zone, pg_catalog.timezone(p_zone, p_handoff_at) + p_k * p_shift) END;
-- noqa: enable=all
COMMENT ON FUNCTION ops._rotation_handoff(timestamptz, interval, text, bigint) IS
'Internal: the instant of handoff k of a rotation (0: the first handoff as given; then the first handoff plus k '
'shifts of local wall-clock time).';

-- the turn in progress at p_at when more than three handoffs from p_k on fell after p_at (a clock change of more
-- than three shifts backwards): handoffs do not decrease with k and handoff 0 is at or before p_at, so counting
-- down ends there at the latest; a 24-hour change with 1-hour shifts is some 25 steps, only within that change
CREATE FUNCTION ops._rotation_turn_back(p_handoff_at timestamptz, p_shift interval, p_zone text, p_at timestamptz,
                                        p_k bigint)
RETURNS bigint
LANGUAGE plpgsql IMMUTABLE SET search_path = ops, pg_temp AS $$
DECLARE
    v_k bigint := p_k;
BEGIN
    WHILE v_k > 0 AND ops._rotation_handoff(p_handoff_at, p_shift, p_zone, v_k) > p_at LOOP
        v_k := v_k - 1;
    END LOOP;
    RETURN v_k;
END;
$$;
COMMENT ON FUNCTION ops._rotation_turn_back(timestamptz, interval, text, timestamptz, bigint) IS
'Internal: the last turn at or before p_k whose handoff is at or before p_at (ops._rotation_turn inside a long '
'clock change).';
REVOKE ALL ON FUNCTION ops._rotation_turn_back(timestamptz, interval, text, timestamptz, bigint) FROM public;

-- the turn in progress at p_at in constant time (0044: clock changes of any size). The wall-clock estimate k0
-- (timestamp subtraction counts a day as 86400 wall seconds; not below 0, as a first handoff in the first reading
-- of a repeated hour reads later than instants after it) is never behind the turn and is ahead by the handoffs
-- k0, k0-1, ... that fell on the second reading of a repeated hour (or in a skipped one) and come after p_at. The
-- first four probes are nested, so an instant outside such a change costs one handoff, as before (spelled out, not
-- through ops._rotation_handoff: an argument used twice there and costly to compute keeps it from being inlined,
-- which made tests/sql/54 four times slower); handoff 0 is the first handoff itself, never after p_at (asked
-- second, so the common case pays for the probe alone); past four,
-- ops._rotation_turn_back counts on (Antarctica/Vostok's 7-hour change of 1994). NULL before the first handoff.
-- noqa: disable=all
CREATE OR REPLACE FUNCTION ops._rotation_turn(p_handoff_at timestamptz, p_shift interval, p_zone text, p_at timestamptz)
RETURNS bigint
LANGUAGE sql IMMUTABLE
RETURN CASE WHEN p_at >= p_handoff_at THEN
    GREATEST(0, pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.timezone(p_zone, p_at) - pg_catalog.timezone(p_zone, p_handoff_at))
                                 / pg_catalog.date_part('epoch', p_shift))::bigint)
    - (
      CASE WHEN pg_catalog.timezone(p_zone, pg_catalog.timezone(p_zone, p_handoff_at) + (GREATEST(0, pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.timezone(p_zone, p_at) - pg_catalog.timezone(p_zone, p_handoff_at))
                                 / pg_catalog.date_part('epoch', p_shift))::bigint) - 0) * p_shift) > p_at
                AND GREATEST(0, pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.timezone(p_zone, p_at) - pg_catalog.timezone(p_zone, p_handoff_at))
                                 / pg_catalog.date_part('epoch', p_shift))::bigint) > 0
           THEN 1 +
          CASE WHEN pg_catalog.timezone(p_zone, pg_catalog.timezone(p_zone, p_handoff_at) + (GREATEST(0, pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.timezone(p_zone, p_at) - pg_catalog.timezone(p_zone, p_handoff_at))
                                 / pg_catalog.date_part('epoch', p_shift))::bigint) - 1) * p_shift) > p_at
                AND GREATEST(0, pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.timezone(p_zone, p_at) - pg_catalog.timezone(p_zone, p_handoff_at))
                                 / pg_catalog.date_part('epoch', p_shift))::bigint) > 1
               THEN 1 +
              CASE WHEN pg_catalog.timezone(p_zone, pg_catalog.timezone(p_zone, p_handoff_at) + (GREATEST(0, pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.timezone(p_zone, p_at) - pg_catalog.timezone(p_zone, p_handoff_at))
                                 / pg_catalog.date_part('epoch', p_shift))::bigint) - 2) * p_shift) > p_at
                AND GREATEST(0, pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.timezone(p_zone, p_at) - pg_catalog.timezone(p_zone, p_handoff_at))
                                 / pg_catalog.date_part('epoch', p_shift))::bigint) > 2
                   THEN 1 +
                  CASE WHEN pg_catalog.timezone(p_zone, pg_catalog.timezone(p_zone, p_handoff_at) + (GREATEST(0, pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.timezone(p_zone, p_at) - pg_catalog.timezone(p_zone, p_handoff_at))
                                 / pg_catalog.date_part('epoch', p_shift))::bigint) - 3) * p_shift) > p_at
                AND GREATEST(0, pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.timezone(p_zone, p_at) - pg_catalog.timezone(p_zone, p_handoff_at))
                                 / pg_catalog.date_part('epoch', p_shift))::bigint) > 3
                       THEN GREATEST(0, pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.timezone(p_zone, p_at) - pg_catalog.timezone(p_zone, p_handoff_at))
                                 / pg_catalog.date_part('epoch', p_shift))::bigint) - 3
                            - ops._rotation_turn_back(p_handoff_at, p_shift, p_zone, p_at, GREATEST(0, pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.timezone(p_zone, p_at) - pg_catalog.timezone(p_zone, p_handoff_at))
                                 / pg_catalog.date_part('epoch', p_shift))::bigint) - 4)
                       ELSE 0 END
                   ELSE 0 END
               ELSE 0 END
           ELSE 0 END
    )
END;
-- noqa: enable=all
COMMENT ON FUNCTION ops._rotation_turn(timestamptz, interval, text, timestamptz) IS
'Internal: the number of the turn in progress at p_at (0 from handoff_at on), NULL before the first handoff.';

-- a window holding p_at opened on its local day or the day before (past midnight); or two days before, when
-- the day between was skipped (Pacific/Apia skipped 30 December 2011): a window past midnight then ends at a
-- local time in the skipped day, read with the offset before the skip, so it outlasts the skip and closes
-- before p_to on the day after it (the clocks jumped a day, no more). Only then is the third day asked: the
-- cheap tests come first (a window within one day ends by the midnight where a skip begins)
-- noqa: disable=all
CREATE OR REPLACE FUNCTION ops._layer_applies(p_days int[], p_from time, p_to time, p_zone text, p_at timestamptz)
RETURNS boolean
LANGUAGE sql IMMUTABLE
RETURN (p_days IS NULL AND p_from IS NULL)
       OR ops._window_holds(pg_catalog.timezone(p_zone, p_at)::date, p_days, p_from, p_to, p_zone, p_at)
       OR ops._window_holds(pg_catalog.timezone(p_zone, p_at)::date - 1, p_days, p_from, p_to, p_zone, p_at)
       OR (p_to < p_from AND pg_catalog.timezone(p_zone, p_at)::time < p_to
           AND ops._window_holds(pg_catalog.timezone(p_zone, p_at)::date - 2, p_days, p_from, p_to, p_zone, p_at));
-- noqa: enable=all
COMMENT ON FUNCTION ops._layer_applies(int[], time, time, text, timestamptz) IS
'Internal: whether a layer restricted to ISO weekdays p_days and local times p_from-p_to applies at p_at.';

-- when a schedule's layers or overrides last changed: the calendar feed's events carry it (LAST-MODIFIED,
-- SEQUENCE), so a calendar app replaces an event whose end moved. Derived, so not audited itself (the rows that
-- change are)
CREATE TABLE ops.schedule_versions (
    schedule text PRIMARY KEY REFERENCES ops.schedules (name) ON DELETE CASCADE,
    changed_at timestamptz NOT NULL
);
COMMENT ON TABLE ops.schedule_versions IS
'When the layers or overrides of a schedule last changed (triggers on ops.schedule_rotations and '
'ops.schedule_overrides keep it); the calendar feed''s LAST-MODIFIED and SEQUENCE come from it.';
INSERT INTO ops.schedule_versions (schedule, changed_at)
SELECT
    name,
    pg_catalog.date_trunc('second', pg_catalog.clock_timestamp()) AS changed_at
FROM ops.schedules;
GRANT SELECT ON ops.schedule_versions TO opsguard_operator;

CREATE FUNCTION ops._schedule_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
BEGIN
    -- whole seconds, one more than the last at least: the feed's SEQUENCE counts seconds, and two changes within
    -- one second must still give two values. From the schedules table: a schedule being deleted (its rows go
    -- by cascade) gets no new version
    INSERT INTO ops.schedule_versions AS v (schedule, changed_at)
    SELECT s.name, pg_catalog.date_trunc('second', pg_catalog.clock_timestamp()) FROM ops.schedules AS s
    WHERE s.name IN (CASE WHEN TG_OP <> 'INSERT' THEN OLD.schedule END, CASE WHEN TG_OP <> 'DELETE' THEN NEW.schedule END)
    ON CONFLICT (schedule) DO UPDATE SET changed_at = GREATEST(excluded.changed_at, v.changed_at + interval '1 second');
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ops._schedule_changed() IS
'Internal (trigger): records in ops.schedule_versions that a schedule''s layers or overrides changed.';
REVOKE ALL ON FUNCTION ops._schedule_changed() FROM public;
CREATE TRIGGER schedule_rotations_version AFTER INSERT OR UPDATE OR DELETE ON ops.schedule_rotations
FOR EACH ROW EXECUTE FUNCTION ops._schedule_changed();
CREATE TRIGGER schedule_overrides_version AFTER INSERT OR UPDATE OR DELETE ON ops.schedule_overrides
FOR EACH ROW EXECUTE FUNCTION ops._schedule_changed();

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
    -- a fraction of a second would put every later handoff between the whole seconds the calendar feed can say
    IF pg_catalog.date_part('month', p_shift) <> 0 OR pg_catalog.date_part('year', p_shift) <> 0
       OR pg_catalog.date_part('epoch', p_shift) < 3600
       OR p_shift <> pg_catalog.date_trunc('second', p_shift) THEN
        RAISE EXCEPTION 'shift % is not a usable turn length', p_shift
            USING ERRCODE = '22023',
                  HINT = 'At least 1 hour, in whole seconds: hours, days or weeks (''12 hours'', ''1 day'', ''1 week''); no months, they vary in length.';
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
    IF (p_from IS NULL) <> (p_to IS NULL) OR p_from = p_to OR p_from <> p_from::time(0) OR p_to <> p_to::time(0) THEN
        RAISE EXCEPTION 'a window needs two different times (from %, to %)', p_from, p_to
            USING ERRCODE = '22023',
                  HINT = 'Give both p_from and p_to (local times in whole seconds, e.g. ''09:00'' and ''17:00''; to before from spans midnight), or neither for all day.';
    END IF;
    v_prev := ops._act_as(p_actor);
    -- the first handoff is the instant given, kept (to the whole second, as the calendar feed carries it): the first
    -- 01:30 of a night that repeats 01:00-02:00 is that 01:30; the wall-clock rule places the handoffs after it
    INSERT INTO ops.schedule_rotations (schedule, name, layer, shift, handoff_at, participants, days, from_time, to_time,
                                        created_by)
    SELECT p_schedule, p_name, coalesce(pg_catalog.max(r.layer), 0) + 1, p_shift,
           pg_catalog.date_trunc('second', p_handoff_at), p_participants, p_days, p_from, p_to, p_actor
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
'at the same local time (p_handoff_at kept to the second); optional ISO weekdays p_days and local window '
'p_from-p_to. Unknown schedule: P0002; bad name, shift (under 1 hour, months, a fraction of a second), infinite '
'handoff, over 200 participants, days or window: 22023; unknown principal: 23503; name taken: 23505.';

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
    -- whole seconds, as the calendar feed carries them, so the feed and ops.on_call agree to the instant
    p_from := pg_catalog.date_trunc('second', p_from);
    p_to := pg_catalog.date_trunc('second', p_to);
    IF p_from IS NULL OR p_to IS NULL OR p_to <= p_from OR pg_catalog.isfinite(p_from) IS NOT TRUE
       OR pg_catalog.isfinite(p_to) IS NOT TRUE THEN
        RAISE EXCEPTION 'an override needs a span from < to, in whole seconds (from %, to %)', p_from, p_to
            USING ERRCODE = '22023',
                  HINT = 'e.g. ''2026-03-07 09:00 Europe/Berlin'' to ''2026-03-08 09:00 Europe/Berlin''; fractions of a second are dropped.';
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
'Puts p_principal on call for [p_from, p_to) (instants kept to the whole second) over every layer (audited, the '
'reason as note): a swap or a cover. Unknown schedule: P0002; unknown principal: 23503; empty span (after dropping '
'fractions of a second) or a reason over 1000 characters: 22023; no reason: 22004; overlap: 23P01.';

CREATE OR REPLACE FUNCTION ops.api_schedule_feed(p_schedule text, p_token text, p_now timestamptz DEFAULT pg_catalog.now())
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_feed text;
    v_zone text;
    -- whole UTC days, so the first and last events (clipped to the window) keep their times and
    -- UIDs from one fetch to the next, changing once a day
    v_from timestamptz := pg_catalog.date_trunc('day', p_now, 'UTC') - interval '7 days';
    v_to timestamptz := pg_catalog.date_trunc('day', p_now, 'UTC') + interval '8 weeks';
    v_changed timestamptz;
BEGIN
    -- found by the hash of the token through its unique index: the schedule name is checked
    -- only on the row the token found, so a wrong token, a rotated-away one, none, and an
    -- unknown schedule take the same path to the same error and tell nothing apart
    SELECT f.schedule, s.time_zone, coalesce(v.changed_at, s.created_at) INTO v_feed, v_zone, v_changed
    FROM ops.schedule_feeds AS f INNER JOIN ops.schedules AS s ON f.schedule = s.name
    LEFT JOIN ops.schedule_versions AS v ON v.schedule = s.name
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
                       'lastModified', m.at,
                       'sequence', GREATEST(0, pg_catalog.floor(EXTRACT(epoch FROM m.at) - 946684800))::bigint,
                       'summary', pg_catalog.format('%s on call (%s)', x.principal, p_schedule))
                       ORDER BY x.starts_at, x.principal)
            FROM ops.on_call_shifts(p_schedule, v_from, v_to) AS x
            -- an event's end changes when the schedule does, or while it is cut at the window's end (that end moves
            -- a day each day, until the first day whose window holds the real end): the later of the two, never less
            -- than an earlier fetch had
            CROSS JOIN LATERAL (SELECT GREATEST(v_changed, LEAST(
                v_to - interval '8 weeks',
                pg_catalog.date_trunc('day', x.ends_at - interval '8 weeks' - interval '1 microsecond', 'UTC')
                + interval '1 day')) AS at) AS m), '[]'));
END;
$$;
COMMENT ON FUNCTION ops.api_schedule_feed(text, text, timestamptz) IS
'GET /ops/schedules/<name>/calendar.ics?token=: the shifts of ops.on_call_shifts from 7 days before p_now to 8 weeks '
'after (whole UTC days), each with a UID stable across fetches (schedule, principal, start) and a lastModified and '
'sequence (seconds since 2000) that grow whenever its end can have changed, for the API to render '
'as iCalendar. A wrong, rotated-away or missing token and an unknown schedule: the same P0002.';
