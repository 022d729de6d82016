"""`make ha`'s three-node synchronous cluster (scripts/ha.py) beside the single embedded cluster,
in one run: signed acks per second through gunicorn on each (goal: the cluster >= 0.5 of the single
one: every commit waits for the synchronous standby), and the time from a kill -9 of the leader's
postmaster to the first write that succeeds again through the multi-host URL (median of 3)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import tempfile
import time
from pathlib import Path

import psycopg
from ha import Ha
from localpg import RUN_AS, Cluster
from opsguard.migrate import apply

from bench.common import Figure, api_server, free_port, fresh_db, median_pair, wrk

INCIDENTS = 5000
KILLS = 3


def _incident_paths(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT (ops.trigger_incident('GET /ha/' || g || '::x', 'critical')).id FROM generate_series(1, %s) g",
            (INCIDENTS,))]
    return [f"/ops/incidents/{i}/ack" for i in ids]


def _until(what, timeout: float, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while not (value := what()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout} s")
        time.sleep(step)
    return value


def _write_once(url: str) -> bool:
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=1) as conn:
            conn.execute("SELECT ops.trigger_incident('GET /ha/kill::x', 'warning')")
        return True
    except psycopg.Error:
        return False


def _kill_to_write(ha: Ha, url: str) -> float:
    """Seconds from kill -9 of the leader's postmaster to the first write that succeeds."""
    members = _until(ha.healthy, 120)
    leader = next(m["name"] for m in members if m["role"] == "leader")
    pid = ha.postmaster_pid(leader)
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.05)  # the first attempt must not reach the server before the kill lands
    _until(lambda: _write_once(url), 60, 0.1)
    return time.monotonic() - killed


def bench_ha(cluster: Cluster) -> list[Figure]:
    single = fresh_db(cluster, "bench_ha_single")
    parent = Path(tempfile.mkdtemp(prefix="opsguard-bench-ha-", dir="/var/tmp" if RUN_AS else None))  # noqa: S108
    parent.chmod(0o755)
    ports = [str(free_port()) for _ in range(8)]
    ha = Ha(argparse.Namespace(dir=parent / "ha", pg_ports=",".join(ports[:3]), rest_ports=",".join(ports[3:6]),
                               etcd_ports=",".join(ports[6:])))
    secret = "bench-secret"  # noqa: S105 - throwaway servers on loopback
    try:
        if ha.start() != 0:
            raise RuntimeError(f"the HA cluster did not start; see {ha.dir}")
        apply(ha.url())
        paths = {"single": _incident_paths(single), "ha": _incident_paths(ha.url())}
        runs = {"single": [], "ha": []}
        with api_server(single, free_port(), secret) as one, api_server(ha.url(), free_port(), secret) as three:
            for _ in range(3):  # alternate, so drift on a noisy machine hits both alike
                runs["single"].append(wrk(one, paths["single"], secret, 6))
                runs["ha"].append(wrk(three, paths["ha"], secret, 6))
        kills = [_kill_to_write(ha, ha.url()) for _ in range(KILLS)]
    finally:
        ha.stop()
        shutil.rmtree(parent, ignore_errors=True)
    (one_rps, one_p99), (ha_rps, ha_p99) = median_pair(runs["single"]), median_pair(runs["ha"])
    return [
        ("ha: acks on the single cluster (req/s, p99 ms)", f"{one_rps:,.0f}, p99 {one_p99:.1f}", ""),
        ("ha: acks on 3 nodes, synchronous (req/s, p99 ms)", f"{ha_rps:,.0f}, p99 {ha_p99:.1f}", ""),
        ("ha: acks 3-node sync / single", f"{ha_rps / one_rps:.2f}", ">= 0.5"),
        ("ha: kill -9 leader postmaster -> first write, each (s)", ", ".join(f"{k:.1f}" for k in kills), ""),
        (f"ha: kill -9 -> first write, median of {KILLS} (s)", f"{statistics.median(kills):.1f}", "<= 10"),
    ]
