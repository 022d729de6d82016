-- Structure: the tables, columns, indexes and functions that users, scripts and tests depend on.
BEGIN;
SELECT plan(57);

SELECT has_schema('ops');
SELECT has_table('ops', t, 'table ops.' || t)
FROM unnest(ARRAY['incidents', 'escalation_events', 'settings', 'sla', 'tick_log', 'audit_log',
                  'notification_outbox', 'notification_attempts', 'route_webhooks', 'chat_identities']) AS t;

SELECT col_type_is('ops', 'incidents', c, ty, 'incidents.' || c || ' is ' || ty)
FROM (VALUES ('id', 'uuid'), ('incident_key', 'text'), ('status', 'text'), ('severity', 'text'),
             ('escalation_level', 'integer'), ('first_seen', 'timestamp with time zone'),
             ('last_seen', 'timestamp with time zone'), ('acknowledged_by', 'text'),
             ('acknowledged_at', 'timestamp with time zone'), ('next_due_at', 'timestamp with time zone'),
             ('route', 'text')) AS x (c, ty);
SELECT col_is_pk('ops', 'incidents', 'id', 'incidents.id is the primary key');

SELECT has_column('ops', 'escalation_events', c, 'escalation_events.' || c)
FROM unnest(ARRAY['incident_id', 'incident_key', 'escalation_level', 'escalated_at', 'created_at',
                  'unique_hash']) AS c;
SELECT col_is_unique('ops', 'escalation_events', 'unique_hash', 'escalation_events.unique_hash is unique');

SELECT has_index('ops', 'incidents', 'incidents_due', 'next_due_at', 'the tick claims through an index on next_due_at');
SELECT index_is_unique('ops', 'incidents', 'incidents_one_active_per_key');

SELECT has_function('ops', f, 'function ops.' || f)
FROM unnest(ARRAY['trigger_incident', 'ack_incident', 'resolve_incident', 'escalation_tick', 'recalc_next_due',
                  'cron_matches', 'set_setting', 'install_cron_jobs']) AS f;
SELECT function_returns('ops', 'escalation_tick', ARRAY['timestamp with time zone', 'text'], 'jsonb');

SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'ops' AND obj_description(p.oid, 'pg_proc') IS NULL$$,
    'every ops function has a COMMENT (what \df+ shows at 3 a.m.)');
SELECT is_empty(
    $$SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'ops' AND c.relkind = 'r' AND obj_description(c.oid, 'pg_class') IS NULL$$,
    'every ops table has a COMMENT');

SELECT is(to_regclass('incidents')::oid, 'ops.incidents'::regclass::oid,
          'plain table names resolve through the database search_path (the seeds'' SQL runs verbatim)');

-- on-call schedules: what escalation policies, the on-call API and the calendar feed read
SELECT has_table('ops', t, 'table ops.' || t) FROM unnest(ARRAY['schedules', 'schedule_rotations', 'schedule_overrides']) AS t;
SELECT has_view('ops', 'on_call_now', 'view ops.on_call_now');
SELECT function_returns('ops', 'on_call', ARRAY['text', 'timestamp with time zone'], 'setof text');
SELECT has_index('ops', 'schedule_overrides', 'schedule_overrides_schedule_starts', ARRAY['schedule', 'starts_at'],
                 'the override in force is one probe of an index on (schedule, starts_at)');

-- escalation policies (0033): who each level pages, and what each escalation paged
SELECT has_table('ops', t, 'table ops.' || t) FROM unnest(ARRAY['escalation_policies', 'escalation_policy_steps', 'route_policies']) AS t;
SELECT col_type_is('ops', 'escalation_events', 'targets', 'jsonb', 'escalation_events.targets records whom it paged');
SELECT col_type_is('ops', 'notification_outbox', 'webhook_url', 'text', 'notification_outbox.webhook_url: a policy webhook');
SELECT function_returns('ops', 'page_targets', ARRAY['text', 'integer', 'timestamp with time zone'], 'jsonb');
SELECT function_returns('ops', 'policy_step', ARRAY['integer', 'integer', 'integer'], 'integer');

SELECT * FROM finish();
ROLLBACK;
