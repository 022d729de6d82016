-- depends: 0034_oncall_api
-- ops.remove_heartbeat of a name that does not exist returned an empty row instead of P0002:
-- the PERFORM that restores the acting user ran between the DELETE and IF NOT FOUND and set
-- FOUND again. The check now reads the deleted row itself.
CREATE OR REPLACE FUNCTION ops.remove_heartbeat(p_name text, p_actor text) RETURNS ops.heartbeats
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ops, pg_temp AS $$
DECLARE
    v_row ops.heartbeats;
    v_prev text;
BEGIN
    PERFORM ops._require_actor(p_actor);
    v_prev := ops._act_as(p_actor);
    DELETE FROM ops.heartbeats WHERE name = p_name RETURNING * INTO v_row;
    PERFORM ops._act_as(v_prev);
    -- FOUND here would be the PERFORM above; the returned row says whether one was deleted
    IF v_row.name IS NULL THEN
        RAISE EXCEPTION 'no heartbeat "%"', pg_catalog.left(p_name, 100)
            USING ERRCODE = 'P0002', HINT = 'SELECT name, ping_interval, due_at FROM ops.heartbeats;';
    END IF;
    RETURN v_row;
END;
$$;
