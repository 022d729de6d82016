DROP TRIGGER settings_recalc ON ops.settings;
DROP TRIGGER sla_recalc ON ops.sla;
DROP FUNCTION ops._recalc_after_change();
DROP FUNCTION ops.recalc_next_due();
DROP FUNCTION ops.escalation_tick(timestamptz, text);
DROP FUNCTION ops.route_in_canary(text, integer);
DROP FUNCTION ops.route_bucket(text);
DROP TABLE ops.notification_outbox;
DROP TABLE ops.tick_log;
