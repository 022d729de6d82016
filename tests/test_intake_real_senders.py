"""Alert intake against the real senders: Debian's Prometheus and Alertmanager
binaries (make senders), configured as docs/intake.md says, posting to our API under gunicorn.

First the harness alone, against a stand-in receiver that records what Alertmanager posts
(which also pins the payload shapes the intake endpoints parse); then the scenario against
opsguard: a rule that fires at once opens one incident through the Alertmanager webhook and
one through pagerduty_configs → /v2/enqueue; removing the rule resolves both; an always-firing
Watchdog rule keeps a heartbeat alive, and stopping Prometheus lets it open."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
import yaml
from real_senders import Recorder, alertmanager, binary, gunicorn, prometheus, recorder, wait_for

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
# Alertmanager's group keys for the two intake alerts under docs/intake.md's routes (pinned by
# the stand-in test): api_alertmanager keys its incident by the first, and Alertmanager's
# pagerduty_configs sends the SHA-256 of the second as dedup_key
CHECKOUT_GROUP = '{}:{alertname="CheckoutDown"}'
PAYMENTS_GROUP = '{}/{pagerduty="true"}:{alertname="PaymentsSlow"}'


def _doc_block(marker: str) -> str:
    """The fenced yaml block that follows the line containing `marker` in docs/intake.md."""
    text = DOC.read_text()
    at = text.index(marker)
    m = re.compile(r"```ya?ml\n(.*?)```", re.S).search(text, at)
    assert m, f"no yaml block after {marker!r} in {DOC}"
    return m.group(1)


def alertmanager_config(base: str, *, webhook_key: str, events_key: str, heartbeat_key: str) -> str:
    """docs/intake.md's tested Alertmanager configuration with this run's URL and keys, and the
    timings shortened so that a test takes seconds: group_wait and group_interval 1 s, a repeat
    every 2 s (a Watchdog ping, and a repeated notification of every firing group, every 3 s),
    resolve_timeout 5 s."""
    text = _doc_block("<!-- tested: alertmanager.yml -->")
    text = (text.replace("https://opsguard.example.com", base)
                .replace("<alertmanager key>", webhook_key)
                .replace("<events_v2 key>", events_key)
                .replace("<heartbeat key>", heartbeat_key))
    text = re.sub(r"group_wait: \S+", "group_wait: 1s", text)
    text = re.sub(r"group_interval: \S+", "group_interval: 1s", text)
    text = re.sub(r"repeat_interval: \S+", "repeat_interval: 2s", text)
    text = re.sub(r"resolve_timeout: \S+", "resolve_timeout: 5s", text)
    assert "<" not in text, text
    return text


def watchdog_rules() -> str:
    return _doc_block("<!-- tested: watchdog rule -->")


# --- every copy-paste configuration in docs/intake.md ----------------------------------------

def _yaml_blocks() -> list[str]:
    return re.findall(r"```ya?ml\n(.*?)```", DOC.read_text(), re.S)


def test_every_alertmanager_and_prometheus_block_in_the_docs_is_accepted(tmp_path):
    """amtool check-config for each alertmanager.yml block (a receivers-only snippet gets a
    route to its first receiver), promtool check rules for each rule file. There is no Grafana
    binary here, so a Grafana provisioning block is read as YAML and each contact point must
    send to our endpoint for its type with the key where Grafana sends it (grafana_contact_point)."""
    promtool = shutil.which("promtool") or str(ROOT / ".local" / "bin" / "promtool")
    checked = 0
    for i, block in enumerate(_yaml_blocks()):
        top = set(re.findall(r"^(\w+):", block, re.M))
        if "groups" in top:
            cmd = [promtool, "check", "rules"]
        elif "receivers" in top:
            if "route" not in top:
                first = re.search(r"^\s*- name: (\S+)", block, re.M)
                assert first, f"docs/intake.md yaml block {i}: a receiver without a name"
                block += f"route:\n  receiver: {first.group(1)}\n"
            cmd = [binary("amtool"), "check-config"]
        else:
            assert "apiVersion" in top, f"docs/intake.md yaml block {i} is neither Alertmanager, Prometheus nor Grafana"
            grafana_contact_point(i, block)
            checked += 1
            continue
        path = tmp_path / f"block{i}.yml"
        path.write_text(block)
        res = subprocess.run([*cmd, str(path)], capture_output=True, text=True)
        assert res.returncode == 0, f"docs/intake.md yaml block {i}:\n{block}\n{res.stdout}{res.stderr}"
        checked += 1
    assert checked >= 4


# Grafana contact point type -> (our path, the settings that must carry the integration key)
GRAFANA_RECEIVERS = {
    "webhook": ("/ops/integrations/alertmanager", {"authorization_scheme": "Bearer", "authorization_credentials": "ogk_"}),
    "pagerduty": ("/v2/enqueue", {"integrationKey": "ogk_"}),
}


def grafana_contact_point(i: int, block: str) -> None:
    doc = yaml.safe_load(block)
    receivers = [r for cp in doc["contactPoints"] for r in cp["receivers"]]
    assert receivers, f"docs/intake.md yaml block {i}: a contact point without receivers"
    for r in receivers:
        assert r["type"] in GRAFANA_RECEIVERS, f"docs/intake.md yaml block {i}: receiver type {r['type']}"
        path, keys = GRAFANA_RECEIVERS[r["type"]]
        settings = r["settings"]
        assert settings["url"].endswith(path), f"docs/intake.md yaml block {i}: {settings['url']} is not {path}"
        for name, start in keys.items():
            assert str(settings.get(name, "")).startswith(start), f"docs/intake.md yaml block {i}: settings.{name}"


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
            [gone] = resolved[0].body["alerts"]
            assert gone["status"] == "resolved" and gone["endsAt"] > gone["startsAt"]
            resolve = wait_for("a PagerDuty resolve", lambda: _events(rec, "resolve"), timeout=20)
            assert resolve[0].body["dedup_key"] == events[0].body["dedup_key"]
            # a resolve carries a whole payload too (PagerDuty ignores it; /v2/enqueue must accept it)
            assert resolve[0].body["payload"]["summary"].startswith("[RESOLVED] PaymentsSlow")

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
    assert body["groupKey"] == CHECKOUT_GROUP
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
    assert body["dedup_key"] == _sha256(PAYMENTS_GROUP)
    assert body["event_action"] == "trigger"
    payload = body["payload"]
    assert payload["summary"].startswith("[FIRING:1] PaymentsSlow")
    assert payload["severity"] == "warning"  # the docs map the label; Alertmanager sends "error" unless told
    assert payload["source"] == "Alertmanager" or payload["source"].startswith("http")
    assert payload["custom_details"]["num_firing"] == "1"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- the scenario, against opsguard under gunicorn ----------------------------------------
# The endpoints and the heartbeat tick under test (docs/intake.md):
#   POST /ops/integrations/alertmanager, incident alertmanager:<key name>:<sha256(groupKey)>
#   POST /v2/enqueue, incident events_v2:<key name>:<dedup_key>
#   POST /ops/heartbeats/<name>, ops.set_heartbeat, ops.escalation_tick opening heartbeat::<name>

def _incident(conn: psycopg.Connection, key: str):
    cols = ("status", "severity", "route", "summary", "resolved_by", "first_seen", "last_seen", "escalation_level")
    row = conn.execute(f"SELECT {', '.join(cols)} FROM ops.incidents"  # noqa: S608 (constant columns)
                       " WHERE incident_key = %s ORDER BY created_at DESC LIMIT 1", (key,)).fetchone()
    return None if row is None else dict(zip(cols, row, strict=True))


def _count(conn: psycopg.Connection, key: str) -> int:
    return conn.execute("SELECT count(*) FROM ops.incidents WHERE incident_key = %s", (key,)).fetchone()[0]


def _last_ping(conn: psycopg.Connection):
    return conn.execute("SELECT last_ping_at FROM ops.heartbeats WHERE name = 'watchdog'").fetchone()[0]


def test_prometheus_and_alertmanager_open_and_resolve_incidents(db_url, conn):
    webhook_key, events_key, heartbeat_key = (
        conn.execute("SELECT ops.create_integration_key(%s, %s, 'alice', %s)", (name, kind, route)).fetchone()[0]
        for name, kind, route in (("am-prod", "alertmanager", None), ("am-pd", "events_v2", "payments"),
                                  ("am-watchdog", "heartbeat", None)))
    conn.execute("SELECT ops.set_heartbeat('watchdog', '1 minute', 'alice')")
    checkout = "alertmanager:am-prod:" + _sha256(CHECKOUT_GROUP)
    payments = "events_v2:am-pd:" + _sha256(PAYMENTS_GROUP)
    watchdog = "heartbeat::watchdog"

    with gunicorn(db_url) as base:
        config = alertmanager_config(base, webhook_key=webhook_key, events_key=events_key,
                                     heartbeat_key=heartbeat_key)
        with alertmanager(config) as am:
            with prometheus(am.url, {"intake.yml": INTAKE_RULES, "watchdog.yml": watchdog_rules()}) as prom:
                # the rule fires: one incident per receiver
                opened = wait_for("the webhook incident", lambda: _incident(conn, checkout))
                assert opened["status"] == "open"
                assert opened["severity"] == "critical"
                assert opened["route"] == "checkout"
                assert opened["summary"] == "checkout answers 5xx"
                pd = wait_for("the Events API v2 incident", lambda: _incident(conn, payments))
                assert pd["status"] == "open"
                assert pd["severity"] == "warning"
                assert pd["route"] == "payments"
                assert pd["summary"].startswith("[FIRING:1] PaymentsSlow")

                # Alertmanager repeats the firing notifications: they refresh the incidents
                wait_for("a repeat refreshing the webhook incident",
                         lambda: _incident(conn, checkout)["last_seen"] > opened["last_seen"])
                wait_for("a repeat refreshing the Events API v2 incident",
                         lambda: _incident(conn, payments)["last_seen"] > pd["last_seen"])
                assert _count(conn, checkout) == 1 and _count(conn, payments) == 1, "a repeat opened a second"

                # the Watchdog pings: a tick one interval after the first ping opens nothing,
                # because the pings that followed moved the heartbeat on
                first = wait_for("a Watchdog ping", lambda: _last_ping(conn))
                wait_for("Watchdog pings for 3 s", lambda: (_last_ping(conn) - first).total_seconds() >= 3)
                conn.execute("SELECT ops.escalation_tick(%s::timestamptz + interval '61 seconds')", (first,))
                assert _count(conn, watchdog) == 0

                # the rule removed: Alertmanager's resolved notifications resolve both
                prom.write_rules("intake.yml", NO_RULES)
                prom.reload()
                assert wait_for("the webhook incident resolved",
                                lambda: _incident(conn, checkout)["status"] == "resolved")
                assert wait_for("the Events API v2 incident resolved",
                                lambda: _incident(conn, payments)["status"] == "resolved")
                assert _incident(conn, checkout)["resolved_by"] == "am-prod"
                assert _incident(conn, payments)["resolved_by"] == "am-pd"
                assert _count(conn, checkout) == 1 and _count(conn, payments) == 1

            # Prometheus stopped: the Watchdog ends, the pings stop, the tick opens the heartbeat
            stopped = _last_ping(conn)
            last = wait_for("the pings to stop (none for 6 s)", lambda: _silent_for(conn, 6.0), timeout=30)
            assert last >= stopped
            conn.execute("SELECT ops.escalation_tick(%s::timestamptz + interval '61 seconds')", (last,))
            hb = _incident(conn, watchdog)
            assert hb is not None and hb["status"] == "open", hb
            assert hb["severity"] == "critical"


def _silent_for(conn: psycopg.Connection, seconds: float):
    """The last ping time once no ping has come for `seconds` (database clock)."""
    row = conn.execute("SELECT last_ping_at, now() - last_ping_at > make_interval(secs => %s)"
                       " FROM ops.heartbeats WHERE name = 'watchdog'", (seconds,)).fetchone()
    return row[0] if row[1] else None
