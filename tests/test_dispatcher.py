"""The dispatcher against a local stand-in for Slack (scripts/fake_slack.py) that records
what it receives and can fail, hang, rate-limit or refuse connections."""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_slack import FakeSlack
from opsguard.dispatcher import Dispatcher, Options

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def slack():
    fake = FakeSlack().start()
    yield fake
    fake.stop()


def queue(conn, n: int = 1, prefix: str = "GET /d") -> list[str]:
    """n escalations, one message each; their dedup keys in queue order."""
    conn.execute("SELECT ops.trigger_incident(%s || g || '::slo_violation', 'critical', NULL, NULL, 'ops-bot', "
                 "now() - interval '1 hour') FROM generate_series(1, %s) AS g", (prefix, n))
    conn.execute("SELECT ops.escalation_tick(now())")
    return [r[0] for r in conn.execute("SELECT dedup_key FROM ops.notification_outbox ORDER BY id")]


def setting(conn, key: str, value: str) -> None:
    conn.execute("SELECT ops.set_setting(%s, %s, 'test')", (key, value))


def outbox(conn) -> list[tuple]:
    return conn.execute("SELECT status, attempts, last_error FROM ops.notification_outbox ORDER BY id").fetchall()


def drain(d: Dispatcher, conn, until: str, timeout: float = 10.0) -> None:
    """Run batches until every message has the status `until` (retries are due after ms)."""
    deadline = time.monotonic() + timeout
    while conn.execute("SELECT bool_and(status = %s) FROM ops.notification_outbox", (until,)).fetchone()[0] is not True:
        assert time.monotonic() < deadline, outbox(conn)
        if d.run_once() == 0:
            time.sleep(0.02)


def test_delivers_one_slack_message_with_its_dedup_key(conn, slack, dispatcher):
    [key] = queue(conn)
    setting(conn, "slack_webhook_url", slack.url("/services/T1/B1/secret"))
    assert dispatcher.run_once() == 1
    [msg] = slack.messages()
    assert msg.path == "/services/T1/B1/secret"
    assert msg.dedup_key == key == msg.body["dedup_key"]
    assert msg.body["text"] == "[CRITICAL] GET /d1::slo_violation escalated to level 1"
    assert [b["type"] for b in msg.body["blocks"]] == ["section", "context", "actions"]
    # the channel post's buttons name the incident: whoever presses acts as their linked principal
    incident = conn.execute("SELECT incident_id::text FROM ops.notification_outbox").fetchone()[0]
    assert [(e["action_id"], e["text"]["text"], e["value"]) for e in msg.body["blocks"][2]["elements"]] == [
        ("ack", "Acknowledge", incident), ("resolve", "Resolve", incident)]
    assert outbox(conn) == [("sent", 1, None)]
    assert conn.execute("SELECT sent, pending, slack_send_failures FROM ops.notification_stats").fetchone() == (1, 0, 0)


def test_nothing_is_sent_without_a_webhook_and_nothing_is_lost(conn, slack, dispatcher):
    queue(conn)
    assert dispatcher.run_once() == 0
    assert outbox(conn) == [("pending", 0, None)]
    setting(conn, "slack_webhook_url", slack.url())
    assert dispatcher.run_once() == 1 and len(slack.messages()) == 1


def test_retries_with_backoff_then_succeeds_with_the_same_key(conn, slack, dispatcher):
    [key] = queue(conn)
    setting(conn, "slack_webhook_url", slack.url())
    setting(conn, "notify_backoff_ms", "50")
    slack.set_mode("fail")
    assert dispatcher.run_once() == 1
    assert outbox(conn) == [("pending", 1, "HTTP 500: internal_error")]
    assert dispatcher.run_once() == 0, "the retry waits for its backoff"
    slack.set_mode("ok")
    drain(dispatcher, conn, "sent")
    assert [(m.answered, m.dedup_key) for m in slack.messages(answered=None)] == [(500, key), (200, key)]
    assert conn.execute("SELECT array_agg(outcome ORDER BY id) FROM ops.notification_attempts").fetchone()[0] == \
        ["failed", "sent"]


def test_dead_letter_after_max_attempts_then_replay(conn, slack, dispatcher):
    queue(conn)
    setting(conn, "slack_webhook_url", slack.url())
    setting(conn, "notify_backoff_ms", "10")
    setting(conn, "notify_max_attempts", "3")
    slack.set_mode("fail")
    drain(dispatcher, conn, "dead")
    assert len(slack.messages(answered=500)) == 3
    assert conn.execute("SELECT dead_letters, slack_send_failures FROM ops.notification_stats").fetchone() == (1, 3)
    slack.set_mode("ok")
    assert dispatcher.run_once() == 0, "a dead letter is not retried on its own"
    assert conn.execute("SELECT ops.replay_dead_notifications('alice')").fetchone()[0] == 1
    drain(dispatcher, conn, "sent")
    assert len(slack.messages()) == 1


def test_a_hanging_webhook_times_out_and_a_refusing_one_is_named(conn, slack, dispatcher):
    queue(conn)
    setting(conn, "slack_webhook_url", slack.url())
    setting(conn, "notify_backoff_ms", "10")
    slack.set_mode("hang")
    started = time.monotonic()
    assert dispatcher.run_once() == 1
    assert time.monotonic() - started < 3, "the 1 s timeout bounds a hanging webhook"
    assert outbox(conn) == [("pending", 1, "timed out")]
    slack.refuse()
    time.sleep(0.05)
    assert dispatcher.run_once() == 1
    assert outbox(conn) == [("pending", 2, "connection refused")]
    assert "secret" not in str(outbox(conn)), "errors never carry the webhook's path"


def test_no_message_is_started_that_could_outlive_its_lease(conn, db_url, slack):
    """With a 4 s lease and a 2 s timeout, a send may start only in the first second:
    the rest of the batch goes back untouched, so no other dispatcher can double it."""
    queue(conn, 3)
    setting(conn, "slack_webhook_url", slack.url())
    setting(conn, "notify_lease_s", "4")
    slack.set_mode("hang")
    d = Dispatcher(Options(dsn=db_url, timeout_s=2.0, threads=1, worker="slow"))
    d.connect()
    try:
        assert d.run_once() == 3
    finally:
        d.close()
    assert outbox(conn) == [("pending", 1, "timed out"), ("pending", 0, None), ("pending", 0, None)]
    assert len(slack.messages(answered=None)) == 1

def test_a_429_is_retried_no_sooner_than_retry_after(conn, slack, dispatcher):
    queue(conn)
    setting(conn, "slack_webhook_url", slack.url())
    setting(conn, "notify_backoff_ms", "10")
    slack.retry_after = "30"
    slack.set_mode("ratelimit")
    dispatcher.run_once()
    wait = conn.execute("SELECT extract(epoch FROM next_attempt_at - now()) FROM ops.notification_outbox").fetchone()[0]
    assert 25 < wait <= 30


def test_rotating_the_url_reaches_messages_already_queued(conn, slack, dispatcher):
    [key] = queue(conn)
    setting(conn, "slack_webhook_url", slack.url())
    setting(conn, "notify_backoff_ms", "10")
    slack.set_mode("fail")
    dispatcher.run_once()
    new = FakeSlack().start()
    try:
        setting(conn, "slack_webhook_url", new.url("/services/T1/B1/rotated"))
        drain(dispatcher, conn, "sent")
        assert [(m.path, m.dedup_key) for m in new.messages()] == [("/services/T1/B1/rotated", key)]
    finally:
        new.stop()


def test_a_route_webhook_wins_over_the_global_one(conn, slack, dispatcher):
    queue(conn, 2)
    route_hook = FakeSlack().start()
    try:
        setting(conn, "slack_webhook_url", slack.url())
        conn.execute("SELECT ops.set_route_webhook('GET /d1', %s, 'test')", (route_hook.url(),))
        drain(dispatcher, conn, "sent")
        assert [m.body["text"] for m in route_hook.messages()] == ["[CRITICAL] GET /d1::slo_violation escalated to level 1"]
        assert [m.body["text"] for m in slack.messages()] == ["[CRITICAL] GET /d2::slo_violation escalated to level 1"]
    finally:
        route_hook.stop()


# --- dispatcher processes ---------------------------------------------------------------

def start(db_url: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "api")}
    return subprocess.Popen([sys.executable, "-m", "opsguard.dispatcher", "--dsn", db_url, "--poll", "0.2", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_until(predicate, timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_sigkill_mid_delivery_loses_nothing_and_reuses_the_key(conn, db_url, slack):
    [key] = queue(conn)
    setting(conn, "slack_webhook_url", slack.url())
    setting(conn, "notify_lease_s", "4")
    slack.set_mode("hang")
    doomed = start(db_url, "--timeout", "2", "--worker", "doomed")
    try:
        wait_until(lambda: len(slack.messages(answered=None)) == 1, what="the first delivery to hang")
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(5)
    finally:
        doomed.kill()
    slack.set_mode("ok")
    assert outbox(conn)[0][0] == "sending", "the dead dispatcher's claim is still out"
    heir = start(db_url, "--timeout", "2", "--worker", "heir")
    try:
        wait_until(lambda: outbox(conn)[0][0] == "sent", what="the message to be sent after the lease ran out")
    finally:
        heir.terminate()
        heir.wait(10)
    assert [m.dedup_key for m in slack.messages(answered=None)] == [key, key]
    assert conn.execute("SELECT array_agg(worker || ':' || outcome ORDER BY id) FROM ops.notification_attempts"
                        ).fetchone()[0] == ["doomed:lost", "heir:sent"]


def test_two_dispatchers_never_send_one_message_twice(conn, db_url, slack):
    setting(conn, "slack_webhook_url", slack.url())
    procs = [start(db_url, "--worker", name, "--batch", "20") for name in ("one", "two")]
    try:
        wait_until(lambda: conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                        " AND query LIKE '%notification_wait_s%'").fetchone()[0] >= 2, what="both to listen")
        keys = queue(conn, 600)  # the tick's NOTIFY wakes both at once
        wait_until(lambda: conn.execute("SELECT sent FROM ops.notification_stats").fetchone()[0] == 600,
                   what="all 600 to be sent")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            assert p.wait(10) == 0
    counts = collections.Counter(m.dedup_key for m in slack.messages(answered=None))
    assert sorted(counts) == sorted(keys) and set(counts.values()) == {1}
    by_worker = dict(conn.execute("SELECT worker, count(*) FROM ops.notification_attempts GROUP BY worker").fetchall())
    assert set(by_worker) == {"one", "two"}, f"both dispatchers delivered: {by_worker}"


def test_an_invalid_webhook_stops_the_dispatcher_at_start(conn, db_url):
    conn.execute("""UPDATE ops.settings SET value = '"http://hooks.example.com/services/T/B/s"'
                    WHERE key = 'slack_webhook_url'""")
    proc = start(db_url)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert 'setting slack_webhook_url: webhook "http://hooks.example.com/…" must use https' in out


def test_a_lease_shorter_than_the_timeout_stops_the_dispatcher(conn, db_url):
    setting(conn, "notify_lease_s", "5")
    proc = start(db_url, "--timeout", "10")
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 2 and "setting notify_lease_s: 5 s is too short" in out


def test_an_invalid_url_stops_the_api_at_start(conn, db_url):
    from opsguard.app import create_app

    conn.execute("""UPDATE ops.settings SET value = '"not a url"' WHERE key = 'app_base_url'""")
    with pytest.raises(RuntimeError, match='setting app_base_url: "not a url" is not an http'):
        create_app({"DATABASE_URL": db_url, "OPS_HMAC_SECRET": "x"})



HOSTILE = "<!channel> <https://evil.example|click>"


def _mrkdwn_texts(body: dict) -> list[str]:
    """Every text Slack renders as markup: the fallback, the section and the context elements."""
    texts = [body["text"]]
    for block in body["blocks"]:
        if block["type"] == "actions":  # buttons: plain_text, never markup
            continue
        texts += [block["text"]["text"]] if "text" in block else [e["text"] for e in block["elements"]]
    return texts


def test_an_events_v2_dedup_key_reaches_slack_escaped_and_only_opsguards_markup_is_live(conn, slack, dispatcher):
    key = conn.execute("SELECT ops.create_integration_key('pd', 'events_v2', 'alice')").fetchone()[0]
    conn.execute("SELECT ops.add_principal('bob', 'human', '{ops_responder}', 'admin')")
    conn.execute("SELECT ops.link_chat_identity('slack', 'T1', 'UBOB', 'bob', 'admin')")
    conn.execute("SELECT ops.create_policy('p', 'admin')")
    conn.execute("""SELECT ops.add_policy_step('p', 1, '[{"principal": "bob"}]', 'admin')""")
    setting(conn, "default_policy", "p")
    setting(conn, "app_base_url", "https://ops.example.com")
    event = {"routing_key": key, "event_action": "trigger", "dedup_key": HOSTILE,
             "payload": {"summary": HOSTILE, "source": HOSTILE, "severity": "critical"}}
    conn.execute("SELECT ops.api_events_v2(%s::jsonb, now() - interval '1 hour')", (json.dumps(event),))
    conn.execute("SELECT ops.escalation_tick(now())")
    setting(conn, "slack_webhook_url", slack.url())
    assert dispatcher.run_once() == 1
    [msg] = slack.messages()
    texts = _mrkdwn_texts(msg.body)
    assert "&lt;!channel&gt; &lt;https://evil.example|click&gt;" in texts[0]
    assert texts[0].endswith(" escalated to level 1 <@UBOB>")
    # what is left after opsguard's own markup (the mention, the incident link) has no < or > at all
    live = re.compile(r"<@UBOB>|<https://ops\.example\.com/incidents/[0-9a-f-]{36}\|Open the incident>")
    assert [t for t in texts if re.search("[<>]", live.sub("", t))] == []
    assert "\nPaging <@UBOB>\n<https://ops.example.com/incidents/" in texts[1] and texts[1].endswith("|Open the incident>")
