"""docs/release-guard.md, Metrics from Prometheus: the example service exports what the default
PromQL reads, the PromQL shown is what ops.metrics_work gives the collector, and a stale source
looks in the guard's answer as the doc shows it. (tests/test_docs_as_operator.py runs its SQL as an
operator; tests/test_collector_prometheus.py runs the whole path against a real Prometheus.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

from werkzeug.test import Client

DOC = (Path(__file__).resolve().parents[1] / "docs" / "release-guard.md").read_text()
SECTION = DOC[DOC.index("## Metrics from Prometheus"):DOC.index("## Request metrics")]


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", SECTION, flags=re.S)


def test_the_example_service_exports_what_the_defaults_read():
    scope: dict = {}
    exec(_blocks("python")[0], scope)  # noqa: S102 (the doc's own example)
    client = Client(scope["app"])
    assert client.get("/search").status_code == 200
    assert client.get("/search", query_string="fail").status_code == 500
    text = client.get("/metrics").get_data(as_text=True)
    assert 'http_requests_total{code="200",route="GET /search"} 1.0' in text
    assert 'http_requests_total{code="500",route="GET /search"} 1.0' in text
    assert 'http_request_duration_seconds_bucket{le="0.3",route="GET /search"} 2.0' in text


def test_the_promql_shown_is_what_the_collector_asks(conn):
    for block in _blocks("sql")[:1]:
        conn.execute(block)
    work = conn.execute("SELECT requests, errors, slow FROM ops.metrics_work() WHERE route_pattern = 'GET /search'"
                        ).fetchone()
    assert _blocks("promql")[0].splitlines() == list(work)
    billing = conn.execute("SELECT requests FROM ops.metrics_work() WHERE route_pattern = 'GET /billing*'").fetchone()
    assert billing == ('sum by (handler) (increase(billing_requests_total{handler=~"GET /billing.*"}[1m]))',)


def test_a_stale_source_looks_as_the_doc_shows(conn):
    conn.execute(_blocks("sql")[0])
    conn.execute("SELECT ops.set_metrics_source('GET /search', 'prometheus', '{\"url\": \"http://prometheus:9090\"}', "
                 "'alice', '2026-12-01 09:00Z')")
    conn.execute("UPDATE ops.metrics_source_state SET collected_through = '2026-12-01 10:04Z'")
    answer = conn.execute("SELECT ops.release_guard('2026-12-01 10:08:31Z')").fetchone()[0]
    item = next(w for w in answer["warnings"] if w["key"] == "GET /search::stale_metrics")
    assert item == json.loads(_blocks("json")[0])
    assert answer["ok"] is True
    conn.execute(_blocks("sql")[1].splitlines()[0])  # guard_stale_metrics fail
    blocked = conn.execute("SELECT ops.release_guard('2026-12-01 10:08:31Z')").fetchone()[0]
    assert "GET /search::stale_metrics" in {f["key"] for f in blocked["failing"]}
