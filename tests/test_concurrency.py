"""Ticks racing each other (pg_cron, the API, a second worker) and operators holding row
locks: exactly one escalation event per (incident, level), and no tick ever blocks."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _open_incidents(conn: psycopg.Connection, n: int) -> None:
    conn.execute(
        "SELECT ops.trigger_incident('GET /r' || g || '::slo_violation', 'critical', p_now => %s)"
        " FROM generate_series(1, %s) AS g",
        (T0, n),
    )
    conn.execute("SELECT ops.set_setting('snooze_min', '0', 'test')")


def test_eight_sessions_ticking_at_once_escalate_each_level_once(conn, db_url):
    _open_incidents(conn, 300)
    # critical: level n is due at T0 + 5 min * (n + 1); these clocks cover levels 1..4
    clocks = [T0 + timedelta(minutes=m) for m in (5, 10, 15, 20)]
    sessions = 10
    barrier = threading.Barrier(sessions)
    states: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as c:
                for now in clocks:
                    for _ in range(3):
                        barrier.wait(timeout=30)
                        states.append(c.execute("SELECT ops.escalation_tick(%s)->>'state'", (now,)).fetchone()[0])
        except BaseException as exc:  # noqa: BLE001 - surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors

    dupes = conn.execute(
        "SELECT count(*) FROM (SELECT incident_id, escalation_level FROM ops.escalation_events"
        " GROUP BY 1, 2 HAVING count(*) > 1) d"
    ).fetchone()[0]
    assert dupes == 0
    events, outbox, levels = conn.execute(
        "SELECT (SELECT count(*) FROM ops.escalation_events), (SELECT count(*) FROM ops.notification_outbox),"
        " (SELECT array_agg(DISTINCT escalation_level) FROM ops.incidents)"
    ).fetchone()
    assert events == 300 * 4, "every incident escalated through levels 1..4, each once"
    assert outbox == events, "one notification per event"
    assert levels == [4]
    assert set(states) <= {"ran", "busy"} and "ran" in states
    logged = conn.execute("SELECT sum(escalations_count) FROM ops.tick_log").fetchone()[0]
    assert logged == events, "the tick log's counters add up to what happened"


def test_an_operators_row_lock_does_not_block_the_tick(conn, db_url):
    _open_incidents(conn, 3)
    locked_id = conn.execute("SELECT id FROM ops.incidents ORDER BY incident_key LIMIT 1").fetchone()[0]
    with psycopg.connect(db_url) as operator:  # an open transaction in someone's psql
        operator.execute("SELECT 1 FROM ops.incidents WHERE id = %s FOR UPDATE", (locked_id,))
        conn.execute("SET statement_timeout = '5s'")
        summary = conn.execute("SELECT ops.escalation_tick(%s)", (T0 + timedelta(minutes=5),)).fetchone()[0]
        assert summary["escalationsCount"] == 2, "the locked incident is skipped, the others escalate"
        operator.rollback()
    summary = conn.execute("SELECT ops.escalation_tick(%s)", (T0 + timedelta(minutes=6),)).fetchone()[0]
    assert summary["escalationsCount"] == 1, "once released, the next tick takes it"
    levels = conn.execute("SELECT array_agg(DISTINCT escalation_level) FROM ops.incidents").fetchone()[0]
    assert levels == [1]


def test_two_senders_opening_one_key_at_once_share_one_incident(conn, db_url):
    """0031 looks the open incident up before it inserts: a second sender that misses the first
    one's uncommitted INSERT waits on it (ON CONFLICT DO NOTHING), then finds the row and refreshes
    it, as the single INSERT ... ON CONFLICT DO UPDATE of 0027 did; no error, no second incident."""
    trigger = ("SELECT (i).id, (i).severity FROM ops._intake_trigger('am:race', %s, NULL, 's', '{}', %s, %s) AS i")
    first = psycopg.connect(db_url)
    try:
        opened = first.execute(trigger, ("warning", "first", T0)).fetchone()  # not committed yet
        result: list = []

        def second() -> None:
            with psycopg.connect(db_url, autocommit=True) as c:
                result.append(c.execute(trigger, ("critical", "second", T0 + timedelta(minutes=1))).fetchone())

        t = threading.Thread(target=second)
        t.start()
        t.join(timeout=1)
        assert t.is_alive(), "the second sender waits for the first one's insert"
        first.commit()
        t.join(timeout=30)
    finally:
        first.close()
    assert result == [(opened[0], "critical")], "the second sender refreshed the first one's incident"
    rows = conn.execute("SELECT count(*), max(last_seen) FROM ops.incidents WHERE incident_key = 'am:race'").fetchone()
    assert rows == (1, T0 + timedelta(minutes=1))
