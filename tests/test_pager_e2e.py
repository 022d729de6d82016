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
import re
import time
import uuid
from datetime import datetime, timedelta

import pytest
import requests
from conftest import SECRET
from opsguard import auth
from test_api_bad_input import checksum
from test_api_slack import SIGNING_SECRET
from test_e2e_gunicorn import serving
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
        """An incident on a route whose policy pages bob, escalated to level 1 by the tick at `at`."""
        inc = self.conn.execute("SELECT id FROM ops.trigger_incident(%s, 'critical', %s, 'Checkout is down', "
                                "'ops-bot', %s)", (KEY, ROUTE, at - timedelta(hours=1))).fetchone()[0]
        paged = self.conn.execute("SELECT ops.escalation_tick(%s) -> 'escalationsCount'", (at,)).fetchone()[0]
        assert paged == 1
        return str(inc)

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


@pytest.fixture
def pager(db_url, conn, standins, page_dispatcher):
    """bob (ops_responder, his own signing key), a policy paging him on ROUTE, SMTP pointed at the
    stand-in, and the API under gunicorn with Twilio's token and Slack's signing secret."""
    conn.execute("SELECT ops.add_principal('bob', 'human', ARRAY['ops_responder'], 'admin')")
    conn.execute("SELECT ops.create_policy('checkout', 'admin')")
    conn.execute("""SELECT ops.add_policy_step('checkout', 1, '[{"principal": "bob"}]', 'admin')""")
    conn.execute("SELECT ops.set_route_policy(%s, 'checkout', 'admin')", (ROUTE,))
    conn.execute("SELECT ops.set_setting('smtp_host', '127.0.0.1', 'admin'), ops.set_setting('smtp_port', %s, 'admin'), "
                 "ops.set_setting('smtp_from', 'pager@ops.example.com', 'admin')", (str(standins.smtp.port),))
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
