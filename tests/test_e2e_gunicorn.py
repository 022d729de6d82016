"""End to end: the shipped gunicorn config serving the app over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import SECRET

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def server(db_url):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": db_url, "OPS_HMAC_SECRET": SECRET, "PORT": str(port),
           "PYTHONPATH": str(ROOT / "api"), "OPS_ACCESS_LOG": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "api/gunicorn.conf.py"), "opsguard.app:create_app()"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            break
        except urllib.error.HTTPError:  # answering (a 503 names what is unhealthy): up
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError):  # a worker still booting
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
            time.sleep(0.2)
    yield base
    proc.terminate()
    proc.wait(timeout=15)


def _post(url: str, body: bytes):
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", "X-Signature": sig})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_ack_over_http_through_gunicorn(server, conn):
    incident_id = conn.execute("SELECT id FROM ops.trigger_incident('GET /e2e::x', 'critical')").fetchone()[0]
    status, body = _post(f"{server}/ops/incidents/{incident_id}/ack", b'{"reason":"chatops-ack"}')
    assert status == 200
    assert (body["ok"], body["incident"]["status"], body["incident"]["acknowledgedBy"]) == (True, "acknowledged", "ops-bot")
    assert conn.execute("SELECT acknowledged_by FROM incidents").fetchone()[0] == "ops-bot"


def test_the_tick_limit_holds_across_the_server(server):
    codes = [_post(f"{server}/ops/escalation/tick", b"{}")[0] for _ in range(11)]
    assert codes == [200] * 10 + [429]


def test_a_forced_tick_delivers_one_slack_message(server, conn, db_url):
    """The issue's check: with the API and a dispatcher running, a signed tick (dry_run off)
    delivers one Slack-shaped message, with the event's hash as dedup key."""
    from fake_slack import FakeSlack
    from test_dispatcher import start

    slack = FakeSlack().start()
    dispatcher = start(db_url, "--worker", "e2e")
    try:
        conn.execute("SELECT ops.set_setting('slack_webhook_url', %s, 'test')", (slack.url(),))
        conn.execute("SELECT ops.trigger_incident('GET /e2e::slo_violation', 'critical', p_now => now() - interval '6 min')")
        status, body = _post(f"{server}/ops/escalation/tick", b"{}")
        assert (status, body["dryRun"], body["escalationsCount"]) == (200, False, 1)
        [msg] = slack.wait_for(1)
        time.sleep(0.3)
        assert len(slack.messages(answered=None)) == 1, "exactly one message"
    finally:
        dispatcher.terminate()
        dispatcher.wait(10)
        slack.stop()
    assert msg.body["text"] == "[CRITICAL] GET /e2e::slo_violation escalated to level 1"
    assert msg.body["blocks"][0]["type"] == "section"
    assert msg.dedup_key == msg.body["dedup_key"] == conn.execute("SELECT unique_hash FROM escalation_events").fetchone()[0]
