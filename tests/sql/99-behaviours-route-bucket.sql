-- ops.route_bucket against answers computed outside the database, from the documented formula
-- (the first 32 bits of md5(route), unsigned, mod 100), with Python's hashlib:
--     int(hashlib.md5(route.encode("utf-8")).hexdigest()[:8], 16) % 100
-- The hex beside each row is those 32 bits. Several have the top bit set, so a signed reading
-- of them gives other buckets; the GET /r/N routes sit at the canary boundaries.
BEGIN;
SELECT plan(8);

SELECT is(current_setting('server_encoding'), 'UTF8', 'set-up: the database is UTF-8 (md5 hashes the UTF-8 bytes)');

CREATE TEMP TABLE known (route text, bucket int);
INSERT INTO known VALUES
    ('', 93),                       -- d41d8cd9
    ('GET /projects', 77),          -- 1a7bd43d
    ('get /projects', 76),          -- 282e5000
    ('GET /projects/', 85),         -- 4995a8f5
    (' GET /projects', 87),         -- c55fb617
    ('POST /ops/incidents', 33),    -- 052a4935
    ('GET /healthz', 78),           -- 0dcb5692
    ('GET /a', 97),                 -- e26ec815
    ('GET /b', 89),                 -- 71a7d6b9
    ('PUT /café', 36),              -- bb7cb5f4
    ('DELETE /v2/users/{id}', 7),   -- c20c362f
    ('GET /search?q=x', 88),        -- 6b58bbec
    ('GET /canary/3', 21),          -- cfb9c769
    ('GET /r/158', 0),              -- 9fb5d250
    ('GET /r/68', 1),               -- c15d895d
    ('GET /r/8', 9),                -- 5299c59d
    ('GET /r/120', 10),             -- fd1eb592
    ('GET /r/40', 29),              -- 34ffcf19
    ('GET /r/35', 30),              -- 105a6e4a
    ('GET /r/162', 49),             -- 3a792a71
    ('GET /r/1', 50),               -- 2370f332
    ('GET /r/0', 98),               -- faed3756
    ('GET /r/18', 99);              -- 57c78df7

SELECT is((SELECT count(*)::int FROM known), 23, 'set-up: 23 known answers');
SELECT results_eq($$SELECT route, ops.route_bucket(route) FROM known ORDER BY route$$,
                  $$SELECT route, bucket FROM known ORDER BY route$$,
                  'route_bucket matches every independently computed bucket');
SELECT is(ops.route_bucket(NULL), 93, 'a NULL route falls in the empty route''s bucket');

-- route_in_canary: bucket < pct, so pct 10 takes buckets 0-9, pct 0 none, pct 100 all
SELECT results_eq(
    $$SELECT route FROM known WHERE ops.route_in_canary(route, 10) ORDER BY route$$,
    $$VALUES ('DELETE /v2/users/{id}'), ('GET /r/158'), ('GET /r/68'), ('GET /r/8')$$,
    'canary 10 %: the routes in buckets 0-9 (7, 0, 1 and 9), not GET /r/120 in bucket 10');
SELECT results_eq(
    $$SELECT route FROM known WHERE ops.route_in_canary(route, 30) AND NOT ops.route_in_canary(route, 10) ORDER BY route$$,
    $$VALUES ('GET /canary/3'), ('GET /r/120'), ('GET /r/40')$$,
    'raising it to 30 % adds buckets 10-29 (21, 10, 29), not GET /r/35 in bucket 30');
SELECT is((SELECT count(*)::int FROM known WHERE ops.route_in_canary(route, 0)), 0, 'canary 0 %: no route');
SELECT is((SELECT count(*)::int FROM known WHERE ops.route_in_canary(route, 100)), 23, 'canary 100 %: every route');

SELECT * FROM finish();
ROLLBACK;
