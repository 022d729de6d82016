"""The pager end to end (docs/notifications.md): a person adds a contact method over HTTP, verifies it
with the code the dispatcher sent through it, sets a notification rule, is paged by an escalation,
and answers from the page itself. Every part is the real program: the shipped gunicorn serving the
API over HTTP, the dispatcher's own class sending through the providers' official clients (smtplib,
twilio, slack_sdk) to the stand-ins of scripts/standins, and the answers signed the way the
providers sign them (Twilio's RequestValidator, Slack's v0 scheme)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shlex
import signal
import subprocess
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import requests
from conftest import SECRET
from opsguard import auth
from opsguard.dispatcher import SENDER_VARS, Dispatcher, Options
from standins import SlackApiStandin, SmtpStandin, Standins, TwilioStandin
from test_api_bad_input import checksum
from test_api_slack import SIGNING_SECRET
from test_e2e_gunicorn import ROOT, serving
from test_run_stop import datadir, started  # noqa: F401 (fixtures: make run with its own ports)
from twilio.request_validator import RequestValidator

BOB_KEY = "bob-secret"
ROUTE = "GET /checkout"
KEY = "GET /checkout::slo_violation"


class Pager:
    """The API over HTTP (bob signs v1 with his own key), the dispatcher, the stand-ins, psql."""

    def __init__(self, base: str, conn, dispatcher, standins):
        self.base, self.conn, self.dispatcher, self.standins = base, conn, dispatcher, standins
        self.http = requests.Session()
        self._signed: set[tuple] = set()

    def me(self, method: str, path: str, body: dict | None = None) -> requests.Response:
        """Signed v1 by bob (docs/api.md, Signatures), written out apart from the server's code."""
        data = b"" if body is None else json.dumps(body).encode()
        ts = int(time.time())
        while (ts, method, path, data) in self._signed:  # a signature is accepted once
            ts -= 1
        self._signed.add((ts, method, path, data))
        sig = "v1=" + hmac.new(BOB_KEY.encode(), f"v1:{ts}:{method}:{path}:".encode() + data, hashlib.sha256).hexdigest()
        return self.http.request(method, self.base + path, data=data, timeout=10, headers={
            "Content-Type": "application/json", "X-Timestamp": str(ts), "X-Signature": sig})

    def add_method(self, kind: str, address: str) -> dict:
        resp = self.me("POST", "/ops/me/contact-methods", {"kind": kind, "address": address})
        assert resp.status_code == 201, resp.text
        return resp.json()

    def verify(self, method_id: str, code: str) -> None:
        resp = self.me("POST", f"/ops/me/contact-methods/{method_id}/verify", {"code": code})
        assert resp.status_code == 200 and resp.json()["contactMethod"]["verified"] is True, resp.text

    def rule(self, method_id: str, delay: int) -> None:
        resp = self.me("POST", "/ops/me/notification-rules", {"contactMethod": method_id, "delayMin": delay})
        assert resp.status_code == 201 and resp.json()["rule"]["usable"] is True, resp.text

    def page_bob(self, at: datetime) -> str:
        return page_bob(self.conn, at)

    def incident(self, inc: str) -> tuple:
        return self.conn.execute("SELECT status, acknowledged_by, resolved_by FROM ops.incidents WHERE id = %s",
                                 (inc,)).fetchone()

    def page_log(self, inc: str) -> list[tuple]:
        return self.conn.execute("SELECT principal, kind, status, sent_at IS NOT NULL, delivered_at IS NOT NULL, via "
                                 "FROM ops.page_log WHERE incident_id = %s ORDER BY due_at, kind", (inc,)).fetchall()

    def answers(self, inc: str) -> list[tuple]:
        """Who answered the incident, and through what, as the audit log says."""
        return self.conn.execute("SELECT actor, note FROM ops.audit_log WHERE table_name = 'incidents' AND action = "
                                 "'UPDATE' AND row_key = %s AND note LIKE 'via %%' ORDER BY id", (inc,)).fetchall()

    def twilio_post(self, path: str, form: dict) -> requests.Response:
        """As Twilio posts a webhook: signed over the public URL (app_base_url + path) and the form."""
        signature = RequestValidator(self.standins.TWILIO_TOKEN).compute_signature(self.base + path, form)
        return self.http.post(self.base + path, data=form, headers={"X-Twilio-Signature": signature}, timeout=10)


def bob_paged_on_route(conn, smtp_port: int) -> None:
    """bob (ops_responder), a policy whose step pages him on ROUTE, and SMTP at 127.0.0.1:smtp_port."""
    conn.execute("SELECT ops.add_principal('bob', 'human', ARRAY['ops_responder'], 'admin')")
    conn.execute("SELECT ops.create_policy('checkout', 'admin')")
    conn.execute("""SELECT ops.add_policy_step('checkout', 1, '[{"principal": "bob"}]', 'admin')""")
    conn.execute("SELECT ops.set_route_policy(%s, 'checkout', 'admin')", (ROUTE,))
    conn.execute("SELECT ops.set_setting('smtp_host', '127.0.0.1', 'admin'), ops.set_setting('smtp_port', %s, 'admin'), "
                 "ops.set_setting('smtp_from', 'pager@ops.example.com', 'admin')", (str(smtp_port),))


def page_bob(conn, at: datetime) -> str:
    """An incident on ROUTE escalated to level 1 (paging bob) by the tick at `at`."""
    inc = conn.execute("SELECT id FROM ops.trigger_incident(%s, 'critical', %s, 'Checkout is down', 'ops-bot', %s)",
                       (KEY, ROUTE, at - timedelta(hours=1))).fetchone()[0]
    assert conn.execute("SELECT ops.escalation_tick(%s) -> 'escalationsCount'", (at,)).fetchone()[0] == 1
    return str(inc)


@pytest.fixture
def pager(db_url, conn, standins, page_dispatcher):
    """bob (ops_responder, his own signing key), a policy paging him on ROUTE, SMTP pointed at the
    stand-in, and the API under gunicorn with Twilio's token and Slack's signing secret."""
    bob_paged_on_route(conn, standins.smtp.port)
    with serving(db_url, OPS_HMAC_KEYS=f"bob={BOB_KEY}", TWILIO_AUTH_TOKEN=standins.TWILIO_TOKEN,
                 SLACK_SIGNING_SECRET=SIGNING_SECRET, OPS_SLACK_API_BASE=standins.slack.base_url) as base:
        # the public URL: links in pages, and what Twilio's signatures cover
        conn.execute("SELECT ops.set_setting('app_base_url', %s, 'admin')", (base,))
        yield Pager(base, conn, page_dispatcher, standins)


def test_email_verified_over_http_then_a_page_answered_from_its_link(pager):
    added = pager.add_method("email", "bob@mail.example.com")
    method = added["contactMethod"]
    assert method["verified"] is False
    assert pager.dispatcher.run_once() == 1
    [mail] = pager.standins.smtp.wait_for(1)
    assert mail.tls and mail.recipients == ["bob@mail.example.com"]
    code = re.search(r"\b([0-9]{6})\b", mail.message.get_body(("plain",)).get_content()).group(1)
    pager.verify(method["id"], code)
    pager.rule(method["id"], 0)

    inc = pager.page_bob(datetime.now().astimezone())
    assert pager.dispatcher.run_once() >= 1
    mails = pager.standins.smtp.wait_for(2)
    page = mails[1].message
    assert page["To"] == "bob@mail.example.com" and KEY in page["Subject"]
    text = page.get_body(("plain",)).get_content()
    html = page.get_body(("html",)).get_content()
    [link] = re.findall(re.escape(pager.base) + r"/p/[A-Za-z0-9_-]{43}", text)
    assert f'href="{link}"' in html, "the HTML part links the same page"

    before = checksum(pager.conn)
    shown = pager.http.get(link, timeout=10)
    assert shown.status_code == 200 and KEY in shown.text and '<form method="post">' in shown.text
    assert checksum(pager.conn) == before, "a GET (a mail scanner) changes nothing"

    acked = pager.http.post(link, data={"action": "acknowledge"}, timeout=10)
    assert acked.status_code == 200 and "Acknowledged by bob" in acked.text
    assert pager.incident(inc) == ("acknowledged", "bob", None)
    assert pager.page_log(inc) == [("bob", "email", "sent", True, False, "link")]
    assert pager.answers(inc) == [("bob", "via link")]
    before = checksum(pager.conn)
    assert pager.http.post(link, data={"action": "resolve"}, timeout=10).status_code == 410
    assert checksum(pager.conn) == before


def _twilio_code(pager, count: int) -> str:
    """The verification code in the `count`th SMS or call the Twilio stand-in received (a call
    reads it digit by digit: "1 2 3 4 5 6")."""
    call = pager.standins.twilio.wait_for(count)[count - 1]
    said = re.search(r"code is ([0-9](?: ?[0-9]){5})\.", call.fields.get("Body") or call.fields["Twiml"]).group(1)
    return said.replace(" ", "")


def _verified(pager, kind: str, address: str, count: int) -> str:
    """A method added over HTTP and verified with the code the dispatcher sent through Twilio."""
    method = pager.add_method(kind, address)["contactMethod"]
    assert pager.dispatcher.run_once() == 1
    pager.verify(method["id"], _twilio_code(pager, count))
    pager.rule(method["id"], 0)
    return method["id"]


def _paged_through_twilio(pager, kind: str, number: str):
    """bob verifies `number` and is paged: the incident, and the SMS or call Twilio received."""
    _verified(pager, kind, number, 1)
    inc = pager.page_bob(datetime.now().astimezone())
    assert pager.dispatcher.run_once() >= 1
    page = pager.standins.twilio.wait_for(2)[1]
    assert page.path.endswith("/Messages.json" if kind == "sms" else "/Calls.json") and page.fields["To"] == number
    return inc, page


def test_sms_page_answered_by_reply_and_its_delivery_reported(pager):
    inc, sms = _paged_through_twilio(pager, "sms", "+14155550142")
    assert sms.fields["StatusCallback"] == pager.base + "/twilio/status"
    code = re.search(r"Reply 4 ([0-9]{6}) to acknowledge", sms.fields["Body"]).group(1)

    before = checksum(pager.conn)
    forged = pager.http.post(pager.base + "/twilio/sms", data={"From": "+14155550142", "Body": f"4 {code}"},
                             headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}, timeout=10)
    assert forged.status_code == 403 and checksum(pager.conn) == before

    reply = pager.twilio_post("/twilio/sms", {"From": "+14155550142", "Body": f"4 {code}"})
    assert reply.status_code == 200 and "<Message>" in reply.text, reply.text
    assert pager.incident(inc) == ("acknowledged", "bob", None)
    assert pager.answers(inc) == [("bob", "via sms")]

    sid = sms.response["sid"]  # as Twilio's callback names the message: the SID its REST answer gave
    status = pager.twilio_post("/twilio/status", {"MessageSid": sid, "MessageStatus": "delivered"})
    assert status.status_code == 200, status.text
    assert pager.page_log(inc) == [("bob", "sms", "sent", True, True, "sms")]


def test_voice_page_resolved_by_a_key_press(pager):
    inc, call = _paged_through_twilio(pager, "voice", "+14155550143")
    [action] = re.findall(r'<Gather [^>]*action="([^"]+)"', call.fields["Twiml"])
    action = action.replace("&amp;", "&")
    assert action.startswith(pager.base + "/twilio/voice?t=")
    pressed = pager.twilio_post(action.removeprefix(pager.base), {"Digits": "6", "CallSid": "CA" + "1" * 32})
    assert pressed.status_code == 200 and "<Say>" in pressed.text, pressed.text
    assert pager.incident(inc) == ("resolved", None, "bob")
    assert pager.answers(inc) == [("bob", "via voice")]
    assert pager.page_log(inc) == [("bob", "voice", "sent", True, False, "voice")]


def press(pager, post, action_id: str, user: str) -> requests.Response:
    """A block_actions payload for a button of the DM the Slack stand-in received, signed v0 as
    Slack signs (HMAC-SHA256 of "v0:<ts>:<body>" under the signing secret)."""
    [actions] = [b for b in post.fields["blocks"] if b["type"] == "actions"]
    [button] = [e for e in actions["elements"] if e["action_id"] == action_id]
    response_url = pager.standins.slack.base_url.removesuffix("/api/") + f"/actions/T0001/{uuid.uuid4().int}/x"
    payload = {"type": "block_actions", "team": {"id": "T0001"}, "user": {"id": user, "team_id": "T0001"},
               "actions": [{**button, "block_id": actions.get("block_id", "")}], "trigger_id": uuid.uuid4().hex,
               "container": {"type": "message", "channel_id": post.fields["channel"]}, "response_url": response_url}
    body = "payload=" + requests.utils.quote(json.dumps(payload), safe="")
    ts = str(int(time.time()))
    sig = "v0=" + hmac.new(SIGNING_SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return pager.http.post(pager.base + "/chat/slack/interactions", data=body, timeout=10, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig})


def test_slack_dm_acknowledged_by_its_button_and_the_message_replaced(pager):
    pager.conn.execute("SELECT ops.link_chat_identity('slack', 'T0001', 'U0BOB', 'bob', 'admin')")
    dm = pager.add_method("slack_dm", "U0BOB")["contactMethod"]
    assert dm["verified"] is True
    pager.rule(dm["id"], 0)
    inc = pager.page_bob(datetime.now().astimezone())
    assert pager.dispatcher.run_once() >= 1
    [post] = pager.standins.slack.wait_for(1)
    assert post.fields["channel"] == "U0BOB" and KEY in post.fields["text"]

    pressed = press(pager, post, "ack", "U0BOB")
    assert pressed.status_code == 200, pressed.text
    assert pager.incident(inc) == ("acknowledged", "bob", None)
    assert pager.answers(inc) == [("bob", "via slack_button")]
    assert pager.page_log(inc) == [("bob", "slack_dm", "sent", True, False, "slack_button")]

    assert pager.dispatcher.run_once() == 1, "the slack_reply"
    [_, reply] = pager.standins.slack.wait_for(2)
    assert reply.path.startswith("/actions/T0001/") and "Acknowledged by bob" in json.dumps(reply.fields)
    assert reply.response == {"ok": True}, "taken as a response_url reply, not refused as a Web API call"
    assert pager.conn.execute("SELECT status FROM ops.notification_outbox WHERE channel = 'slack_reply'"
                              ).fetchall() == [("sent",)]


def test_rules_at_0_and_5_minutes_acknowledged_at_minute_3_through_the_dispatcher(pager):
    """The dispatcher claims by the test's clock (p_now), minute by minute: the e-mail of the
    0-minute rule is sent, bob acknowledges at minute 3, the SMS of the 5-minute rule is cancelled
    and never reaches Twilio."""
    email = pager.add_method("email", "bob@mail.example.com")["contactMethod"]["id"]
    sms = pager.add_method("sms", "+14155550142")["contactMethod"]["id"]
    assert pager.dispatcher.run_once() == 2, "the two verification codes"
    [code_mail] = pager.standins.smtp.wait_for(1)
    pager.verify(email, re.search(r"code is ([0-9]{6})", code_mail.message.get_body(("plain",)).get_content()).group(1))
    pager.verify(sms, _twilio_code(pager, 1))
    pager.rule(email, 0)
    pager.rule(sms, 5)

    t0 = datetime.now().astimezone().replace(second=0, microsecond=0) - timedelta(minutes=10)
    clock = {"now": t0}
    pager.dispatcher.o.clock = lambda: clock["now"]
    inc = pager.page_bob(t0)
    assert pager.dispatcher.run_once() == 1, "minute 0: the e-mail only"
    assert len(pager.standins.smtp.wait_for(2)) == 2
    clock["now"] = t0 + timedelta(minutes=3)
    assert pager.dispatcher.run_once() == 0, "minute 3: the SMS is not due"
    pager.conn.execute("SELECT ops.ack_incident(%s, 'bob', NULL, %s)", (inc, clock["now"]))
    for minute in (5, 6, 30):
        clock["now"] = t0 + timedelta(minutes=minute)
        assert pager.dispatcher.run_once() == 0, f"minute {minute}: nothing more"

    rows = pager.conn.execute("SELECT kind, due_at - %s, status, sent_at - %s, cancelled_at - %s FROM ops.page_log "
                              "WHERE incident_id = %s ORDER BY due_at", (t0, t0, t0, inc)).fetchall()
    assert rows == [("email", timedelta(0), "sent", timedelta(0), None),
                    ("sms", timedelta(minutes=5), "cancelled", None, timedelta(minutes=3))]
    assert [c.path.rsplit("/", 1)[1] for c in pager.standins.twilio.received] == ["Messages.json"], "the code only"


def test_a_webhook_method_pages_signed_with_the_secret_shown_once(pager):
    url = pager.standins.hooks.url("/pager/bob?team=payments")
    # plain http to a loopback receiver is an admin's choice (docs/notifications.md): bob is one here
    pager.conn.execute("SELECT ops.grant_role('bob', 'ops_admin', 'ops-bot')")
    added = pager.add_method("webhook", url)
    secret, method = added["secret"], added["contactMethod"]
    assert method["verified"] is True
    assert secret not in pager.me("GET", "/ops/me/contact-methods").text, "shown once"
    pager.rule(method["id"], 0)
    inc = pager.page_bob(datetime.now().astimezone())
    assert pager.dispatcher.run_once() >= 1
    [got] = pager.standins.hooks.wait_for(1)
    # the receiver's check: the bytes and the HMAC the API's own verification uses (api/opsguard/auth.py)
    signed = auth.v1_message(got.headers["x-timestamp"], "POST", got.path, got.raw)
    assert got.headers["x-signature"] == "v1=" + auth._sign(secret.encode(), signed)
    assert got.headers["x-signature"] != "v1=" + auth._sign(SECRET.encode(), signed), "not the API's own key"
    assert got.path == "/pager/bob?team=payments" and got.headers["x-dedup-key"]
    assert got.body["event"] == "incident.paged" and got.body["principal"] == "bob"
    assert got.body["incident"]["id"] == inc and got.body["incident"]["key"] == KEY
    assert secret not in got.raw.decode() and secret not in json.dumps(got.headers)
    assert pager.page_log(inc) == [("bob", "webhook", "sent", True, False, None)]


DOC = Path(__file__).resolve().parents[1] / "docs" / "notifications.md"


def doc_dispatch_lines() -> dict[str, str]:
    """The variables of docs/notifications.md's `... make dispatch` lines (Senders), as written."""
    lines = re.findall(r"```bash\n([A-Z_]+=.*make dispatch)\n```", DOC.read_text())
    assert len(lines) == 3, lines  # e-mail, Twilio, Slack
    words = [w for line in lines for w in shlex.split(line)]
    # a secret the doc leaves out ('…') is one of the reader's own: any ASCII one here
    return {k: f"doc-{k.lower()}" if v == "…" else v for k, v in (w.split("=", 1) for w in words if "=" in w)}


@pytest.mark.slow
def test_the_docs_make_dispatch_lines_page_through_the_real_dispatcher(db_url, conn, standins_certdir, tmp_path):
    """`make dispatch` as a process, with the variables exactly as the doc writes them (the stand-ins
    accept those credentials) plus the *_API_BASE / CA file the doc names for stand-ins: one page by
    e-mail (SMTP login over STARTTLS), SMS and Slack DM each reaches its stand-in."""
    env = doc_dispatch_lines()
    assert set(env) <= set(SENDER_VARS), "every variable the doc sets is one the dispatcher reads"
    smtp = SmtpStandin(standins_certdir, login=(env["OPS_SMTP_USER"], env["OPS_SMTP_PASSWORD"])).start()
    twilio = TwilioStandin(env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"]).start()
    slack = SlackApiStandin(env["SLACK_BOT_TOKEN"]).start()
    bob_paged_on_route(conn, smtp.port)
    for kind, address in (("email", "bob@mail.example.com"), ("sms", "+14155550142"), ("slack_dm", "U0BOB")):
        method = conn.execute("INSERT INTO ops.contact_methods (principal, kind, address, created_by, verified_at) "
                              "VALUES ('bob', %s, %s, 'bob', now()) RETURNING id", (kind, address)).fetchone()[0]
        conn.execute("SELECT ops.add_notification_rule('bob', %s, 0, 'bob')", (method,))
    log = (tmp_path / "dispatch.log").open("wb")
    proc = subprocess.Popen(["make", "--no-print-directory", "dispatch"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env={
                                **os.environ, **env, "DATABASE_URL": db_url, "OPS_SMTP_CA_FILE": smtp.ca_file,
                                "OPS_TWILIO_API_BASE": twilio.base_url, "OPS_SLACK_API_BASE": slack.base_url})
    try:
        page_bob(conn, datetime.now().astimezone())
        [mail], [sms], [dm] = smtp.wait_for(1, 30), twilio.wait_for(1, 30), slack.wait_for(1, 30)
        assert proc.poll() is None, (tmp_path / "dispatch.log").read_text()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
        for standin in (smtp, twilio, slack):
            standin.stop()
    assert mail.tls and mail.message["To"] == "bob@mail.example.com" and KEY in mail.message["Subject"]
    assert sms.fields["From"] == env["TWILIO_FROM"] and sms.fields["To"] == "+14155550142"
    assert dm.fields["channel"] == "U0BOB" and KEY in dm.fields["text"]


def test_an_smtp_login_smtplib_cannot_send_fails_the_page_not_the_dispatcher(db_url, conn, standins_certdir):
    """smtplib sends a login as ASCII only: a password with other characters used to raise out of
    the dispatcher's batch and stop the process; it is one failed e-mail, retried, like any other."""
    smtp = SmtpStandin(standins_certdir, login=("opsguard@example.com", "s3cret")).start()
    try:
        bob_paged_on_route(conn, smtp.port)
        method = conn.execute("INSERT INTO ops.contact_methods (principal, kind, address, created_by, verified_at) "
                              "VALUES ('bob', 'email', 'bob@mail.example.com', 'bob', now()) RETURNING id").fetchone()[0]
        conn.execute("SELECT ops.add_notification_rule('bob', %s, 0, 'bob')", (method,))
        inc = page_bob(conn, datetime.now().astimezone())
        for password, outcome in (("pässwörd", ("pending", "could not send: UnicodeEncodeError")), ("s3cret", None)):
            d = Dispatcher(Options(dsn=db_url, timeout_s=5.0, worker="d1", senders={
                "OPS_SMTP_USER": "opsguard@example.com", "OPS_SMTP_PASSWORD": password, "OPS_SMTP_CA_FILE": smtp.ca_file}))
            d.connect()
            try:
                conn.execute("UPDATE ops.notification_outbox SET next_attempt_at = now() WHERE incident_id = %s "
                             "AND status = 'pending'", (inc,))
                assert d.run_once() == 1
            finally:
                d.close()
            if outcome:
                assert conn.execute("SELECT status, last_error FROM ops.notification_outbox WHERE incident_id = %s "
                                    "AND channel = 'email'", (inc,)).fetchone() == outcome
                assert smtp.received == []
        [mail] = smtp.wait_for(1)
        assert mail.tls and mail.recipients == ["bob@mail.example.com"], "sent once the login is one smtplib can send"
    finally:
        smtp.stop()


def test_an_outsider_cannot_answer_bobs_sms_page(pager):
    """A reply from another number with bob's code, a signature made for another URL, a NUL byte,
    a huge body: refused, nothing changes; bob's own reply replayed byte for byte acts once."""
    pager.conn.execute("SELECT ops.add_principal('mallory', 'human', ARRAY['ops_responder'], 'admin')")
    pager.conn.execute("INSERT INTO ops.contact_methods (principal, kind, address, created_by, verified_at) "
                       "VALUES ('mallory', 'sms', '+14155550666', 'mallory', now())")
    inc, sms = _paged_through_twilio(pager, "sms", "+14155550142")
    code = re.search(r"Reply 4 ([0-9]{6})", sms.fields["Body"]).group(1)
    before = checksum(pager.conn)
    other = pager.twilio_post("/twilio/sms", {"From": "+14155550666", "Body": f"4 {code}"})
    assert other.status_code == 200 and "<Message>no such page.</Message>" in other.text, "the code is bound to bob's number"
    wrong_url = RequestValidator(pager.standins.TWILIO_TOKEN).compute_signature(
        pager.base + "/twilio/status", {"From": "+14155550142", "Body": f"4 {code}"})
    assert pager.http.post(pager.base + "/twilio/sms", data={"From": "+14155550142", "Body": f"4 {code}"}, timeout=10,
                           headers={"X-Twilio-Signature": wrong_url}).status_code == 403
    nul = pager.twilio_post("/twilio/sms", {"From": "+14155550142", "Body": f"4 {code}\x00"})
    assert nul.status_code == 400 and nul.json()["error"] == "invalid_input", nul.text
    huge = pager.twilio_post("/twilio/sms", {"From": "+14155550142", "Body": "4 " + "9" * 200_000})
    assert huge.status_code == 413 and huge.json()["error"] == "payload_too_large"
    after = checksum(pager.conn)
    # the one change: the reply from the other number is counted as a miss against that number
    assert after.pop("sms_reply_misses") != before.pop("sms_reply_misses")
    assert pager.conn.execute("SELECT count(*) FROM ops.sms_reply_misses").fetchone()[0] == 1
    assert after == before and pager.incident(inc)[0] == "open"

    form = {"From": "+14155550142", "Body": f"4 {code}"}
    signature = RequestValidator(pager.standins.TWILIO_TOKEN).compute_signature(pager.base + "/twilio/sms", form)
    first, again = (pager.http.post(pager.base + "/twilio/sms", data=form, timeout=10,
                                    headers={"X-Twilio-Signature": signature}) for _ in range(2))
    assert first.status_code == 200 and "Acknowledged by bob" in first.text
    assert again.status_code == 200 and "already answered" in again.text, again.text
    assert pager.answers(inc) == [("bob", "via sms")]


def test_only_bob_answers_the_buttons_of_bobs_slack_dm(pager):
    pager.conn.execute("SELECT ops.add_principal('mallory', 'human', ARRAY['ops_responder'], 'admin')")
    pager.conn.execute("SELECT ops.link_chat_identity('slack', 'T0001', 'U0MAL', 'mallory', 'admin')")
    pager.conn.execute("SELECT ops.link_chat_identity('slack', 'T0001', 'U0BOB', 'bob', 'admin')")
    dm = pager.add_method("slack_dm", "U0BOB")["contactMethod"]
    pager.rule(dm["id"], 0)
    inc = pager.page_bob(datetime.now().astimezone())
    assert pager.dispatcher.run_once() >= 1
    [post] = pager.standins.slack.wait_for(1)
    before = checksum(pager.conn)
    for user, error in (("U0MAL", "forbidden"), ("U0NOBODY", "unlinked_user")):
        answer = press(pager, post, "resolve", user)
        assert answer.status_code == 200 and (answer.json()["ok"], answer.json()["error"]) == (False, error)
        assert answer.json()["response_type"] == "ephemeral"
    unsigned = pager.http.post(pager.base + "/chat/slack/interactions", data={"payload": "{}"}, timeout=10)
    assert unsigned.status_code == 401
    assert checksum(pager.conn) == before and pager.incident(inc)[0] == "open"
    assert press(pager, post, "resolve", "U0BOB").json()["ok"] is True
    assert pager.incident(inc) == ("resolved", None, "bob")


@pytest.mark.slow
def test_make_run_with_nothing_configured_pages_and_takes_the_answer(started, tmp_path):  # noqa: F811 (the fixture)
    """`make run` with no SMTP, Twilio or Slack configured: a page reaches the Twilio stand-in
    (its log says who by what) and the reply `4 <code>`, signed as Twilio signs with the stand-in's
    token over the public URL, acknowledges through make run's own API."""
    proc, ports = started(["make", "--no-print-directory", "run"])
    [url] = re.findall(r'^export DATABASE_URL="(.*)"$', (tmp_path / "run.log").read_text(), flags=re.M)
    standins_log = ROOT / ".local" / "standins.log"
    seen = standins_log.stat().st_size
    who, route = f"bob{time.time_ns()}", f"GET /run-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT ops.add_principal(%s, 'human', ARRAY['ops_responder'], 'admin')", (who,))
        method = conn.execute("INSERT INTO ops.contact_methods (principal, kind, address, created_by, verified_at) "
                              "VALUES (%s, 'sms', '+14155550188', %s, now()) RETURNING id", (who, who)).fetchone()[0]
        conn.execute("SELECT ops.add_notification_rule(%s, %s, 0, %s)", (who, method, who))
        conn.execute("SELECT ops.create_policy(%s, 'admin')", (who,))
        conn.execute("SELECT ops.add_policy_step(%s, 1, %s, 'admin')", (who, json.dumps([{"principal": who}])))
        conn.execute("SELECT ops.set_route_policy(%s, %s, 'admin')", (route, who))
        now = datetime.now().astimezone()
        inc = conn.execute("SELECT id FROM ops.trigger_incident(%s, 'critical', %s, 'Run demo', 'ops-bot', %s)",
                           (route + "::demo", route, now - timedelta(hours=1))).fetchone()[0]
        conn.execute("SELECT ops.escalation_tick(%s)", (now,))
        deadline = time.monotonic() + 30
        while (sent := conn.execute("SELECT status, last_error FROM ops.notification_outbox WHERE incident_id = %s "
                                    "AND channel = 'sms'", (inc,)).fetchone())[0] != "sent":
            assert time.monotonic() < deadline, sent
            time.sleep(0.1)
        assert "sms to +…88" in standins_log.read_text()[seen:]
        base, code = conn.execute("SELECT ops.setting('app_base_url') #>> '{}', short_code FROM ops.page_tokens "
                                  "WHERE incident_id = %s AND channel = 'sms'", (inc,)).fetchone()
        form = {"From": "+14155550188", "Body": f"4 {code}"}
        signature = RequestValidator(Standins.TWILIO_TOKEN).compute_signature(f"{base}/twilio/sms", form)
        reply = requests.post(f"http://127.0.0.1:{ports['PORT']}/twilio/sms", data=form, timeout=10,
                              headers={"X-Twilio-Signature": signature})
        assert reply.status_code == 200 and f"Acknowledged by {who}" in reply.text, reply.text
        assert conn.execute("SELECT status, acknowledged_by FROM ops.incidents WHERE id = %s", (inc,)).fetchone() == (
            "acknowledged", who)
