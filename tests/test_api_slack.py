"""POST /chat/slack/commands: Slack's signature scheme, computed here by hand (v0 HMAC of
"v0:<timestamp>:<body>"), against the app's slack_sdk verifier; answers checked against
docs/openapi.yaml."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from urllib.parse import urlencode

import pytest
from opsguard.app import create_app
from opsguard.limits import limiter
from test_api_limits import clock  # noqa: F401 - the limiter's clock

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def slack_app(db_url):
    app = create_app({"DATABASE_URL": db_url, "OPS_HMAC_SECRET": "x", "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                      "TESTING": True})
    limiter.reset()
    yield app
    app.extensions["opsguard_pool"].close()


@pytest.fixture
def people(conn):
    conn.execute("SELECT ops.add_principal('alice', 'human', ARRAY['ops_responder'], 'admin')")
    conn.execute("SELECT ops.add_principal('victor', 'human', ARRAY['ops_viewer'], 'admin')")
    conn.execute("SELECT ops.link_chat_identity('slack', 'T1', 'UALICE', 'alice', 'admin')")
    conn.execute("SELECT ops.link_chat_identity('slack', 'T1', 'UVICTOR', 'victor', 'admin')")
    return conn.execute("SELECT id FROM ops.trigger_incident('GET /projects::slo_violation', 'critical')").fetchone()[0]


def slack_post(app, openapi_spec, form: dict, *, timestamp: int | None = None, secret: str = SIGNING_SECRET,
               signature: str | None = None, validate: bool = True):
    from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    body = urlencode({"token": "legacy", "team_domain": "acme", "channel_id": "C1", "user_name": "someone",
                      "response_url": "https://hooks.slack.com/commands/T1/1/x", **form}).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    if signature is None:
        signature = "v0=" + hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
               "X-Slack-Signature": signature}
    resp = app.test_client().post("/chat/slack/commands", data=body, headers=headers)
    if validate:
        req = Request(EnvironBuilder(path="/chat/slack/commands", method="POST", data=body, headers=headers).get_environ())
        openapi_spec.validate_response(WerkzeugOpenAPIRequest(req), WerkzeugOpenAPIResponse(resp))
    return resp


def command(user: str, cmd: str, text: str = "") -> dict:
    return {"team_id": "T1", "user_id": user, "command": cmd, "text": text}


def test_ack_by_key_as_the_linked_principal(slack_app, openapi_spec, people, conn):
    resp = slack_post(slack_app, openapi_spec, command("UALICE", "/incident-ack", "GET /projects::slo_violation"))
    assert resp.status_code == 200
    body = resp.get_json()
    assert (body["ok"], body["response_type"]) == (True, "ephemeral")
    assert body["text"] == "Acknowledged `GET /projects::slo_violation` (critical, level 0) as alice."
    assert conn.execute("SELECT status, acknowledged_by FROM incidents").fetchone() == ("acknowledged", "alice")


def test_resolve_by_id(slack_app, openapi_spec, people, conn):
    resp = slack_post(slack_app, openapi_spec, command("UALICE", "/incident-resolve", str(people)))
    assert resp.get_json()["incident"]["status"] == "resolved"
    assert conn.execute("SELECT resolved_by FROM incidents").fetchone()[0] == "alice"


def test_list(slack_app, openapi_spec, people):
    body = slack_post(slack_app, openapi_spec, command("UVICTOR", "/incident-list")).get_json()
    assert (body["ok"], body["count"]) == (True, 1)
    assert body["text"].startswith("1 open or acknowledged incident(s):\n• `GET /projects::slo_violation` critical, level 0")


def test_an_unknown_incident_is_named(slack_app, openapi_spec, people):
    body = slack_post(slack_app, openapi_spec, command("UALICE", "/incident-ack", "GET /nope")).get_json()
    assert (body["ok"], body["error"]) == (False, "not_found")
    assert "`GET /nope`" in body["text"]


def test_an_unlinked_user_is_told_how_to_get_linked(slack_app, openapi_spec, people, conn):
    resp = slack_post(slack_app, openapi_spec, command("USTRANGER", "/incident-ack", "GET /projects::slo_violation"))
    assert resp.status_code == 200
    assert resp.get_json()["error"] == "unlinked_user"
    assert "ops.link_chat_identity('slack', 'T1', 'USTRANGER'" in resp.get_json()["text"]
    assert conn.execute("SELECT status FROM incidents").fetchone()[0] == "open"


def test_rbac_denial_changes_nothing(slack_app, openapi_spec, people, conn):
    form = command("UVICTOR", "/incident-ack", "GET /projects::slo_violation")
    body = slack_post(slack_app, openapi_spec, form).get_json()
    assert (body["ok"], body["error"]) == (False, "forbidden")
    assert body["text"] == "victor may not acknowledge incidents (the permission incidents.ack is missing)."
    assert conn.execute("SELECT status FROM incidents").fetchone()[0] == "open"


@pytest.mark.parametrize("case", ["wrong secret", "tampered", "no signature"])
def test_a_bad_signature_is_401_and_changes_nothing(slack_app, openapi_spec, people, conn, case):
    form = command("UALICE", "/incident-ack", "GET /projects::slo_violation")
    kw = {"wrong secret": {"secret": "not-the-secret"}, "tampered": {"signature": "v0=" + "0" * 64},
          "no signature": {"signature": ""}}[case]
    resp = slack_post(slack_app, openapi_spec, form, **kw)
    assert resp.status_code == 401 and resp.get_json()["error"] == "unauthorized"
    assert conn.execute("SELECT status FROM incidents").fetchone()[0] == "open"


def test_a_stale_timestamp_is_401(slack_app, openapi_spec, people):
    resp = slack_post(slack_app, openapi_spec, command("UALICE", "/incident-list"), timestamp=int(time.time()) - 301)
    assert resp.status_code == 401
    assert resp.get_json()["message"] == "X-Slack-Request-Timestamp is not within 5 minutes of now"
    assert slack_post(slack_app, openapi_spec, command("UALICE", "/incident-list"),
                      timestamp=int(time.time()) - 290).status_code == 200


def test_a_replayed_request_is_401(slack_app, openapi_spec, people, conn):
    ts = int(time.time())
    form = command("UALICE", "/incident-resolve", "GET /projects::slo_violation")
    assert slack_post(slack_app, openapi_spec, form, timestamp=ts).status_code == 200
    conn.execute("UPDATE incidents SET status = 'open', resolved_by = NULL, resolved_at = NULL")
    resp = slack_post(slack_app, openapi_spec, form, timestamp=ts)
    assert resp.status_code == 401 and "already received" in resp.get_json()["message"]
    assert conn.execute("SELECT status FROM incidents").fetchone()[0] == "open"


def test_missing_fields_are_400(slack_app, openapi_spec, people):
    resp = slack_post(slack_app, openapi_spec, {"team_id": "T1", "command": "/incident-list"}, validate=False)
    assert resp.status_code == 400 and resp.get_json()["message"] == "missing form field(s): user_id"


def test_without_a_signing_secret_the_endpoint_says_so(app, openapi_spec):
    resp = slack_post(app, openapi_spec, command("UALICE", "/incident-list"))
    assert resp.status_code == 503 and resp.get_json()["error"] == "slack_not_configured"


def slack_raw(app, body: bytes, *, signature: str | None = None, timestamp: str | None = None):
    """Bytes exactly as given: what a form encoder would never send."""
    ts = str(int(time.time())) if timestamp is None else timestamp
    if signature is None:  # a signature computed the right way over those very bytes
        signature = "v0=" + hmac.new(SIGNING_SECRET.encode(), b"v0:" + ts.encode() + b":" + body,
                                     hashlib.sha256).hexdigest()
    return app.test_client().post("/chat/slack/commands", data=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature})


@pytest.fixture
def untested_slack_app(db_url):
    """As served: not TESTING, so an exception in a view is a logged 500, as under gunicorn. Rate
    limits on by name: the limiter is one object, and an app made with them off turns them off for
    every later app that does not say (flask-limiter's init_app keeps the last value)."""
    app = create_app({"DATABASE_URL": db_url, "OPS_HMAC_SECRET": "x", "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                      "RATELIMIT_ENABLED": True})
    limiter.reset()
    yield app
    app.extensions["opsguard_pool"].close()


NOT_UTF8 = [b"text=\xff", b"team_id=T1&user_id=UALICE&command=/incident-ack&text=\xc3\x28", b"\xfe\xfft=x"]


@pytest.mark.parametrize("body", NOT_UTF8, ids=["text=ff", "bad-continuation", "utf16-bom"])
@pytest.mark.parametrize("signed", [True, False], ids=["signed-over-the-bytes", "garbage-signature"])
def test_a_body_that_is_not_utf8_is_a_401_json_and_no_traceback(untested_slack_app, people, conn, caplog, body,
                                                                 signed):
    caplog.set_level(logging.DEBUG)
    resp = slack_raw(untested_slack_app, body, signature=None if signed else "v0=" + "0" * 64)
    assert resp.status_code == 401, resp.get_data()
    assert resp.get_json()["ok"] is False and resp.get_json()["error"] == "unauthorized"
    assert "not UTF-8" in resp.get_json()["message"]
    assert [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()] == []
    assert conn.execute("SELECT status FROM incidents").fetchone()[0] == "open"


@pytest.mark.usefixtures("people", "clock")
def test_bodies_that_are_not_utf8_count_against_the_failed_signature_limit(untested_slack_app):
    codes = [slack_raw(untested_slack_app, b"text=\xff").status_code for _ in range(31)]
    assert codes == [401] * 30 + [429]
    # the address is throttled as for any bad signature; a real Slack request from it waits too
    assert slack_raw(untested_slack_app, b"team_id=T1&user_id=UALICE&command=/incident-list").status_code == 429


@pytest.mark.parametrize("timestamp, signature", [
    ("9" * 5000, "v0=" + "0" * 64), ("\u00b2", "v0=" + "0" * 64), ("now", "v0=" + "\u00e9" * 64),
], ids=["5000-digit-timestamp", "superscript-timestamp", "latin1-signature"])
def test_malformed_slack_headers_are_401_json(untested_slack_app, people, conn, caplog, timestamp, signature):
    caplog.set_level(logging.DEBUG)
    resp = slack_raw(untested_slack_app, b"team_id=T1&user_id=UALICE&command=/incident-list", signature=signature,
                     timestamp=str(int(time.time())) if timestamp == "now" else timestamp)
    assert resp.status_code == 401 and resp.get_json()["error"] == "unauthorized", resp.get_data()
    assert [r for r in caplog.records if r.exc_info] == []
