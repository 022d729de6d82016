"""The HTTP API (gunicorn with the shipped config, wrk as the load): the ack endpoint's
throughput and p99 beside a bare signed endpoint that only runs SELECT 1 through the same pool
and signature check (goal: ratio >= 0.7), both signed v1, each request with a signature of its
own; request-metrics ingest through POST /ops/metrics/requests, samples per second (goal >=
200k/s), beside a raw COPY of the same samples into a plain table (goal >= 0.5 of it)."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg
from localpg import Cluster

from bench.common import Figure, api_server, fresh_db, median_pair, sign_v1, wrk

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


def bench_api(cluster: Cluster) -> list[Figure]:
    url = fresh_db(cluster, "bench_api")
    with psycopg.connect(url, autocommit=True) as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT (ops.trigger_incident('GET /api/' || g || '::x', 'critical')).id FROM generate_series(1, 5000) g")]
    secret = "bench-secret"  # noqa: S105 - a throwaway server on loopback
    with api_server(url, int(os.environ.get("OPSGUARD_BENCH_API_PORT", "54393")), secret) as base:
        ack_paths = [f"/ops/incidents/{i}/ack" for i in ids]
        bare, ack = [], []
        for _ in range(3):  # alternate, so drift on a noisy machine hits both alike
            bare.append(wrk(base, ["/bench/select1"], secret, 6))
            ack.append(wrk(base, ack_paths, secret, 6))
        ingest_rate, copy_rate = bench_ingest(base, secret, url)
    (bare_rps, bare_p99), (ack_rps, ack_p99) = median_pair(bare), median_pair(ack)
    return [
        ("API: bare signed SELECT 1 (req/s, p99 ms)", f"{bare_rps:,.0f}, p99 {bare_p99:.1f}", ""),
        ("API: POST /ops/incidents/<id>/ack (req/s, p99 ms)", f"{ack_rps:,.0f}, p99 {ack_p99:.1f}", ""),
        ("API: ack / bare throughput", f"{ack_rps / bare_rps:.2f}", ">= 0.7"),
        ("ingest: POST /ops/metrics/requests (samples/s)", f"{ingest_rate:,.0f}", ">= 200,000"),
        ("ingest: raw COPY of the same samples (samples/s)", f"{copy_rate:,.0f}", ""),
        ("ingest: endpoint / COPY", f"{ingest_rate / copy_rate:.2f}", ">= 0.5"),
    ]
