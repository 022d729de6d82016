"""The release guard: ops.release_guard() over 1,000 routes x 6 hours of rollups and 4 days of
daily rollups (p50 <= 20 ms); ops.route_findings with minute-exact windows beside the coarse-window
body of 0013 on the same data (goal: ratio <= 1.25). Bounds: guard p50 with 50k open critical
incidents beside 100 on the same routes (goal: ratio <= 2), in SQL and over HTTP (gunicorn,
unsigned GET /ops/release-guard beside a signed SELECT 1 through the same stack), and what 3,000
anonymous evaluations (a 4 KiB webhook body each) leave stored under a 1 MB cap (goal: within it)."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import statistics
import time
from datetime import UTC, datetime, timedelta

import psycopg
from localpg import REPO, Cluster
from psycopg.types.json import Jsonb

from bench.common import NOW, Figure, cpu_seconds, fresh_db, sign_v1, start_api


def _route_findings_before() -> str:
    """ops.route_findings as 0013 defined it (hour- and 5-minute-grained windows), renamed into
    schema bench_before: the baseline the current sliding windows (db/schema.sql) are measured against, same data."""
    src = (REPO / "db" / "migrations" / "0013_release_guard.sql").read_text()
    start = src.index("CREATE FUNCTION ops.route_findings(")
    body = src[start:src.index("COMMENT ON FUNCTION ops.route_findings", start)]
    return body.replace("CREATE FUNCTION ops.route_findings(", "CREATE FUNCTION bench_before.route_findings(", 1)


def bench_guard(cluster: Cluster) -> list[Figure]:
    """1,000 routes, rollups as ingest writes them (time order): minutes, 5-minute buckets and
    hours for the last 6 h 30 min (all either body reads at those grains) and 4 UTC days of daily
    rollups (the 3-day ticket window). Evaluated at 31 successive minutes, so every position of
    p_now in its 5-minute bucket and hour is in the mix; old and new bodies alternate."""
    url = fresh_db(cluster, "bench_guard")
    end = NOW + timedelta(minutes=30)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ops.route_minute_stats (route, minute, requests, errors, slow)"
            " SELECT 'GET /r/' || r, date_trunc('minute', %s::timestamptz) - make_interval(mins => m), 100,"
            " CASE WHEN r %% 100 = 0 THEN 40 ELSE r %% 2 END, 0"
            " FROM generate_series(390, 0, -1) m, generate_series(1, 1000) r", (end,))
        # the coarser rollups ops.record_requests keeps beside the minutes
        conn.execute("INSERT INTO ops.route_5min_stats (route, bucket, requests, errors, slow)"
                     " SELECT route, date_bin('5 minutes', minute, '2000-01-01'), sum(requests), sum(errors), sum(slow)"
                     " FROM ops.route_minute_stats GROUP BY 1, 2 ORDER BY 2, 1")
        conn.execute("INSERT INTO ops.route_hour_stats (route, hour, requests, errors, slow)"
                     " SELECT route, date_trunc('hour', minute), sum(requests), sum(errors), sum(slow)"
                     " FROM ops.route_minute_stats GROUP BY 1, 2 ORDER BY 2, 1")
        conn.execute("DELETE FROM ops.route_day_stats")
        conn.execute(
            "INSERT INTO ops.route_day_stats (route, day, requests, errors, slow)"
            " SELECT 'GET /r/' || r, date_bin('1 day', %s::timestamptz, '2000-01-01 00:00+00') - make_interval(days => d),"
            " 144000, CASE WHEN r %% 100 = 0 THEN 57600 ELSE (r %% 2) * 1440 END, 0"
            " FROM generate_series(4, 0, -1) d, generate_series(1, 1000) r", (end,))
        conn.execute("CREATE SCHEMA bench_before")
        conn.execute(_route_findings_before())
        for table in ("route_minute_stats", "route_5min_stats", "route_hour_stats", "route_day_stats"):
            conn.execute(f"VACUUM ANALYZE ops.{table}")
        # as release_guard runs it (0013 set these on the function; db/schema.sql sets them on route_findings too)
        conn.execute("SET jit = off")
        conn.execute("SET plan_cache_mode = force_custom_plan")
        # the server's CPU time too: on a busy machine wall times swing, CPU seconds much less
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        guard, before, after, failing = [], [], [], None
        cpu = {"before": 0.0, "after": 0.0}
        for k in range(31):
            at = NOW + timedelta(minutes=k, seconds=30)
            for label, sql, out in (
                ("before", "SELECT count(*) FROM bench_before.route_findings(%s)", before),
                ("after", "SELECT count(*) FROM ops.route_findings(%s)", after),
                ("guard", "SELECT ops.release_guard(%s)", guard),
            ):
                c0, t0 = cpu_seconds(backend), time.perf_counter()
                row = conn.execute(sql, (at,)).fetchone()[0]
                out.append((time.perf_counter() - t0) * 1000)
                if label == "guard":
                    failing = row
                else:
                    cpu[label] += cpu_seconds(backend) - c0
        by_incidents = _guard_by_incidents(conn, lambda: conn.execute("SELECT ops.release_guard(%s)", (GUARD_AT,)))
    p50_before, p50_after = statistics.median(before), statistics.median(after)
    guard.sort()
    few, many = statistics.median(by_incidents[GUARD_FEW]), statistics.median(by_incidents[GUARD_MANY])
    return [
        ("guard (SQL, 1,000 routes): 100 open critical incidents, p50 (ms)", f"{few:.1f}", ""),
        ("guard (SQL, 1,000 routes): 50k open critical incidents, p50 (ms)", f"{many:.1f}", ""),
        ("guard (SQL) ratio 50k / 100 incidents", f"{many / few:.2f}", "<= 2"),
        ("guard: 1,000 routes, 6 h of rollups + 3 days daily, p50 (ms)", f"{statistics.median(guard):.1f}", "<= 20"),
        ("guard: same, p95 (ms)", f"{guard[int(len(guard) * 0.95)]:.1f}", ""),
        ("guard: failing items found (10 routes at 40 % errors)", str(failing["failingCount"]), ""),
        ("route_findings p50, 0013 coarse windows (ms)", f"{p50_before:.1f}", ""),
        ("route_findings p50, current minute windows + ticket (ms)", f"{p50_after:.1f}", ""),
        ("ratio minute windows / coarse windows", f"{p50_after / p50_before:.2f}", "<= 1.25"),
        ("same ratio in server CPU time", f"{cpu['after'] / cpu['before']:.2f}", "<= 1.25"),
    ]


GUARD_FEW, GUARD_MANY = 100, 50_000
# the incidents are seen at GUARD_AT - 1 min, within guard_lookback_min of every evaluation
GUARD_AT = NOW + timedelta(minutes=30, seconds=30)


def _seed_guard_incidents(conn: psycopg.Connection, n: int, seen: datetime) -> None:
    """n open, unacknowledged critical incidents seen at `seen` (bulk, bypassing the row triggers)."""
    conn.execute("SET session_replication_role = replica")
    conn.execute("DELETE FROM ops.incidents")
    conn.execute("INSERT INTO ops.incidents (incident_key, route, status, severity, first_seen, last_seen)"
                 " SELECT 'GET /guard/' || g || '::x', 'GET /guard/' || g, 'open', 'critical', %s, %s"
                 " FROM generate_series(1, %s) AS g", (seen, seen, n))
    conn.execute("SET session_replication_role = origin")
    conn.execute("VACUUM ANALYZE ops.incidents")


def _guard_by_incidents(conn: psycopg.Connection, evaluate, seen: datetime | None = None,
                        rounds: int = 2, runs: int = 15) -> dict[int, list[float]]:
    """Wall ms of evaluate() with 100 and with 50k blocking incidents, in ABAB order so drift
    on a busy machine hits both alike; the first run after each re-seed is not counted."""
    times: dict[int, list[float]] = {GUARD_FEW: [], GUARD_MANY: []}
    for _ in range(rounds):
        for n in (GUARD_FEW, GUARD_MANY):
            _seed_guard_incidents(conn, n, seen or GUARD_AT - timedelta(minutes=1))
            evaluate()
            for _ in range(runs):
                t0 = time.perf_counter()
                evaluate()
                times[n].append((time.perf_counter() - t0) * 1000)
    return times


def bench_guard_http(cluster: Cluster) -> list[Figure]:
    """The guard through gunicorn, one client, one request at a time (latency, not throughput):
    unsigned GET /ops/release-guard beside a v1-signed POST /bench/select1 (a SELECT 1 through
    the same pool and signature check), then the guard with 100 and with 50k open critical
    incidents. No route rollups here: the incidents are all the guard has to read."""
    url = fresh_db(cluster, "bench_guard_http")
    port, secret = int(os.environ.get("OPSGUARD_BENCH_HTTP_PORT", "54395")), "bench-secret"
    server = start_api(url, port, secret)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    signed_at, sent = int(time.time()), [0]

    def guard() -> None:
        conn.request("GET", "/ops/release-guard")
        resp = conn.getresponse()
        resp.read()
        assert resp.status in (200, 409), resp.status

    def select1() -> None:
        sent[0] += 1
        body = json.dumps({"n": sent[0]}).encode()  # a signature of its own for each request
        headers = {"Content-Type": "application/json", **sign_v1(secret, "POST", "/bench/select1", body, signed_at)}
        conn.request("POST", "/bench/select1", body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status

    try:
        with psycopg.connect(url, autocommit=True) as db:
            _seed_guard_incidents(db, GUARD_FEW, datetime.now(UTC))
            bare, few = [], []
            for _ in range(3):  # alternate, so drift on a noisy machine hits both alike
                for fn, out in ((select1, bare), (guard, few)):
                    fn()
                    for _ in range(100):
                        t0 = time.perf_counter()
                        fn()
                        out.append((time.perf_counter() - t0) * 1000)
            by_n = _guard_by_incidents(db, guard, seen=datetime.now(UTC))
    finally:
        conn.close()
        server.terminate()
        server.wait(timeout=15)
    bare_p50, guard_p50 = statistics.median(bare), statistics.median(few)
    few_p50, many_p50 = statistics.median(by_n[GUARD_FEW]), statistics.median(by_n[GUARD_MANY])
    return [
        ("HTTP: bare signed SELECT 1, p50 (ms)", f"{bare_p50:.2f}", ""),
        ("HTTP: GET /ops/release-guard (100 incidents), p50 (ms)", f"{guard_p50:.2f}", ""),
        ("HTTP: guard / bare signed SELECT 1", f"{guard_p50 / bare_p50:.2f}", ""),
        ("HTTP: guard with 100 open critical incidents, p50 (ms)", f"{few_p50:.2f}", ""),
        ("HTTP: guard with 50k open critical incidents, p50 (ms)", f"{many_p50:.2f}", ""),
        ("HTTP: guard ratio 50k / 100 incidents", f"{many_p50 / few_p50:.2f}", "<= 2"),
    ]


ANON_CALLS, ANON_CAP_MB = 3_000, 1


def bench_guard_storage(cluster: Cluster) -> list[Figure]:
    """What anonymous callers can make the database keep: 3,000 unsigned evaluations, each its own
    transaction as over HTTP, each with a route prefix of its own (so each is stored), a caller and
    a 4 KiB webhook body of their own (random, as an abuser would send), under a 1 MB cap
    (guard_anonymous_history_mb): the anonymous bytes kept stay within it, whatever the calls."""
    url = fresh_db(cluster, "bench_guard_store")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT ops.set_setting('guard_anonymous_history_mb', %s, 'bench')", (str(ANON_CAP_MB),))
        _seed_guard_incidents(conn, GUARD_FEW, datetime.now(UTC))
        t0 = time.perf_counter()
        for i in range(ANON_CALLS):
            context = {"webhook": {"name": f"canary-{i}", "pad": secrets.token_hex(2048)}}
            conn.execute("SELECT ops.release_guard(now(), %s, %s, %s, p_anonymous => true)",
                         (f"GET /anon/{i}", f"anon-{secrets.token_hex(16)}", Jsonb(context)))
        per_call = (time.perf_counter() - t0) / ANON_CALLS * 1000
        rows, kept = conn.execute("SELECT count(*), (SELECT bytes FROM ops.guard_anonymous_usage)"
                                  " FROM ops.guard_evaluations").fetchone()
    return [
        (f"{ANON_CALLS:,} anonymous evaluations under a {ANON_CAP_MB} MB cap: rows, bytes kept", f"{rows:,}, {kept:,}", ""),
        ("anonymous bytes kept / cap", f"{kept / (ANON_CAP_MB * 1048576):.2f}", "<= 1"),
        ("anonymous guard call, stored and trimmed, mean (ms)", f"{per_call:.2f}", ""),
    ]
