"""An idle dispatcher is idle: the real process, with its default poll interval, against a
database with nothing to send, waits on LISTEN ops_outbox instead of polling (it once asked
ops.notification_wait_s(), got 0 for "nothing waiting", and polled ~150 times a second).
Measured as the database sees it: pg_stat_database's commits and rollbacks for the test
database, read from a connection to another database so the test's own queries do not count.
Autovacuum is off in this throwaway cluster for the measurement: its workers also run
transactions in the database (each visit reads pg_class), which are not the dispatcher's."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from fake_slack import FakeSlack

ROOT = Path(__file__).resolve().parents[1]
WINDOW_S = 6.0
STARTUP_FLUSH_S = 11.0
APP = "opsguard-dispatcher-idle-test"


@pytest.fixture
def slack():
    fake = FakeSlack().start()
    yield fake
    fake.stop()


def _transactions(stats: psycopg.Connection, dbname: str) -> int:
    return stats.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                         (dbname,)).fetchone()[0]


def _others_in(stats: psycopg.Connection, dbname: str, own_pid: int) -> list[str]:
    """Backends in the test database other than the dispatcher and the test's idle connection."""
    return [r[0] for r in stats.execute(
        "SELECT backend_type || ': ' || left(coalesce(query, ''), 40) FROM pg_stat_activity"
        " WHERE datname = %s AND application_name <> %s AND pid <> %s",
        (dbname, APP, own_pid)).fetchall()]


@pytest.fixture
def no_autovacuum(pg_cluster):
    with psycopg.connect(pg_cluster.url("postgres"), autocommit=True) as su:
        su.execute("ALTER SYSTEM SET autovacuum = off")
        su.execute("SELECT pg_reload_conf()")
        try:
            yield
        finally:
            su.execute("ALTER SYSTEM RESET autovacuum")
            su.execute("SELECT pg_reload_conf()")


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_an_idle_dispatcher_waits_on_listen_and_still_delivers_at_once(conn, db_url, pg_cluster, slack, no_autovacuum):
    conn.execute("SELECT ops.set_setting('slack_webhook_url', %s, 'test')", (slack.url(),))
    dbname, own = conn.info.dbname, conn.info.backend_pid
    env = {**os.environ, "PYTHONPATH": str(ROOT / "api"), "PGAPPNAME": APP}
    # the shipped defaults (poll every 5 s as a fallback to NOTIFY)
    proc = subprocess.Popen([sys.executable, "-m", "opsguard.dispatcher", "--dsn", db_url, "--worker", "idle"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with psycopg.connect(pg_cluster.url("postgres"), autocommit=True) as stats:
            _wait_until(lambda: stats.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE '%%notification_wait_s%%'",
                (dbname,)).fetchone()[0] > 0, 20, "the dispatcher to start waiting")
            # a backend reports its counts when it goes idle, but at most once a second; what it
            # holds back is reported 10 s later (PGSTAT_IDLE_INTERVAL): let the dispatcher's
            # start-up queries (and this test's own, before) land before the window opens
            time.sleep(STARTUP_FLUSH_S)
            _wait_until(lambda: not any(o.startswith("autovacuum") for o in _others_in(stats, dbname, own)),
                        30, "autovacuum workers to leave the test database")
            before, t0 = _transactions(stats, dbname), time.monotonic()
            others = set()
            while time.monotonic() - t0 < WINDOW_S:
                others.update(_others_in(stats, dbname, own))
                time.sleep(0.25)
            after, elapsed = _transactions(stats, dbname), time.monotonic() - t0
            rate = (after - before) / elapsed
            print(f"idle dispatcher: {after - before} transactions in {elapsed:.1f} s = {rate:.2f}/s")
            assert rate < 1.0, (f"an idle dispatcher ran {after - before} transactions in {elapsed:.1f} s"
                                f" (other backends in the database meanwhile: {sorted(others)})")
            assert proc.poll() is None, proc.stdout.read()

        # a message queued now is delivered on the tick's NOTIFY, not at the next poll 5 s later
        conn.execute("SELECT ops.trigger_incident('GET /idle::slo_violation', 'critical', NULL, NULL, 'ops-bot', "
                     "now() - interval '1 hour')")
        queued = time.monotonic()
        conn.execute("SELECT ops.escalation_tick(now())")
        _wait_until(lambda: len(slack.messages()) == 1, 10, "the message to be delivered")
        waited = time.monotonic() - queued
        print(f"delivered {waited * 1000:.0f} ms after the tick")
        assert waited < 2.5, f"delivered after {waited:.1f} s: woken by the poll, not by NOTIFY"
        _wait_until(lambda: conn.execute("SELECT status FROM ops.notification_outbox").fetchone()[0] == "sent", 10,
                    "the dispatcher to report the delivery")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
