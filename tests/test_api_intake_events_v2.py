"""POST /v2/enqueue over HTTP (Flask test client; the real-client test is
tests/test_intake_events_v2_client.py): the happy path in PagerDuty's answer shapes, and every
bad input — keys that are no keys, malformed or oversized bodies, wrong types, the rate limit —
answered in PagerDuty's own error shape, changing nothing (a checksum of every ops table)."""

from __future__ import annotations

import json

import pytest
from test_api_bad_input import DEEP_OBJECT, checksum
from test_api_limits import clock  # noqa: F401 - the fixture that moves the rate limiter's clock

PATH = "/v2/enqueue"


@pytest.fixture
def keys(conn) -> dict[str, str]:
    row = conn.execute(
        "SELECT ops.create_integration_key('pd', 'events_v2', 'alice'),"
        " ops.create_integration_key('pd-old', 'events_v2', 'alice'),"
        " ops.create_integration_key('am', 'alertmanager', 'alice')").fetchone()
    conn.execute("SELECT ops.revoke_integration_key('pd-old', 'alice')")
    return dict(zip(("pd", "revoked", "alertmanager"), row, strict=True))


def event(key: str, **fields) -> dict:
    body = {"routing_key": key, "event_action": "trigger", "dedup_key": "db-1/disk",
            "payload": {"summary": "disk full", "source": "db-1", "severity": "critical"}}
    body.update(fields)
    return body


@pytest.fixture
def unchanged(conn, keys):
    """No ops table changes during the test (the keys and one open incident are made before)."""
    conn.execute("SELECT ops.api_events_v2(%s::jsonb)", (json.dumps(event(keys["pd"], dedup_key="open")),))
    before = checksum(conn)
    yield
    after = checksum(conn)
    assert {t for t in before if before[t] != after[t]} == set()


def post(api, body=None, *, raw: bytes | None = None, validate: bool = True):
    return api.post(PATH, body, raw=raw, secret=None, validate=validate)


def assert_invalid(resp, status: int = 400, errors: list[str] | None = None):
    assert resp.status_code == status, (resp.status_code, resp.get_data()[:300])
    assert resp.mimetype == "application/json"
    assert resp.json["status"] == "invalid event" and resp.json["message"] == "Event object is invalid", resp.json
    assert resp.json["errors"] and all(isinstance(e, str) for e in resp.json["errors"]), resp.json
    if errors is not None:
        assert resp.json["errors"] == errors


def test_trigger_acknowledge_resolve_answer_pagerdutys_shapes(api, conn, keys):
    resp = post(api, event(keys["pd"]))
    assert (resp.status_code, resp.json) == (202, {"status": "success", "message": "Event processed",
                                                   "dedup_key": "db-1/disk"})
    key = "events_v2:pd:db-1/disk"
    assert conn.execute("SELECT status FROM ops.incidents WHERE incident_key = %s", (key,)).fetchone() == ("open",)
    for action, status in (("acknowledge", "acknowledged"), ("resolve", "resolved")):
        resp = post(api, {"routing_key": keys["pd"], "event_action": action, "dedup_key": "db-1/disk"})
        assert (resp.status_code, resp.json["dedup_key"]) == (202, "db-1/disk")
        assert conn.execute("SELECT status FROM ops.incidents WHERE incident_key = %s", (key,)).fetchone() == (status,)


def test_a_trigger_without_dedup_key_is_answered_the_generated_one(api, conn, keys):
    body = event(keys["pd"])
    del body["dedup_key"]
    dedup = post(api, body).json["dedup_key"]
    assert len(dedup) == 32
    assert conn.execute("SELECT count(*) FROM ops.incidents WHERE incident_key = %s",
                        (f"events_v2:pd:{dedup}",)).fetchone() == (1,)


@pytest.mark.parametrize("which", ["unknown", "revoked", "alertmanager", "missing", "number", "pagerduty-shaped"])
def test_a_bad_routing_key_is_an_invalid_event_and_changes_nothing(api, keys, unchanged, which):
    key = {"unknown": "ogk_" + "0" * 64, "revoked": keys["revoked"], "alertmanager": keys["alertmanager"],
           "missing": None, "number": 12345, "pagerduty-shaped": "R0UTINGKEYR0UTINGKEYR0UTINGKEY00"}[which]
    body = event(key)
    if which == "missing":
        del body["routing_key"]
    assert_invalid(post(api, body), errors=["Invalid routing key"])


def test_the_key_in_a_bearer_header_instead_of_the_body_is_refused(api, keys, unchanged):
    body = event(keys["pd"])
    del body["routing_key"]
    resp = api.client.post(PATH, json=body, headers={"Authorization": f"Bearer {keys['pd']}"})
    assert_invalid(resp, errors=["Invalid routing key"])


@pytest.mark.parametrize(("fields", "error"), [
    ({"event_action": "escalate"}, "'event_action' must be one of trigger, acknowledge, resolve"),
    ({"event_action": ["trigger"]}, "'event_action' must be one of trigger, acknowledge, resolve"),
    ({"dedup_key": 7}, "'dedup_key' must be a string, not number"),
    ({"dedup_key": "d" * 256}, "'dedup_key' is longer than 255 characters"),
    ({"payload": None}, "'payload' is required: an object with summary, source and severity"),
    ({"payload": {"summary": "s", "source": "h", "severity": "fatal"}},
     "'payload.severity' must be one of critical, error, warning, info"),
    ({"payload": {"summary": {"text": "s"}, "source": "h", "severity": "info"}},
     "'payload.summary' must be a string, not object"),
    ({"payload": {"summary": "s" * 1025, "source": "h", "severity": "info"}},
     "'payload.summary' is longer than 1024 characters"),
    ({"payload": {"summary": "s", "source": 1, "severity": "info"}}, "'payload.source' must be a string, not number"),
    ({"payload": {"summary": "s", "source": "h", "severity": "info", "timestamp": "yesterday"}},
     "'payload.timestamp' must be an ISO 8601 time, e.g. 2026-12-01T08:00:00Z"),
    ({"payload": {"summary": "s", "source": "h", "severity": "info", "component": 1}},
     "'payload.component' must be a string, not number"),
    ({"payload": {"summary": "s", "source": "h", "severity": "info", "group": []}},
     "'payload.group' must be a string, not array"),
    ({"payload": {"summary": "s", "source": "h", "severity": "info", "class": True}},
     "'payload.class' must be a string, not boolean"),
    ({"payload": {"summary": "s", "source": "h", "severity": "info", "custom_details": [1]}},
     "'payload.custom_details' must be an object"),
    ({"links": [{"href": 1}]}, "'links' must be a list of {\"href\": string, \"text\": string}"),
    ({"images": {"src": "x"}}, "'images' must be a list of {\"src\": string, \"href\": string, \"alt\": string}"),
    ({"client": 1}, "'client' must be a string, not number"),
    ({"client_url": False}, "'client_url' must be a string, not boolean"),
])
def test_wrong_types_in_every_field_are_invalid_events(api, keys, unchanged, fields, error):
    # validate=False: the request breaks docs/openapi.yaml on purpose
    assert_invalid(post(api, event(keys["pd"], **fields), validate=False), errors=[error])


def test_every_problem_is_listed(api, keys, unchanged):
    resp = post(api, event(keys["pd"], payload={"summary": 1, "severity": "fatal"}, client=2), validate=False)
    assert_invalid(resp, errors=["'payload.summary' must be a string, not number", "'payload.source' is required",
                                 "'payload.severity' must be one of critical, error, warning, info",
                                 "'client' must be a string, not number"])


def test_acknowledge_or_resolve_need_a_dedup_key(api, keys, unchanged):
    for action in ("acknowledge", "resolve"):
        assert_invalid(post(api, {"routing_key": keys["pd"], "event_action": action}, validate=False),
                       errors=["'dedup_key' is required"])


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b"[1, 2]", b'"text"', b"null", b"42",
                                 b'{"routing_key": "a\\u0000b"}', b'{"a": "\x00"}', DEEP_OBJECT],
                         ids=["empty", "truncated", "text", "array", "string", "null", "number", "escaped-nul",
                              "nul-byte", "nested-10000"])
def test_malformed_bodies_are_invalid_events(api, keys, unchanged, raw):
    assert_invalid(post(api, raw=raw, validate=False))


def test_a_body_over_512_kib_is_413_in_pagerdutys_shape(api, keys, unchanged):
    big = json.dumps(event(keys["pd"], payload={"summary": "s", "source": "h", "severity": "info",
                                                "custom_details": {"log": "x" * (512 * 1024)}})).encode()
    assert_invalid(post(api, raw=big, validate=False), status=413)


def test_100_kb_of_custom_details_are_accepted_cut_and_marked(api, conn, keys):
    """Most senders do not retry a 400: an event too big for the details still opens its incident."""
    body = event(keys["pd"], dedup_key="big", payload={"summary": "disk full", "source": "db-1", "severity": "error",
                                                       "custom_details": {"log": "x" * (100 * 1024), "free": "0%"}},
                 links=[{"href": "https://runbook.example/disk", "text": "runbook"}])
    resp = post(api, body)
    assert (resp.status_code, resp.json["dedup_key"]) == (202, "big"), resp.json
    summary, severity, details, size = conn.execute(
        "SELECT summary, severity, details, octet_length(details::text) FROM ops.incidents "
        "WHERE incident_key = 'events_v2:pd:big'").fetchone()
    assert (summary, severity) == ("disk full", "critical")
    assert details["truncated"] == [{"field": "custom_details", "bytes": 100 * 1024 + 2}]
    assert details["custom_details"] == {"free": "0%"} and size <= 64 * 1024
    assert (details["source"], details["severity"], details["dedup_key"]) == ("db-1", "error", "big")
    assert details["links"] == [{"href": "https://runbook.example/disk", "text": "runbook"}]


@pytest.mark.parametrize("severity,paged", [("critical", "critical"), ("error", "critical"), ("warning", "warning"),
                                            ("info", "warning")])
def test_pagerdutys_severities_map_and_are_kept_as_sent(api, conn, keys, severity, paged):
    resp = post(api, event(keys["pd"], dedup_key=severity,
                           payload={"summary": "s", "source": "h", "severity": severity}))
    assert resp.status_code == 202, resp.json
    assert conn.execute("SELECT severity, details ->> 'severity' FROM ops.incidents WHERE incident_key = %s",
                        (f"events_v2:pd:{severity}",)).fetchone() == (paged, severity)


@pytest.mark.parametrize("src", ["http://graph.example/disk.png", "javascript:alert(1)", "//graph.example/x.png", ""])
def test_an_image_not_on_https_is_an_invalid_event_naming_it(api, keys, unchanged, src):
    body = event(keys["pd"], images=[{"src": "https://graph.example/ok.png"}, {"src": src, "alt": "disk"}])
    assert_invalid(post(api, body), errors=["'images[1].src' must be an https:// URL"])


def test_a_key_acts_only_on_the_incidents_it_opened(api, conn, keys):
    """A key bound to route checkout acknowledging or resolving another key's dedup_key reaches its
    own events_v2:<its name>:<dedup_key>, never the other key's incident."""
    other = conn.execute("SELECT ops.create_integration_key('pd-checkout', 'events_v2', 'alice', 'checkout')").fetchone()[0]
    assert post(api, event(keys["pd"])).status_code == 202
    before = checksum(conn)
    for action in ("acknowledge", "resolve"):
        resp = post(api, {"routing_key": other, "event_action": action, "dedup_key": "db-1/disk"})
        assert resp.status_code == 202
    assert checksum(conn) == before
    assert conn.execute("SELECT status, route FROM ops.incidents WHERE incident_key = 'events_v2:pd:db-1/disk'"
                        ).fetchone() == ("open", "db-1")


def test_an_ack_or_resolve_of_nothing_open_is_accepted_and_changes_nothing(api, keys, unchanged):
    for action in ("acknowledge", "resolve"):
        resp = post(api, {"routing_key": keys["pd"], "event_action": action, "dedup_key": "never-triggered"})
        assert (resp.status_code, resp.json["status"]) == (202, "success")


def test_the_rate_limit_is_429_in_pagerdutys_shape(db_url, keys, openapi_spec, clock):  # noqa: F811
    from conftest import SECRET, Api
    from opsguard.app import create_app
    from opsguard.limits import limiter

    app = create_app({"DATABASE_URL": db_url, "OPS_HMAC_SECRET": SECRET, "RATELIMIT_ENABLED": True})
    limiter.reset()
    try:
        api = Api(app.test_client(), openapi_spec)
        # malformed bodies count too (the limit is checked before the body is read) and cost no query
        codes = [post(api, raw=b"{", validate=False).status_code for _ in range(600)]
        assert set(codes) == {400}
        resp = post(api, event(keys["pd"]))
        assert resp.status_code == 429 and resp.json["status"] == "throttle event", resp.json
        assert int(resp.headers["Retry-After"]) > 0
        clock.now += 61
        assert post(api, event(keys["pd"])).status_code == 202
    finally:
        app.extensions["opsguard_pool"].close()
