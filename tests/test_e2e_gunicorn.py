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
        except (urllib.error.URLError, ConnectionError):
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
