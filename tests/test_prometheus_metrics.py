"""GET /metrics under Prometheus's conventions (docs/observability.md): the shipped gunicorn config serves a
database with ticks, escalations, deliveries and guard verdicts, so every metric family has
samples, and the real `promtool check metrics` lints the scrape. SQL keeps the seeds' names
(ops.metrics); the scrape carries the same numbers in base units (ops.metric_exports)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import SECRET
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]

# every family GET /metrics exports, with its type: the list docs/observability.md gives
FAMILIES = {
    "opsguard_escalations_total": "counter",
    "opsguard_escalations_skipped_idempotent_total": "counter",
    "opsguard_ticks_total": "counter",
    "opsguard_escalation_tick_seconds": "gauge",
    "opsguard_queue_lag_seconds": "gauge",
    "opsguard_last_tick_age_seconds": "gauge",
    "opsguard_tick_interval_seconds": "gauge",
    "opsguard_slack_send_failures_total": "counter",
    "opsguard_notifications_sent_total": "counter",
    "opsguard_notifications": "gauge",
    "opsguard_oldest_pending_notification_seconds": "gauge",
    "opsguard_open_incidents": "gauge",
    "opsguard_guard_evaluations_total": "counter",
    "opsguard_guard_failing_items": "gauge",
    "opsguard_alert_firing": "gauge",
    "opsguard_collector_queries_total": "counter",
    "opsguard_collector_failures_total": "counter",
    "opsguard_collector_lag_seconds": "gauge",
    "opsguard_metrics_sources_stale": "gauge",
}

ACTIVITY = [
    "SELECT ops.set_setting('snooze_min', '0', 'test')",
    "SELECT ops.set_setting('tick_ms', '30000', 'test')",
    "SELECT ops.trigger_incident('GET /m' || g || '::x', 'critical', p_now => now() - interval '1 hour')"
    " FROM generate_series(1, 3) g",
    "SELECT ops.escalation_tick()",  # 3 escalations to level 1, 3 messages queued
    "UPDATE incidents SET escalation_level = 0 WHERE incident_key = 'GET /m1::x'",
    "SELECT ops.trigger_incident('GET /m4::x', 'critical', p_now => now() - interval '1 hour')",
    # m1 reaches level 1 again: skipped; m2, m3 go to level 2; m4, due for most of an hour, to level 1
    "SELECT ops.escalation_tick()",
    # one message delivered after one failed attempt, one given up
    "UPDATE notification_outbox SET status = 'sent', sent_at = now()"
    " WHERE id = (SELECT min(id) FROM notification_outbox)",
    "INSERT INTO notification_attempts (outbox_id, attempt, worker, outcome, http_status, error, finished_at)"
    " SELECT id, 1, 'w', 'failed', 500, 'HTTP 500', now() FROM notification_outbox WHERE status = 'sent'",
    "UPDATE notification_outbox SET status = 'dead' WHERE id = (SELECT max(id) FROM notification_outbox)",
    "SELECT ops.trigger_incident('GET /m5::x', 'critical')",
    "SELECT ops.release_guard()",  # blocked: m5, open, critical and seen just now
]


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool") or str(ROOT / ".local" / "bin" / "promtool")
    assert Path(found).exists(), "promtool is missing: make promtool (make test installs it)"
    return found


def check_metrics(promtool: str, text: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)


@pytest.fixture
def server(db_url, conn):
    for sql in ACTIVITY:
        conn.execute(sql)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": db_url, "OPS_HMAC_SECRET": SECRET, "PORT": str(port),
           "PYTHONPATH": str(ROOT / "api"), "OPS_ACCESS_LOG": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "api/gunicorn.conf.py"), "opsguard.app:create_app()"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/metrics", timeout=2).close()
            break
        except OSError:  # refused (or a 5xx while starting): not up yet
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
            time.sleep(0.2)
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def scrape(base: str, accept: str | None = None) -> tuple[str, str]:
    req = urllib.request.Request(base + "/metrics", headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.headers["Content-Type"], resp.read().decode()


def test_the_scrape_passes_promtool_check_metrics(server, promtool):
    content_type, text = scrape(server)
    assert content_type.startswith("text/plain; version=0.0.4")
    families = {f.name + ("_total" if f.type == "counter" else ""): f for f in text_string_to_metric_families(text)}
    # promtool lints what is there: every family must be there, with samples
    assert {name: f.type for name, f in families.items()} == FAMILIES
    assert [name for name, f in families.items() if not f.samples] == []
    for name, kind in FAMILIES.items():
        assert f"\n# TYPE {name} {kind}\n" in "\n" + text, name
        assert f"\n# HELP {name} " in "\n" + text, name
    res = check_metrics(promtool, text)
    assert (res.returncode, res.stdout + res.stderr) == (0, "")


def test_promtool_fails_when_a_name_breaks_the_conventions(server, conn, promtool):
    """The gate is real: with the table's own check taken off, a seed name in ms goes out,
    and promtool refuses the live scrape."""
    conn.execute("ALTER TABLE ops.metric_exports DROP CONSTRAINT metric_exports_no_abbreviated_unit")
    conn.execute("UPDATE ops.metric_exports SET exported_as = 'opsguard_escalation_tick_ms', unit = NULL"
                 " WHERE metric = 'opsguard_escalation_tick_ms'")
    res = check_metrics(promtool, scrape(server)[1])
    assert res.returncode != 0
    assert "opsguard_escalation_tick_ms metric names should not contain abbreviated units" in res.stderr


def value(families: dict, name: str, **labels) -> float:
    [sample] = [s for s in families[name].samples if s.labels == labels and s.name == name]
    return sample.value


def test_values_are_the_sql_counters_in_base_units(server, conn):
    families = {f.name + ("_total" if f.type == "counter" else ""): f
                for f in text_string_to_metric_families(scrape(server)[1])}
    tick_ms, lag_ms = conn.execute(
        "SELECT escalation_tick_ms, queue_lag_ms FROM tick_log ORDER BY tick_at DESC, id DESC LIMIT 1").fetchone()
    assert tick_ms > 0 and lag_ms > 1_000_000  # m4 was due long before the last tick
    assert value(families, "opsguard_escalation_tick_seconds") == float(tick_ms) / 1000
    assert value(families, "opsguard_queue_lag_seconds") == lag_ms / 1000
    assert value(families, "opsguard_tick_interval_seconds") == 30.0  # tick_ms 30000
    assert 0 <= value(families, "opsguard_last_tick_age_seconds") < 60

    # the seeds' counters, under their SQL names in ops.metrics, are the exported ones
    sql = dict(conn.execute("SELECT metric, value FROM ops.metrics WHERE labels = '{}'").fetchall())
    assert (sql["opsguard_escalations_count"], value(families, "opsguard_escalations_total")) == (6, 6)
    assert (sql["opsguard_skipped_idempotent"], value(families, "opsguard_escalations_skipped_idempotent_total")) \
        == (1, 1)
    assert (sql["opsguard_slack_send_failures"], value(families, "opsguard_slack_send_failures_total")) == (1, 1)
    assert value(families, "opsguard_notifications_sent_total") == 1
    assert sql["opsguard_queue_lag_ms"] == lag_ms and sql["opsguard_escalation_tick_ms"] == float(tick_ms)
    assert value(families, "opsguard_ticks_total", state="ran") == 2
    assert value(families, "opsguard_notifications", status="dead") == 1
    assert value(families, "opsguard_notifications", status="pending") == 4
    assert value(families, "opsguard_open_incidents", status="open", severity="critical", level="2") == 2
    assert value(families, "opsguard_guard_evaluations_total", verdict="blocked") == 1
    assert value(families, "opsguard_open_incidents", status="open", severity="critical", level="1") == 2
    assert value(families, "opsguard_guard_failing_items") == 1
    assert value(families, "opsguard_alert_firing", alert="DeadLetters", severity="warning") == 1

    # and every series but the two clocks equals what psql reads from ops.exported_metrics
    exported = {(r[0], tuple(sorted(r[1].items()))): r[2] for r in conn.execute(
        "SELECT metric, labels, value FROM ops.exported_metrics() WHERE value IS NOT NULL"
        " AND metric NOT IN ('opsguard_last_tick_age_seconds', 'opsguard_oldest_pending_notification_seconds')")}
    scraped = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples
               if f.name not in ("opsguard_last_tick_age_seconds", "opsguard_oldest_pending_notification_seconds")}
    assert scraped == exported


def test_openmetrics_carries_the_units(server):
    content_type, text = scrape(server, "application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    families = {f.name: f for f in parse_openmetrics(text)}  # the strict parser: names must end with the unit
    assert {name for name, f in families.items() if f.unit == "seconds"} == {
        "opsguard_escalation_tick_seconds", "opsguard_queue_lag_seconds", "opsguard_last_tick_age_seconds",
        "opsguard_tick_interval_seconds", "opsguard_oldest_pending_notification_seconds",
        "opsguard_collector_lag_seconds"}
    assert "# UNIT opsguard_queue_lag_seconds seconds\n" in text
    assert families["opsguard_escalations"].type == "counter"
