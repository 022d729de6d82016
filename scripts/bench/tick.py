"""The escalation tick: its time with 1,000 due incidents among 10k and among 1M (the cost follows
the due rows, not the table: goal ratio <= 1.5), the plan's use of the next_due_at index, and
escalations per second in one tick with 10k due (goal >= 10k/s). Each tick runs in a transaction
that is rolled back, so every repetition sees the same rows."""

from __future__ import annotations

import statistics
import time

import psycopg
from localpg import Cluster

from bench.common import NOW, REPEAT, Figure, fresh_db


def seed(conn: psycopg.Connection, total: int, due: int) -> None:
    """total incidents: `due` overdue, 5% open but not yet due, the rest resolved.

    Bulk rows bypass the row triggers (session_replication_role) and carry the
    next_due_at the trigger would give them; recalc checks that below."""
    conn.execute("TRUNCATE ops.notification_attempts, ops.notification_outbox, ops.tick_log")
    conn.execute("SET session_replication_role = replica")
    conn.execute("DELETE FROM ops.incidents")
    not_due = total // 20
    conn.execute(
        """
        INSERT INTO ops.incidents (incident_key, route, status, severity, escalation_level, first_seen, last_seen,
                                   resolved_at, resolved_by, next_due_at)
        SELECT 'GET /bench/' || g || '::slo_violation', 'GET /bench/' || g,
               CASE WHEN g <= %(due)s + %(not_due)s THEN 'open' ELSE 'resolved' END,
               'critical', 0,
               CASE WHEN g <= %(due)s THEN %(now)s::timestamptz - interval '10 minutes'
                    ELSE %(now)s::timestamptz - interval '2 minutes' END,
               %(now)s,
               CASE WHEN g > %(due)s + %(not_due)s THEN %(now)s END,
               CASE WHEN g > %(due)s + %(not_due)s THEN 'bench' END,
               CASE WHEN g <= %(due)s THEN %(now)s::timestamptz - interval '5 minutes'
                    WHEN g <= %(due)s + %(not_due)s THEN %(now)s::timestamptz + interval '3 minutes' END
        FROM generate_series(1, %(total)s) AS g
        """,
        {"due": due, "not_due": not_due, "total": total, "now": NOW},
    )
    conn.execute("SET session_replication_role = origin")
    conn.execute("VACUUM ANALYZE ops.incidents")
    drift = conn.execute("SELECT ops.recalc_next_due()").fetchone()[0]
    assert drift == 0, f"bench seed disagrees with the trigger on {drift} rows"


def time_tick(conn: psycopg.Connection, expect: int) -> tuple[float, float]:
    """Median wall ms of one tick (client side) and of the function's own escalation_tick_ms."""
    walls, inner = [], []
    for _ in range(REPEAT):
        # every repetition starts from the same state: the rolled-back one before it left
        # dead rows, which autovacuum would otherwise clean up while the next is timed
        # (no CHECKPOINT here: after one, each first page write pays a full-page image)
        conn.execute("VACUUM ops.incidents, ops.escalation_events, ops.notification_outbox, ops.audit_log, ops.tick_log")
        with conn.transaction(force_rollback=True):
            t0 = time.perf_counter()
            summary = conn.execute("SELECT ops.escalation_tick(%s)", (NOW,)).fetchone()[0]
            walls.append((time.perf_counter() - t0) * 1000)
        assert summary["escalationsCount"] == expect, summary
        inner.append(float(summary["escalationTickMs"]))
    return statistics.median(walls), statistics.median(inner)


def claim_plan(conn: psycopg.Connection) -> str:
    rows = conn.execute(
        "EXPLAIN SELECT id FROM ops.incidents WHERE next_due_at <= %s ORDER BY next_due_at LIMIT 10000"
        " FOR UPDATE SKIP LOCKED",
        (NOW,),
    ).fetchall()
    return " / ".join(r[0].strip() for r in rows)


def bench_tick(cluster: Cluster) -> list[Figure]:
    url = fresh_db(cluster, "bench")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT ops.set_setting('tick_batch_max', '20000', 'bench')")
        seed(conn, 10_000, 1_000)
        small_wall, small_inner = time_tick(conn, 1_000)
        seed(conn, 1_000_000, 1_000)
        big_wall, big_inner = time_tick(conn, 1_000)
        plan = claim_plan(conn)
        seed(conn, 100_000, 10_000)
        tenk_wall, tenk_inner = time_tick(conn, 10_000)
    rate = 10_000 / (tenk_wall / 1000)
    return [
        ("tick, 1,000 due among 10k incidents (ms)", f"{small_wall:.1f} (in SQL {small_inner:.1f})", ""),
        ("tick, 1,000 due among 1M incidents (ms)", f"{big_wall:.1f} (in SQL {big_inner:.1f})", ""),
        ("ratio 1M / 10k", f"{big_wall / small_wall:.2f}", "<= 1.5"),
        ("claim plan uses incidents_due index", "yes" if "incidents_due" in plan else f"NO: {plan}", "yes"),
        ("tick with 10k due (ms)", f"{tenk_wall:.1f} (in SQL {tenk_inner:.1f})", ""),
        ("escalations per second (10k due, one tick)", f"{rate:,.0f}", ">= 10,000"),
    ]
