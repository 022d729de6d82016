"""The escalation tick: its time with 1,000 due incidents among 10k and among 1M (the cost follows
the due rows, not the table: goal ratio <= 1.5), the plan's use of the next_due_at index, and
escalations per second in one tick with 10k due (goal >= 10k/s), and that tick beside the raw
set-based writes of the same 10k rows (goal: tick / raw <= 2). Each tick runs in a transaction
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
    conn.execute("TRUNCATE ops.notification_attempts, ops.page_tokens, ops.notification_outbox, ops.tick_log")
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


def time_tick(conn: psycopg.Connection, expect: int, repeat: int = REPEAT) -> tuple[float, float]:
    """Median wall ms of one tick (client side) and of the function's own escalation_tick_ms."""
    walls, inner = [], []
    for _ in range(repeat):
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


# The writes a 10k tick makes, as plain set-based SQL with no row logic: the incidents' new level
# and next_due_at (the SLA and snooze_min joined in), their escalation events, one outbox message
# each and one audit row each. The user triggers of incidents and audit_log are off for it (the
# row trigger, the audit trigger and the audit writer check: their work is the audit INSERT here);
# the foreign keys stay. What the tick adds beyond this is its own cost.
RAW_WRITES = """
WITH due AS (
    SELECT i.id, i.incident_key, i.route, i.severity, i.escalation_level AS old_level,
           i.escalation_level + 1 AS level, i.next_due_at AS old_due,
           GREATEST(i.first_seen + make_interval(mins => sla.ack_minutes * (i.escalation_level + 2)),
                    %(now)s::timestamptz + make_interval(mins => (SELECT value FROM ops.settings
                                                                  WHERE key = 'snooze_min')::int)) AS new_due
    FROM ops.incidents AS i JOIN ops.sla ON sla.severity = i.severity
    WHERE i.next_due_at <= %(now)s
),
raised AS (
    UPDATE ops.incidents AS i SET escalation_level = d.level, last_escalated_at = %(now)s, next_due_at = d.new_due
    FROM due AS d WHERE i.id = d.id
),
events AS (
    INSERT INTO ops.escalation_events (incident_id, incident_key, route, severity, escalation_level, escalated_at,
                                       unique_hash)
    SELECT d.id, d.incident_key, d.route, d.severity, d.level, %(now)s,
           encode(sha256(convert_to(d.id::text || ':' || d.level, 'UTF8')), 'hex')
    FROM due AS d
    RETURNING id, incident_id, incident_key, route, severity, escalation_level, escalated_at, unique_hash
),
queued AS (
    INSERT INTO ops.notification_outbox (dedup_key, event_id, incident_id, route, payload)
    SELECT e.unique_hash, e.id, e.incident_id, e.route,
           jsonb_build_object('dedup_key', e.unique_hash, 'incident_id', e.incident_id, 'incident_key', e.incident_key,
                              'route', e.route, 'severity', e.severity, 'escalation_level', e.escalation_level,
                              'escalated_at', e.escalated_at, 'link', NULL,
                              'text', format('[%%s] %%s escalated to level %%s', upper(e.severity), e.incident_key,
                                             e.escalation_level))
    FROM events AS e
)
INSERT INTO ops.audit_log (actor, action, table_name, row_key, changes)
SELECT 'opsguard:tick', 'UPDATE', 'incidents', d.id::text,
       jsonb_build_object('escalation_level', jsonb_build_array(d.old_level, d.level),
                          'last_escalated_at', jsonb_build_array(NULL, %(now)s::timestamptz),
                          'next_due_at', jsonb_build_array(d.old_due, d.new_due))
FROM due AS d
"""


def time_raw(conn: psycopg.Connection, expect: int) -> float:
    """Wall ms of RAW_WRITES, set up and rolled back as time_tick does its tick."""
    conn.execute("VACUUM ops.incidents, ops.escalation_events, ops.notification_outbox, ops.audit_log, ops.tick_log")
    with conn.transaction(force_rollback=True):
        conn.execute("ALTER TABLE ops.incidents DISABLE TRIGGER USER")
        conn.execute("ALTER TABLE ops.audit_log DISABLE TRIGGER USER")
        t0 = time.perf_counter()
        conn.execute(RAW_WRITES, {"now": NOW})
        wall = (time.perf_counter() - t0) * 1000
        got = conn.execute("SELECT count(*) FROM ops.notification_outbox").fetchone()[0]
    assert got == expect, got
    return wall


def tick_against_raw(conn: psycopg.Connection, expect: int) -> tuple[float, float]:
    """Median wall ms of the tick and of the raw writes, taken in turn so drift hits both alike
    (the first of each warms the caches)."""
    ticks, raws = [], []
    for _ in range(REPEAT + 1):
        ticks.append(time_tick(conn, expect, repeat=1)[0])
        raws.append(time_raw(conn, expect))
    return statistics.median(ticks[1:]), statistics.median(raws[1:])


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
        paired_tick, raw = tick_against_raw(conn, 10_000)
    rate = 10_000 / (tenk_wall / 1000)
    return [
        ("tick, 1,000 due among 10k incidents (ms)", f"{small_wall:.1f} (in SQL {small_inner:.1f})", ""),
        ("tick, 1,000 due among 1M incidents (ms)", f"{big_wall:.1f} (in SQL {big_inner:.1f})", ""),
        ("ratio 1M / 10k", f"{big_wall / small_wall:.2f}", "<= 1.5"),
        ("claim plan uses incidents_due index", "yes" if "incidents_due" in plan else f"NO: {plan}", "yes"),
        ("tick with 10k due (ms)", f"{tenk_wall:.1f} (in SQL {tenk_inner:.1f})", ""),
        ("escalations per second (10k due, one tick)", f"{rate:,.0f}", ">= 10,000"),
        ("raw set-based writes of the same 10k rows (ms)", f"{raw:.1f} (tick beside it {paired_tick:.1f})", ""),
        ("ratio tick / raw writes (10k due)", f"{paired_tick / raw:.2f}", "<= 2"),
    ]
