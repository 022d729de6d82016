"""POST /chat/slack/interactions: Block Kit buttons Acknowledge and Resolve (docs/notifications.md,
Acknowledging from the page). Signed like slash commands (Slack's v0 scheme: its published example
vector, and fresh signatures); the Slack user acts as its linked principal; the message is replaced
later through the outbox (a slack_reply row to the payload's response_url)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from opsguard.app import create_app
from opsguard.limits import limiter
from opsguard.views import chat
from test_api_bad_input import checksum
from test_api_slack import SIGNING_SECRET

RESPONSE_URL = "https://hooks.slack.com/actions/T1/1234/abcd"
# Slack's published example of a signed request (its docs on verifying requests): the secret above
EXAMPLE_TIMESTAMP = "1531420618"
EXAMPLE_BODY = (
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
EXAMPLE_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


@pytest.fixture
def slack_app(db_url):
    app = create_app({"DATABASE_URL": db_url, "OPS_HMAC_SECRET": "x", "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                      "OPS_SLACK_API_BASE": "http://127.0.0.1:9/api/", "TESTING": True})
    limiter.reset()
    yield app
    app.extensions["opsguard_pool"].close()


@pytest.fixture
def incident(conn):
    conn.execute("SELECT ops.add_principal('alice', 'human', ARRAY['ops_responder'], 'admin')")
    conn.execute("SELECT ops.add_principal('victor', 'human', ARRAY['ops_viewer'], 'admin')")
    conn.execute("SELECT ops.link_chat_identity('slack', 'T1', 'UALICE', 'alice', 'admin')")
    conn.execute("SELECT ops.link_chat_identity('slack', 'T1', 'UVICTOR', 'victor', 'admin')")
    return str(conn.execute("SELECT id FROM ops.trigger_incident('GET /pay::errors', 'critical', 'GET /pay')").fetchone()[0])


def payload(user: str, action_id: str, value: str, response_url: str = RESPONSE_URL, **extra) -> dict:
    return {"type": "block_actions", "team": {"id": "T1"}, "user": {"id": user, "team_id": "T1"},
            "actions": [{"action_id": action_id, "value": value, "type": "button", "block_id": "opsguard_page:x"}],
            "response_url": response_url, "trigger_id": uuid.uuid4().hex, **extra}  # each press differs, as Slack's


def press(app, body: dict | str, *, secret: str = SIGNING_SECRET, signature: str | None = None, raw: bytes | None = None):
    data = raw if raw is not None else urlencode({"payload": body if isinstance(body, str) else json.dumps(body)}).encode()
    ts = str(int(time.time()))
    if signature is None:
        signature = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + data, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts}
    if signature:
        headers["X-Slack-Signature"] = signature
    return app.test_client().post("/chat/slack/interactions", data=data, headers=headers)


def test_slacks_published_example_vector_verifies(slack_app, monkeypatch):
    now = int(EXAMPLE_TIMESTAMP) + 10
    monkeypatch.setattr(chat, "time", SimpleNamespace(time=lambda: now))
    monkeypatch.setattr(slack_app.extensions["slack_verifier"], "clock", SimpleNamespace(now=lambda: now))
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": EXAMPLE_TIMESTAMP}
    with slack_app.test_request_context("/chat/slack/interactions", method="POST", data=EXAMPLE_BODY,
                                        headers={**headers, "X-Slack-Signature": EXAMPLE_SIGNATURE}):
        assert chat.verified_slack_request() == EXAMPLE_SIGNATURE
    wrong = EXAMPLE_SIGNATURE[:-1] + "4"
    with slack_app.test_request_context("/chat/slack/interactions", method="POST", data=EXAMPLE_BODY,
                                        headers={**headers, "X-Slack-Signature": wrong}):
        with pytest.raises(chat.ApiError) as refused:
            chat.verified_slack_request()
    assert refused.value.status == 401


def test_a_channel_post_button_acknowledges_as_the_linked_principal(slack_app, conn, incident):
    resp = press(slack_app, payload("UALICE", "ack", incident))
    assert resp.status_code == 200 and resp.json["ok"] is True, resp.json
    assert "Acknowledged by alice at" in resp.json["text"]
    assert conn.execute("SELECT status, acknowledged_by FROM ops.incidents").fetchone() == ("acknowledged", "alice")
    assert conn.execute("SELECT actor, note FROM ops.audit_log WHERE table_name = 'incidents' AND action = 'UPDATE'"
                        ).fetchall() == [("alice", "via slack_button")]
    [(channel, url, reply, event)] = conn.execute(
        "SELECT channel, webhook_url, payload, event_id FROM ops.notification_outbox").fetchall()
    assert (channel, url, event) == ("slack_reply", RESPONSE_URL, None)
    assert reply["replace_original"] is True and "`GET /pay::errors`: Acknowledged by alice at" in reply["text"]


def test_a_direct_message_button_acts_once_for_its_principal(slack_app, conn, incident):
    token = conn.execute("SELECT r_token FROM ops._mint_page_token(NULL, %s, 'alice', 'slack_button', now())",
                         (incident,)).fetchone()[0]
    before = checksum(conn)
    stolen = press(slack_app, payload("UVICTOR", "resolve", token))
    assert stolen.json["ok"] is False and stolen.json["error"] == "forbidden"
    assert checksum(conn) == before
    first = press(slack_app, payload("UALICE", "resolve", token))
    assert first.json["ok"] is True and "Resolved by alice" in first.json["text"]
    assert conn.execute("SELECT status FROM ops.incidents").fetchone() == ("resolved",)
    before = checksum(conn)
    again = press(slack_app, payload("UALICE", "resolve", token))
    assert (again.status_code, again.json["ok"], again.json["error"]) == (200, False, "gone")
    assert checksum(conn) == before


def test_a_resolved_incident_refuses_the_button(slack_app, conn, incident):
    conn.execute("SELECT ops.resolve_incident(%s, 'admin')", (incident,))
    before = checksum(conn)
    resp = press(slack_app, payload("UALICE", "ack", incident))
    assert (resp.json["ok"], resp.json["error"]) == (False, "conflict") and "resolved" in resp.json["text"]
    assert checksum(conn) == before


def test_an_unlinked_user_is_told_to_link_and_nothing_changes(slack_app, conn, incident):
    before = checksum(conn)
    resp = press(slack_app, payload("USTRANGER", "ack", incident))
    assert resp.status_code == 200 and resp.json["error"] == "unlinked_user"
    assert resp.json["response_type"] == "ephemeral" and "Link your Slack user USTRANGER" in resp.json["text"]
    assert checksum(conn) == before


@pytest.mark.parametrize("case", ["missing", "wrong_secret", "garbage"])
def test_a_bad_or_missing_signature_is_401_and_changes_nothing(slack_app, conn, incident, case):
    before = checksum(conn)
    body = payload("UALICE", "ack", incident)
    signature = {"missing": "", "garbage": "v0=" + "0" * 64}.get(case)
    resp = press(slack_app, body, signature=signature,
                 secret="not-the-secret" if case == "wrong_secret" else SIGNING_SECRET)
    assert resp.status_code == 401 and resp.json["error"] == "unauthorized"
    assert checksum(conn) == before


def test_a_replayed_press_is_401(slack_app, conn, incident):
    data = urlencode({"payload": json.dumps(payload("UALICE", "ack", incident))}).encode()
    ts = str(int(time.time()))
    sig = "v0=" + hmac.new(SIGNING_SECRET.encode(), f"v0:{ts}:".encode() + data, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
               "X-Slack-Signature": sig}
    client = slack_app.test_client()
    assert client.post("/chat/slack/interactions", data=data, headers=headers).status_code == 200
    assert client.post("/chat/slack/interactions", data=data, headers=headers).status_code == 401


@pytest.mark.parametrize("body", [
    "not json", "[]", {"type": "view_submission"},
    {"type": "block_actions", "user": {"id": "UALICE"}, "actions": []},
    "response_url:https://evil.example/x", "response_url:http://hooks.slack.com/x",
    "response_url:https://hooks.slack.com@evil.example/x", "response_url:http://127.0.0.1:10/x",
])
def test_malformed_payloads_and_foreign_response_urls_are_400(slack_app, conn, incident, body):
    if isinstance(body, str) and body.startswith("response_url:"):
        body = payload("UALICE", "ack", incident, response_url=body.partition(":")[2])
    before = checksum(conn)
    resp = press(slack_app, body)
    assert resp.status_code == 400 and resp.json["error"] == "invalid_input", resp.json
    assert checksum(conn) == before


def test_the_local_stand_ins_response_url_is_accepted(slack_app, conn, incident):
    resp = press(slack_app, payload("UALICE", "ack", incident, response_url="http://127.0.0.1:9/response/1"))
    assert resp.json["ok"] is True
