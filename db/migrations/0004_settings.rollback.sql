DROP FUNCTION ops.set_sla(text, integer, text);
DROP FUNCTION ops.set_setting(text, text, text);
DROP FUNCTION ops.validate_url(text, text);
DROP FUNCTION ops.setting(text);
DROP TABLE ops.sla;
DROP TABLE ops.settings;
