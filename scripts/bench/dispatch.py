"""Notifications: messages per second the shipped dispatcher (default settings) delivers to a
local webhook (scripts/fake_slack.py in its own process), 10k queued at once (goal >= 1,000/s)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

import psycopg
from localpg import REPO, Cluster

from bench.common import Figure, fresh_db

DISPATCH_MESSAGES = 10_000


def bench_dispatch(cluster: Cluster) -> list[Figure]:
    url = fresh_db(cluster, "bench_dispatch")
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'api'}:{REPO / 'scripts'}"}
    slack = subprocess.Popen([sys.executable, str(REPO / "scripts/fake_slack.py"), "--port", "54394", "--quiet"], env=env)
    dispatcher = subprocess.Popen([sys.executable, "-m", "opsguard.dispatcher", "--dsn", url], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rates = []
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT ops.set_setting('slack_webhook_url', 'http://127.0.0.1:54394/services/bench', 'bench')")
            conn.execute("SELECT ops.set_setting('tick_batch_max', '20000', 'bench')")
            conn.execute("SELECT ops.trigger_incident('GET /n/' || g || '::x', 'critical', NULL, NULL, 'bench',"
                         " now() - interval '1 hour') FROM generate_series(1, %s) g", (DISPATCH_MESSAGES,))
            conn.execute("SELECT ops.set_setting('notify_paused', 'true', 'bench')")
            conn.execute("SELECT ops.escalation_tick()")
            for _ in range(3):
                conn.execute("UPDATE ops.notification_outbox SET status = 'pending', attempts = 0, next_attempt_at = now()")
                conn.execute("SELECT ops.set_setting('notify_paused', 'false', 'bench')")
                t0 = time.perf_counter()
                conn.execute("NOTIFY ops_outbox")
                while conn.execute("SELECT sent FROM ops.notification_stats").fetchone()[0] < DISPATCH_MESSAGES:
                    assert dispatcher.poll() is None, "the dispatcher stopped"
                    time.sleep(0.01)
                rates.append(DISPATCH_MESSAGES / (time.perf_counter() - t0))
                conn.execute("SELECT ops.set_setting('notify_paused', 'true', 'bench')")
    finally:
        for proc in (dispatcher, slack):
            proc.terminate()
            proc.wait(timeout=15)
    return [("dispatcher: messages delivered to a local webhook (/s)", f"{statistics.median(rates):,.0f}", ">= 1,000")]
