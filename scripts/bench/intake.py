"""Alert intake through gunicorn. PagerDuty Events API v2 triggers (POST /v2/enqueue, each a new
dedup_key, so each opens an incident) per second beside the bare signed SELECT 1 endpoint in the
same run (goal: ratio >= 0.7). An Alertmanager notification of 100 alerts in one group beside one
of a single alert, POST /ops/integrations/alertmanager, one request at a time, p50 of each (goal:
ratio <= 2)."""

from __future__ import annotations

import http.client
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import psycopg
from localpg import Cluster

from bench.common import WRK_THREAD_IDS, Figure, api_server, fresh_db, median_pair, run_wrk, start_api, wrk

EVENTS_V2_SCRIPT = WRK_THREAD_IDS + """
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
        return run_wrk(script, base, seconds)


def bench_events_v2(cluster: Cluster) -> list[Figure]:
    """POST /v2/enqueue triggers (new incidents, and refreshes of open ones) beside the bare signed
    SELECT 1, alternating, through one gunicorn; the signed ack (the other write through the same
    incident triggers and audit) in the same rounds, for reference."""
    url = fresh_db(cluster, "bench_events_v2")
    with psycopg.connect(url, autocommit=True) as conn:
        key = conn.execute("SELECT ops.create_integration_key('bench-pd', 'events_v2', 'bench')").fetchone()[0]
        conn.execute("SELECT ops.api_events_v2(jsonb_build_object('routing_key', %s::text, 'event_action', 'trigger',"
                     " 'dedup_key', 'open-' || g, 'payload', jsonb_build_object('summary', 'disk full', 'source', 'db',"
                     " 'severity', 'critical'))) FROM generate_series(0, %s - 1) g", (key, EVENTS_V2_REFRESHED))
        ids = [r[0] for r in conn.execute(
            "SELECT (ops.trigger_incident('GET /api/' || g || '::x', 'critical')).id FROM generate_series(1, 5000) g")]
    secret = "bench-secret"  # noqa: S105 - a throwaway server on loopback
    with api_server(url, int(os.environ.get("OPSGUARD_BENCH_EVENTS_PORT", "54396")), secret) as base:
        bare, events, refresh, ack, noop = [], [], [], [], []
        ack_paths = [f"/ops/incidents/{i}/ack" for i in ids]
        for run in range(3):  # alternate, so drift on a noisy machine hits all alike
            bare.append(wrk(base, ["/bench/select1"], secret, 6))
            events.append(_wrk_events_v2(base, key, f"run{run}", 6))
            refresh.append(_wrk_events_v2(base, key, None, 6))
            ack.append(wrk(base, ack_paths, secret, 6))
            noop.append(_wrk_events_v2(base, key, f"none{run}", 6, action="resolve"))
        with psycopg.connect(url, autocommit=True) as conn:
            opened = conn.execute("SELECT count(*) FROM ops.incidents WHERE incident_key LIKE 'events_v2:%'").fetchone()[0]
    (bare_rps, bare_p99), (ev_rps, ev_p99), (re_rps, re_p99) = median_pair(bare), median_pair(events), median_pair(refresh)
    (ack_rps, ack_p99), (noop_rps, noop_p99) = median_pair(ack), median_pair(noop)
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


def bench_alertmanager(cluster: Cluster) -> list[Figure]:
    """POST /ops/integrations/alertmanager through gunicorn, one client, one request at a time:
    a notification of 100 alerts in one group beside one of a single alert, alternated so drift
    hits both alike. Each repeat refreshes its group incident, as Alertmanager's repeats do."""
    url = fresh_db(cluster, "bench_alertmanager")
    with psycopg.connect(url, autocommit=True) as db:
        token = db.execute("SELECT ops.create_integration_key('bench', 'alertmanager', 'bench')").fetchone()[0]
    port = int(os.environ.get("OPSGUARD_BENCH_AM_PORT", "54397"))
    server = start_api(url, port, "bench-secret")
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
