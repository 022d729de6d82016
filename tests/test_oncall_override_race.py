"""Two operators swapping shifts at the same moment: ops.add_override locks the schedule row before it
looks for an overlap, so the second caller waits for the first to commit and then sees its span (23P01)
instead of both finding no overlap and both inserting. Overrides of another schedule do not wait."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

ADD = "SELECT id FROM ops.add_override(%s, %s, %s, %s, 'test', 'race')"


def _waiting_on_a_lock(conn: psycopg.Connection, pid: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if conn.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0]:
            return True
        time.sleep(0.02)
    return False


def test_concurrent_overlapping_overrides_one_wins(conn, db_url):
    for p in ("alice", "bob"):
        conn.execute("SELECT ops.add_principal(%s, 'human', ARRAY['ops_responder'], 'test')", (p,))
    for s in ("primary", "other"):
        conn.execute("SELECT ops.create_schedule(%s, 'UTC', 'test')", (s,))

    with psycopg.connect(db_url) as first, psycopg.connect(db_url, autocommit=True) as second:
        first.execute(ADD, ("primary", "alice", "2026-03-02 10:00Z", "2026-03-02 12:00Z"))  # not committed yet
        pid = second.execute("SELECT pg_backend_pid()").fetchone()[0]
        outcome: list[BaseException | int] = []

        def racer() -> None:
            try:
                outcome.append(second.execute(ADD, ("primary", "bob", "2026-03-02 11:00Z", "2026-03-02 13:00Z"))
                               .fetchone()[0])
            except BaseException as exc:  # noqa: BLE001 - inspected below
                outcome.append(exc)

        thread = threading.Thread(target=racer)
        thread.start()
        assert _waiting_on_a_lock(conn, pid), "the second caller waits for the first one's schedule lock"
        with psycopg.connect(db_url, autocommit=True) as third:
            # another schedule is not held up by it
            third.execute(ADD, ("other", "bob", "2026-03-02 11:00Z", "2026-03-02 13:00Z"))
        first.commit()
        thread.join(timeout=30)

    assert len(outcome) == 1 and isinstance(outcome[0], psycopg.errors.ExclusionViolation), outcome
    assert "remove_override" in outcome[0].diag.message_hint
    rows = conn.execute("SELECT schedule, principal FROM ops.schedule_overrides ORDER BY schedule").fetchall()
    assert rows == [("other", "bob"), ("primary", "alice")]


@pytest.mark.parametrize("span", [("2026-03-02 12:00Z", "2026-03-02 13:00Z"), ("2026-03-02 09:00Z", "2026-03-02 10:00Z")])
def test_touching_spans_are_not_an_overlap(conn, span):
    conn.execute("SELECT ops.add_principal('alice', 'human', ARRAY['ops_responder'], 'test')")
    conn.execute("SELECT ops.create_schedule('primary', 'UTC', 'test')")
    conn.execute(ADD, ("primary", "alice", "2026-03-02 10:00Z", "2026-03-02 12:00Z"))
    conn.execute(ADD, ("primary", "alice", *span))
    assert conn.execute("SELECT count(*) FROM ops.schedule_overrides").fetchone()[0] == 2
