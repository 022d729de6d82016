-- Answering a page (docs/notifications.md, Acknowledging from the page): a token acts once, as the
-- principal it was sent to, on its own incident, audited "via <channel>"; reading it changes nothing;
-- unknown, revoked and malformed tokens look alike; used or expired tokens are gone; resolved is final.
BEGIN;
SELECT plan(24);

SELECT ops.add_principal('bob', 'human', ARRAY['ops_responder'], 'alice');
SELECT ops.add_principal('carol', 'human', ARRAY['ops_responder'], 'alice');
SELECT ops.add_principal('victor', 'human', ARRAY['ops_viewer'], 'alice');
INSERT INTO ops.incidents (incident_key, severity, route, summary) VALUES
('db-down', 'critical', 'db', 'db is down'),
('disk-full', 'warning', 'disk', 'disk is full');
CREATE TEMP TABLE tok (name text PRIMARY KEY, token text);
CREATE FUNCTION pg_temp.mint(p_name text, p_key text, p_who text, p_channel text) RETURNS text LANGUAGE sql AS $$
    INSERT INTO tok
    SELECT p_name, m.r_token FROM ops._mint_page_token(NULL, (ops._incident_by_ref(p_key)).id, p_who, p_channel,
                                                        '2026-03-02 12:00:00Z') AS m
    RETURNING token
$$;
CREATE FUNCTION pg_temp.t(p_name text) RETURNS text LANGUAGE sql AS $$ SELECT token FROM tok WHERE name = p_name $$;
SELECT pg_temp.mint('bob', 'db-down', 'bob', 'link');
SELECT pg_temp.mint('carol', 'db-down', 'carol', 'link');
SELECT pg_temp.mint('victor', 'db-down', 'victor', 'link');
SELECT pg_temp.mint('voice', 'db-down', 'bob', 'voice');
SELECT pg_temp.mint('revoked', 'db-down', 'bob', 'link');
SELECT pg_temp.mint('disk', 'disk-full', 'bob', 'link');
SELECT pg_temp.mint('late', 'db-down', 'bob', 'link');
UPDATE ops.page_tokens SET revoked_at = '2026-03-02 12:01:00Z'
WHERE token_hash = ops._page_token_hash(pg_temp.t('revoked'));
CREATE TEMP TABLE before_view AS
SELECT
    (SELECT count(*) FROM ops.audit_log) AS audit,
    (SELECT count(*) FROM ops.page_tokens WHERE used_at IS NULL) AS unused;

SELECT is(ops.page_view(pg_temp.t('bob'), '2026-03-02 12:02:00Z') #>> '{incident,incidentKey}', 'db-down',
          'the page shows the incident its token was sent for');
SELECT is(ops.page_view(pg_temp.t('bob'), '2026-03-02 12:02:00Z') ->> 'usable', 'true',
          'a fresh token can be answered');
SELECT is((SELECT (count(*), b.audit, b.unused)::text FROM ops.audit_log, before_view AS b GROUP BY b.audit, b.unused),
          (SELECT (b.audit, b.audit, count(*))::text FROM ops.page_tokens AS t, before_view AS b
           WHERE t.used_at IS NULL GROUP BY b.audit),
          'viewing a page changes nothing: no audit row, no token used');

SELECT throws_ok(format('SELECT ops.page_action(%L, %L, %L, %L)', pg_temp.t('victor'), 'acknowledge', 'link',
                        '2026-03-02 12:03:00Z'),
                 '42501', NULL, 'a principal without incidents.ack cannot acknowledge from its page');
SELECT ok((SELECT used_at IS NULL FROM ops.page_tokens WHERE token_hash = ops._page_token_hash(pg_temp.t('victor'))),
          'a refused answer leaves its token unused');
SELECT throws_ok(format('SELECT ops.page_action(%L, %L, %L, %L)', pg_temp.t('voice'), 'acknowledge', 'link',
                        '2026-03-02 12:03:00Z'),
                 'P0002', NULL, 'a voice call''s token does not answer as a link');

SELECT is(ops.page_action(pg_temp.t('bob'), 'acknowledge', 'link', '2026-03-02 12:03:00Z') ->> 'message',
          'Acknowledged by bob at 2026-03-02 12:03 UTC.', 'the link acknowledges as the principal it was sent to');
SELECT is((SELECT (status, acknowledged_by)::text FROM ops.incidents WHERE incident_key = 'db-down'),
          '(acknowledged,bob)', 'the incident is acknowledged by bob');
SELECT is((SELECT (actor, note)::text FROM ops.audit_log WHERE table_name = 'incidents' AND action = 'UPDATE'
           AND row_key = (ops._incident_by_ref('db-down')).id::text),
          '(bob,"via link")', 'the audit log records bob, via link');
SELECT is((SELECT (used_at, used_action, used_via)::text FROM ops.page_tokens
           WHERE token_hash = ops._page_token_hash(pg_temp.t('bob'))),
          '("2026-03-02 12:03:00+00",acknowledge,link)', 'the token is marked used, with its action and channel');
SELECT throws_ok(format('SELECT ops.page_action(%L, %L, %L, %L)', pg_temp.t('bob'), 'resolve', 'link',
                        '2026-03-02 12:04:00Z'),
                 'OG410', NULL, 'a used token is gone, even for the other action');
SELECT is(ops.page_view(pg_temp.t('bob'), '2026-03-02 12:04:00Z') ->> 'reason', 'used',
          'the page of a used token says it was used');

SELECT is(ops.page_action(pg_temp.t('carol'), 'acknowledge', 'link', '2026-03-02 12:05:00Z') ->> 'message',
          'Already acknowledged by bob at 2026-03-02 12:03 UTC.', 'a second person is told who acknowledged first');
SELECT ok((SELECT used_at IS NOT NULL FROM ops.page_tokens WHERE token_hash = ops._page_token_hash(pg_temp.t('carol'))),
          'an answer that changed nothing still uses its token');
SELECT is((SELECT count(*) FROM ops.audit_log WHERE table_name = 'incidents' AND action = 'UPDATE'), 1::bigint,
          'an acknowledgement that changed nothing adds no audit row');

SELECT is((SELECT status FROM ops.incidents WHERE incident_key = 'disk-full'), 'open',
          'the other incident was not touched by db-down''s tokens');
SELECT is(ops.page_action(pg_temp.t('disk'), 'resolve', 'link', '2026-03-02 12:06:00Z') #>> '{incident,incidentKey}',
          'disk-full', 'a token acts on its own incident only');
SELECT is((SELECT (status, acknowledged_by)::text FROM ops.incidents WHERE incident_key = 'db-down'),
          '(acknowledged,bob)', 'another incident''s token left db-down as it was');

SELECT throws_ok(format('SELECT ops.page_action(%L, %L, %L, %L)', pg_temp.t('revoked'), 'acknowledge', 'link',
                        '2026-03-02 12:06:00Z'),
                 'P0002', NULL, 'a revoked token is unknown');
SELECT throws_ok($$SELECT ops.page_action('not-a-token', 'acknowledge', 'link', '2026-03-02 12:06:00Z')$$,
                 'P0002', NULL, 'a malformed token is unknown');
SELECT throws_ok($$SELECT ops.page_action(repeat('A', 43), 'acknowledge', 'link', '2026-03-02 12:06:00Z')$$,
                 'P0002', NULL, 'a well-formed token nobody minted is unknown');
SELECT throws_ok(format('SELECT ops.page_action(%L, %L, %L, %L)', pg_temp.t('late'), 'acknowledge', 'link',
                        '2026-03-03 12:00:00Z'),
                 'OG410', NULL, 'a token is gone 24 hours after it was minted');

SELECT ops.resolve_incident((ops._incident_by_ref('db-down')).id, 'alice');
SELECT throws_ok(format('SELECT ops.page_action(%L, %L, %L, %L)', pg_temp.t('late'), 'resolve', 'link',
                        '2026-03-02 13:00:00Z'),
                 '55000', NULL, 'a resolved incident refuses every answer');
SELECT is(ops.page_view(pg_temp.t('late'), '2026-03-02 13:00:00Z') ->> 'reason', 'resolved',
          'the page of a resolved incident says so');

SELECT * FROM finish();
ROLLBACK;
