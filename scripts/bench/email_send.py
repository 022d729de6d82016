"""E-mail pages: how fast the shipped dispatcher delivers them to a local SMTP server (the
aiosmtpd stand-in, STARTTLS, in its own process), against raw smtplib sending the same messages
over one connection to the same server. Side by side in one run; goal: the ratio >= 0.5 (the
dispatcher keeps one SMTP connection per batch instead of connecting per message)."""

from __future__ import annotations

import os
import smtplib
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from localpg import REPO, Cluster
from opsguard.senders.email import build

from bench.common import REPEAT, Figure, fresh_db

EMAILS = 500


SETUP_SQL = """
SELECT ops.set_setting('app_base_url', 'https://ops.example.com', 'bench');
SELECT ops.add_principal('p' || g, 'human', ARRAY['ops_responder'], 'bench') FROM generate_series(1, {n}) AS g;
INSERT INTO ops.contact_methods (principal, kind, address, created_by, verified_at)
SELECT 'p' || g, 'email', 'p' || g || '@mail.example.com', 'bench', now() FROM generate_series(1, {n}) AS g;
INSERT INTO ops.notification_rules (principal, contact_method, delay_min, created_by)
SELECT principal, id, 0, 'bench' FROM ops.contact_methods;
SELECT ops.trigger_incident('GET /bench::email', 'critical', 'GET /bench', 'Bench', 'bench', now() - interval '1 hour');
SELECT ops.escalation_tick(now());
-- one page per rule, as the tick queues them
INSERT INTO ops.notification_outbox (dedup_key, event_id, incident_id, route, channel, payload, next_attempt_at,
                                     principal, contact_method)
SELECT encode(sha256(convert_to(e.unique_hash || ':rule:' || r.id, 'UTF8')), 'hex'), e.id, e.incident_id, e.route,
       'email', o.payload, now(), r.principal, r.contact_method
FROM ops.notification_rules AS r, ops.escalation_events AS e
INNER JOIN ops.notification_outbox AS o ON o.event_id = e.id AND o.contact_method IS NULL;
"""


def _standins(env: dict, envfile: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts/standins"), "--certdir", str(envfile.parent),
                             "--env-file", str(envfile)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        if envfile.exists():
            return proc
        assert proc.poll() is None, "the stand-ins did not start"
        time.sleep(0.1)
    raise AssertionError("the stand-ins did not start")


def _raw_rate(host: str, port: int, ca_file: str, messages: list) -> float:
    t0 = time.perf_counter()
    with smtplib.SMTP(host, port, timeout=30) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=ca_file))
        for msg in messages:
            smtp.send_message(msg)
    return len(messages) / (time.perf_counter() - t0)


def _dispatcher_rate(conn: psycopg.Connection, dispatcher: subprocess.Popen) -> float:
    conn.execute("UPDATE ops.notification_outbox SET status = 'pending', attempts = 0, next_attempt_at = now(), "
                 "sent_at = NULL, provider_id = NULL WHERE contact_method IS NOT NULL")
    conn.execute("SELECT ops.set_setting('notify_paused', 'false', 'bench')")
    t0 = time.perf_counter()
    conn.execute("NOTIFY ops_outbox")
    while conn.execute("SELECT count(*) FROM ops.notification_outbox WHERE status = 'sent'").fetchone()[0] < EMAILS:
        assert dispatcher.poll() is None, "the dispatcher stopped"
        time.sleep(0.01)
    rate = EMAILS / (time.perf_counter() - t0)
    conn.execute("SELECT ops.set_setting('notify_paused', 'true', 'bench')")
    return rate


def bench_email(cluster: Cluster) -> list[Figure]:
    url = fresh_db(cluster, "bench_email")
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'api'}:{REPO / 'scripts'}"}
    envfile = Path(tempfile.mkdtemp(prefix="opsguard-bench-email-")) / "env.sh"
    standins = _standins(env, envfile)
    found = dict(line.split("=", 1) for line in envfile.read_text().splitlines())
    host, port, ca_file = found["STANDIN_SMTP_HOST"], int(found["STANDIN_SMTP_PORT"]), found["STANDIN_SMTP_CA_FILE"]
    dispatcher = None
    raw, ours = [], []
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT ops.set_setting('notify_paused', 'true', 'bench')")
            conn.execute(SETUP_SQL.format(n=EMAILS).encode())  # several statements: no parameters
            conn.execute("SELECT ops.set_setting('smtp_host', %s, 'bench'), ops.set_setting('smtp_port', %s, 'bench')",
                         (host, str(port)))
            # the same messages, rendered by the same SQL, for raw smtplib
            rendered = [r[0] for r in conn.execute(
                "SELECT ops.page_email(o.payload, 'https://ops.example.com/p/' || repeat('x', 43)) "
                "|| jsonb_build_object('to', m.address, 'from', 'opsguard@localhost') "
                "FROM ops.notification_outbox AS o JOIN ops.contact_methods AS m ON o.contact_method = m.id")]
            messages = [build(m, f"bench-{i}") for i, m in enumerate(rendered)]
            dispatcher = subprocess.Popen([sys.executable, "-m", "opsguard.dispatcher", "--dsn", url],
                                          env={**env, "OPS_SMTP_CA_FILE": ca_file},
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(REPEAT):  # side by side, alternating
                raw.append(_raw_rate(host, port, ca_file, messages))
                ours.append(_dispatcher_rate(conn, dispatcher))
    finally:
        for proc in (dispatcher, standins):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=15)
    r, o = statistics.median(raw), statistics.median(ours)
    return [("email: raw smtplib over one connection (/s)", f"{r:,.0f}", ""),
            ("email: delivered by the dispatcher (/s)", f"{o:,.0f}", ""),
            ("email: dispatcher / raw smtplib", f"{o / r:.2f}", ">= 0.5")]
