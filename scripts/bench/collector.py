"""Metrics from Prometheus: the collector's minute for 1,000 routes against the same three PromQL
range queries sent alone to the same real Prometheus (goal: ratio <= 1.5), and the guard's p50 with
1,000 routes collected from Prometheus beside the same rollups pushed (goal: ratio <= 1.1).

Prometheus (Debian's, unpacked by make senders) starts on blocks promtool writes from OpenMetrics
text: 1,000 routes' request counters (codes 200 and 500) and duration buckets, a sample every 15 s
for the 20 minutes before the bench's minute, so nothing waits on the wall clock."""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from localpg import REPO, Cluster
from opsguard import collector

from bench.common import REPEAT, Figure, free_port, fresh_db

ROUTES = 1000


def _openmetrics(end: datetime) -> str:
    """20 minutes of counters for ROUTES routes, ending at `end` (one in ten requests an error, one in
    five slow), a sample every 15 s: what a scrape of a prometheus_client app would have stored."""
    lines = ["# TYPE http_requests counter", "# TYPE http_request_duration_seconds histogram"]
    start = int(end.timestamp()) - 20 * 60
    for k, ts in enumerate(range(start, int(end.timestamp()) + 1, 15)):
        for r in range(ROUTES):
            n = 10 * k + r % 7
            route = f'route="GET /r/{r}"'
            lines += [f'http_requests_total{{{route},code="200"}} {n - n // 10} {ts}',
                      f'http_requests_total{{{route},code="500"}} {n // 10} {ts}',
                      f'http_request_duration_seconds_bucket{{{route},le="0.3"}} {n - n // 5} {ts}',
                      f'http_request_duration_seconds_bucket{{{route},le="+Inf"}} {n} {ts}']
    return "\n".join(lines) + "\n# EOF\n"


def _prometheus(work: Path, end: datetime) -> tuple[subprocess.Popen, str]:
    """Prometheus on a free port over the blocks for `end`; the process and its URL."""
    local = REPO / ".local" / "bin"
    (work / "data.om").write_text(_openmetrics(end))
    subprocess.run([str(local / "promtool"), "tsdb", "create-blocks-from", "openmetrics", str(work / "data.om"),
                    str(work / "data")], check=True, capture_output=True)
    (work / "prometheus.yml").write_text("global:\n  scrape_interval: 1m\n")
    url = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen([str(local / "prometheus"), f"--config.file={work / 'prometheus.yml'}",
                             f"--storage.tsdb.path={work / 'data'}", "--storage.tsdb.retention.time=10y",
                             f"--web.listen-address={url.removeprefix('http://')}", "--log.level=warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        # ready, and ours (its data directory): whatever else answers on the port is not measured
        if proc.poll() is not None:
            raise RuntimeError(f"Prometheus exited with {proc.returncode} before it was ready")
        try:
            urllib.request.urlopen(url + "/-/ready", timeout=1).read()  # noqa: S310 (the local Prometheus)
            flags = json.loads(urllib.request.urlopen(url + "/api/v1/status/flags", timeout=1).read())  # noqa: S310
            if flags["data"]["storage.tsdb.path"] == str(work / "data"):
                return proc, url
        except (OSError, ValueError, KeyError, TypeError):
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("Prometheus did not start")


def _query_alone(url: str, query: str, minute: datetime) -> None:
    end = f"{(minute + timedelta(minutes=1)).timestamp():.0f}"
    form = urllib.parse.urlencode({"query": query, "start": end, "end": end, "step": "60"}).encode()
    req = urllib.request.Request(url + "/api/v1/query_range", data=form)  # noqa: S310 (the local Prometheus)
    urllib.request.urlopen(req, timeout=30).read()  # noqa: S310


def bench_collector(cluster: Cluster) -> list[Figure]:
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
    url = fresh_db(cluster, "bench_collector")
    with tempfile.TemporaryDirectory(prefix="opsguard-bench-prom-") as tmp:
        prom, prom_url = _prometheus(Path(tmp), minute + timedelta(minutes=2))
        try:
            return _collector_figures(url, prom_url, minute)
        finally:
            prom.terminate()
            prom.wait(timeout=15)


def _collector_figures(url: str, prom_url: str, minute: datetime) -> list[Figure]:
    options = collector.Options(dsn=url, db_role="", timeout_s=30, max_bytes=64 << 20, interval_s=60, max_minutes=1)
    now = minute + timedelta(minutes=1, seconds=30)
    with psycopg.connect(url, autocommit=True) as conn, collector.connect(options) as c:
        conn.execute("SELECT ops.set_route_slo('*', 1, 5, 'bench', 300, 5)")
        conn.execute("SELECT ops.set_metrics_source('GET /r/*', 'prometheus', %s, 'bench')",
                     (f'{{"url": "{prom_url}", "delay_s": 0}}',))
        work = c.execute("SELECT * FROM ops.metrics_work(%s, 1)", (now,)).fetchone()
        queries = [work["requests"], work["errors"], work["slow"]]
        alone, minutes, parts, counted = [], [], [], 0
        for _ in range(REPEAT):
            t0 = time.perf_counter()
            for q in queries:
                _query_alone(prom_url, q, minute)
            alone.append(time.perf_counter() - t0)
            _forget(conn, minute)
            t0 = time.perf_counter()
            reports = collector.collect_once(c, options, now=now)
            minutes.append(time.perf_counter() - t0)
            counted = reports[0]["counted"]
            _forget(conn, minute)
            parts.append(_minute_parts(c, options, now))
    one, bare = statistics.median(minutes), statistics.median(alone)
    asked, written = (statistics.median(p) for p in zip(*parts, strict=True))
    return [
        (f"collector: one minute of {ROUTES:,} routes (3 range queries + rollups), p50 (ms)", f"{one * 1000:.1f}", ""),
        ("collector: the same 3 PromQL range queries alone, p50 (ms)", f"{bare * 1000:.1f}", ""),
        ("collector: route minutes counted per run", f"{counted:,}", f">= {ROUTES}"),
        ("ratio collector minute / PromQL alone", f"{one / bare:.2f}", "<= 1.5"),
        ("collector: of its minute, the 3 queries and their parsing, p50 (ms)", f"{asked * 1000:.1f}", ""),
        ("collector: of its minute, ops.record_metrics_minutes, p50 (ms)", f"{written * 1000:.1f}", ""),
        *_guard_figures(url, minute),
    ]


def _forget(conn: psycopg.Connection, minute: datetime) -> None:
    """The same minute again, as if new: forget it was collected (the rollups only grow)."""
    conn.execute("DELETE FROM ops.metrics_source_minutes")
    conn.execute("UPDATE ops.metrics_source_state SET collected_through = %s", (minute - timedelta(minutes=1),))


def _minute_parts(c: psycopg.Connection, options: collector.Options, now: datetime) -> tuple[float, float]:
    """The collector's minute in its two parts, the way collect_once does them: the queries with the
    parsing of their answers, then the database's report; seconds each."""
    work = c.execute("SELECT * FROM ops.metrics_work(%s, 1)", (now,)).fetchone()
    t0 = time.perf_counter()
    rows, queries = collector.collect_source(work, options)
    t1 = time.perf_counter()
    c.execute("SELECT ops.record_metrics_minutes(%s, %s, %s, %s, %s)",
              (work["route_pattern"], work["last_minute"], json.dumps(rows), queries, now)).fetchone()
    return t1 - t0, time.perf_counter() - t1


def _guard_figures(url: str, minute: datetime) -> list[Figure]:
    """The guard over the same 1,000 routes' rollups (6 h of minutes), each route pushed, then each
    its own Prometheus source, collected through the minute (fresh); the two alternate."""
    end = minute + timedelta(minutes=1)
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("route_minute_stats", "route_5min_stats", "route_hour_stats", "route_day_stats",
                      "metrics_source_minutes", "metrics_source_routes", "metrics_sources"):
            conn.execute(f"DELETE FROM ops.{table}")  # noqa: S608 (the names above)
        conn.execute(
            "SELECT ops._fold_route_minutes(jsonb_agg(jsonb_build_object('route', 'GET /p/' || r, 'minute', m,"
            " 'requests', 100, 'errors', CASE WHEN r %% 100 = 0 THEN 40 ELSE r %% 2 END, 'slow', 0)))"
            " FROM generate_series(1, 1000) r,"
            " generate_series(%s::timestamptz - interval '6 hours', %s::timestamptz, interval '1 minute') m", (end, end))
        conn.execute("VACUUM ANALYZE")
        at = end + timedelta(seconds=20)

        def p50() -> float:
            runs = []
            for _ in range(REPEAT * 3):
                t0 = time.perf_counter()
                conn.execute("SELECT ops.release_guard(%s)", (at,)).fetchone()
                runs.append(time.perf_counter() - t0)
            return statistics.median(runs)

        def sources(on: bool) -> None:
            conn.execute("DELETE FROM ops.metrics_sources")
            if on:
                conn.execute("SELECT ops.set_metrics_source('GET /p/' || r, 'prometheus', '{\"url\": \"http://prom:9090\"}',"
                             " 'bench') FROM generate_series(1, 1000) r")
                conn.execute("UPDATE ops.metrics_source_state SET collected_through = %s", (minute,))

        conn.execute("INSERT INTO ops.metrics_source_routes SELECT 'GET /p/' || r, 'GET /p/' || r"
                     " FROM generate_series(1, 1000) r")
        pushed, sourced = [], []
        for _ in range(4):
            sources(False)
            pushed.append(p50())
            sources(True)
            sourced.append(p50())
    a, b = statistics.median(pushed), statistics.median(sourced)
    return [
        ("guard p50, 1,000 routes pushed (ms)", f"{a * 1000:.1f}", ""),
        ("guard p50, the same 1,000 routes from Prometheus sources (ms)", f"{b * 1000:.1f}", ""),
        ("ratio guard Prometheus-sourced / pushed", f"{b / a:.2f}", "<= 1.1"),
    ]
