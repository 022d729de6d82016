"""Alert intake against the real senders (issue 12): Debian's Prometheus and Alertmanager
binaries (make senders), configured as docs/intake.md says, posting to our API under gunicorn.

First the harness alone, against a stand-in receiver that records what Alertmanager posts
(which also pins the payload shapes the intake endpoints parse); then the scenario against
opsguard: a rule that fires at once opens one incident through the Alertmanager webhook and
one through pagerduty_configs → /v2/enqueue; removing the rule resolves both; an always-firing
Watchdog rule keeps a heartbeat alive, and stopping Prometheus lets it open."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from real_senders import Recorder, alertmanager, prometheus, recorder, wait_for

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "intake.md"

pytestmark = pytest.mark.slow

# one rule per receiver, firing at once; the Watchdog is in its own file so that removing
# intake.yml leaves it running
INTAKE_RULES = """\
groups:
- name: intake
  rules:
  - alert: CheckoutDown
    expr: vector(1)
    labels:
      severity: critical
      service: checkout
    annotations:
      summary: checkout answers 5xx
  - alert: PaymentsSlow
    expr: vector(1)
    labels:
      severity: warning
      service: payments
      pagerduty: "true"
    annotations:
      summary: payments p99 above 2 s
"""
NO_RULES = "groups: []\n"


def _doc_block(marker: str) -> str:
    """The fenced yaml block that follows the line containing `marker` in docs/intake.md."""
    text = DOC.read_text()
    at = text.index(marker)
    m = re.compile(r"```ya?ml\n(.*?)```", re.S).search(text, at)
    assert m, f"no yaml block after {marker!r} in {DOC}"
    return m.group(1)


def alertmanager_config(base: str, *, webhook_key: str, events_key: str, heartbeat_key: str) -> str:
    """docs/intake.md's tested Alertmanager configuration with this run's URL and keys, and the
    timings shortened so that a test takes seconds (group_wait, group_interval, the repeat of
    the Watchdog ping, resolve_timeout)."""
    text = _doc_block("<!-- tested: alertmanager.yml -->")
    text = (text.replace("https://opsguard.example.com", base)
                .replace("<alertmanager key>", webhook_key)
                .replace("<events_v2 key>", events_key)
                .replace("<heartbeat key>", heartbeat_key))
    text = re.sub(r"group_wait: \S+", "group_wait: 1s", text)
    text = re.sub(r"group_interval: \S+", "group_interval: 1s", text)
    text = re.sub(r"repeat_interval: \S+  # Watchdog", "repeat_interval: 2s  # Watchdog", text)
    text = re.sub(r"repeat_interval: \S+$", "repeat_interval: 1h", text, flags=re.M)
    text = re.sub(r"resolve_timeout: \S+", "resolve_timeout: 5s", text)
    assert "<" not in text, text
    return text


def watchdog_rules() -> str:
    return _doc_block("<!-- tested: watchdog rule -->")


# --- the harness, against a stand-in receiver ---------------------------------------------

def test_alertmanager_posts_what_the_intake_endpoints_parse():
    """Rule fires → both receivers get a firing notification; rule removed → both get a
    resolved one; the Watchdog pings its URL over and over and never sends resolved."""
    with recorder() as rec:
        config = alertmanager_config(rec.url, webhook_key="ogk_" + "a" * 64, events_key="ogk_" + "b" * 64,
                                     heartbeat_key="ogk_" + "c" * 64)
        with alertmanager(config) as am, prometheus(am.url, {"intake.yml": INTAKE_RULES,
                                                             "watchdog.yml": watchdog_rules()}) as prom:
            hooks = wait_for("a firing webhook notification", lambda: _with_status(rec, WEBHOOK, "firing"))
            events = wait_for("a PagerDuty trigger", lambda: _events(rec, "trigger"))
            _check_webhook_shape(hooks[0], am.url)
            _check_events_shape(events[0])
            assert {n.body["commonLabels"]["alertname"] for n in hooks} == {"CheckoutDown"}

            prom.write_rules("intake.yml", NO_RULES)
            prom.reload()
            wait_for("the rules gone", lambda: "CheckoutDown" not in prom.rule_names())
            resolved = wait_for("a resolved webhook notification", lambda: _with_status(rec, WEBHOOK, "resolved"),
                                timeout=20)
            assert resolved[0].body["groupKey"] == hooks[0].body["groupKey"]
            resolve = wait_for("a PagerDuty resolve", lambda: _events(rec, "resolve"), timeout=20)
            assert resolve[0].body["dedup_key"] == events[0].body["dedup_key"]

            pings = wait_for("two Watchdog pings", lambda: len(rec.to(HEARTBEAT)) >= 2 and rec.to(HEARTBEAT))
            assert all(p.body["status"] == "firing" for p in pings)
            assert all(p.headers["Authorization"] == "Bearer ogk_" + "c" * 64 for p in pings)


WEBHOOK = "/ops/integrations/alertmanager"
EVENTS = "/v2/enqueue"
HEARTBEAT = "/ops/heartbeats/watchdog"


def _with_status(rec: Recorder, path: str, status: str):
    return [r for r in rec.to(path) if r.body["status"] == status]


def _events(rec: Recorder, action: str):
    return [r for r in rec.to(EVENTS) if r.body["event_action"] == action]


def _check_webhook_shape(n, am_url: str) -> None:
    """Alertmanager 0.25's webhook payload, version 4 (what api_alertmanager reads)."""
    assert n.headers["Authorization"] == "Bearer ogk_" + "a" * 64
    assert n.headers["Content-Type"] == "application/json"
    body = n.body
    assert set(body) == {"receiver", "status", "alerts", "groupLabels", "commonLabels", "commonAnnotations",
                         "externalURL", "version", "groupKey", "truncatedAlerts"}, sorted(body)
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["truncatedAlerts"] == 0
    assert body["groupLabels"] == {"alertname": "CheckoutDown"}
    assert body["commonAnnotations"] == {"summary": "checkout answers 5xx"}
    assert body["commonLabels"]["severity"] == "critical"
    assert body["commonLabels"]["service"] == "checkout"
    assert isinstance(body["groupKey"], str) and "CheckoutDown" in body["groupKey"]
    [alert] = body["alerts"]
    assert set(alert) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL",
                          "fingerprint"}, sorted(alert)
    # Prometheus sends endsAt = now + 4 resend delays; Alertmanager hides it in a firing
    # notification: Go's zero time, year 1 (a parser must accept it, or ignore endsAt while firing)
    assert alert["status"] == "firing"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", alert["startsAt"]), alert["startsAt"]
    assert alert["generatorURL"].startswith("http://") and "/graph?g0.expr=" in alert["generatorURL"]
    assert re.fullmatch(r"[0-9a-f]{16}", alert["fingerprint"])


def _check_events_shape(n) -> None:
    """Alertmanager 0.25's pagerduty_configs with url: Events API v2 JSON."""
    body = n.body
    assert body["routing_key"] == "ogk_" + "b" * 64
    assert "Authorization" not in n.headers  # the key travels in the body only
    assert re.fullmatch(r"[0-9a-f]{64}", body["dedup_key"]), body["dedup_key"]
    assert body["event_action"] == "trigger"
    payload = body["payload"]
    assert payload["summary"].startswith("[FIRING:1] PaymentsSlow")
    assert payload["severity"] == "warning"  # the docs map the label; Alertmanager sends "error" unless told
    assert payload["source"] == "Alertmanager" or payload["source"].startswith("http")
    assert payload["custom_details"]["num_firing"] == "1"
