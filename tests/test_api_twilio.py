"""Twilio's webhooks (docs/notifications.md, Acknowledging from the page): an SMS reply "4 <code>" /
"6 <code>", a key press in a call, a delivery status callback. Each is signed the way Twilio signs
(the twilio client's RequestValidator: Twilio's published example as a fixed vector, fresh signatures
made with compute_signature); a bad or missing signature is 403 and changes nothing."""

from __future__ import annotations

import pytest
from opsguard.app import create_app
from opsguard.limits import limiter
from opsguard.views import twilio as twilio_view
from test_api_bad_input import checksum
from twilio.request_validator import RequestValidator

AUTH_TOKEN = "twilio-test-auth-token"
BASE = "https://ops.example.com"
BOB_PHONE = "+14155550142"
SID = "SM" + "0123456789abcdef" * 2


@pytest.fixture
def twilio_app(db_url, conn):
    conn.execute("""UPDATE ops.settings SET value = '"https://ops.example.com/"' WHERE key = 'app_base_url'""")
    app = create_app({"DATABASE_URL": db_url, "OPS_HMAC_SECRET": "x", "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TESTING": True})
    limiter.reset()
    yield app
    app.extensions["opsguard_pool"].close()


@pytest.fixture
def incident(conn):
    conn.execute("SELECT ops.add_principal('bob', 'human', ARRAY['ops_responder'], 'admin')")
    conn.execute("SELECT ops.add_principal('carol', 'human', ARRAY['ops_responder'], 'admin')")
    conn.execute("INSERT INTO ops.contact_methods (principal, kind, address, created_by, verified_at) VALUES "
                 "('bob', 'sms', %s, 'bob', now()), ('carol', 'sms', '+14155550199', 'carol', now())", (BOB_PHONE,))
    return conn.execute("SELECT id FROM ops.trigger_incident('GET /pay::errors', 'critical', 'GET /pay')").fetchone()[0]


def mint(conn, incident, channel: str, who: str = "bob") -> tuple[str, str | None]:
    return conn.execute("SELECT r_token, r_short_code FROM ops._mint_page_token(NULL, %s, %s, %s, now(), %s)",
                        (incident, who, channel, channel == "sms")).fetchone()


def post(app, path: str, form: dict, *, token: str = AUTH_TOKEN, signature: str | None = None, signed_url: str = ""):
    url = signed_url or BASE + path
    if signature is None:
        signature = RequestValidator(token).compute_signature(url, form)
    headers = {"X-Twilio-Signature": signature} if signature else {}
    return app.test_client().post(path, data=form, headers=headers)


def state(conn, incident) -> tuple:
    return conn.execute("SELECT status, acknowledged_by, resolved_by FROM ops.incidents WHERE id = %s",
                        (incident,)).fetchone()


def test_twilios_published_example_verifies(db_url, conn):
    # Twilio's security docs: auth token 12345, this URL and these parameters sign to this value
    conn.execute("""UPDATE ops.settings SET value = '"https://mycompany.com"' WHERE key = 'app_base_url'""")
    app = create_app({"DATABASE_URL": db_url, "OPS_HMAC_SECRET": "x", "TWILIO_AUTH_TOKEN": "12345", "TESTING": True})
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234", "From": "+14158675309",
              "To": "+18005551212"}
    try:
        for signature, ok in (("RSOYDt4T1cUTdK1PDd93/VVr8B8=", True), ("RSOYDt4T1cUTdK1PDd93/VVr8B9=", False)):
            with app.test_request_context("/myapp.php?foo=1&bar=2", method="POST", data=params,
                                          headers={"X-Twilio-Signature": signature}):
                if ok:
                    assert twilio_view._verified_form().to_dict() == params
                else:
                    with pytest.raises(twilio_view.ApiError) as refused:
                        twilio_view._verified_form()
                    assert refused.value.status == 403
    finally:
        app.extensions["opsguard_pool"].close()


def test_an_sms_reply_acknowledges_as_the_owner_of_the_number(twilio_app, conn, incident):
    _token, code = mint(conn, incident, "sms")
    resp = post(twilio_app, "/twilio/sms", {"From": BOB_PHONE, "To": "+15005550006", "Body": f" 4 {code} ",
                                            "MessageSid": "SM" + "1" * 32})
    assert resp.status_code == 200 and resp.mimetype == "text/xml"
    assert resp.get_data(as_text=True).startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
                                                  "GET /pay::errors: Acknowledged by bob at ")
    assert state(conn, incident) == ("acknowledged", "bob", None)
    assert conn.execute("SELECT actor, note FROM ops.audit_log WHERE table_name = 'incidents' AND action = 'UPDATE'"
                        ).fetchall() == [("bob", "via sms")]
    assert conn.execute("SELECT used_action, used_via FROM ops.page_tokens").fetchall() == [("acknowledge", "sms")]
    again = post(twilio_app, "/twilio/sms", {"From": BOB_PHONE, "Body": f"6 {code}"})
    assert "this page was already answered." in again.get_data(as_text=True)
    assert state(conn, incident) == ("acknowledged", "bob", None)


@pytest.mark.parametrize("case", ["other_number", "other_owner", "wrong_code", "bad_body", "removed_method"])
def test_sms_replies_that_cannot_answer_are_told_why_and_change_nothing(twilio_app, conn, incident, case):
    _token, code = mint(conn, incident, "sms")
    if case == "removed_method":
        conn.execute("UPDATE ops.contact_methods SET removed_at = now(), removed_by = 'bob' WHERE principal = 'bob'")
    sender = {"other_number": "+14155550100", "other_owner": "+14155550199"}.get(case, BOB_PHONE)
    body = {"wrong_code": f"4 {(int(code) + 1) % 1000000:06d}", "bad_body": "yes"}.get(case, f"4 {code}")
    before = checksum(conn)
    resp = post(twilio_app, "/twilio/sms", {"From": sender, "Body": body})
    text = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<Message>" in text
    assert ("reply 4 and the code" in text) if case == "bad_body" else ("no such page" in text)
    # a code that answers no page is a guess, and guesses count (5 an hour per number); nothing else changed
    assert misses(conn) == (0 if case == "bad_body" else 1)
    after = checksum(conn)
    if case != "bad_body":
        del before["sms_reply_misses"], after["sms_reply_misses"]
    assert after == before


def misses(conn) -> int:
    return conn.execute("SELECT count(*) FROM ops.sms_reply_misses").fetchone()[0]


def test_five_wrong_codes_from_a_number_lock_its_replies_for_an_hour(twilio_app, conn, incident):
    _token, code = mint(conn, incident, "sms")
    for n in range(1, 6):
        wrong = post(twilio_app, "/twilio/sms", {"From": BOB_PHONE, "Body": f"4 {(int(code) + n) % 1000000:06d}"})
        assert "no such page" in wrong.get_data(as_text=True)
    before = checksum(conn)
    right = post(twilio_app, "/twilio/sms", {"From": BOB_PHONE, "Body": f"4 {code}"})
    assert right.status_code == 200
    assert "5 wrong codes came from this number in the last hour." in right.get_data(as_text=True)
    assert checksum(conn) == before and state(conn, incident) == ("open", None, None)
    conn.execute("UPDATE ops.sms_reply_misses SET missed_at = missed_at - interval '61 minutes'")
    again = post(twilio_app, "/twilio/sms", {"From": BOB_PHONE, "Body": f"4 {code}"})
    assert "Acknowledged by bob" in again.get_data(as_text=True)


def test_an_unverified_number_of_the_principal_cannot_answer(twilio_app, conn, incident):
    conn.execute("INSERT INTO ops.contact_methods (principal, kind, address, created_by) "
                 "VALUES ('bob', 'sms', '+14155550177', 'bob')")
    _token, code = mint(conn, incident, "sms")
    resp = post(twilio_app, "/twilio/sms", {"From": "+14155550177", "Body": f"4 {code}"})
    assert "no such page" in resp.get_data(as_text=True)
    assert state(conn, incident) == ("open", None, None)


def test_a_key_press_in_the_call_resolves_and_other_keys_repeat_the_options(twilio_app, conn, incident):
    token, _code = mint(conn, incident, "voice")
    before = checksum(conn)
    other = post(twilio_app, f"/twilio/voice?t={token}", {"CallSid": "CA" + "2" * 32, "Digits": "9"})
    assert other.status_code == 200 and other.mimetype == "text/xml"
    assert f'<Gather numDigits="1" action="{BASE}/twilio/voice?t={token}">' in other.get_data(as_text=True)
    assert "Press 4 to acknowledge, 6 to resolve." in other.get_data(as_text=True)
    assert checksum(conn) == before
    resp = post(twilio_app, f"/twilio/voice?t={token}", {"CallSid": "CA" + "2" * 32, "Digits": "6"})
    assert "<Say>Resolved by bob at " in resp.get_data(as_text=True) and "<Hangup/>" in resp.get_data(as_text=True)
    assert state(conn, incident) == ("resolved", None, "bob")
    link_token, _ = mint(conn, incident, "link")
    wrong_kind = post(twilio_app, f"/twilio/voice?t={link_token}", {"Digits": "4"})
    assert "no such page" in wrong_kind.get_data(as_text=True)


def test_status_callbacks_record_delivery_by_provider_id(twilio_app, conn, incident):
    conn.execute("INSERT INTO ops.notification_outbox (dedup_key, channel, payload, contact_method, principal, provider_id) "
                 "SELECT 'verify:1', 'sms', '{\"type\": \"verify\"}', id, 'bob', %s FROM ops.contact_methods "
                 "WHERE principal = 'bob'", (SID,))
    for status in ("sent", "delivered", "sent"):  # a late "sent" does not take the delivery back
        resp = post(twilio_app, "/twilio/status", {"MessageSid": SID, "MessageStatus": status})
        assert resp.status_code == 200 and resp.json["ok"] is True
    assert conn.execute("SELECT delivery_status, delivered_at IS NOT NULL FROM ops.notification_outbox").fetchone() == (
        "delivered", True)
    before = checksum(conn)
    unknown = post(twilio_app, "/twilio/status", {"MessageSid": "SM" + "9" * 32, "MessageStatus": "delivered"})
    assert unknown.status_code == 404 and unknown.json["error"] == "not_found"
    malformed = post(twilio_app, "/twilio/status", {"MessageSid": SID, "MessageStatus": "<b>"})
    assert malformed.status_code == 400
    assert post(twilio_app, "/twilio/status", {"MessageSid": SID}).status_code == 400
    assert checksum(conn) == before


@pytest.mark.parametrize("case", ["missing", "wrong_token", "other_url", "changed_param", "http_url"])
@pytest.mark.parametrize("path", ["/twilio/sms", "/twilio/voice?t=", "/twilio/status"])
def test_a_bad_or_missing_signature_is_403_and_changes_nothing(twilio_app, conn, incident, case, path):
    token, code = mint(conn, incident, "voice" if "voice" in path else "sms")
    conn.execute("INSERT INTO ops.notification_outbox (dedup_key, channel, payload, contact_method, principal, provider_id) "
                 "SELECT 'verify:1', 'sms', '{\"type\": \"verify\"}', id, 'bob', %s FROM ops.contact_methods "
                 "WHERE principal = 'bob'", (SID,))
    path = path + token if path.endswith("t=") else path
    form = {"From": BOB_PHONE, "Body": f"4 {code}", "Digits": "4", "MessageSid": SID, "MessageStatus": "delivered"}
    signed = dict(form, Body="6 000000") if case == "changed_param" else form
    signature = {"missing": ""}.get(case) if case == "missing" else RequestValidator(
        "not-the-token" if case == "wrong_token" else AUTH_TOKEN).compute_signature(
        {"other_url": BASE + "/twilio/other", "http_url": "http://ops.example.com" + path}.get(case, BASE + path), signed)
    before = checksum(conn)
    resp = post(twilio_app, path, form, signature=signature)
    assert resp.status_code == 403 and resp.json["error"] == "forbidden"
    assert checksum(conn) == before


def test_without_an_auth_token_twilio_is_refused_with_503(app, conn):
    resp = app.test_client().post("/twilio/sms", data={"From": BOB_PHONE, "Body": "4 123456"},
                                  headers={"X-Twilio-Signature": "x"})
    assert resp.status_code == 503 and resp.json["error"] == "twilio_not_configured"
