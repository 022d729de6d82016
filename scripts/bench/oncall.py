"""On-call: ops.on_call for a schedule whose first handoff was five years ago, with 10,000 past
overrides, beside one created yesterday with the same layers; many calls each, interleaved, p50
of each call from the client (goal: ratio <= 1.2) and 1,000 calls inside one query (in SQL)."""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

import psycopg
from localpg import Cluster

from bench.common import NOW, REPEAT, Figure, fresh_db


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


def bench_oncall(cluster: Cluster) -> list[Figure]:
    url = fresh_db(cluster, "bench_oncall")
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
        ("1,000 on_call in one query: yesterday / 5 years (ms)", f"{new_sql:.1f} / {old_sql:.1f}", ""),
        ("ratio 1,000 on_call in one query, 5 years / yesterday", f"{old_sql / new_sql:.2f}", ""),
    ]
