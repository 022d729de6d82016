"""Heartbeats: a tick with 10k heartbeats none of which is due beside a tick with none (goal:
ratio <= 1.5, the heartbeats_due index keeps the missed-heartbeat check to the due rows), and a
tick with 100 of 10k due."""

from __future__ import annotations

import statistics
import time

import psycopg
from localpg import Cluster

from bench.common import NOW, REPEAT, Figure, fresh_db


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


def bench_heartbeats(cluster: Cluster) -> list[Figure]:
    """0 against 10k not-due heartbeats, interleaved so drift hits both alike."""
    url = fresh_db(cluster, "bench_heartbeats")
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
