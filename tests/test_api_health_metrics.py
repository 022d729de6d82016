"""GET /healthz (200 or 503 with the reasons) and GET /metrics (Prometheus text format,
parsed back here with prometheus_client's parser; tests/test_prometheus_metrics.py lints it
with promtool)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families


def test_healthy_after_a_tick(api, conn):
    conn.execute("SELECT ops.escalation_tick()")
    resp = api.get("/healthz", secret=None)
    assert resp.status_code == 200
    assert (resp.json["ok"], resp.json["reasons"], resp.json["pendingMigrations"]) == (True, [], [])
    assert resp.json["lastTickAgeSeconds"] < 5


LATE_TICK = "SELECT ops.escalation_tick(now() - interval '5 minutes')"
TICK = "SELECT ops.escalation_tick()"


@pytest.mark.parametrize("setup, reason", [
    ([LATE_TICK], "the last tick was 300"),
    ([TICK, "UPDATE ops.settings SET value = '\"ftp://x\"' WHERE key = 'app_base_url'"],
     'app_base_url: "ftp://x" is not an http(s) URL'),
    ([TICK, "DELETE FROM public._yoyo_migration WHERE migration_id = '0017_health_retention'"],
     "migrations not applied: 0017_health_retention"),
], ids=["late tick", "bad setting", "pending migration"])
def test_unhealthy_names_the_reason(api, conn, setup, reason):
    for sql in setup:
        conn.execute(sql)
    resp = api.get("/healthz", secret=None)
    assert resp.status_code == 503 and resp.json["ok"] is False
    assert len(resp.json["reasons"]) == 1 and resp.json["reasons"][0].startswith(reason), resp.json["reasons"]


def scrape(api) -> dict[str, object]:
    resp = api.get("/metrics", secret=None)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(resp.get_data(as_text=True))}


def value(family, **labels) -> float:
    [sample] = [s for s in family.samples if s.labels == labels and not s.name.endswith("_created")]
    return sample.value


def test_metrics_after_known_activity(api, conn):
    conn.execute("SELECT ops.set_setting('snooze_min', '0', 'test')")
    conn.execute("SELECT ops.trigger_incident('GET /m' || g || '::x', 'critical', p_now => now() - interval '1 hour')"
                 " FROM generate_series(1, 3) g")
    conn.execute("SELECT ops.escalation_tick()")  # 3 escalations to level 1, 3 messages queued
    conn.execute("UPDATE incidents SET escalation_level = 0 WHERE incident_key = 'GET /m1::x'")
    conn.execute("SELECT ops.escalation_tick()")  # level 1 again: skipped, and m2, m3 go to level 2
    conn.execute("UPDATE notification_outbox SET status = 'dead' WHERE id = (SELECT min(id) FROM notification_outbox)")
    families = scrape(api)

    # the seeds' counters, by their Prometheus names (base units, _total) and types
    assert (families["opsguard_escalations"].type, value(families["opsguard_escalations"])) == ("counter", 5)
    assert value(families["opsguard_escalations_skipped_idempotent"]) == 1
    assert value(families["opsguard_slack_send_failures"]) == 0
    assert families["opsguard_escalation_tick_seconds"].type == "gauge"
    # the last tick's own figures: its duration, and its lag behind the most overdue incident (all
    # three were due at the first tick's time: snooze_min 0, and m1's level lowered by hand)
    tick_ms, lag_ms, lag_from_clock = conn.execute(
        "SELECT t.escalation_tick_ms, t.queue_lag_ms,"
        "       floor(extract(epoch FROM t.tick_at - (SELECT min(tick_at) FROM ops.tick_log)) * 1000)::bigint"
        " FROM ops.tick_log t ORDER BY t.id DESC LIMIT 1").fetchone()
    assert lag_ms == lag_from_clock
    assert value(families["opsguard_escalation_tick_seconds"]) == pytest.approx(float(tick_ms) / 1000, rel=1e-9)
    assert value(families["opsguard_queue_lag_seconds"]) == pytest.approx(lag_ms / 1000, rel=1e-9)
    text = api.get("/metrics", secret=None, validate=False).get_data(as_text=True)
    for name in ("opsguard_escalation_tick_seconds", "opsguard_escalations_total",
                 "opsguard_escalations_skipped_idempotent_total", "opsguard_slack_send_failures_total",
                 "opsguard_queue_lag_seconds", "opsguard_tick_interval_seconds"):
        assert f"\n{name} " in text, name
    assert [n for n in families if n.endswith(("_ms", "_count"))] == [], "SQL names stay in SQL"

    incidents = families["opsguard_open_incidents"]
    assert value(incidents, status="open", severity="critical", level="1") == 1
    assert value(incidents, status="open", severity="critical", level="2") == 2
    assert value(families["opsguard_notifications"], status="pending") == 4
    assert value(families["opsguard_notifications"], status="dead") == 1
    assert value(families["opsguard_ticks"], state="ran") == 2
    assert value(families["opsguard_last_tick_age_seconds"]) < 5
    assert value(families["opsguard_alert_firing"], alert="DeadLetters", severity="warning") == 1
    assert value(families["opsguard_alert_firing"], alert="TickMissing", severity="critical") == 0


def test_metrics_without_a_tick_leave_the_last_tick_gauges_out(api):
    families = scrape(api)
    assert families["opsguard_escalation_tick_seconds"].samples == []
    assert value(families["opsguard_escalations"]) == 0
