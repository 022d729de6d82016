"""The senders with the providers' real clients against the stand-ins (scripts/standins): e-mail
over SMTP with STARTTLS (aiosmtpd), SMS and voice through the `twilio` client, Slack DMs through
slack_sdk, webhooks signed v1. Pages are queued as the tick queues them: one outbox row per
notification rule, dedup key sha256(unique_hash || ':rule:' || rule id), due at escalated_at +
delay_min, no address in the row."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from pathlib import Path

import psycopg
import pytest
from conftest import sign_v1
from opsguard.access_log import redact
from opsguard.dispatcher import Dispatcher, Options
from test_run_stop import ROOT, datadir, started  # noqa: F401 (fixtures: make run with its own ports)

APP = "https://ops.example.com"
DOC = Path(__file__).resolve().parents[1] / "docs" / "notifications.md"


def doc_verifier():
    """The receiver's check as docs/notifications.md (Senders, Webhooks) shows it."""
    text = DOC.read_text()
    section = text[text.index("### Webhooks\n"):text.index("### Trying it with the stand-ins")]
    code = section[section.index("```python\n") + len("```python\n"):section.index("```\n", section.index("```python"))]
    namespace: dict = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 (the doc's own example)
    return namespace["verify"]

PAGE_SQL = """
WITH r AS (
    INSERT INTO ops.notification_rules (principal, contact_method, delay_min, created_by)
    VALUES (%(principal)s, %(method)s, %(delay)s, %(principal)s)
    RETURNING id, contact_method, principal
)
INSERT INTO ops.notification_outbox (dedup_key, event_id, incident_id, route, channel, payload, next_attempt_at,
                                     principal, contact_method)
SELECT encode(sha256(convert_to(e.unique_hash || ':rule:' || r.id, 'UTF8')), 'hex'), e.id, e.incident_id, e.route,
       (SELECT kind FROM ops.contact_methods WHERE id = r.contact_method), o.payload,
       e.escalated_at + make_interval(mins => %(delay)s), r.principal, r.contact_method
FROM r, ops.escalation_events AS e
INNER JOIN ops.notification_outbox AS o ON o.event_id = e.id AND o.contact_method IS NULL
WHERE e.incident_id = %(incident)s
RETURNING id
"""


def incident(conn, escalated_min_ago: int = 0, key: str = "GET /checkout::slo_violation") -> str:
    """An incident escalated to level 1 `escalated_min_ago` minutes ago (its channel post has no webhook)."""
    conn.execute("SELECT ops.set_setting('app_base_url', %s, 'test')", (APP,))
    inc = conn.execute("SELECT (ops.trigger_incident(%s, 'critical', 'GET /checkout', 'Checkout is down', 'ops-bot', "
                       "now() - interval '1 hour')).id", (key,)).fetchone()[0]
    conn.execute("SELECT ops.escalation_tick(now() - make_interval(mins => %s))", (escalated_min_ago,))
    return inc


def method(conn, kind: str, address: str, principal: str = "bob", secret: str | None = None, verified: bool = True) -> str:
    if not conn.execute("SELECT 1 FROM ops.principals WHERE name = %s", (principal,)).fetchone():
        conn.execute("SELECT ops.add_principal(%s, 'human', ARRAY['ops_responder'], 'test')", (principal,))
    return conn.execute("INSERT INTO ops.contact_methods (principal, kind, address, secret, created_by, verified_at) "
                        "VALUES (%s, %s, %s, %s, %s, CASE WHEN %s THEN now() END) RETURNING id",
                        (principal, kind, address, secret, principal, verified)).fetchone()[0]


def page(conn, inc: str, method_id: str, delay: int = 0, principal: str = "bob") -> int:
    params = {"principal": principal, "method": method_id, "delay": delay, "incident": inc}
    return conn.execute(PAGE_SQL, params).fetchone()[0]


def row(conn, outbox_id: int) -> dict:
    cur = conn.execute("SELECT status, provider_id, sent_at, cancelled_at, last_error, attempts "
                       "FROM ops.notification_outbox WHERE id = %s", (outbox_id,))
    return dict(zip([c.name for c in cur.description], cur.fetchone(), strict=True))


def smtp_settings(conn, standins) -> None:
    conn.execute("SELECT ops.set_setting('smtp_host', '127.0.0.1', 'test'), ops.set_setting('smtp_port', %s, 'test'), "
                 "ops.set_setting('smtp_from', 'pager@ops.example.com', 'test')", (str(standins.smtp.port),))


def token_row(conn, token: str) -> tuple:
    return conn.execute("SELECT channel, principal, incident_id, used_at FROM ops.page_tokens WHERE token_hash = %s",
                        (hashlib.sha256(token.encode()).hexdigest(),)).fetchone()


def test_email_page_arrives_over_starttls_with_both_parts_and_the_link(conn, standins, page_dispatcher):
    inc = incident(conn)
    smtp_settings(conn, standins)
    out = page(conn, inc, method(conn, "email", "bob@mail.example.com"))
    assert page_dispatcher.run_once() == 1
    [mail] = standins.smtp.wait_for(1)
    assert mail.tls, "the message was sent after STARTTLS"
    msg = mail.message
    assert mail.recipients == ["bob@mail.example.com"] and msg["To"] == "bob@mail.example.com"
    assert msg["From"] == "pager@ops.example.com"
    assert msg["Subject"] == "[CRITICAL] GET /checkout::slo_violation escalated to level 1: Checkout is down"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    [link] = re.findall(r"https://ops\.example\.com/p/[A-Za-z0-9_-]{43}", text)
    assert f'<a href="{link}">' in html and "Route: GET /checkout" in text
    assert token_row(conn, link.rsplit("/", 1)[1]) == ("link", "bob", inc, None)
    state = row(conn, out)
    assert state["status"] == "sent" and state["provider_id"] == msg["Message-ID"]
    attempts = conn.execute("SELECT outcome FROM ops.notification_attempts WHERE outbox_id = %s", (out,)).fetchall()
    assert attempts == [("sent",)]


def test_a_line_break_in_an_incident_key_starts_no_header(conn, standins, page_dispatcher):
    inc = incident(conn, key="GET /x::y\r\nBcc: everyone@example.com")
    smtp_settings(conn, standins)
    out = page(conn, inc, method(conn, "email", "bob@mail.example.com"))
    assert page_dispatcher.run_once() == 1
    [mail] = standins.smtp.wait_for(1)
    assert mail.recipients == ["bob@mail.example.com"] and mail.message["Bcc"] is None
    assert mail.message["Subject"] == "[CRITICAL] GET /x::y Bcc: everyone@example.com escalated to level 1: Checkout is down"
    assert row(conn, out)["status"] == "sent"


def test_one_smtp_connection_carries_a_whole_batch(conn, standins, page_dispatcher):
    inc = incident(conn)
    smtp_settings(conn, standins)
    for i in range(5):
        page(conn, inc, method(conn, "email", f"p{i}@mail.example.com", principal=f"p{i}"), principal=f"p{i}")
    assert page_dispatcher.run_once() == 5
    mails = standins.smtp.wait_for(5)
    assert sorted(m.message["To"] for m in mails) == [f"p{i}@mail.example.com" for i in range(5)]
    assert len({m.peer for m in mails}) == 1, "five e-mails, one SMTP connection"
    assert conn.execute("SELECT count(*) FROM ops.notification_outbox WHERE status = 'sent'").fetchone()[0] == 5


def test_sms_and_a_call_go_through_the_twilio_client_with_basic_auth(conn, standins, page_dispatcher):
    inc = incident(conn)
    sms = page(conn, inc, method(conn, "sms", "+14155550142"))
    call = page(conn, inc, method(conn, "voice", "+14155550143"))
    assert page_dispatcher.run_once() == 2
    got = {c.path.rsplit("/", 1)[1]: c for c in standins.twilio.wait_for(2)}
    assert set(got) == {"Messages.json", "Calls.json"}
    message, voice = got["Messages.json"], got["Calls.json"]
    assert message.headers["authorization"] == voice.headers["authorization"]  # checked by the stand-in: 201, not 401
    assert (message.fields["To"], message.fields["From"]) == ("+14155550142", "+15005550006")
    body = message.fields["Body"]
    code = re.search(r"Reply 4 ([0-9]{6}) to acknowledge, 6 \1 to resolve\.", body).group(1)
    assert conn.execute("SELECT short_code FROM ops.page_tokens WHERE channel = 'sms'").fetchone()[0] == code
    assert re.search(r"\nhttps://ops\.example\.com/p/[A-Za-z0-9_-]{43}$", body)
    assert message.fields["StatusCallback"] == f"{APP}/twilio/status"
    assert voice.fields["To"] == "+14155550143"
    assert re.search(r'<Gather numDigits="1" method="POST" action="https://ops\.example\.com/twilio/voice\?t=[A-Za-z0-9_-]{43}">'
                     r"<Say>opsguard page\. \[CRITICAL\] .*Press 4 to acknowledge, 6 to resolve\.</Say></Gather>",
                     voice.fields["Twiml"])
    # the SIDs Twilio answered are kept: its status callbacks name them
    assert row(conn, sms)["provider_id"].startswith("SM") and row(conn, call)["provider_id"].startswith("CA")
    assert {row(conn, sms)["status"], row(conn, call)["status"]} == {"sent"}


def test_a_refused_twilio_login_is_retried_and_its_error_names_no_number(conn, standins, db_url, caplog):
    inc = incident(conn)
    out = page(conn, inc, method(conn, "sms", "+14155550142"))
    d = Dispatcher(Options(dsn=db_url, timeout_s=5.0, worker="d1", senders={**standins.env(), "TWILIO_AUTH_TOKEN": "wrong"}))
    d.connect()
    try:
        with caplog.at_level(logging.DEBUG):
            assert d.run_once() == 1
    finally:
        d.close()
    state = row(conn, out)
    assert state["status"] == "pending" and state["last_error"] == "Twilio HTTP 401 error 20003"
    assert "4155550142" not in caplog.text and "wrong" not in caplog.text
    assert [c.answered for c in standins.twilio.received] == [401]


def test_slack_dm_goes_through_slack_sdk_with_the_buttons(conn, standins, page_dispatcher):
    inc = incident(conn)
    out = page(conn, inc, method(conn, "slack_dm", "U024BE7LH"))
    assert page_dispatcher.run_once() == 1
    [post] = standins.slack.wait_for(1)
    assert post.path == "/api/chat.postMessage" and post.headers["authorization"] == "Bearer xoxb-standin"
    assert post.fields["channel"] == "U024BE7LH"
    [actions] = [b for b in post.fields["blocks"] if b["type"] == "actions"]
    buttons = {b["action_id"]: b["value"] for b in actions["elements"]}
    assert set(buttons) == {"ack", "resolve"}
    assert {token_row(conn, t)[0] for t in buttons.values()} == {"slack_button"}
    assert row(conn, out)["provider_id"] == json.loads(json.dumps(post.fields)).get("ts", row(conn, out)["provider_id"])
    assert re.fullmatch(r"[0-9]+\.[0-9]{6}", row(conn, out)["provider_id"])


def test_webhook_page_is_signed_v1_with_the_methods_secret(conn, standins, page_dispatcher):
    inc = incident(conn)
    url = standins.hooks.url("/pager/bob?team=payments")
    out = page(conn, inc, method(conn, "webhook", url, secret="whsec-bob-1"))
    assert page_dispatcher.run_once() == 1
    [got] = standins.hooks.wait_for(1)
    # the receiver's check, written out apart from the sender's code (tests/conftest.py)
    expected = sign_v1("whsec-bob-1", got.headers["x-timestamp"], "POST", "/pager/bob?team=payments", got.raw)
    assert got.headers["x-signature"] == expected
    verify = doc_verifier()
    assert verify("whsec-bob-1", got.headers["x-timestamp"], got.headers["x-signature"], got.path, got.raw)
    assert not verify("whsec-other", got.headers["x-timestamp"], got.headers["x-signature"], got.path, got.raw)
    assert not verify("whsec-bob-1", got.headers["x-timestamp"], got.headers["x-signature"], got.path, got.raw + b" ")
    assert abs(int(got.headers["x-timestamp"]) - time.time()) < 300
    assert got.body["event"] == "incident.paged" and got.body["principal"] == "bob" and got.body["level"] == 1
    assert got.body["incident"]["id"] == str(inc) and got.body["incident"]["summary"] == "Checkout is down"
    assert "whsec-bob-1" not in json.dumps(got.body) and "whsec-bob-1" not in json.dumps(got.headers)
    assert row(conn, out)["status"] == "sent"


def test_a_page_acknowledged_after_the_claim_is_never_sent(conn, standins, page_dispatcher):
    inc = incident(conn)
    smtp_settings(conn, standins)
    out = page(conn, inc, method(conn, "email", "bob@mail.example.com"))
    claim_started = time.monotonic()
    claimed = page_dispatcher.claim()
    assert [c.id for c in claimed] == [out]
    conn.execute("SELECT ops.ack_incident(%s, 'bob')", (inc,))  # between the claim and the send
    summary = page_dispatcher.finish(page_dispatcher.deliver(claimed, claim_started))
    assert summary["cancelled"] == 1 and summary["sent"] == 0
    time.sleep(0.2)  # a message that was sent would be here by now
    assert standins.smtp.received == []
    state = row(conn, out)
    assert state["status"] == "cancelled" and state["sent_at"] is None and state["cancelled_at"] is not None


def test_rules_at_0_and_5_minutes_and_an_ack_at_minute_3(conn, standins, page_dispatcher):
    """Escalated 3 minutes ago: the 0-minute rule's e-mail is sent, the incident is acknowledged
    now (minute 3), and the 5-minute rule's SMS is cancelled when it falls due, never sent."""
    inc = incident(conn, escalated_min_ago=3)
    smtp_settings(conn, standins)
    first = page(conn, inc, method(conn, "email", "bob@mail.example.com"), delay=0)
    second = page(conn, inc, method(conn, "sms", "+14155550142"), delay=5)
    assert page_dispatcher.run_once() == 1
    assert len(standins.smtp.wait_for(1)) == 1 and row(conn, first)["status"] == "sent"
    conn.execute("SELECT ops.ack_incident(%s, 'bob')", (inc,))
    assert page_dispatcher.run_once() == 0
    # minute 5, by the clock the claim is given
    assert conn.execute("SELECT count(*) FROM ops.claim_notifications('d2', 100, now() + interval '2 minutes 1 second')"
                        ).fetchone()[0] == 0
    assert row(conn, second)["status"] == "cancelled" and row(conn, second)["sent_at"] is None
    assert standins.twilio.received == []


def test_a_verification_code_is_mailed_and_only_its_hash_kept(conn, standins, page_dispatcher):
    smtp_settings(conn, standins)
    new = method(conn, "email", "bob.new@mail.example.com", verified=False)
    conn.execute("INSERT INTO ops.notification_outbox (dedup_key, channel, payload, principal, contact_method) "
                 "VALUES ('verify:' || %s || ':1', 'email', '{\"type\": \"verify\"}', 'bob', %s)", (new, new))
    assert page_dispatcher.run_once() == 1
    [mail] = standins.smtp.wait_for(1)
    code = re.search(r"code is ([0-9]{6})\.", mail.message.get_body(("plain",)).get_content()).group(1)
    assert conn.execute("SELECT code_hash FROM ops.contact_methods WHERE id = %s", (new,)).fetchone()[0] == \
        hashlib.sha256(code.encode()).hexdigest()


def test_the_dispatcher_logs_no_address_and_no_secret(conn, standins, page_dispatcher, caplog):
    inc = incident(conn)
    smtp_settings(conn, standins)
    page(conn, inc, method(conn, "email", "bob@mail.example.com"))
    page(conn, inc, method(conn, "sms", "+14155550142"))
    page(conn, inc, method(conn, "webhook", standins.hooks.url("/pager/secret-path"), secret="whsec-bob-2"))
    with caplog.at_level(logging.INFO):  # the level the dispatcher logs at
        assert page_dispatcher.run_once() == 3
    # the dispatcher's side: its own log and its clients' (the stand-ins' servers log for themselves)
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("mail.log", "standins")))
    assert "batch of 3" in ours
    for secret in ("bob@mail.example.com", "4155550142", "secret-path", "whsec-bob-2", "standin-auth-token", "xoxb-standin"):
        assert secret not in ours


@pytest.mark.parametrize("kind", ["sms", "slack_dm"])
def test_a_sender_without_credentials_fails_clearly_and_retries(conn, standins, db_url, kind):
    inc = incident(conn)
    out = page(conn, inc, method(conn, kind, "+14155550142" if kind == "sms" else "U024BE7LH"))
    d = Dispatcher(Options(dsn=db_url, timeout_s=5.0, worker="d1"))
    d.connect()
    try:
        assert d.run_once() == 1
    finally:
        d.close()
    state = row(conn, out)
    assert state["status"] == "pending" and "not configured" in state["last_error"]


def test_email_pages_wait_while_no_smtp_server_is_set(conn, standins, page_dispatcher):
    inc = incident(conn)
    out = page(conn, inc, method(conn, "email", "bob@mail.example.com"))
    assert page_dispatcher.run_once() == 0
    assert row(conn, out)["status"] == "pending" and row(conn, out)["attempts"] == 0
    smtp_settings(conn, standins)
    assert page_dispatcher.run_once() == 1 and len(standins.smtp.wait_for(1)) == 1


def test_a_slack_reply_is_posted_to_its_response_url_as_queued(conn, standins, page_dispatcher):
    inc = incident(conn)
    url = standins.hooks.url("/actions/T0/1234/abcd")
    reply = {"replace_original": True, "text": "bob acknowledged GET /checkout::slo_violation"}
    conn.execute("INSERT INTO ops.notification_outbox (dedup_key, incident_id, channel, payload, webhook_url) "
                 "VALUES ('reply:1', %s, 'slack_reply', %s, %s)", (inc, json.dumps(reply), url))
    assert page_dispatcher.run_once() == 1
    [got] = standins.hooks.wait_for(1)
    assert got.path == "/actions/T0/1234/abcd" and got.body == reply


@pytest.mark.slow
def test_make_run_delivers_pages_to_its_stand_ins_and_says_so(started, tmp_path):  # noqa: F811 (the fixture)
    """With nothing configured, make run starts the stand-ins, points the dispatcher at them and
    prints where pages go; the stand-ins' log then has one line per page, addresses shortened."""
    proc, ports = started(["make", "--no-print-directory", "run"])
    log = (tmp_path / "run.log").read_text()
    [line] = [x for x in log.splitlines() if x.startswith("pages:")]
    assert "stand-in SMTP" in line and "stand-in Twilio" in line and "stand-in Slack Web API" in line
    [url] = re.findall(r'^export DATABASE_URL="(.*)"$', log, flags=re.M)
    standins_log = ROOT / ".local" / "standins.log"
    seen = standins_log.stat().st_size
    with psycopg.connect(url, autocommit=True) as conn:
        inc = incident(conn, key=f"GET /run-{time.time_ns()}::slo_violation")
        for kind, address in (("email", "bob.run@mail.example.com"), ("sms", "+14155550177"), ("slack_dm", "U0RUNBOB")):
            page(conn, inc, method(conn, kind, address, principal="bob-run"), principal="bob-run")
        conn.execute("NOTIFY ops_outbox")
        deadline = time.monotonic() + 30
        while conn.execute("SELECT count(*) FROM ops.notification_outbox WHERE status = 'sent' AND incident_id = %s",
                           (inc,)).fetchone()[0] < 3:
            assert time.monotonic() < deadline, conn.execute(
                "SELECT channel, status, last_error FROM ops.notification_outbox WHERE incident_id = %s", (inc,)).fetchall()
            time.sleep(0.1)
    new = standins_log.read_text()[seen:]
    assert "email to b…@mail.example.com" in new and "sms to +…77" in new and "slack_dm to U…OB" in new
    assert "bob.run@" not in new and "4155550177" not in new


def test_answer_tokens_and_slack_tokens_never_reach_a_log():
    """The access log writes request lines (GET /p/<token>, POST /twilio/voice?t=<token>) and a
    client library may log a token: the one redaction every opsguard process installs hides them."""
    token = "evjSt521RPquo5wTuDX41a11Tlnpj0Fsi5UaPNDheeQ"
    assert redact(f'127.0.0.1 "GET /p/{token} HTTP/1.1" 200') == '127.0.0.1 "GET /p/[redacted] HTTP/1.1" 200'
    assert redact(f'"POST /twilio/voice?t={token}&Digits=4"') == '"POST /twilio/voice?t=[redacted]&Digits=4"'
    assert redact("Authorization failed for xoxb-1234-5678-abcDEF") == "Authorization failed for xoxb-[redacted]"
