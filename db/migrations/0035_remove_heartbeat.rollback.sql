-- ops.remove_heartbeat as 0030 left it
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
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no heartbeat "%"', p_name
            USING ERRCODE = 'P0002', HINT = 'SELECT name, ping_interval, due_at FROM ops.heartbeats;';
    END IF;
    RETURN v_row;
END;
$$;
