"""GET /healthz (200 or 503: why by kind to anyone, by name to a signed admin) and GET /metrics (Prometheus text format,
parsed back here with prometheus_client's parser; tests/test_prometheus_metrics.py lints it
with promtool)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SECRET, Api
from opsguard.app import create_app
from opsguard.limits import limiter
from prometheus_client.parser import text_string_to_metric_families
from test_api_limits import clock  # noqa: F401 - the limiter's clock

ROOT = Path(__file__).resolve().parents[1]
SUMMARY_KEYS = {"ok", "database", "migrationsCurrent", "lastTickAgeSeconds", "problemCounts", "hint"}
NO_PROBLEMS = {"migrations": 0, "tick": 0, "pgCron": 0, "configuration": 0}


def test_healthy_after_a_tick(api, conn):
    conn.execute("SELECT ops.escalation_tick()")
    resp = api.get("/healthz")
    assert resp.status_code == 200
    assert (resp.json["ok"], resp.json["reasons"], resp.json["pendingMigrations"]) == (True, [], [])
    assert resp.json["lastTickAgeSeconds"] < 5
    anonymous = api.get("/healthz", secret=None)
    assert anonymous.status_code == 200
    assert set(anonymous.json) == SUMMARY_KEYS
    assert (anonymous.json["ok"], anonymous.json["migrationsCurrent"], anonymous.json["problemCounts"]) == (
        True, True, NO_PROBLEMS)
    assert anonymous.json["lastTickAgeSeconds"] < 5


LATE_TICK = "SELECT ops.escalation_tick(now() - interval '5 minutes')"
TICK = "SELECT ops.escalation_tick()"


@pytest.mark.parametrize("setup, reason, kind", [
    ([LATE_TICK], "the last tick was 300", "tick"),
    ([TICK, "UPDATE ops.settings SET value = '\"ftp://x\"' WHERE key = 'app_base_url'"],
     'app_base_url: "ftp://x" is not an http(s) URL', "configuration"),
    ([TICK, "DELETE FROM public._yoyo_migration WHERE migration_id = '0017_health_retention'"],
     "migrations not applied: 0017_health_retention", "migrations"),
], ids=["late tick", "bad setting", "pending migration"])
def test_unhealthy_names_the_reason_to_a_signed_admin_and_its_kind_to_anyone(api, conn, setup, reason, kind):
    for sql in setup:
        conn.execute(sql)
    resp = api.get("/healthz")
    assert resp.status_code == 503 and resp.json["ok"] is False
    assert len(resp.json["reasons"]) == 1 and resp.json["reasons"][0].startswith(reason), resp.json["reasons"]
    anonymous = api.get("/healthz", secret=None)
    assert anonymous.status_code == 503 and anonymous.json["ok"] is False
    assert anonymous.json["problemCounts"] == {**NO_PROBLEMS, kind: 1}
    assert anonymous.json["migrationsCurrent"] is (kind != "migrations")
    assert set(anonymous.json) == SUMMARY_KEYS


# what the configuration below names: none of it may reach an unsigned caller
CONFIG_NAMES = ["dana", "platform", "erin", "billing-escalation", "hooks.internal.example", "ftp://", "app_base_url",
                "slack_webhook_url", "principals", "schedule", "policy", "0017_health_retention", "OPS_HMAC",
                "body-only", "tick_ms", "webhook", "ops.", "SELECT"]


@pytest.fixture
def leaky_config(conn):
    """Every kind of problem /healthz reports, each naming something an outsider should not learn:
    paging gaps (dana can be paged through schedule platform, erin through a policy), a webhook to
    an internal host, a bad setting, a pending migration and a late tick."""
    conn.execute("SELECT ops.add_principal(p, 'human', '{ops_responder}', 'admin') FROM unnest('{dana,erin}'::text[]) p")
    conn.execute("SELECT ops.create_schedule('platform', 'UTC', 'admin')")
    conn.execute("SELECT ops.add_rotation('platform', 'weekly', '1 week', now() - interval '1 day', '{dana}', 'admin')")
    conn.execute("SELECT ops.create_policy('billing-escalation', 'admin')")
    conn.execute("""SELECT ops.add_policy_step('billing-escalation', 1, '[{"principal": "erin"}]', 'admin')""")
    # written around ops.set_setting, which refuses both
    conn.execute("UPDATE ops.settings SET value = '\"http://hooks.internal.example/T1/B1/x\"' "
                 "WHERE key = 'slack_webhook_url'")
    conn.execute("UPDATE ops.settings SET value = '\"ftp://x\"' WHERE key = 'app_base_url'")
    conn.execute("DELETE FROM public._yoyo_migration WHERE migration_id = '0017_health_retention'")
    conn.execute(LATE_TICK)


def test_an_unsigned_healthz_names_nothing_from_the_configuration(app_with_body_only, openapi_spec, leaky_config):
    api = Api(app_with_body_only.test_client(), openapi_spec)
    anonymous = api.get("/healthz", secret=None)
    assert anonymous.status_code == 503 and anonymous.json["ok"] is False
    assert anonymous.json["problemCounts"] == {"migrations": 1, "tick": 1, "pgCron": 0, "configuration": 2}
    assert set(anonymous.json) == SUMMARY_KEYS
    text = anonymous.get_data(as_text=True)
    assert [name for name in CONFIG_NAMES if name in text] == [], text

    detail = api.get("/healthz")
    assert detail.status_code == 503
    assert any(w.startswith("principals[dana]: dana can be paged (schedule platform) but has no linked Slack user")
               for w in detail.json["warnings"]), detail.json["warnings"]
    assert any("OPS_HMAC_BODY_ONLY" in w for w in detail.json["warnings"])
    assert any(w.startswith("principals[erin]: erin can be paged (policy billing-escalation step 1)")
               for w in detail.json["warnings"])
    reasons = " | ".join(detail.json["reasons"])
    for name in ("migrations not applied: 0017_health_retention", "the last tick was 300", "app_base_url",
                 'slack_webhook_url: webhook "http://hooks.internal.example/'):
        assert name in reasons, reasons


@pytest.fixture
def app_with_body_only(db_url):
    app = create_app({"DATABASE_URL": db_url, "OPS_HMAC_SECRET": SECRET, "OPS_HMAC_BODY_ONLY": "on",
                      "OPS_HMAC_KEYS": "viewer-key=viewer-secret"})
    limiter.reset()
    yield app
    app.extensions["opsguard_pool"].close()


def test_the_detail_needs_escalation_recalc(app_with_body_only, openapi_spec, conn, leaky_config):
    conn.execute("SELECT ops.add_principal('viewer-key', 'service', '{ops_viewer}', 'admin')")
    api = Api(app_with_body_only.test_client(), openapi_spec)
    for resp in (api.get("/healthz", secret="viewer-secret"), api.get("/healthz", actor="dana")):
        assert resp.status_code == 403 and resp.json["error"] == "forbidden", resp.json
        assert "escalation.recalc" in resp.json["message"]
        assert "platform" not in resp.get_data(as_text=True)
    conn.execute("SELECT ops.grant_role('dana', 'ops_admin', 'admin')")
    assert "reasons" in api.get("/healthz", actor="dana").json, "an admin named by a delegating signer sees it"


def test_the_documented_unsigned_answer_is_what_anyone_gets(api, conn):
    """docs/observability.md shows an unsigned /healthz body: the same keys, kinds and hint."""
    section = (ROOT / "docs/observability.md").read_text().split("## Health: `GET /healthz`", 1)[1]
    documented = json.loads(section.split("```json\n", 1)[1].split("```", 1)[0])
    conn.execute(LATE_TICK)
    served = api.get("/healthz", secret=None).json
    assert set(served) == set(documented) == SUMMARY_KEYS
    assert set(served["problemCounts"]) == set(documented["problemCounts"])
    assert served["hint"] == documented["hint"]


@pytest.mark.usefixtures("clock")
def test_a_bad_signature_on_healthz_is_401_and_counts_against_the_address(db_url, openapi_spec, conn):
    # healthy, so the open answer is 200: without a tick, a database migrated (the session's
    # template) more than two tick intervals ago is unhealthy
    conn.execute("SELECT ops.escalation_tick()")
    # rate limits on by name: an earlier app made with them off leaves the shared limiter off
    app = create_app({"DATABASE_URL": db_url, "OPS_HMAC_SECRET": SECRET, "RATELIMIT_ENABLED": True})
    limiter.reset()
    try:
        _bad_signatures_count(Api(app.test_client(), openapi_spec))
    finally:
        app.extensions["opsguard_pool"].close()


def _bad_signatures_count(api: Api) -> None:
    bad = {"secret": "not-the-secret"}
    for _ in range(30):
        resp = api.get("/healthz", **bad)
        assert resp.status_code == 401 and "reasons" not in resp.json
    assert api.get("/healthz", **bad).status_code == 429
    assert api.get("/healthz").status_code == 429, "a signed request from that address waits like any other"
    assert api.get("/healthz", secret=None).status_code == 200, "the unsigned health check stays open"


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
