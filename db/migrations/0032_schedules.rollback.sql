-- 0032 undone: no schedules
DROP VIEW ops.on_call_now;
DROP FUNCTION ops.on_call_shifts(text, timestamptz, timestamptz);
DROP FUNCTION ops.on_call(text, timestamptz);
DROP FUNCTION ops.remove_override(bigint, text);
DROP FUNCTION ops.add_override(text, text, timestamptz, timestamptz, text, text);
DROP FUNCTION ops.remove_rotation(text, text, text);
DROP FUNCTION ops.add_rotation(text, text, interval, timestamptz, text[], text, int[], time, time);
DROP FUNCTION ops.create_schedule(text, text, text);
DROP FUNCTION ops._schedule_zone(text);
DROP FUNCTION ops._on_call_at(text, text, timestamptz);
DROP FUNCTION ops._layer_applies(int[], time, time, text, timestamptz);
DROP FUNCTION ops._window_end(date, time, time, text);
DROP FUNCTION ops._window_start(date, time, text);
DROP FUNCTION ops._rotation_turn(timestamptz, interval, text, timestamptz);
DROP FUNCTION ops._rotation_handoff(timestamptz, interval, text, bigint);
DROP TABLE ops.schedule_overrides;
DROP TABLE ops.schedule_rotations;
DROP TABLE ops.schedules;
