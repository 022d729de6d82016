"""POST /ops/heartbeats/<name> (docs/intake.md): a ping with a bearer key of kind heartbeat moves the
heartbeat on and resolves heartbeat::<name>; a bad key is 401, an unknown heartbeat 404, a bad
body 4xx, and none of those changes anything (a checksum of every ops table)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from test_api_bad_input import assert_4xx_json, checksum

# what Alertmanager posts for its Watchdog route (webhook payload version 4), trimmed
WATCHDOG = {
    "version": "4", "groupKey": '{}:{alertname="Watchdog"}', "truncatedAlerts": 0, "status": "firing",
    "receiver": "heartbeat", "groupLabels": {"alertname": "Watchdog"},
    "commonLabels": {"alertname": "Watchdog", "severity": "none"},
    "commonAnnotations": {"summary": "always firing: a dead man switch"},
    "externalURL": "http://alertmanager:9093",
    "alerts": [{"status": "firing", "labels": {"alertname": "Watchdog", "severity": "none"},
                "annotations": {"summary": "always firing: a dead man switch"},
                "startsAt": "2026-12-01T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph", "fingerprint": "e5c4a1b3f0d2c911"}],
}


def ping(api, name: str, token: str | None, body: bytes = b"", scheme: str = "Bearer"):
    """POST a ping as a sender does (no HMAC), checking the answer against docs/openapi.yaml."""
    from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    path = f"/ops/heartbeats/{name}"
    resp = api.client.post(path, data=body, headers=headers)
    req = Request(EnvironBuilder(path=path, method="POST", data=body, headers=headers).get_environ())
    api.spec.validate_response(WerkzeugOpenAPIRequest(req), WerkzeugOpenAPIResponse(resp))
    return resp


@pytest.fixture
def keys(conn) -> dict[str, str]:
    """A heartbeat key, one bound to route billing, one of another kind and a revoked one; and
    heartbeat watchdog (route platform, every 5 minutes), missed: its incident is open."""
    made = {name: conn.execute("SELECT ops.create_integration_key(%s, %s, 'alice', %s)", (name, kind, route)
                               ).fetchone()[0]
            for name, kind, route in [("am-watchdog", "heartbeat", None), ("hb-billing", "heartbeat", "billing"),
                                      ("am-prod", "alertmanager", None), ("old", "heartbeat", None)]}
    conn.execute("SELECT ops.revoke_integration_key('old', 'alice')")
    conn.execute("SELECT ops.set_heartbeat('watchdog', '5 minutes', 'alice', 'platform', "
                 "p_now => now() - interval '10 minutes')")
    summary = conn.execute("SELECT ops.escalation_tick(now())").fetchone()[0]
    assert summary["heartbeatsMissed"] == 1
    return made


def incidents(conn) -> list[tuple]:
    return conn.execute("SELECT status, resolved_by FROM ops.incidents WHERE incident_key = 'heartbeat::watchdog' "
                        "ORDER BY first_seen").fetchall()


def test_a_ping_with_the_key_resolves_the_missed_heartbeat(api, conn, keys):
    assert incidents(conn) == [("open", None)]
    resp = ping(api, "watchdog", keys["am-watchdog"], json.dumps(WATCHDOG).encode())
    assert resp.status_code == 200, resp.json
    assert resp.json["resolved"]["status"] == "resolved"
    assert resp.json["resolved"]["incidentKey"] == "heartbeat::watchdog"
    assert resp.json["heartbeat"]["intervalSeconds"] == 300
    assert incidents(conn) == [("resolved", "am-watchdog")]
    due, by = conn.execute("SELECT due_at - last_ping_at, last_ping_by FROM ops.heartbeats").fetchone()
    assert (due.total_seconds(), by) == (300, "am-watchdog")


def test_an_empty_body_is_a_ping_too(api, conn, keys):
    resp = ping(api, "watchdog", keys["am-watchdog"])
    assert resp.status_code == 200 and resp.json["resolved"]["status"] == "resolved"
    again = ping(api, "watchdog", keys["am-watchdog"], b"[1, 2]")
    assert again.status_code == 200 and again.json["resolved"] is None, "any JSON value is a ping"


def test_a_key_bound_to_its_route_pings_that_route_only(api, conn, keys):
    conn.execute("SELECT ops.set_heartbeat('billing-cron', '1 hour', 'alice', 'billing')")
    assert ping(api, "billing-cron", keys["hb-billing"]).status_code == 200
    before = checksum(conn)
    assert_4xx_json(ping(api, "watchdog", keys["hb-billing"]), 404, "not_found")
    assert checksum(conn) == before


def test_a_key_bound_to_a_route_does_not_ping_a_heartbeat_without_one(api, conn, keys):
    conn.execute("SELECT ops.set_heartbeat('nightly-backup', '1 day', 'alice')")
    before = checksum(conn)
    assert_4xx_json(ping(api, "nightly-backup", keys["hb-billing"]), 404, "not_found")
    assert checksum(conn) == before
    assert ping(api, "nightly-backup", keys["am-watchdog"]).status_code == 200, "a key without a route is global"


@pytest.mark.parametrize("which", ["wrong kind", "revoked", "unknown", "missing", "not bearer", "in the body"])
def test_a_bad_key_is_401_and_changes_nothing(api, conn, keys, which):
    token, scheme = {"wrong kind": (keys["am-prod"], "Bearer"), "revoked": (keys["old"], "Bearer"),
                     "unknown": ("ogk_" + "0" * 64, "Bearer"), "missing": (None, "Bearer"),
                     "not bearer": (keys["am-watchdog"], "Basic"), "in the body": (None, "Bearer")}[which]
    # a key in the wrong place (the body, as Events API v2 senders put it) is no key here
    body = {**WATCHDOG, "routing_key": keys["am-watchdog"]} if which == "in the body" else WATCHDOG
    before = checksum(conn)
    resp = ping(api, "watchdog", token, json.dumps(body).encode(), scheme=scheme)
    assert_4xx_json(resp, 401, "unauthorized")
    assert checksum(conn) == before
    assert incidents(conn) == [("open", None)]


def test_an_unknown_heartbeat_is_404_and_changes_nothing(api, conn, keys):
    before = checksum(conn)
    resp = ping(api, "nope", keys["am-watchdog"])
    assert_4xx_json(resp, 404, "not_found")
    assert resp.json["message"] == 'no heartbeat "nope" for this key'
    assert checksum(conn) == before


@pytest.mark.parametrize("body, status, error", [
    (b"{not json", 400, "invalid_json"),
    (b"[" * 10_000 + b"]" * 10_000, 400, "invalid_json"),
    (b'{"a": "' + b"x" * (64 * 1024) + b'"}', 413, "payload_too_large"),
    (b'{"a": "\x00"}', 400, "invalid_input"),
], ids=["malformed", "deep", "over 64 KiB", "NUL byte"])
def test_a_bad_body_is_4xx_and_changes_nothing(api, conn, keys, body, status, error):
    before = checksum(conn)
    assert_4xx_json(ping(api, "watchdog", keys["am-watchdog"], body), status, error)
    assert checksum(conn) == before
    assert incidents(conn) == [("open", None)]


def test_a_body_of_64_kib_is_accepted(api, conn, keys):
    body = b'{"a": "' + b"x" * (64 * 1024 - 9) + b'"}'
    assert len(body) == 64 * 1024
    assert ping(api, "watchdog", keys["am-watchdog"], body).status_code == 200


def _ping_in_sql(db_url: str, token: str, name: str) -> dict:
    with psycopg.connect(db_url, autocommit=True) as c:
        return c.execute("SELECT ops.api_heartbeat_ping(%s, %s)", (token, name)).fetchone()[0]


def _until_waiting_on_a_lock(conn, what: str) -> None:
    """Until a backend running `what` waits on a lock (a condition, not a fixed sleep)."""
    for _ in range(200):
        if conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE %s", (f"%{what}%",)).fetchone()[0]:
            return
        time.sleep(0.05)
    raise AssertionError(f"no backend running {what} waits on a lock")


def test_a_ping_waiting_on_a_tick_resolves_the_incident_that_tick_opened(conn, db_url, keys):
    """The ping locks the heartbeat row before it looks for the incident: a ping that arrives
    while a tick is opening heartbeat::<name> waits for it, then resolves what it opened
    (looking first would find nothing and leave the incident open with the sender alive)."""
    conn.execute("SELECT ops.set_heartbeat('cron-job', '1 minute', 'alice', p_now => now() - interval '2 minutes')")
    with psycopg.connect(db_url) as tick, ThreadPoolExecutor(1) as pool:
        assert tick.execute("SELECT ops.escalation_tick(now())").fetchone()[0]["heartbeatsMissed"] == 1
        pinged = pool.submit(_ping_in_sql, db_url, keys["am-watchdog"], "cron-job")
        _until_waiting_on_a_lock(conn, "api_heartbeat_ping")
        assert not pinged.done()
        tick.commit()
        assert pinged.result(timeout=10)["resolved"]["status"] == "resolved"
    assert conn.execute("SELECT status FROM ops.incidents WHERE incident_key = 'heartbeat::cron-job'"
                        ).fetchall() == [("resolved",)]


def test_a_tick_does_not_wait_for_a_ping_in_progress(conn, db_url, keys):
    """A tick skips a heartbeat row a ping holds (SKIP LOCKED): that ping makes it not due."""
    conn.execute("SELECT ops.set_heartbeat('cron-job', '1 minute', 'alice', p_now => now() - interval '2 minutes')")
    with psycopg.connect(db_url) as ping_tx, psycopg.connect(db_url) as tick:
        ping_tx.execute("SELECT ops.api_heartbeat_ping(%s, 'cron-job')", (keys["am-watchdog"],))
        tick.execute("SET lock_timeout = '2s'")
        assert "heartbeatsMissed" not in tick.execute("SELECT ops.escalation_tick(now())").fetchone()[0]
        tick.commit()
        ping_tx.commit()
    assert conn.execute("SELECT count(*) FROM ops.incidents WHERE incident_key = 'heartbeat::cron-job'"
                        ).fetchone()[0] == 0
