"""One set of incident limits over HTTP, whichever endpoint an incident comes through: POST
/ops/incidents, POST /ops/integrations/alertmanager and POST /v2/enqueue. At the limit is accepted
and kept whole; one character over is a 400 naming the field that changes nothing where the caller
can send again (POST /ops/incidents), and cut with a "truncated" marker where a sender would not
(Alertmanager and most Events API v2 senders do not retry a 4xx: the alert would be lost), as
details over 64 KiB are. PagerDuty's own summary limit stays PagerDuty's 400.
The limits: incident_key 1-500 characters, route at most 500, summary at most 1024."""

from __future__ import annotations

import json

import pytest
from test_api_bad_input import checksum
from test_api_intake_alertmanager import alert, notification
from test_api_intake_alertmanager import post as am_post  # noqa: F401 - the fixture that posts a notification

KEY, ROUTE, SUMMARY = 500, 500, 1024


@pytest.fixture
def keys(conn) -> dict[str, str]:
    row = conn.execute("SELECT ops.create_integration_key('am', 'alertmanager', 'alice'),"
                       " ops.create_integration_key('pd', 'events_v2', 'alice')").fetchone()
    return dict(zip(("am", "pd"), row, strict=True))


@pytest.fixture
def unchanged(conn):
    """Every refused request below leaves every ops table as it was."""
    def check(send):
        before = checksum(conn)
        resp = send()
        assert {t for t, v in checksum(conn).items() if before[t] != v} == set()
        return resp
    return check


def refused(resp, field: str, limit: int) -> None:
    assert resp.status_code == 400, (resp.status_code, resp.get_data()[:300])
    assert resp.json["ok"] is False and resp.json["error"] == "invalid_input", resp.json
    assert resp.json["sqlstate"] == "22023" and resp.json["hint"], resp.json
    assert resp.json["message"].startswith(field + " must be") and f"{limit + 1}" in resp.json["message"], resp.json


def test_post_incidents_keeps_every_limit(api, conn, unchanged):
    ok = api.post("/ops/incidents", {"incident_key": "k" * KEY, "severity": "warning",
                                     "route": "r" * ROUTE, "summary": "s" * SUMMARY})
    assert ok.status_code == 201, ok.json
    assert (len(ok.json["incident"]["route"]), len(ok.json["incident"]["summary"])) == (ROUTE, SUMMARY)
    for field, limit, body in (
            ("incident_key", KEY, {"incident_key": "k" * (KEY + 1), "severity": "warning"}),
            ("route", ROUTE, {"incident_key": "t::1", "severity": "warning", "route": "r" * (ROUTE + 1)}),
            ("summary", SUMMARY, {"incident_key": "t::1", "severity": "warning", "summary": "s" * (SUMMARY + 1)}),
            # a refresh of the open incident is held to the same limit
            ("summary", SUMMARY, {"incident_key": "k" * KEY, "severity": "warning", "summary": "x" * (SUMMARY + 1)})):
        refused(unchanged(lambda body=body: api.post("/ops/incidents", body)), field, limit)
    bad = unchanged(lambda: api.post("/ops/incidents", {"incident_key": "t::1", "severity": "page"}))
    assert bad.status_code == 400 and bad.json["message"] == 'unknown severity "page"'
    assert bad.json["hint"] == "Severities: critical, warning"


def test_alertmanager_cuts_route_and_summary_at_the_limits(am_post, keys, conn, unchanged):  # noqa: F811
    def body(route: str, summary: str) -> dict:
        note = notification(alerts=[alert("db1", severity="critical", route=route)])
        note["commonAnnotations"]["summary"] = summary
        return note

    ok = am_post(body("r" * ROUTE, "s" * SUMMARY), token=keys["am"])
    assert ok.status_code == 200, ok.json
    inc = ok.json["incidents"][0]
    assert (len(inc["route"]), len(inc["summary"])) == (ROUTE, SUMMARY)
    over = body("r" * (ROUTE + 1), "s" * (SUMMARY + 1))
    over["groupKey"] = "another group"
    cut = am_post(over, token=keys["am"])
    assert cut.status_code == 200, cut.json
    inc = cut.json["incidents"][0]
    assert (inc["route"], inc["summary"]) == ("r" * ROUTE, "s" * SUMMARY), "cut to the limits, not refused"
    assert conn.execute("SELECT details -> 'truncated' FROM ops.incidents WHERE id = %s", (inc["id"],)).fetchone()[0] == [
        {"field": "summary", "chars": SUMMARY + 1}, {"field": "route", "chars": ROUTE + 1}]


def test_alertmanager_details_over_64_kib_are_cut_with_the_marker(am_post, keys, conn):  # noqa: F811
    big = notification(alerts=[alert("db1", severity="critical")])
    big["groupLabels"] = {"log": "x" * (70 * 1024)}
    resp = am_post(big, token=keys["am"])
    assert resp.status_code == 200, resp.json
    details = conn.execute("SELECT details FROM ops.incidents WHERE id = %s",
                           (resp.json["incidents"][0]["id"],)).fetchone()[0]
    assert details["truncated"] == [{"field": "groupLabels", "bytes": 70 * 1024 + 2}]
    assert details["groupLabels"] == {} and len(json.dumps(details).encode()) <= 64 * 1024


def test_events_v2_keeps_the_route_and_summary_limits(api, keys, conn, unchanged):
    def event(component: str, summary: str) -> dict:
        return {"routing_key": keys["pd"], "event_action": "trigger", "dedup_key": "d",
                "payload": {"summary": summary, "source": "db-1", "severity": "critical", "component": component}}

    ok = api.post("/v2/enqueue", event("c" * ROUTE, "s" * SUMMARY), secret=None)
    assert ok.status_code == 202 and ok.json["status"] == "success", ok.json
    assert conn.execute("SELECT length(route), length(summary) FROM ops.incidents "
                        "WHERE incident_key = 'events_v2:pd:d'").fetchone() == (ROUTE, SUMMARY)
    long_component = {**event("c" * (ROUTE + 1), "s"), "dedup_key": "d2"}
    assert api.post("/v2/enqueue", long_component, secret=None).status_code == 202
    got = conn.execute("SELECT length(route), details -> 'truncated' FROM ops.incidents "
                       "WHERE incident_key = 'events_v2:pd:d2'").fetchone()
    assert got == (ROUTE, [{"field": "route", "chars": ROUTE + 1}]), "cut to the limit and marked, not refused"
    # a summary over PagerDuty's own limit is PagerDuty's 400, as PagerDuty answers it
    resp = unchanged(lambda: api.post("/v2/enqueue", event("c", "s" * (SUMMARY + 1)), secret=None))
    assert resp.status_code == 400, resp.json
    assert resp.json == {"status": "invalid event", "message": "Event object is invalid",
                         "errors": [f"'payload.summary' is longer than {SUMMARY} characters"]}
