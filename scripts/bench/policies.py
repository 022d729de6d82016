"""Escalation policies: the tick with 10k due, every incident on a three-step policy whose steps
each page a schedule, beside the same tick without policies, interleaved (goal: ratio <= 1.5)."""

from __future__ import annotations

import statistics
import time

import psycopg
from localpg import Cluster
from psycopg.types.json import Jsonb

from bench.common import NOW, REPEAT, Figure, fresh_db
from bench.tick import seed


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


def bench_tick_policies(cluster: Cluster) -> list[Figure]:
    """The 10k-due tick with every incident on a three-step policy (each step a schedule) beside
    the same tick without policies: two databases seeded alike, one with the policy and
    the route mappings, timed in turn so drift hits both alike."""
    urls = {}
    for name in ("bench_policies_off", "bench_policies_on"):
        urls[name] = fresh_db(cluster, name)
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
