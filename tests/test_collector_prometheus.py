"""The collector against a real Prometheus (Debian's 2.42, unpacked by make senders) scraping a small
app instrumented with prometheus_client, whose error rate this test sets minute by minute.

One run of about four minutes (real minutes: Prometheus stamps samples with the wall clock):
  the minute before B: clean traffic, collected;
  minute B (60 % errors): Prometheus is stopped as it ends, so the collector's next run fails: a
    problem in ops.config_problems, nothing written, the guard still answers, and with its clock
    moved 4 minutes on (p_now) the guard lists the route with stale_since;
  Prometheus restarts on the same data: minute B is back-filled and the guard blocks with the
    evidence pushed samples give; two clean minutes later the guard passes;
  every minute collected equals PromQL's own answer for it (an instant increase(...[1m]) at the
    minute's end, rounded: the same arithmetic), and the three minutes from B add up to what the
    app served within 5 % (Prometheus extrapolates each minute from the samples inside it);
  collecting again counts nothing twice."""

from __future__ import annotations

import json
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from opsguard import collector
from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from real_senders import binary, get_json, running_in
from test_e2e_gunicorn import _free_port

pytestmark = pytest.mark.slow
ROUTE = "GET /search"


class App:
    """A service with prometheus_client's usual metrics; `error_every` of each 5 requests answer 500."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("http_requests", "Requests served.", ["route", "code"], registry=self.registry)
        self.duration = Histogram("http_request_duration_seconds", "Time to serve.", ["route"],
                                  buckets=(0.1, 0.3, 1.0), registry=self.registry)
        self.error_every = 0
        self.served: list[float] = []
        self.n = 0
        metrics = make_wsgi_app(self.registry)

        def wsgi(environ, start_response):
            if environ["PATH_INFO"] == "/metrics":
                return metrics(environ, start_response)
            self.n += 1
            code = "500" if self.n % 5 < self.error_every else "200"
            self.requests.labels(ROUTE, code).inc()
            self.duration.labels(ROUTE).observe(0.5 if self.n % 10 == 0 else 0.05)  # a tenth slower than 300 ms
            self.served.append(time.time())
            start_response(f"{code} X", [("Content-Type", "text/plain")])
            return [b"ok"]

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        self.server = make_server("127.0.0.1", _free_port(), wsgi, handler_class=Quiet)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.rate = 10.0
        self.stop = threading.Event()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self._drive, daemon=True).start()

    def _drive(self):
        while not self.stop.is_set():
            try:
                urllib.request.urlopen(self.url + "/search", timeout=2).read()
            except urllib.error.HTTPError:
                pass
            self.stop.wait(1.0 / self.rate)

    def served_between(self, start: datetime, end: datetime) -> int:
        return sum(1 for t in self.served if start.timestamp() <= t < end.timestamp())

    def close(self):
        self.stop.set()
        self.server.shutdown()


@contextmanager
def prometheus_scraping(target: str, work: Path, port: int):
    (work / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n"
        f"scrape_configs:\n- job_name: app\n  static_configs:\n  - targets: ['{target}']\n")
    cmd = [binary("prometheus"), "--config.file=prometheus.yml", f"--storage.tsdb.path={work / 'data'}",
           f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    with running_in(work, cmd, f"http://127.0.0.1:{port}/-/ready") as proc:
        yield proc


def promql_minute(url: str, query: str, minute: datetime) -> float:
    """PromQL's own answer for one minute: the instant query at the minute's end."""
    at = (minute + timedelta(minutes=1)).timestamp()
    q = urllib.parse.urlencode({"query": query, "time": f"{at:.0f}"})
    result = get_json(f"{url}/api/v1/query?{q}")["data"]["result"]
    return sum(float(r["value"][1]) for r in result)


def wait_until(at: datetime):
    time.sleep(max((at - datetime.now(UTC)).total_seconds(), 0))


def test_guard_from_a_real_prometheus(conn, db_url):
    port = _free_port()
    app = App()
    options = collector.Options(dsn=db_url, db_role="opsguard_collector", timeout_s=3.0, max_bytes=1 << 20,
                                interval_s=60.0, max_minutes=60)
    url = f"http://127.0.0.1:{port}"
    # a 6.9 % target: only the 1-minute rule can block on one bad minute, so two clean ones clear it
    conn.execute("SELECT ops.set_route_slo(%s, 6.9, 5, 'alice', 300, 50)", (ROUTE,))
    conn.execute("SELECT ops.set_metrics_source(%s, 'prometheus', %s, 'alice')",
                 (ROUTE, json.dumps({"url": url, "delay_s": 2})))

    def collect():
        with collector.connect(options) as c:
            return collector.collect_once(c, options)

    def guard(p_now=None):
        return conn.execute("SELECT ops.release_guard(coalesce(%s, now()))", (p_now,)).fetchone()[0]

    with tempfile.TemporaryDirectory(prefix="opsguard-prom-") as tmp:
        try:
            with prometheus_scraping(app.url.split("://")[1], Path(tmp), port):
                now = datetime.now(UTC)
                b = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
                wait_until(b + timedelta(seconds=3))
                assert all(r["ok"] for r in collect())  # the 6 hours before (empty), and the clean minute
                app.error_every, app.rate = 3, 5.0  # minute b: 60 % errors
                wait_until(b + timedelta(seconds=60))
                app.error_every, app.rate = 0, 10.0
                time.sleep(2.5)  # minute b+1 has scrapes before the outage too (see the test's docstring)
            # Prometheus is down: the collector's run fails, nothing is written, the guard answers
            wait_until(b + timedelta(seconds=64))
            assert [r["ok"] for r in collect()] == [False]
            problem = conn.execute("SELECT problem FROM ops.config_problems() WHERE setting = %s",
                                   (f"metrics_sources[{ROUTE}]",)).fetchone()[0]
            assert "unreachable" in problem
            assert conn.execute("SELECT count(*) FROM ops.route_minute_stats WHERE minute = %s", (b,)).fetchone() == (0,)
            assert guard()["ok"] is True
            later = guard(datetime.now(UTC) + timedelta(minutes=4))
            stale = [w for w in later["warnings"] if w["reason"] == "stale_metrics"]
            assert [(w["route"], w["evidence"]["stale_since"]) for w in stale] == [(ROUTE, b.isoformat())]

            with prometheus_scraping(app.url.split("://")[1], Path(tmp), port):
                wait_until(b + timedelta(seconds=100))
                reports = collect()  # back-fills minute b
                assert [(r["ok"], r["counted"]) for r in reports] == [(True, 1)]
                blocked = guard()
                failing = {f["key"]: f for f in blocked["failing"]}
                row = conn.execute("SELECT requests, errors FROM ops.route_minute_stats WHERE route = %s AND minute = %s",
                                   (ROUTE, b)).fetchone()
                evidence = failing[f"{ROUTE}::error_rate_critical"]["evidence"]
                assert evidence == {"err_rate_1m": pytest.approx(100 * row[1] / row[0], abs=0.005),
                                    "samples_1m": row[0], "threshold_pct": 50, "min_samples": 5}
                assert blocked["ok"] is False

                wait_until(b + timedelta(seconds=183))
                assert [r["ok"] for r in collect()] == [True]  # minutes b+1 (with the outage) and b+2
                cleared = guard()
                assert cleared["ok"] is True, cleared["failing"]
                assert not [w for w in cleared["warnings"] if w["reason"] == "stale_metrics"]

                # each minute as PromQL itself answers it, and the three from b against what the app served
                templates = conn.execute("SELECT requests_query, errors_query, slow_query FROM ops.metrics_sources"
                                         ).fetchone()
                queries = [q.replace("$route", ROUTE).replace("$le", r"0\\.3") for q in templates]
                minutes = conn.execute("SELECT minute, requests, errors, slow FROM ops.route_minute_stats "
                                       "WHERE route = %s AND minute >= %s ORDER BY minute", (ROUTE, b)).fetchall()
                assert [m for m, *_ in minutes] == [b, b + timedelta(minutes=1), b + timedelta(minutes=2)]
                for minute, *counts in minutes:
                    assert counts == [round(promql_minute(url, q, minute)) for q in queries], minute
                served = app.served_between(b, b + timedelta(minutes=3))
                print(f"minutes from b {[m[1] for m in minutes]}, sum {sum(m[1] for m in minutes)}, app served {served}")
                assert abs(sum(m[1] for m in minutes) - served) <= 0.05 * served, (minutes, served)

                # collected again from the start: nothing counts twice
                conn.execute("UPDATE ops.metrics_source_state SET collected_through = %s", (b - timedelta(minutes=1),))
                again = collect()
                assert [(r["counted"], r["skipped"]) for r in again] == [(0, 3)]
                assert conn.execute("SELECT sum(requests) FROM ops.route_minute_stats WHERE route = %s AND minute >= %s",
                                    (ROUTE, b)).fetchone()[0] == sum(m[1] for m in minutes)
        finally:
            app.close()
