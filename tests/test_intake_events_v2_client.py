"""POST /v2/enqueue driven by PagerDuty's own client library (PyPI `pagerduty`, its
EventsApiV2Client with base_url pointed at opsguard) over a real gunicorn: what a team moving
off PagerDuty runs changes only its URL. The library speaks HTTP itself (httpx) and insists on
https://, so gunicorn serves TLS here with a throwaway self-signed certificate the client trusts
(as a deployment behind TLS would); the Flask test client would not do."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pagerduty
import pytest
from conftest import SECRET

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tls(tmp_path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def base(db_url, tls):
    cert, key = tls
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": db_url, "OPS_HMAC_SECRET": SECRET, "PORT": str(port),
           "PYTHONPATH": str(ROOT / "api"), "OPS_ACCESS_LOG": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "api/gunicorn.conf.py"), "--certfile", str(cert),
         "--keyfile", str(key), "opsguard.app:create_app()"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}"
    trust = ssl.create_default_context(cafile=str(cert))
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/metrics", timeout=2, context=trust).close()
            break
        except OSError:  # refused (or a 5xx while starting): not up yet
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
            time.sleep(0.2)
    try:
        yield url, trust
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def events_client(base, token: str) -> pagerduty.EventsApiV2Client:
    url, trust = base
    return pagerduty.EventsApiV2Client(token, base_url=url, verify=trust)


def incident(conn, dedup_key: str, key_name: str = "pd-lib"):
    return conn.execute(
        "SELECT status, severity, route, summary, acknowledged_by, resolved_by, details"
        " FROM ops.incidents WHERE incident_key = %s", (f"events_v2:{key_name}:{dedup_key}",)).fetchone()


def test_the_pagerduty_client_triggers_acknowledges_and_resolves(base, conn):
    token = conn.execute("SELECT ops.create_integration_key('pd-lib', 'events_v2', 'alice')").fetchone()[0]
    client = events_client(base, token)

    dedup = client.trigger("disk full on db-1", "db-1", dedup_key="db-1/disk", severity="error",
                           custom_details={"free": "0%"},
                           links=[{"href": "https://runbook.example/disk", "text": "runbook"}],
                           payload={"component": "postgres", "group": "db", "class": "disk"})
    assert dedup == "db-1/disk"
    status, severity, route, summary, acked_by, resolved_by, details = incident(conn, dedup)
    assert (status, severity, route, summary) == ("open", "critical", "postgres", "disk full on db-1")
    assert details["custom_details"] == {"free": "0%"} and details["links"][0]["text"] == "runbook"
    assert (details["component"], details["group"], details["class"]) == ("postgres", "db", "disk")

    assert client.trigger("disk still full", "db-1", dedup_key="db-1/disk", severity="warning") == "db-1/disk"
    assert conn.execute("SELECT count(*) FROM ops.incidents WHERE incident_key LIKE 'events_v2:%'").fetchone() == (1,)

    assert client.acknowledge(dedup) == dedup
    assert incident(conn, dedup)[0::4] == ("acknowledged", "pd-lib")
    client.resolve(dedup)
    assert incident(conn, dedup)[0] == "resolved" and incident(conn, dedup)[5] == "pd-lib"

    # no dedup_key: the library returns the one opsguard made, and it finds the incident
    generated = client.trigger("cpu hot", "web-3", severity="info")
    assert len(generated) == 32 and incident(conn, generated)[:2] == ("open", "warning")


def test_a_bad_key_through_the_library_raises_its_error_and_changes_nothing(base, conn):
    conn.execute("SELECT ops.create_integration_key('am', 'alertmanager', 'alice')")
    wrong_kind = conn.execute("SELECT ops.create_integration_key('am2', 'alertmanager', 'alice')").fetchone()[0]
    before = conn.execute("SELECT count(*) FROM ops.incidents").fetchone()
    for token in ("ogk_" + "0" * 64, wrong_kind, "R0UTINGKEYR0UTINGKEYR0UTINGKEY00"):
        client = events_client(base, token)
        with pytest.raises(pagerduty.HttpError) as raised:
            client.trigger("disk full", "db-1", dedup_key="x")
        assert raised.value.response.status_code == 400
        assert raised.value.response.json() == {"status": "invalid event", "message": "Event object is invalid",
                                                "errors": ["Invalid routing key"]}
    assert conn.execute("SELECT count(*) FROM ops.incidents").fetchone() == before


def test_an_invalid_event_through_the_library_raises_with_pagerdutys_errors(base, conn):
    token = conn.execute("SELECT ops.create_integration_key('pd-lib', 'events_v2', 'alice')").fetchone()[0]
    client = events_client(base, token)
    with pytest.raises(pagerduty.HttpError) as raised:
        client.trigger("disk full", "db-1", severity="fatal")
    assert raised.value.response.json()["errors"] == ["'payload.severity' must be one of critical, error, warning, info"]
