"""The collector against a stand-in for Prometheus's HTTP API (in this process, no outside program):
what it asks, how it counts a minute once, back-fill after an outage, and every bad answer (400, 500,
HTML, garbage, too large, too slow, unreachable) becomes the source's problem with nothing written,
while the guard still answers. tests/test_collector_prometheus.py runs it against a real Prometheus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.parse
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from opsguard import collector

API = str(Path(__file__).resolve().parents[1] / "api")
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


class FakePrometheus:
    """Answers query_range from `series(query, start, end)` -> [(route, minute_start, value)], or `reply`."""

    def __init__(self):
        self.asked: list[dict] = []
        self.reply: tuple[int, str, bytes] | None = None
        self.delay_s = 0.0
        self.values: dict[str, dict[tuple[str, datetime], float]] = {"requests": {}, "errors": {}, "slow": {}}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                ask = {k: v[0] for k, v in form.items()} | {"path": self.path}
                fake.asked.append(ask)
                if fake.delay_s:
                    threading.Event().wait(fake.delay_s)
                status, ctype, body = fake.reply or (200, "application/json", fake.matrix(ask))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def matrix(self, ask: dict) -> bytes:
        kind = "errors" if "5.." in ask["query"] else "slow" if "_bucket" in ask["query"] else "requests"
        start, end = int(ask["start"]), int(ask["end"])
        by_route: dict[str, list] = {}
        for (route, minute), value in sorted(self.values[kind].items()):
            at = int((minute + timedelta(minutes=1)).timestamp())  # the point at T counts the minute before
            if start <= at <= end:
                by_route.setdefault(route, []).append([at, str(value)])
        result = [{"metric": {"route": r}, "values": v} for r, v in by_route.items()]
        return json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}}).encode()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def prom():
    fake = FakePrometheus()
    yield fake
    fake.close()


@pytest.fixture
def options(db_url):
    return collector.Options(dsn=db_url, db_role="opsguard_collector", timeout_s=2.0, max_bytes=64 * 1024,
                             interval_s=60.0, max_minutes=60)


def _source(conn, prom, pattern="GET /search", since=T0):
    conn.execute("SELECT ops.set_route_slo('*', 1, 5, 'alice', 300, 5)")
    conn.execute("SELECT ops.set_metrics_source(%s, 'prometheus', %s, 'alice', %s)",
                 (pattern, json.dumps({"url": prom.url, "delay_s": 10}), since))
    # no 6-hour back-fill of an empty history: collected up to the minute before since
    conn.execute("UPDATE ops.metrics_source_state SET collected_through = %s", (since - timedelta(minutes=1),))


def _minutes(conn, route="GET /search"):
    return conn.execute("SELECT minute, requests, errors, slow FROM ops.route_minute_stats WHERE route = %s "
                        "ORDER BY minute", (route,)).fetchall()


def _fill(prom, route, minute, requests, errors=0, slow=0):
    prom.values["requests"][(route, minute)] = requests
    prom.values["errors"][(route, minute)] = errors
    prom.values["slow"][(route, minute)] = slow


def test_collects_each_minute_once_into_the_rollups(conn, prom, options):
    _source(conn, prom)
    _fill(prom, "GET /search", T0, 120.4, 3, 1.2)
    _fill(prom, "GET /search", T0 + timedelta(minutes=1), 60, 60, 0)
    with collector.connect(options) as c:
        reports = collector.collect_once(c, options, now=T0 + timedelta(minutes=2, seconds=15))
        assert [r["counted"] for r in reports] == [2]
    # asked again (a second collector that read the same work): the minutes are there, nothing is added
    conn.execute("UPDATE ops.metrics_source_state SET collected_through = %s", (T0 - timedelta(minutes=1),))
    with collector.connect(options) as c:
        again = collector.collect_once(c, options, now=T0 + timedelta(minutes=2, seconds=15))
    assert [(r["counted"], r["skipped"]) for r in again] == [(0, 2)]
    assert _minutes(conn) == [(T0, 120, 3, 1), (T0 + timedelta(minutes=1), 60, 60, 0)]
    assert conn.execute("SELECT sum(requests) FROM ops.route_hour_stats WHERE route = 'GET /search'").fetchone() == (180,)
    # one range query per expression, step 60 s, ending at the last ready minute's end
    asked = prom.asked[:3]
    assert {a["path"] for a in asked} == {"/api/v1/query_range"}
    assert {a["step"] for a in asked} == {"60"}
    assert {(int(a["start"]), int(a["end"])) for a in asked} == {
        (int((T0 + timedelta(minutes=1)).timestamp()), int((T0 + timedelta(minutes=2)).timestamp()))}
    # the three go out at once, so in any order: one of them counts the slow requests
    assert all('route=~"GET /search"' in a["query"] for a in asked)
    assert sum('le=~"0\\\\.3"' in a["query"] for a in asked) == 1


def test_the_guard_blocks_on_collected_errors_with_the_evidence_of_pushed_samples(conn, prom, options):
    _source(conn, prom)
    now = T0 + timedelta(minutes=1, seconds=30)
    _fill(prom, "GET /search", T0, 8, 8)
    conn.execute("SELECT ops.record_requests(%s)", (json.dumps(
        [{"route": "GET /pushed", "status": 500, "latency_ms": 1, "at": T0.isoformat()}] * 8),))
    with collector.connect(options) as c:
        collector.collect_once(c, options, now=now + timedelta(seconds=15))
    answer = conn.execute("SELECT ops.release_guard(%s)", (now,)).fetchone()[0]
    failing = {f["key"]: f["evidence"] for f in answer["failing"]}
    assert failing["GET /search::error_rate_critical"] == failing["GET /pushed::error_rate_critical"] == {
        "err_rate_1m": 100, "samples_1m": 8, "threshold_pct": 50, "min_samples": 5}
    assert answer["ok"] is False


def test_an_outage_is_back_filled_and_counted_once(conn, prom, options):
    _source(conn, prom)
    for m in range(10):
        _fill(prom, "GET /search", T0 + timedelta(minutes=m), 10, 1)
    with collector.connect(options) as c:
        collector.collect_once(c, options, now=T0 + timedelta(minutes=2, seconds=15))  # 10:00 and 10:01
        prom.reply = (503, "application/json", b'{"status": "error", "errorType": "unavailable", "error": "down"}')
        for m in (3, 4, 5, 6):
            collector.collect_once(c, options, now=T0 + timedelta(minutes=m, seconds=15))
        stale = conn.execute("SELECT ops.release_guard(%s)", (T0 + timedelta(minutes=6, seconds=15),)).fetchone()[0]
        prom.reply = None
        reports = collector.collect_once(c, options, now=T0 + timedelta(minutes=10, seconds=15))
    assert [w["evidence"]["stale_since"] for w in stale["warnings"] if w["reason"] == "stale_metrics"] == [
        "2026-12-01T10:02:00+00:00"]
    assert [r["counted"] for r in reports] == [8]  # 10:02 to 10:09: the outage and after, in one range
    assert [(m, n) for m, n, *_ in _minutes(conn)] == [(T0 + timedelta(minutes=k), 10) for k in range(10)]
    assert conn.execute("SELECT sum(requests) FROM ops.route_day_stats").fetchone() == (100,)
    fresh = conn.execute("SELECT ops.release_guard(%s)", (T0 + timedelta(minutes=10, seconds=15),)).fetchone()[0]
    assert not [w for w in fresh["warnings"] if w["reason"] == "stale_metrics"]


BAD_ANSWERS = {
    "400": ((400, "application/json", b'{"status": "error", "errorType": "bad_data", "error": "parse error at char 5"}'),
            "requests: HTTP 400 from "),
    "500": ((500, "text/plain", b"internal error"), "requests: HTTP 500 from "),
    "html": ((200, "text/html", b"<html><body>Login required</body></html>"),
             "requests: the answer is not Prometheus's JSON (HTML)"),
    "garbage": ((200, "application/json", b"\x00\xff{not json"), "requests: the answer is not Prometheus's JSON (not JSON)"),
    "not a matrix": ((200, "application/json", b'{"status": "success", "data": {"resultType": "vector", "result": []}}'),
                     "requests: the answer is not a matrix"),
    "no route label": ((200, "application/json", b'{"status": "success", "data": {"resultType": "matrix", '
                        b'"result": [{"metric": {}, "values": []}]}}'),
                       "requests: a series has no route label"),
    "NUL in the error": ((400, "application/json", b'{"status": "error", "errorType": "bad_data", "error": "x\\u0000y"}'),
                         "requests: HTTP 400 from "),
    "NUL in a route": ((200, "application/json", b'{"status": "success", "data": {"resultType": "matrix", "result": '
                        b'[{"metric": {"route": "GET /search\\u0000"}, "values": [[1796119260, "5"]]}]}}'),
                       "the database refused the minutes: "),
    "huge": ((200, "application/json", b'{"status": "success", "data": {"resultType": "matrix", "result": ['
              + b'{"metric": {"route": "GET /search"}, "values": []},' * 5000 + b'{}]}}'),
             "requests: the answer is larger than 65536 bytes"),
}


@pytest.mark.parametrize("shape", list(BAD_ANSWERS))
def test_a_bad_answer_is_a_problem_and_writes_nothing(conn, prom, options, shape):
    reply, problem = BAD_ANSWERS[shape]
    _source(conn, prom)
    _fill(prom, "GET /search", T0, 10, 1)
    prom.reply = reply
    with collector.connect(options) as c:
        reports = collector.collect_once(c, options, now=T0 + timedelta(minutes=1, seconds=15))
    assert [r["ok"] for r in reports] == [False]
    rows = conn.execute("SELECT problem, blocking FROM ops.config_problems() WHERE setting = 'metrics_sources[GET /search]'"
                        ).fetchall()
    assert len(rows) == 1 and problem in rows[0][0] and rows[0][1] is False
    assert "\n" not in rows[0][0] and "\x00" not in rows[0][0]
    assert _minutes(conn) == []
    assert conn.execute("SELECT collected_through FROM ops.metrics_source_state").fetchone() == (T0 - timedelta(minutes=1),)
    assert conn.execute("SELECT ops.release_guard(%s) ->> 'ok'", (T0 + timedelta(minutes=1),)).fetchone() == ("true",)


def test_a_slow_or_absent_prometheus_is_a_problem_not_a_hang(conn, prom, options):
    _source(conn, prom)
    prom.delay_s = 1.5
    slow = collector.Options(**{**options.__dict__, "timeout_s": 0.3})
    with collector.connect(slow) as c:
        collector.collect_once(c, slow, now=T0 + timedelta(minutes=1, seconds=15))
    problems = dict(conn.execute("SELECT setting, problem FROM ops.config_problems() WHERE setting LIKE 'metrics%'"))
    assert "requests: unreachable: timed out" in problems["metrics_sources[GET /search]"]
    conn.execute("SELECT ops.set_metrics_source('GET /gone', 'prometheus', '{\"url\": \"http://127.0.0.1:9\"}', 'alice')")
    with collector.connect(slow) as c:
        collector.collect_once(c, slow, now=T0 + timedelta(minutes=1, seconds=15))
    problems = dict(conn.execute("SELECT setting, problem FROM ops.config_problems() WHERE setting LIKE 'metrics%'"))
    assert "requests: unreachable:" in problems["metrics_sources[GET /gone]"]
    assert _minutes(conn) == []


def test_the_collector_role_touches_no_table(db_url, options):
    with collector.connect(options) as c, pytest.raises(psycopg.errors.InsufficientPrivilege):
        c.execute("SELECT * FROM ops.route_minute_stats")


def test_collector_series_in_metrics(api, conn, prom):
    _source(conn, prom)
    conn.execute("SELECT ops.metrics_source_failed('GET /search', 'down', 2)")
    text = api.client.get("/metrics").get_data(as_text=True)
    assert "opsguard_collector_queries_total 2.0" in text
    assert "opsguard_collector_failures_total 1.0" in text
    assert "opsguard_collector_lag_seconds " in text
    assert "opsguard_metrics_sources_stale 1.0" in text


def _command(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opsguard.collector", "--once", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": API, **env})


def test_the_command_collects_once_as_the_collector_role(conn, prom, db_url):
    _source(conn, prom, since=datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2))
    res = _command("--dsn", db_url)
    assert res.returncode == 0, res.stderr
    assert [json.loads(line)["ok"] for line in res.stdout.splitlines()] == [True]
    assert conn.execute("SELECT queries FROM ops.metrics_source_state").fetchone() == (3,)


def test_the_command_refuses_a_bad_variable_and_an_unreachable_database(db_url):
    res = _command("--dsn", db_url, OPS_COLLECT_TIMEOUT_S="soon")
    assert res.returncode == 2
    assert "OPS_COLLECT_TIMEOUT_S must be a number" in res.stderr
    res = _command("--dsn", "postgresql://nobody@127.0.0.1:1/none")
    assert res.returncode == 1
    assert "database unavailable" in res.stderr
