"""Signatures: what the seeds' openssl recipe produces is accepted, everything else is a
401 that changes nothing; rotation, timestamps and replays."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import time

import pytest
from conftest import SECRET, Api
from opsguard.app import create_app

TICK = "/ops/escalation/tick"


def test_the_seeds_openssl_signature_is_accepted(api):
    body = '{"reason":"chatops-ack"}'
    sig = subprocess.run(
        ["bash", "-c", f"printf '%s' '{body}' | openssl dgst -sha256 -hmac '{SECRET}' -binary | xxd -p -c 256"],
        capture_output=True, text=True, check=True).stdout.strip()
    assert api.post(TICK, raw=body.encode(), signature=sig).status_code == 200


@pytest.mark.parametrize("signature", [
    None, "", "0" * 64, "not-hex",
], ids=["missing", "empty", "wrong", "garbage"])
def test_a_bad_signature_is_401(api, conn, signature):
    resp = api.post(TICK, {}, secret=None, signature=signature)
    assert resp.status_code == 401 and resp.json["error"] == "unauthorized"
    assert conn.execute("SELECT count(*) FROM ops.tick_log").fetchone()[0] == 0, "a rejected request changes nothing"


def test_uppercase_hex_is_refused(api):
    sig = hmac.new(SECRET.encode(), b"{}", hashlib.sha256).hexdigest().upper()
    assert api.post(TICK, raw=b"{}", secret=None, signature=sig).status_code == 401


def test_a_signature_for_another_body_is_refused(api):
    sig = hmac.new(SECRET.encode(), b'{"a":1}', hashlib.sha256).hexdigest()
    assert api.post(TICK, raw=b'{"a":2}', secret=None, signature=sig).status_code == 401


def test_an_empty_body_is_signed_like_any_other(api):
    assert api.post(TICK, raw=b"").status_code == 200


def test_two_secrets_during_rotation(db_url, openapi_spec):
    app = create_app({"DATABASE_URL": db_url, "OPS_HMAC_SECRET": "new", "OPS_HMAC_SECRET_PREVIOUS": SECRET})
    try:
        api = Api(app.test_client(), openapi_spec)
        assert api.get("/me/permissions", secret="new").status_code == 200
        assert api.get("/me/permissions", secret=SECRET).status_code == 200
        assert api.get("/me/permissions", secret="older").status_code == 401
    finally:
        app.extensions["opsguard_pool"].close()


def test_a_timestamped_signature_works_once(api, conn):
    now = int(time.time())
    assert api.post(TICK, {}, timestamp=now).status_code == 200
    replay = api.post(TICK, {}, timestamp=now)
    assert replay.status_code == 401 and "already used" in replay.json["message"]
    assert conn.execute("SELECT count(*) FROM ops.tick_log").fetchone()[0] == 1


def test_a_stale_timestamp_is_refused(api):
    assert api.post(TICK, {}, timestamp=int(time.time()) - 301).status_code == 401
    assert api.post(TICK, {}, timestamp=int(time.time()) + 301).status_code == 401


def test_a_timestamp_can_be_required(db_url, openapi_spec):
    app = create_app({"DATABASE_URL": db_url, "OPS_HMAC_SECRET": SECRET, "OPS_HMAC_REQUIRE_TIMESTAMP": True})
    try:
        api = Api(app.test_client(), openapi_spec)
        assert api.get("/me/permissions").status_code == 401
        assert api.get("/me/permissions", timestamp=int(time.time())).status_code == 200
    finally:
        app.extensions["opsguard_pool"].close()


def test_an_unknown_actor_is_403_and_changes_nothing(api, conn):
    incident_id = conn.execute("SELECT id FROM ops.trigger_incident('GET /a::x', 'critical')").fetchone()[0]
    resp = api.post(f"/ops/incidents/{incident_id}/ack", actor="mallory")
    assert resp.status_code == 403 and resp.json["error"] == "forbidden"
    assert conn.execute("SELECT status FROM incidents").fetchone()[0] == "open"
