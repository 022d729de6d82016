-- depends: 0001_schema
-- A 5-field cron matcher in SQL, for the pause_cron maintenance window.

-- One token of a field: a number, or a name (jan..dec, sun..sat) at its position + p_base.
CREATE FUNCTION ops._cron_value(p_token text, p_names text[], p_base int, p_field text) RETURNS int
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_pos int;
BEGIN
    IF p_token ~ '^[0-9]{1,4}$' THEN
        RETURN p_token::int;
    END IF;
    v_pos := pg_catalog.array_position(p_names, pg_catalog.lower(p_token));
    IF v_pos IS NULL THEN
        RAISE EXCEPTION 'cron %: "%" is not a number or a name', p_field, p_token
            USING ERRCODE = '22023',
                  HINT = 'Use numbers, ranges (1-5), steps (*/15), lists (1,3) or names (jan, mon).';
    END IF;
    RETURN v_pos - 1 + p_base;
END;
$$;
COMMENT ON FUNCTION ops._cron_value(text, text[], int, text) IS 'Internal: one cron token as a number.';

-- Expands one cron field (lists, ranges, steps, names) to the values it allows.
CREATE FUNCTION ops._cron_field(p_field text, p_min int, p_max int, p_names text[], p_base int, p_what text)
RETURNS int[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_item text;
    v_range text;
    v_step int;
    v_lo int;
    v_hi int;
    v_out int[] := '{}';
BEGIN
    FOREACH v_item IN ARRAY pg_catalog.string_to_array(p_field, ',') LOOP
        IF v_item ~ '^[^/]+/[0-9]{1,4}$' THEN
            v_range := pg_catalog.split_part(v_item, '/', 1);
            v_step := pg_catalog.split_part(v_item, '/', 2)::int;
        ELSIF v_item ~ '^[^/]+$' THEN
            v_range := v_item;
            v_step := NULL;
        ELSE
            v_range := NULL;
        END IF;
        IF v_range IS NULL OR v_step = 0 THEN
            RAISE EXCEPTION 'cron %: "%" is not a valid item', p_what, v_item
                USING ERRCODE = '22023', HINT = 'A step is a positive number after one slash: */15, 0-30/5.';
        END IF;
        IF v_range = '*' THEN
            v_lo := p_min;
            v_hi := p_max;
        ELSIF v_range ~ '^[^-]+-[^-]+$' THEN
            v_lo := ops._cron_value(pg_catalog.split_part(v_range, '-', 1), p_names, p_base, p_what);
            v_hi := ops._cron_value(pg_catalog.split_part(v_range, '-', 2), p_names, p_base, p_what);
        ELSE
            v_lo := ops._cron_value(v_range, p_names, p_base, p_what);
            -- Vixie cron reads "5/15" as "5-max/15"
            v_hi := CASE WHEN v_step IS NULL THEN v_lo ELSE p_max END;
        END IF;
        IF v_lo < p_min OR v_hi > p_max OR v_lo > v_hi THEN
            RAISE EXCEPTION 'cron %: "%" is outside %-%', p_what, v_item, p_min, p_max
                USING ERRCODE = '22023', HINT = 'Ranges go low-high within the field''s bounds.';
        END IF;
        v_out := v_out || ARRAY(SELECT pg_catalog.generate_series(v_lo, v_hi, coalesce(v_step, 1)));
    END LOOP;
    RETURN v_out;
END;
$$;
COMMENT ON FUNCTION ops._cron_field(text, int, int, text[], int, text) IS 'Internal: the values one cron field allows.';

CREATE FUNCTION ops.cron_matches(p_expr text, p_at timestamptz) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_expr text := pg_catalog.lower(pg_catalog.btrim(p_expr));
    v_f text[];
    v_t timestamp := p_at AT TIME ZONE 'UTC';
    v_dom_ok boolean;
    v_dow_ok boolean;
BEGIN
    IF p_expr IS NULL OR p_at IS NULL THEN
        RAISE EXCEPTION 'cron_matches needs an expression and a time'
            USING ERRCODE = '22004', HINT = 'Example: ops.cron_matches(''0 22 * * 1-5'', now()).';
    END IF;
    v_expr := CASE v_expr
        WHEN '@hourly' THEN '0 * * * *'
        WHEN '@daily' THEN '0 0 * * *'
        WHEN '@midnight' THEN '0 0 * * *'
        WHEN '@weekly' THEN '0 0 * * 0'
        WHEN '@monthly' THEN '0 0 1 * *'
        WHEN '@yearly' THEN '0 0 1 1 *'
        WHEN '@annually' THEN '0 0 1 1 *'
        ELSE v_expr
    END;
    v_f := pg_catalog.regexp_split_to_array(v_expr, '\s+');
    IF pg_catalog.cardinality(v_f) <> 5 OR v_expr = '' THEN
        RAISE EXCEPTION 'cron expression "%" does not have 5 fields', p_expr
            USING ERRCODE = '22023',
                  HINT = 'minute hour day-of-month month day-of-week, in UTC; e.g. "0 22 * * 1-5" or "*/15 * * * *".';
    END IF;
    IF NOT (EXTRACT(minute FROM v_t)::int = ANY (ops._cron_field(v_f[1], 0, 59, '{}', 0, 'minute'))
        AND EXTRACT(hour FROM v_t)::int = ANY (ops._cron_field(v_f[2], 0, 23, '{}', 0, 'hour'))
        AND EXTRACT(month FROM v_t)::int = ANY (ops._cron_field(v_f[4], 1, 12,
            '{jan,feb,mar,apr,may,jun,jul,aug,sep,oct,nov,dec}', 1, 'month'))) THEN
        -- still validate the day fields, so a bad expression never passes silently
        PERFORM ops._cron_field(v_f[3], 1, 31, '{}', 1, 'day-of-month'),
                ops._cron_field(v_f[5], 0, 7, '{sun,mon,tue,wed,thu,fri,sat}', 0, 'day-of-week');
        RETURN false;
    END IF;
    v_dom_ok := EXTRACT(day FROM v_t)::int = ANY (ops._cron_field(v_f[3], 1, 31, '{}', 1, 'day-of-month'));
    -- Sunday is 0 and 7
    v_dow_ok := EXTRACT(dow FROM v_t)::int = ANY (
        SELECT d % 7 FROM pg_catalog.unnest(
            ops._cron_field(v_f[5], 0, 7, '{sun,mon,tue,wed,thu,fri,sat}', 0, 'day-of-week')) AS d);
    -- Vixie cron: when both day fields are restricted (neither starts with *), either may match
    IF pg_catalog.left(v_f[3], 1) = '*' OR pg_catalog.left(v_f[5], 1) = '*' THEN
        RETURN v_dom_ok AND v_dow_ok;
    END IF;
    RETURN v_dom_ok OR v_dow_ok;
END;
$$;
COMMENT ON FUNCTION ops.cron_matches(text, timestamptz) IS
'True when the 5-field cron expression (UTC; *, lists, ranges, steps, month/day names, @daily...) matches the minute of p_at. '
'Day-of-month and day-of-week combine as in Vixie cron. Invalid expressions raise 22023.';
