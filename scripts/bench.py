"""`make bench`: opsguard's speed figures, measured side by side in one run on a
throwaway cluster, printed as a table of figures, goals and ratios.

Escalation tick:
  - tick time with 1,000 due incidents among 10k and among 1M (the cost follows the due
    rows, not the table: goal ratio <= 1.5), and the plan's use of the next_due_at index;
  - escalations per second in one tick with 10k due (goal >= 10k/s).
Each tick runs in a transaction that is rolled back, so every repetition sees the same rows.

HTTP API (gunicorn with the shipped config, wrk as the load):
  - the ack endpoint's throughput and p99 beside a bare signed endpoint that only runs
    SELECT 1 through the same pool and signature check (goal: ratio >= 0.7); both signed v1,
    each request with a signature of its own (an ack's is also remembered against replays);
  - request-metrics ingest through POST /ops/metrics/requests, samples per second (goal
    >= 200k/s), beside a raw COPY of the same samples into a plain table (goal >= 0.5 of it).

Alert intake: PagerDuty Events API v2 triggers (POST /v2/enqueue, each a new dedup_key, so each
opens an incident) per second through gunicorn, beside the bare signed SELECT 1 endpoint in the
same run (goal: ratio >= 0.7). `bench.py events_v2` runs this part alone.

Release guard: ops.release_guard() over 1,000 routes x 6 hours of rollups and 4 days of daily
rollups (p50 <= 20 ms); ops.route_findings with minute-exact windows (0022) beside the
coarse-window body of 0013 on the same data (goal: ratio <= 1.25). Bounds (0022): guard p50 with
50k open critical incidents beside 100 on the same routes (goal: ratio <= 2), in SQL and over HTTP
(gunicorn, unsigned GET /ops/release-guard beside a signed SELECT 1 through the same stack), and
what 1,000 anonymous evaluations (a 4 KiB webhook body each) store: rows and bytes, 0021 beside
0022. `bench.py guard` runs this part alone.

Heartbeats (0030): a tick with 10k heartbeats none of which is due beside a tick with none
(goal: ratio <= 1.5, the heartbeats_due index keeps the missed-heartbeat check to the due rows),
and a tick with 100 of 10k due. `bench.py heartbeats` runs this part alone.

Escalation policies (0033): the tick with 10k due, every incident on a three-step policy whose
steps each page a schedule, beside the same tick without policies, interleaved (goal: ratio <= 1.5).
`bench.py tick_policies` runs this part alone.

Alert intake: an Alertmanager notification of 100 alerts in one group beside one of a single
alert, POST /ops/integrations/alertmanager through gunicorn, one request at a time, p50 of each
(goal: ratio <= 2). `bench.py alertmanager` runs this part alone.

Notifications: messages per second the shipped dispatcher (default settings) delivers to a
local webhook (scripts/fake_slack.py in its own process), 10k queued at once (goal >= 1,000/s).

On-call (0032): ops.on_call for a schedule whose first handoff was five years ago, with 10,000 past
overrides, beside one created yesterday with the same layers; many calls each, interleaved, p50 of
each call from the client (goal: ratio <= 1.2) and 1,000 calls inside one query (in SQL). `bench.py
oncall` runs this part alone.

Slow clients: scripts/bench_slow_clients.py (`bench.py slow_clients` runs it alone).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bench_slow_clients
import psycopg
from localpg import REPO, Cluster, make_temp_datadir
from opsguard.migrate import MIGRATIONS, apply, yoyo_url
from psycopg.types.json import Jsonb
from yoyo import get_backend, read_migrations

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
REPEAT = 7


def seed(conn: psycopg.Connection, total: int, due: int) -> None:
    """total incidents: `due` overdue, 5% open but not yet due, the rest resolved.

    Bulk rows bypass the row triggers (session_replication_role) and carry the
    next_due_at the trigger would give them; recalc checks that below."""
    conn.execute("TRUNCATE ops.notification_attempts, ops.notification_outbox, ops.tick_log")
    conn.execute("SET session_replication_role = replica")
    conn.execute("DELETE FROM ops.incidents")
    not_due = total // 20
    conn.execute(
        """
        INSERT INTO ops.incidents (incident_key, route, status, severity, escalation_level, first_seen, last_seen,
                                   resolved_at, resolved_by, next_due_at)
        SELECT 'GET /bench/' || g || '::slo_violation', 'GET /bench/' || g,
               CASE WHEN g <= %(due)s + %(not_due)s THEN 'open' ELSE 'resolved' END,
               'critical', 0,
               CASE WHEN g <= %(due)s THEN %(now)s::timestamptz - interval '10 minutes'
                    ELSE %(now)s::timestamptz - interval '2 minutes' END,
               %(now)s,
               CASE WHEN g > %(due)s + %(not_due)s THEN %(now)s END,
               CASE WHEN g > %(due)s + %(not_due)s THEN 'bench' END,
               CASE WHEN g <= %(due)s THEN %(now)s::timestamptz - interval '5 minutes'
                    WHEN g <= %(due)s + %(not_due)s THEN %(now)s::timestamptz + interval '3 minutes' END
        FROM generate_series(1, %(total)s) AS g
        """,
        {"due": due, "not_due": not_due, "total": total, "now": NOW},
    )
    conn.execute("SET session_replication_role = origin")
    conn.execute("VACUUM ANALYZE ops.incidents")
    drift = conn.execute("SELECT ops.recalc_next_due()").fetchone()[0]
    assert drift == 0, f"bench seed disagrees with the trigger on {drift} rows"


def time_tick(conn: psycopg.Connection, expect: int) -> tuple[float, float]:
    """Median wall ms of one tick (client side) and of the function's own escalation_tick_ms."""
    walls, inner = [], []
    for _ in range(REPEAT):
        # every repetition starts from the same state: the rolled-back one before it left
        # dead rows, which autovacuum would otherwise clean up while the next is timed
        # (no CHECKPOINT here: after one, each first page write pays a full-page image)
        conn.execute("VACUUM ops.incidents, ops.escalation_events, ops.notification_outbox, ops.audit_log, ops.tick_log")
        with conn.transaction(force_rollback=True):
            t0 = time.perf_counter()
            summary = conn.execute("SELECT ops.escalation_tick(%s)", (NOW,)).fetchone()[0]
            walls.append((time.perf_counter() - t0) * 1000)
        assert summary["escalationsCount"] == expect, summary
        inner.append(float(summary["escalationTickMs"]))
    return statistics.median(walls), statistics.median(inner)


def claim_plan(conn: psycopg.Connection) -> str:
    rows = conn.execute(
        "EXPLAIN SELECT id FROM ops.incidents WHERE next_due_at <= %s ORDER BY next_due_at LIMIT 10000"
        " FOR UPDATE SKIP LOCKED",
        (NOW,),
    ).fetchall()
    return " / ".join(r[0].strip() for r in rows)


def sign_v1(secret: str, method: str, target: str, body: bytes, ts: int) -> dict[str, str]:
    """The headers every client sends (SPEC §7 v1)."""
    mac = hmac.new(secret.encode(), f"v1:{ts}:{method}:{target}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Timestamp": str(ts), "X-Signature": f"v1={mac}"}


WRK_THREADS = 2
# wrk cannot compute an HMAC, so the signed requests are made beforehand: thread t sends
# lines t, t + threads, ... of the file, each once (a write's signature is accepted once)
WRK_SCRIPT = """
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  reqs, n = {}, 0
  local i = 0
  for line in io.lines("%(file)s") do
    if i %% %(threads)d == tid then
      local path, ts, sig = line:match("^(%%S+) (%%S+) (%%S+)$")
      reqs[#reqs + 1] = wrk.format("POST", path,
        {["Content-Type"] = "application/json", ["X-Timestamp"] = ts, ["X-Signature"] = sig}, "{}")
    end
    i = i + 1
  end
end
function request()
  n = n + 1
  return reqs[(n - 1) %% #reqs + 1]
end
"""


def _wrk(base: str, paths: list[str], secret: str, seconds: int, requests: int = 100_000) -> tuple[float, float]:
    """Requests per second and p99 latency in ms for v1-signed POSTs of {} spread over paths,
    each signature distinct (a timestamp a second earlier per round over the paths)."""
    with tempfile.TemporaryDirectory() as tmp:
        data, script = Path(tmp, "requests.txt"), Path(tmp, "bench.lua")
        now = int(time.time())
        with data.open("w") as f:
            for i in range(requests):
                path = paths[i % len(paths)]
                h = sign_v1(secret, "POST", path, b"{}", now - i // len(paths) % 240)
                f.write(f"{path} {h['X-Timestamp']} {h['X-Signature']}\n")
        script.write_text(WRK_SCRIPT % {"file": data, "threads": WRK_THREADS})
        out = subprocess.run(["wrk", f"-t{WRK_THREADS}", "-c16", f"-d{seconds}s", "--latency", "-s", str(script), base],
                             capture_output=True, text=True, check=True).stdout
    assert "Non-2xx" not in out, out
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    assert rps * seconds < requests, f"wrk sent more requests than were signed: {out}"
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    return rps, float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


INGEST_BATCH = 5_000
INGEST_BATCHES = 60


def _ingest_batches() -> list[list[dict]]:
    """300k samples over 200 routes in the last minutes, ~2 % errors."""
    base = datetime.now(UTC).replace(microsecond=0)
    return [[{"route": f"GET /ingest/{(b * INGEST_BATCH + i) % 200}", "status": 500 if i % 50 == 0 else 200,
              "latency_ms": (i % 300) + 0.5, "at": (base - timedelta(seconds=i % 240)).isoformat()}
             for i in range(INGEST_BATCH)] for b in range(INGEST_BATCHES)]


def bench_ingest(base: str, secret: str, url: str) -> tuple[float, float]:
    """Samples per second through the HTTP batch endpoint (2 clients), and through a raw COPY."""
    batches = [json.dumps(b).encode() for b in _ingest_batches()]

    signed_at = int(time.time())

    def post(numbered: tuple[int, bytes]) -> None:
        # the batches are alike: each is signed a second apart, or the same signature would be a replay
        n, body = numbered
        sig = sign_v1(secret, "POST", "/ops/metrics/requests", body, signed_at - n)
        req = urllib.request.Request(base + "/ops/metrics/requests", data=body, method="POST",  # noqa: S310
                                     headers={"Content-Type": "application/json", **sig})
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - our own loopback server
            assert json.loads(resp.read())["accepted"] == INGEST_BATCH

    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(post, enumerate(batches)))
    api_rate = INGEST_BATCH * INGEST_BATCHES / (time.perf_counter() - t0)

    rows = [(s["route"], s["status"], s["latency_ms"], s["at"]) for b in _ingest_batches() for s in b]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE raw_samples (route text, status int, latency_ms numeric, at timestamptz)")
        t0 = time.perf_counter()
        with conn.cursor().copy("COPY raw_samples (route, status, latency_ms, at) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        copy_rate = len(rows) / (time.perf_counter() - t0)
    return api_rate, copy_rate


def _route_findings_before() -> str:
    """ops.route_findings as 0013 defined it (hour- and 5-minute-grained windows), renamed into
    schema bench_before: the baseline the sliding windows (0022) are measured against, same data."""
    src = (REPO / "db" / "migrations" / "0013_release_guard.sql").read_text()
    start = src.index("CREATE FUNCTION ops.route_findings(")
    body = src[start:src.index("COMMENT ON FUNCTION ops.route_findings", start)]
    return body.replace("CREATE FUNCTION ops.route_findings(", "CREATE FUNCTION bench_before.route_findings(", 1)


def bench_guard(cluster: Cluster) -> list[tuple[str, str, str]]:
    """1,000 routes, rollups as ingest writes them (time order): minutes, 5-minute buckets and
    hours for the last 6 h 30 min (all either body reads at those grains) and 4 UTC days of daily
    rollups (the 3-day ticket window). Evaluated at 31 successive minutes, so every position of
    p_now in its 5-minute bucket and hour is in the mix; old and new bodies alternate."""
    cluster.psql("postgres", "CREATE DATABASE bench_guard")
    url = cluster.url("bench_guard")
    apply(url)
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
        # as release_guard runs it (0013 set these on the function; 0022 sets them on route_findings too)
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
                c0, t0 = _cpu_seconds(backend), time.perf_counter()
                row = conn.execute(sql, (at,)).fetchone()[0]
                out.append((time.perf_counter() - t0) * 1000)
                if label == "guard":
                    failing = row
                else:
                    cpu[label] += _cpu_seconds(backend) - c0
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
        ("route_findings p50, 0022 minute windows + ticket (ms)", f"{p50_after:.1f}", ""),
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


def _cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a (local) server process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_api(url: str, port: int, secret: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "OPS_HMAC_SECRET": secret, "PORT": str(port),
           "RATELIMIT_ENABLED": "false", "OPS_BENCH_ENDPOINTS": "1", "OPS_ACCESS_LOG": "",
           "PYTHONPATH": str(REPO / "api")}
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(REPO / "api/gunicorn.conf.py"),
                               "opsguard.app:create_app()"], env=env)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)  # noqa: S310 - our own loopback server
            break
        except urllib.error.HTTPError:  # answering (503 names what is unhealthy): up
            break
        except OSError:
            time.sleep(0.2)
    return server


def bench_guard_http(cluster: Cluster) -> list[tuple[str, str, str]]:
    """The guard through gunicorn, one client, one request at a time (latency, not throughput):
    unsigned GET /ops/release-guard beside a v1-signed POST /bench/select1 (a SELECT 1 through
    the same pool and signature check), then the guard with 100 and with 50k open critical
    incidents. No route rollups here: the incidents are all the guard has to read."""
    cluster.psql("postgres", "CREATE DATABASE bench_guard_http")
    url = cluster.url("bench_guard_http")
    apply(url)
    port, secret = int(os.environ.get("OPSGUARD_BENCH_HTTP_PORT", "54395")), "bench-secret"
    server = _start_api(url, port, secret)
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


def _rollback_guard_bounds(url: str) -> None:
    """Back to the schema before 0022 (and anything after it): the guard as 0021 stored evaluations."""
    backend = get_backend(yoyo_url(url))
    migrations = read_migrations(str(MIGRATIONS))
    ids = [m.id for m in migrations]
    first = next(i for i, mid in enumerate(ids) if mid.endswith("_guard_bounds"))
    with backend.lock():
        for m in reversed(list(migrations)[first:]):
            backend.rollback_one(m)


def bench_guard_storage(cluster: Cluster) -> list[tuple[str, str, str]]:
    """1,000 anonymous evaluations, each its own transaction as over HTTP, with a caller and a
    4 KiB webhook body of their own (random, as an abuser would send), 100 open critical
    incidents: rows and bytes guard_evaluations grows by, the 0021 guard beside 0022."""
    rows = []
    for label, db in (("0021", "bench_store_old"), ("0022", "bench_store_new")):
        cluster.psql("postgres", f"CREATE DATABASE {db}")
        url = cluster.url(db)
        apply(url)
        if label == "0021":
            _rollback_guard_bounds(url)
        with psycopg.connect(url, autocommit=True) as conn:
            _seed_guard_incidents(conn, GUARD_FEW, datetime.now(UTC))
            n0, b0 = conn.execute("SELECT count(*), pg_total_relation_size('ops.guard_evaluations')"
                                  " FROM ops.guard_evaluations").fetchone()
            for i in range(1000):
                context = {"webhook": {"name": f"canary-{i}", "pad": secrets.token_hex(2048)}}
                conn.execute("SELECT ops.release_guard(now(), NULL, %s, %s)",
                             (f"anon-{secrets.token_hex(16)}", Jsonb(context)))
            n1, b1 = conn.execute("SELECT count(*), pg_total_relation_size('ops.guard_evaluations')"
                                  " FROM ops.guard_evaluations").fetchone()
        rows.append((f"1,000 anonymous evaluations, {label}: rows, bytes added", f"{n1 - n0:,}, {b1 - b0:,}", ""))
    return rows


def bench_api(cluster: Cluster) -> list[tuple[str, str, str]]:
    cluster.psql("postgres", "CREATE DATABASE bench_api")
    url = cluster.url("bench_api")
    apply(url)
    with psycopg.connect(url, autocommit=True) as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT (ops.trigger_incident('GET /api/' || g || '::x', 'critical')).id FROM generate_series(1, 5000) g")]
    port, secret = 54393, "bench-secret"
    env = {**os.environ, "DATABASE_URL": url, "OPS_HMAC_SECRET": secret, "PORT": str(port),
           "RATELIMIT_ENABLED": "false", "OPS_BENCH_ENDPOINTS": "1", "OPS_ACCESS_LOG": "",
           "PYTHONPATH": str(REPO / "api")}
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(REPO / "api/gunicorn.conf.py"),
                               "opsguard.app:create_app()"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)  # noqa: S310 - our own loopback server
                break
            except urllib.error.HTTPError:  # answering (503 names what is unhealthy): up
                break
            except OSError:
                time.sleep(0.2)
        ack_paths = [f"/ops/incidents/{i}/ack" for i in ids]
        bare, ack = [], []
        for _ in range(3):  # alternate, so drift on a noisy machine hits both alike
            bare.append(_wrk(base, ["/bench/select1"], secret, 6))
            ack.append(_wrk(base, ack_paths, secret, 6))
        ingest_rate, copy_rate = bench_ingest(base, secret, url)
    finally:
        server.terminate()
        server.wait(timeout=15)
    bare_rps, bare_p99 = statistics.median(r for r, _ in bare), statistics.median(p for _, p in bare)
    ack_rps, ack_p99 = statistics.median(r for r, _ in ack), statistics.median(p for _, p in ack)
    return [
        ("API: bare signed SELECT 1 (req/s, p99 ms)", f"{bare_rps:,.0f}, p99 {bare_p99:.1f}", ""),
        ("API: POST /ops/incidents/<id>/ack (req/s, p99 ms)", f"{ack_rps:,.0f}, p99 {ack_p99:.1f}", ""),
        ("API: ack / bare throughput", f"{ack_rps / bare_rps:.2f}", ">= 0.7"),
        ("ingest: POST /ops/metrics/requests (samples/s)", f"{ingest_rate:,.0f}", ">= 200,000"),
        ("ingest: raw COPY of the same samples (samples/s)", f"{copy_rate:,.0f}", ""),
        ("ingest: endpoint / COPY", f"{ingest_rate / copy_rate:.2f}", ">= 0.5"),
    ]


EVENTS_V2_SCRIPT = """
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  n = 0
end
function request()
  n = n + 1
  local dedup = %(dedup)s
  local body = string.format('{"routing_key": "%(key)s", "event_action": "%(action)s", "dedup_key": "%%s", '
    .. '"payload": {"summary": "disk full on db-%%d", "source": "db-%%d", "severity": "critical", '
    .. '"component": "postgres", "custom_details": {"free": "0%%%%", "n": %%d}}, '
    .. '"links": [{"href": "https://runbooks.example/disk", "text": "runbook"}]}', dedup, n, n, n)
  return wrk.format("POST", "/v2/enqueue", {["Content-Type"] = "application/json"}, body)
end
"""


EVENTS_V2_REFRESHED = 500


def _wrk_events_v2(base: str, key: str, run: str | None, seconds: int, action: str = "trigger") -> tuple[float, float]:
    """Events per second and p99 ms. With a run name every request has a new dedup_key (a
    trigger opens an incident, audited); without, the requests cycle over EVENTS_V2_REFRESHED open
    incidents (refreshed, as Alertmanager repeats a firing group). action="resolve" with a run
    name resolves nothing: the endpoint's own cost (parse, key, validation) without a write."""
    dedup = (f'string.format("{run}-%d-%d", tid, n)' if run
             else f'string.format("open-%d", (n * 2 + tid) % {EVENTS_V2_REFRESHED})')
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp, "events.lua")
        script.write_text(EVENTS_V2_SCRIPT % {"key": key, "dedup": dedup, "action": action})
        out = subprocess.run(["wrk", f"-t{WRK_THREADS}", "-c16", f"-d{seconds}s", "--latency", "-s", str(script), base],
                             capture_output=True, text=True, check=True).stdout
    assert "Non-2xx" not in out, out
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    return rps, float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def bench_events_v2(cluster: Cluster) -> list[tuple[str, str, str]]:
    """POST /v2/enqueue triggers (new incidents, and refreshes of open ones) beside the bare signed
    SELECT 1, alternating, through one gunicorn; the signed ack (the other write through the same
    incident triggers and audit) in the same rounds, for reference."""
    cluster.psql("postgres", "CREATE DATABASE bench_events_v2")
    url = cluster.url("bench_events_v2")
    apply(url)
    with psycopg.connect(url, autocommit=True) as conn:
        key = conn.execute("SELECT ops.create_integration_key('bench-pd', 'events_v2', 'bench')").fetchone()[0]
        conn.execute("SELECT ops.api_events_v2(jsonb_build_object('routing_key', %s::text, 'event_action', 'trigger',"
                     " 'dedup_key', 'open-' || g, 'payload', jsonb_build_object('summary', 'disk full', 'source', 'db',"
                     " 'severity', 'critical'))) FROM generate_series(0, %s - 1) g", (key, EVENTS_V2_REFRESHED))
        ids = [r[0] for r in conn.execute(
            "SELECT (ops.trigger_incident('GET /api/' || g || '::x', 'critical')).id FROM generate_series(1, 5000) g")]
    port, secret = int(os.environ.get("OPSGUARD_BENCH_EVENTS_PORT", "54396")), "bench-secret"
    server = _start_api(url, port, secret)
    base = f"http://127.0.0.1:{port}"
    try:
        bare, events, refresh, ack, noop = [], [], [], [], []
        ack_paths = [f"/ops/incidents/{i}/ack" for i in ids]
        for run in range(3):  # alternate, so drift on a noisy machine hits all alike
            bare.append(_wrk(base, ["/bench/select1"], secret, 6))
            events.append(_wrk_events_v2(base, key, f"run{run}", 6))
            refresh.append(_wrk_events_v2(base, key, None, 6))
            ack.append(_wrk(base, ack_paths, secret, 6))
            noop.append(_wrk_events_v2(base, key, f"none{run}", 6, action="resolve"))
        with psycopg.connect(url, autocommit=True) as conn:
            opened = conn.execute("SELECT count(*) FROM ops.incidents WHERE incident_key LIKE 'events_v2:%'").fetchone()[0]
    finally:
        server.terminate()
        server.wait(timeout=15)
    bare_rps, bare_p99 = statistics.median(r for r, _ in bare), statistics.median(p for _, p in bare)
    ev_rps, ev_p99 = statistics.median(r for r, _ in events), statistics.median(p for _, p in events)
    re_rps, re_p99 = statistics.median(r for r, _ in refresh), statistics.median(p for _, p in refresh)
    ack_rps, ack_p99 = statistics.median(r for r, _ in ack), statistics.median(p for _, p in ack)
    noop_rps, noop_p99 = statistics.median(r for r, _ in noop), statistics.median(p for _, p in noop)
    return [
        ("API: bare signed SELECT 1 (req/s, p99 ms)", f"{bare_rps:,.0f}, p99 {bare_p99:.1f}", ""),
        ("API: POST /v2/enqueue triggers, each a new incident (req/s, p99 ms)", f"{ev_rps:,.0f}, p99 {ev_p99:.1f}", ""),
        ("API: POST /v2/enqueue triggers refreshing open incidents (req/s, p99 ms)",
         f"{re_rps:,.0f}, p99 {re_p99:.1f}", ""),
        ("API: POST /ops/incidents/<id>/ack, same rounds (req/s, p99 ms)", f"{ack_rps:,.0f}, p99 {ack_p99:.1f}", ""),
        ("API: Events API v2 trigger (new) / bare throughput", f"{ev_rps / bare_rps:.2f}", ">= 0.7"),
        ("API: Events API v2 trigger (refresh) / bare throughput", f"{re_rps / bare_rps:.2f}", ">= 0.7"),
        ("API: ack / bare throughput, same rounds", f"{ack_rps / bare_rps:.2f}", ""),
        ("API: /v2/enqueue resolve of nothing open, no write (/ bare, p99 ms)",
         f"{noop_rps / bare_rps:.2f}, p99 {noop_p99:.1f}", ""),
        ("Events API v2: incidents opened during the runs", f"{opened:,}", ""),
    ]


DISPATCH_MESSAGES = 10_000


def _am_notification(group: str, n: int) -> bytes:
    """An Alertmanager webhook payload (version 4) of n typical alerts in one group."""
    alerts = [{
        "status": "firing",
        "labels": {"alertname": group, "instance": f"node-{i:03d}:9100", "job": "node", "service": "db",
                   "severity": "critical" if i % 10 == 0 else "warning"},
        "annotations": {"summary": "disk almost full", "description": f"node-{i:03d} has less than 5% disk left"},
        "startsAt": "2026-12-01T10:00:00.000Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=node_filesystem_avail_bytes+%3C+0.05",
        "fingerprint": f"{i:016x}",
    } for i in range(n)]
    return json.dumps({
        "receiver": "opsguard", "status": "firing", "alerts": alerts, "groupLabels": {"alertname": group},
        "commonLabels": {"alertname": group, "job": "node", "service": "db"},
        "commonAnnotations": {"summary": "disk almost full"}, "externalURL": "http://alertmanager:9093",
        "version": "4", "groupKey": f'{{}}:{{alertname="{group}"}}', "truncatedAlerts": 0,
    }).encode()


def bench_alertmanager(cluster: Cluster) -> list[tuple[str, str, str]]:
    """POST /ops/integrations/alertmanager through gunicorn, one client, one request at a time:
    a notification of 100 alerts in one group beside one of a single alert, alternated so drift
    hits both alike. Each repeat refreshes its group incident, as Alertmanager's repeats do."""
    cluster.psql("postgres", "CREATE DATABASE bench_alertmanager")
    url = cluster.url("bench_alertmanager")
    apply(url)
    with psycopg.connect(url, autocommit=True) as db:
        token = db.execute("SELECT ops.create_integration_key('bench', 'alertmanager', 'bench')").fetchone()[0]
    port = int(os.environ.get("OPSGUARD_BENCH_AM_PORT", "54397"))
    server = _start_api(url, port, "bench-secret")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    bodies = {1: _am_notification("One", 1), 100: _am_notification("Hundred", 100)}
    times: dict[int, list[float]] = {1: [], 100: []}

    def send(n: int) -> None:
        conn.request("POST", "/ops/integrations/alertmanager", body=bodies[n], headers=headers)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status

    try:
        # 12 short blocks of each size in turn (3 of 100 let one burst of noise on this shared
        # machine move one median alone: 1.71 to 2.20 in a row); each block starts with an
        # untimed request, which absorbs what the other size left behind after its answer (its
        # parsed body freed), so neither size is charged for the other
        for _ in range(12):
            for n in (1, 100):
                send(n)
                for _ in range(25):
                    t0 = time.perf_counter()
                    send(n)
                    times[n].append((time.perf_counter() - t0) * 1000)
    finally:
        conn.close()
        server.terminate()
        server.wait(timeout=15)
    one, hundred = statistics.median(times[1]), statistics.median(times[100])
    return [
        ("HTTP: Alertmanager notification, 1 alert, p50 (ms)", f"{one:.2f} ({len(bodies[1])} B)", ""),
        ("HTTP: Alertmanager notification, 100 alerts in one group, p50 (ms)",
         f"{hundred:.2f} ({len(bodies[100]):,} B)", ""),
        ("HTTP: Alertmanager ratio 100 alerts / 1", f"{hundred / one:.2f}", "<= 2"),
    ]


def bench_dispatch(cluster: Cluster) -> list[tuple[str, str, str]]:
    cluster.psql("postgres", "CREATE DATABASE bench_dispatch")
    url = cluster.url("bench_dispatch")
    apply(url)
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'api'}:{REPO / 'scripts'}"}
    slack = subprocess.Popen([sys.executable, str(REPO / "scripts/fake_slack.py"), "--port", "54394", "--quiet"], env=env)
    dispatcher = subprocess.Popen([sys.executable, "-m", "opsguard.dispatcher", "--dsn", url], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rates = []
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT ops.set_setting('slack_webhook_url', 'http://127.0.0.1:54394/services/bench', 'bench')")
            conn.execute("SELECT ops.set_setting('tick_batch_max', '20000', 'bench')")
            conn.execute("SELECT ops.trigger_incident('GET /n/' || g || '::x', 'critical', NULL, NULL, 'bench',"
                         " now() - interval '1 hour') FROM generate_series(1, %s) g", (DISPATCH_MESSAGES,))
            conn.execute("SELECT ops.set_setting('notify_paused', 'true', 'bench')")
            conn.execute("SELECT ops.escalation_tick()")
            for _ in range(3):
                conn.execute("UPDATE ops.notification_outbox SET status = 'pending', attempts = 0, next_attempt_at = now()")
                conn.execute("SELECT ops.set_setting('notify_paused', 'false', 'bench')")
                t0 = time.perf_counter()
                conn.execute("NOTIFY ops_outbox")
                while conn.execute("SELECT sent FROM ops.notification_stats").fetchone()[0] < DISPATCH_MESSAGES:
                    assert dispatcher.poll() is None, "the dispatcher stopped"
                    time.sleep(0.01)
                rates.append(DISPATCH_MESSAGES / (time.perf_counter() - t0))
                conn.execute("SELECT ops.set_setting('notify_paused', 'true', 'bench')")
    finally:
        for proc in (dispatcher, slack):
            proc.terminate()
            proc.wait(timeout=15)
    return [("dispatcher: messages delivered to a local webhook (/s)", f"{statistics.median(rates):,.0f}", ">= 1,000")]


def _seed_heartbeats(conn: psycopg.Connection, total: int, due: int) -> None:
    """total heartbeats every 5 minutes, `due` of them silent past their due_at (bulk rows skip
    the audit trigger, as seed() does for incidents)."""
    conn.execute("SET session_replication_role = replica")
    conn.execute("DELETE FROM ops.heartbeats")
    conn.execute(
        "INSERT INTO ops.heartbeats (name, ping_interval, route, due_at, last_ping_at, created_by, updated_by)"
        " SELECT 'hb-' || g, interval '5 minutes', 'bench', %(now)s::timestamptz"
        "  + CASE WHEN g <= %(due)s THEN interval '-1 minute' ELSE interval '4 minutes' END,"
        "  %(now)s::timestamptz - interval '1 minute', 'bench', 'bench'"
        " FROM generate_series(1, %(total)s) g", {"now": NOW, "total": total, "due": due})
    conn.execute("SET session_replication_role = DEFAULT")
    conn.execute("ANALYZE ops.heartbeats")


def _time_heartbeat_tick(conn: psycopg.Connection, missed: int, repeat: int = 41) -> float:
    """Median wall ms of one tick with no incidents due, rolled back each time."""
    walls = []
    for _ in range(repeat):
        with conn.transaction(force_rollback=True):
            t0 = time.perf_counter()
            summary = conn.execute("SELECT ops.escalation_tick(%s)", (NOW,)).fetchone()[0]
            walls.append((time.perf_counter() - t0) * 1000)
        assert summary.get("heartbeatsMissed", 0) == missed and summary["due"] == 0, summary
    return statistics.median(walls)


def bench_heartbeats(cluster: Cluster) -> list[tuple[str, str, str]]:
    """0 against 10k not-due heartbeats, interleaved so drift hits both alike."""
    cluster.psql("postgres", "CREATE DATABASE bench_heartbeats")
    url = cluster.url("bench_heartbeats")
    apply(url)
    with psycopg.connect(url, autocommit=True) as conn:
        none, tenk = [], []
        for _ in range(5):
            _seed_heartbeats(conn, 0, 0)
            none.append(_time_heartbeat_tick(conn, 0))
            _seed_heartbeats(conn, 10_000, 0)
            tenk.append(_time_heartbeat_tick(conn, 0))
        plan = " / ".join(r[0].strip() for r in conn.execute(
            "EXPLAIN SELECT name FROM ops.heartbeats WHERE due_at <= %s ORDER BY due_at LIMIT 10000"
            " FOR UPDATE SKIP LOCKED", (NOW,)).fetchall())
        _seed_heartbeats(conn, 10_000, 100)
        hundred = _time_heartbeat_tick(conn, 100, repeat=REPEAT)
    zero_ms, tenk_ms = statistics.median(none), statistics.median(tenk)
    return [
        ("tick, 0 heartbeats (ms)", f"{zero_ms:.2f}", ""),
        ("tick, 10k heartbeats none due (ms)", f"{tenk_ms:.2f}", ""),
        ("ratio 10k not due / 0", f"{tenk_ms / zero_ms:.2f}", "<= 1.5"),
        ("heartbeat check uses heartbeats_due index", "yes" if "heartbeats_due" in plan else f"NO: {plan}", "yes"),
        ("tick, 100 of 10k heartbeats missed (ms)", f"{hundred:.1f}", ""),
    ]


def _seed_policies(conn: psycopg.Connection) -> None:
    """Three schedules of three principals each (all linked to Slack users), a three-step policy
    whose steps page them, and every due route of seed() mapped to it."""
    for i in range(1, 10):
        conn.execute("SELECT ops.add_principal(%s, 'human', '{ops_responder}', 'bench')", (f"oncall{i}",))
        conn.execute("SELECT ops.link_chat_identity('slack', 'T1', %s, %s, 'bench')", (f"U{i:03}", f"oncall{i}"))
    conn.execute("SELECT ops.create_policy('three', 'bench')")
    for s in range(1, 4):
        conn.execute("SELECT ops.create_schedule(%s, 'Europe/Berlin', 'bench')", (f"sched{s}",))
        conn.execute("SELECT ops.add_rotation(%s, 'days', '1 day', '2026-01-05 09:00+01', %s, 'bench')",
                     (f"sched{s}", [f"oncall{3 * s - 2}", f"oncall{3 * s - 1}", f"oncall{3 * s}"]))
        conn.execute("SELECT ops.add_policy_step('three', %s, %s, 'bench')",
                     (s, Jsonb([{"schedule": f"sched{s}"}])))
    conn.execute("INSERT INTO ops.route_policies (route, policy, updated_by) "
                 "SELECT route, 'three', 'bench' FROM ops.incidents WHERE next_due_at <= %s", (NOW,))
    conn.execute("VACUUM ANALYZE ops.route_policies")


def _time_policy_tick(conn: psycopg.Connection, expect: int, paged: int) -> float:
    """Wall ms of one 10k tick, rolled back."""
    conn.execute("VACUUM ops.incidents, ops.escalation_events, ops.notification_outbox, ops.audit_log, ops.tick_log")
    with conn.transaction(force_rollback=True):
        t0 = time.perf_counter()
        summary = conn.execute("SELECT ops.escalation_tick(%s)", (NOW,)).fetchone()[0]
        wall = (time.perf_counter() - t0) * 1000
        got = conn.execute("SELECT count(*) FROM ops.escalation_events WHERE targets IS NOT NULL").fetchone()[0]
    assert summary["escalationsCount"] == expect and got == paged, (summary, got)
    return wall


def bench_tick_policies(cluster: Cluster) -> list[tuple[str, str, str]]:
    """The 10k-due tick with every incident on a three-step policy (each step a schedule) beside
    the same tick without policies (0033): two databases seeded alike, one with the policy and
    the route mappings, timed in turn so drift hits both alike."""
    urls = {}
    for name in ("bench_policies_off", "bench_policies_on"):
        cluster.psql("postgres", f"CREATE DATABASE {name}")
        urls[name] = cluster.url(name)
        apply(urls[name])
    with psycopg.connect(urls["bench_policies_off"], autocommit=True) as off, \
            psycopg.connect(urls["bench_policies_on"], autocommit=True) as on:
        for conn in (off, on):
            conn.execute("SELECT ops.set_setting('tick_batch_max', '20000', 'bench')")
            seed(conn, 100_000, 10_000)
        _seed_policies(on)
        without, with_ = [], []
        for _ in range(REPEAT + 1):
            without.append(_time_policy_tick(off, 10_000, 0))
            with_.append(_time_policy_tick(on, 10_000, 10_000))
    # the first of each warms the caches
    w, p = statistics.median(without[1:]), statistics.median(with_[1:])
    return [
        ("tick with 10k due, no policies (ms)", f"{w:.1f}", ""),
        ("tick with 10k due, 3-step schedule policy (ms)", f"{p:.1f}", ""),
        ("ratio policies / none", f"{p / w:.2f}", "<= 1.5"),
    ]


def _seed_oncall(conn: psycopg.Connection) -> None:
    """Two schedules with the same three layers (weekly, business hours, 12-hour nights): 'old' handed off
    first five years ago and has 10,000 past one-hour overrides (bulk rows skip the audit trigger), 'new'
    was set up yesterday and has none."""
    for p in ("p1", "p2", "p3", "p4"):
        conn.execute("SELECT ops.add_principal(%s, 'human', ARRAY['ops_responder'], 'bench')", (p,))
    for name, first in (("old", NOW - timedelta(days=5 * 365)), ("new", NOW - timedelta(days=1))):
        conn.execute("SELECT ops.create_schedule(%s, 'Europe/Berlin', 'bench')", (name,))
        conn.execute("SELECT ops.add_rotation(%s, 'weekly', '1 week', %s, ARRAY['p1', 'p2', 'p3'], 'bench')",
                     (name, first))
        conn.execute("SELECT ops.add_rotation(%s, 'business', '1 day', %s, ARRAY['p3', 'p4'], 'bench',"
                     " ARRAY[1, 2, 3, 4, 5], '09:00', '17:00')", (name, first))
        conn.execute("SELECT ops.add_rotation(%s, 'nights', '12 hours', %s, ARRAY['p4', 'p1'], 'bench',"
                     " NULL, '22:00', '06:00')", (name, first))
    conn.execute("SET session_replication_role = replica")
    conn.execute(
        "INSERT INTO ops.schedule_overrides (schedule, principal, starts_at, ends_at, reason, created_by)"
        " SELECT 'old', 'p' || (g %% 4 + 1), %(now)s::timestamptz - g * interval '4 hours',"
        "  %(now)s::timestamptz - g * interval '4 hours' + interval '1 hour', 'bench', 'bench'"
        " FROM generate_series(6, 10005) g", {"now": NOW})
    conn.execute("SET session_replication_role = DEFAULT")
    conn.execute("ANALYZE ops.schedule_overrides")


def bench_oncall(cluster: Cluster) -> list[tuple[str, str, str]]:
    cluster.psql("postgres", "CREATE DATABASE bench_oncall")
    url = cluster.url("bench_oncall")
    apply(url)
    with psycopg.connect(url, autocommit=True) as conn:
        _seed_oncall(conn)
        assert conn.execute("SELECT count(*) FROM ops.schedule_overrides").fetchone()[0] == 10_000
        calls: dict[str, list[float]] = {"old": [], "new": []}
        in_sql: dict[str, list[float]] = {"old": [], "new": []}
        for _ in range(3):  # warm-up: plans cached, pages in memory
            for name in calls:
                conn.execute("SELECT ops.on_call(%s, %s)", (name, NOW), prepare=True).fetchall()
        for rnd in range(4_000):
            for name in (("old", "new") if rnd % 2 else ("new", "old")):
                at = NOW + timedelta(minutes=rnd)
                t0 = time.perf_counter()
                conn.execute("SELECT ops.on_call(%s, %s)", (name, at), prepare=True).fetchall()
                calls[name].append((time.perf_counter() - t0) * 1e6)
        for _ in range(REPEAT):
            for name in in_sql:
                t0 = time.perf_counter()
                conn.execute("SELECT count(*) FROM generate_series(0, 999) AS g,"
                             " ops.on_call(%s, %s::timestamptz + g * interval '1 minute')", (name, NOW)).fetchone()
                in_sql[name].append((time.perf_counter() - t0) * 1000)
        old_p50, new_p50 = statistics.median(calls["old"]), statistics.median(calls["new"])
        old_sql, new_sql = statistics.median(in_sql["old"]), statistics.median(in_sql["new"])
    return [
        ("on_call, schedule set up yesterday, p50 (us)", f"{new_p50:.0f}", ""),
        ("on_call, 5 years and 10k overrides, p50 (us)", f"{old_p50:.0f}", ""),
        ("ratio on_call 5 years + 10k overrides / yesterday", f"{old_p50 / new_p50:.2f}", "<= 1.2"),
        ("1,000 on_call in one query: yesterday / 5 years (ms)", f"{new_sql:.1f} / {old_sql:.1f}",
         f"ratio {old_sql / new_sql:.2f}"),
    ]


def main() -> int:
    # `scripts/bench.py guard` runs the release-guard figures alone (`events_v2` the intake's); OPSGUARD_BENCH_PORT moves the
    # throwaway cluster when another bench runs on the same machine
    only_guard = sys.argv[1:] == ["guard"]
    only_heartbeats = sys.argv[1:] == ["heartbeats"]
    only_alertmanager = sys.argv[1:] == ["alertmanager"]
    only_events_v2 = sys.argv[1:] == ["events_v2"]
    only_tick_policies = sys.argv[1:] == ["tick_policies"]
    only_oncall = sys.argv[1:] == ["oncall"]
    cluster = Cluster(datadir=make_temp_datadir("opsguard-bench-"), port=int(os.environ.get("OPSGUARD_BENCH_PORT", "54391")),
                      cron_database="postgres")
    cluster.start()
    rows: list[tuple[str, str, str]] = []
    plan = None
    try:
        if only_guard:
            rows += bench_guard(cluster)
            rows += bench_guard_http(cluster)
            rows += bench_guard_storage(cluster)
            return _print(rows, plan)
        if only_heartbeats:
            return _print(bench_heartbeats(cluster), plan)
        if only_alertmanager:
            rows += bench_alertmanager(cluster)
            return _print(rows, plan)
        if only_events_v2:
            rows += bench_events_v2(cluster)
            return _print(rows, plan)
        if only_tick_policies:
            return _print(bench_tick_policies(cluster), plan)
        if only_oncall:
            return _print(bench_oncall(cluster), plan)
        if sys.argv[1:] == ["slow_clients"]:
            return _print(bench_slow_clients.run(cluster, _start_api, apply, sign_v1), plan)
        rows += bench_api(cluster)
        rows += bench_events_v2(cluster)
        rows += bench_alertmanager(cluster)
        rows += bench_guard(cluster)
        rows += bench_guard_http(cluster)
        rows += bench_guard_storage(cluster)
        rows += bench_slow_clients.run(cluster, _start_api, apply, sign_v1)
        rows += bench_dispatch(cluster)
        rows += bench_heartbeats(cluster)
        rows += bench_tick_policies(cluster)
        rows += bench_oncall(cluster)
        cluster.psql("postgres", "CREATE DATABASE bench")
        url = cluster.url("bench")
        apply(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT ops.set_setting('tick_batch_max', '20000', 'bench')")

            seed(conn, 10_000, 1_000)
            small_wall, small_inner = time_tick(conn, 1_000)
            seed(conn, 1_000_000, 1_000)
            big_wall, big_inner = time_tick(conn, 1_000)
            plan = claim_plan(conn)
            seed(conn, 100_000, 10_000)
            tenk_wall, tenk_inner = time_tick(conn, 10_000)

        rate = 10_000 / (tenk_wall / 1000)
        rows += [
            ("tick, 1,000 due among 10k incidents (ms)", f"{small_wall:.1f} (in SQL {small_inner:.1f})", ""),
            ("tick, 1,000 due among 1M incidents (ms)", f"{big_wall:.1f} (in SQL {big_inner:.1f})", ""),
            ("ratio 1M / 10k", f"{big_wall / small_wall:.2f}", "<= 1.5"),
            ("claim plan uses incidents_due index", "yes" if "incidents_due" in plan else f"NO: {plan}", "yes"),
            ("tick with 10k due (ms)", f"{tenk_wall:.1f} (in SQL {tenk_inner:.1f})", ""),
            ("escalations per second (10k due, one tick)", f"{rate:,.0f}", ">= 10,000"),
        ]
    finally:
        cluster.destroy()
    return _print(rows, plan)


def _print(rows: list[tuple[str, str, str]], plan: str | None) -> int:
    width = max(len(r[0]) for r in rows)
    print(f"\nopsguard bench ({REPEAT} runs each, median; {time.strftime('%Y-%m-%d %H:%M')})")
    print(f"{'figure':<{width}}  {'measured':<28}  goal")
    for name, value, goal in rows:
        print(f"{name:<{width}}  {value:<28}  {goal}")
    if plan is not None:
        print(f"\nclaim plan: {plan}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
