"""/ops/me/contact-methods and /ops/me/notification-rules against the real app (docs/notifications.md):
a principal signing as itself manages its own methods and rules and sees its addresses in full; a
wrong verification code answers 422 and stays counted; after 5 the right one is refused (409); another
principal's method is a 404; every bad input is a 4xx JSON that changes no ops table."""

from __future__ import annotations

import hashlib

import pytest
from conftest import SECRET, Api
from test_api_bad_input import checksum

BOB = ("bob", "bob-secret")
CAROL = ("carol", "carol-secret")


@pytest.fixture
def people_app(db_url, conn):
    from opsguard.app import create_app
    from opsguard.limits import limiter

    for name in ("bob", "carol"):
        conn.execute("SELECT ops.add_principal(%s, 'human', ARRAY['ops_responder'], 'admin')", (name,))
    app = create_app({"DATABASE_URL": db_url, "OPS_HMAC_SECRET": SECRET, "TESTING": True,
                      "OPS_HMAC_KEYS": "bob=bob-secret,carol=carol-secret"})
    limiter.reset()
    yield app
    app.extensions["opsguard_pool"].close()


@pytest.fixture
def me(people_app, openapi_spec):
    """call(who, method, path, body): signed by bob or carol with their own keys."""
    api = Api(people_app.test_client(), openapi_spec)

    def call(who, method, path, body=None, **kw):
        return api.call(method, path, body, secret=who[1], **kw)
    call.api = api
    return call


def _set_code(conn, method_id: str, code: str) -> None:
    """What the dispatcher's claim of the verification message stores: the code's sha256."""
    conn.execute("UPDATE ops.contact_methods SET code_hash = %s, code_expires_at = now() + interval '15 minutes', "
                 "code_attempts = 0 WHERE id = %s", (hashlib.sha256(code.encode()).hexdigest(), method_id))


def test_bob_adds_lists_and_removes_his_methods(me, conn):
    added = me(BOB, "POST", "/ops/me/contact-methods", {"kind": "email", "address": "bob@example.com", "label": "work"})
    assert added.status_code == 201, added.json
    method = added.json["contactMethod"]
    assert (method["kind"], method["address"], method["verified"], method["triesLeft"]) == (
        "email", "bob@example.com", False, 5)
    assert "secret" not in added.json
    queued = conn.execute("SELECT channel, principal, payload FROM ops.notification_outbox "
                          "WHERE contact_method = %s", (method["id"],)).fetchall()
    assert queued == [("email", "bob", {"type": "verify"})], "the code goes out through the method itself"

    listed = me(BOB, "GET", "/ops/me/contact-methods")
    assert [m["address"] for m in listed.json["contactMethods"]] == ["bob@example.com"], "the owner sees it in full"
    assert me(CAROL, "GET", "/ops/me/contact-methods").json["contactMethods"] == [], "carol sees only hers"

    assert me(CAROL, "DELETE", f"/ops/me/contact-methods/{method['id']}").status_code == 404
    removed = me(BOB, "DELETE", f"/ops/me/contact-methods/{method['id']}")
    assert removed.json == {"ok": True, "removed": method["id"]}
    assert me(BOB, "GET", "/ops/me/contact-methods").json["contactMethods"] == []


def test_a_webhook_secret_is_shown_once(me, conn):
    added = me(BOB, "POST", "/ops/me/contact-methods", {"kind": "webhook", "address": "https://hooks.example.com/bob"})
    assert added.status_code == 201
    secret = added.json["secret"]
    assert len(secret) == 43 and added.json["contactMethod"]["verified"] is True
    assert conn.execute("SELECT secret FROM ops.contact_methods").fetchone()[0] == secret
    assert secret not in me(BOB, "GET", "/ops/me/contact-methods").get_data(as_text=True)


def test_an_admin_acting_as_bob_manages_his_methods(me, conn):
    resp = me.api.post("/ops/me/contact-methods", {"kind": "slack_dm", "address": "U024BE7LH"}, actor="bob")
    assert resp.status_code == 201
    assert conn.execute("SELECT principal, created_by FROM ops.contact_methods").fetchone() == ("bob", "bob")


@pytest.mark.parametrize(("body", "says"), [
    ({"kind": "email", "address": "bob at example.com"}, "is not an e-mail address"),
    ({"kind": "email", "address": "bob@example.com\r\nBcc: all@example.com"}, "is not an e-mail address"),
    ({"kind": "sms", "address": "004179 555 01 42"}, "is not an E.164 number"),
    ({"kind": "voice", "address": "+1234"}, "is not an E.164 number"),
    ({"kind": "slack_dm", "address": "@bob"}, "is not a Slack user id"),
    ({"kind": "webhook", "address": "http://hooks.example.com/x"}, "must use https"),
    ({"kind": "pager", "address": "x"}, "unknown contact method kind"),
    ({"kind": "email"}, "needs \"kind\" and \"address\""),
    ({"kind": "email", "address": 42}, "needs \"kind\" and \"address\""),
    ({"kind": "email", "address": "bob@example.com", "label": "x" * 101}, "a label has 1 to 100 characters"),
    ({"kind": "email", "address": "b" * 10_000 + "@example.com"}, "is not an e-mail address"),
])
def test_a_bad_address_is_a_400_naming_it_and_changes_nothing(me, conn, body, says):
    before = checksum(conn)
    resp = me(BOB, "POST", "/ops/me/contact-methods", body)
    assert resp.status_code == 400 and resp.json["ok"] is False, resp.json
    assert says in resp.json["message"]
    assert checksum(conn) == before


@pytest.mark.parametrize("raw", [b'{"kind": "email", "address": "bob\\u0000@example.com"}', b"[]", b"not json"])
def test_malformed_bodies_are_400(me, conn, raw):
    before = checksum(conn)
    resp = me(BOB, "POST", "/ops/me/contact-methods", raw=raw)
    assert resp.status_code == 400 and resp.json["ok"] is False
    assert checksum(conn) == before


def test_unsigned_and_replayed_requests_are_refused(me, conn):
    body = {"kind": "email", "address": "bob@example.com"}
    assert me.api.post("/ops/me/contact-methods", body, secret=None).status_code == 401
    first = me(BOB, "POST", "/ops/me/contact-methods", body, timestamp=None)
    assert first.status_code == 201
    sig, ts = first.request.headers["X-Signature"], first.request.headers["X-Timestamp"]
    before = checksum(conn)
    again = me.api.post("/ops/me/contact-methods", {"kind": "email", "address": "bob@example.com"},
                        signature=sig, timestamp=ts)
    assert again.status_code == 401 and checksum(conn) == before, "a write's signature is good once"


def test_a_wrong_code_answers_422_and_stays_counted_and_5_lock_the_code(me, conn):
    method = me(BOB, "POST", "/ops/me/contact-methods", {"kind": "sms", "address": "+14155550142"}).json["contactMethod"]
    _set_code(conn, method["id"], "482913")
    path = f"/ops/me/contact-methods/{method['id']}/verify"
    tries = []
    for code in ("000001", "000002", "000003", "000004", "000005"):
        resp = me(BOB, "POST", path, {"code": code})
        assert resp.status_code == 422 and resp.json["error"] == "wrong_code"
        tries.append(resp.json["triesLeft"])
    assert tries == [4, 3, 2, 1, 0]
    assert conn.execute("SELECT code_attempts, verified_at FROM ops.contact_methods WHERE id = %s",
                        (method["id"],)).fetchone() == (5, None), "every wrong code was counted"
    locked = me(BOB, "POST", path, {"code": "482913"})
    assert locked.status_code == 409 and "5 wrong codes" in locked.json["message"]
    assert "resend" in locked.json["hint"]


def test_the_right_code_verifies_and_a_new_one_can_be_asked_for(me, conn):
    added = me(BOB, "POST", "/ops/me/contact-methods", {"kind": "email", "address": "bob@example.com"})
    method = added.json["contactMethod"]
    path = f"/ops/me/contact-methods/{method['id']}"
    assert me(BOB, "POST", path + "/verify", {"code": "123456"}).status_code == 409, "no code sent yet"
    assert me(BOB, "POST", path + "/resend").status_code == 409, "one code a minute at most"
    conn.execute("UPDATE ops.notification_outbox SET created_at = created_at - interval '2 minutes'")
    assert me(BOB, "POST", path + "/resend").status_code == 202
    _set_code(conn, method["id"], "123456")
    assert me(CAROL, "POST", path + "/verify", {"code": "123456"}).status_code == 404, "not carol's"
    assert me(BOB, "POST", path + "/verify", {"code": "12345"}).status_code == 400, "not 6 digits"
    done = me(BOB, "POST", path + "/verify", {"code": "123456"})
    assert done.status_code == 200 and done.json["contactMethod"]["verified"] is True


def test_removing_and_adding_a_number_again_sends_no_extra_code(me, conn):
    """One code a minute to an address, whoever's method it is: re-adding a method is no way to flood
    a phone with codes, or to get 5 fresh guesses at once."""
    sms = {"kind": "sms", "address": "+14155550142"}
    first = me(BOB, "POST", "/ops/me/contact-methods", sms).json["contactMethod"]
    assert me(BOB, "DELETE", f"/ops/me/contact-methods/{first['id']}").status_code == 200
    before = checksum(conn)
    again = me(BOB, "POST", "/ops/me/contact-methods", sms)
    assert again.status_code == 409 and again.json["message"] == "a code was sent to this address less than a minute ago"
    assert me(CAROL, "POST", "/ops/me/contact-methods", sms).status_code == 409
    assert checksum(conn) == before
    conn.execute("UPDATE ops.notification_outbox SET created_at = created_at - interval '2 minutes'")
    assert me(BOB, "POST", "/ops/me/contact-methods", sms).status_code == 201


def test_a_principal_cannot_aim_its_webhook_at_a_loopback_host(me, conn):
    """Plain http reaches only the host opsguard runs on, where e.g. Patroni's REST API takes POSTs
    without a password: only an admin adds such a webhook (a local stand-in)."""
    before = checksum(conn)
    hook = me(BOB, "POST", "/ops/me/contact-methods", {"kind": "webhook", "address": "http://127.0.0.1:8008/reinitialize"})
    assert hook.status_code == 403 and hook.json["message"] == "only an admin may add a webhook to a loopback host"
    assert checksum(conn) == before


def test_rules_on_bobs_own_methods(me, conn):
    dm = me(BOB, "POST", "/ops/me/contact-methods", {"kind": "slack_dm", "address": "U024BE7LH"}).json["contactMethod"]
    sms = me(BOB, "POST", "/ops/me/contact-methods", {"kind": "sms", "address": "+14155550142"}).json["contactMethod"]
    first = me(BOB, "POST", "/ops/me/notification-rules", {"contactMethod": dm["id"], "delayMin": 0})
    assert first.status_code == 201 and first.json["rule"]["usable"] is True
    later = me(BOB, "POST", "/ops/me/notification-rules", {"contactMethod": sms["id"], "delayMin": 5})
    assert later.json["rule"]["usable"] is False, "pages once the number is verified"
    listed = me(BOB, "GET", "/ops/me/notification-rules").json["rules"]
    assert [(r["kind"], r["delayMin"], r["usable"]) for r in listed] == [("slack_dm", 0, True), ("sms", 5, False)]

    before = checksum(conn)
    for who, body, status in [
        (BOB, {"contactMethod": dm["id"], "delayMin": 0}, 409),
        (BOB, {"contactMethod": dm["id"], "delayMin": 1441}, 400),
        (BOB, {"contactMethod": dm["id"], "delayMin": 2.5}, 400),
        (BOB, {"contactMethod": "not-a-uuid", "delayMin": 1}, 400),
        (BOB, {"delayMin": 1}, 400),
        (CAROL, {"contactMethod": dm["id"], "delayMin": 1}, 404),
    ]:
        resp = me(who, "POST", "/ops/me/notification-rules", body)
        assert resp.status_code == status and resp.json["ok"] is False, (body, resp.json)
    rule_id = first.json["rule"]["id"]
    assert me(CAROL, "DELETE", f"/ops/me/notification-rules/{rule_id}").status_code == 404
    assert me(BOB, "DELETE", "/ops/me/notification-rules/1;drop").status_code == 400
    assert checksum(conn) == before
    assert me(BOB, "DELETE", f"/ops/me/notification-rules/{rule_id}").json == {"ok": True, "removed": rule_id}
