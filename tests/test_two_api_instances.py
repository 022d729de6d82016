"""Two API instances (two gunicorns, as on two hosts of a cluster) against one database share what
must hold across them: a write's signature is accepted once, by either of them, and a principal's
rate limit is one budget, not one per instance (RATELIMIT_STORAGE_URI=opsguard-database://)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from contextlib import ExitStack

import pytest
from conftest import SECRET, sign_v1
from test_e2e_gunicorn import serving

SHARED = {"RATELIMIT_STORAGE_URI": "opsguard-database://"}


@pytest.fixture
def two(db_url):
    with ExitStack() as stack:
        yield [stack.enter_context(serving(db_url, **SHARED)) for _ in range(2)]


def _signed(path: str, body: dict, ts: int | None = None) -> tuple[bytes, dict]:
    data = json.dumps(body).encode()
    ts = ts or int(time.time())
    return data, {"Content-Type": "application/json", "X-Timestamp": str(ts),
                  "X-Signature": sign_v1(SECRET, ts, "POST", path, data)}


def _post(base: str, path: str, data: bytes, headers: dict) -> tuple[int, dict, dict]:
    req = urllib.request.Request(base + path, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:  # noqa: S310
            return resp.status, json.load(resp), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def test_a_signature_used_on_one_instance_is_refused_by_the_other(two, conn):
    path = "/ops/incidents"
    data, headers = _signed(path, {"incident_key": "GET /two::slo_violation", "severity": "warning"})
    assert _post(two[0], path, data, headers)[0] == 201
    status, body, _ = _post(two[1], path, data, headers)
    assert (status, body["error"]) == (401, "unauthorized")
    assert conn.execute("SELECT count(*) FROM ops.incidents WHERE incident_key = 'GET /two::slo_violation'"
                        ).fetchone()[0] == 1


def test_a_principals_rate_limit_holds_across_both_instances(two, conn):
    path = "/ops/escalation/tick"  # 10 a minute per principal
    answers = []
    for i in range(11):
        data, headers = _signed(path, {"n": i})
        answers.append(_post(two[i % 2], path, data, headers))
    assert [s for s, _, _ in answers[:10]] == [200] * 10
    status, body, headers = answers[10]
    assert (status, body["error"]) == (429, "rate_limited")
    assert 0 < int(headers["Retry-After"]) <= 60
    assert answers[9][2]["X-RateLimit-Remaining"] == "0"
    # the eleventh was refused before it ran: ten ticks, not eleven
    assert conn.execute("SELECT count(*) FROM ops.tick_log WHERE source = 'api'").fetchone()[0] == 10


def test_with_shared_limits_the_database_away_answers_401_and_503_never_500():
    from opsguard.app import create_app

    app = create_app({"DATABASE_URL": "postgresql://x@127.0.0.1:9/x?connect_timeout=1", "OPS_HMAC_SECRET": SECRET,
                      **SHARED})
    try:
        client = app.test_client()
        bad = client.post("/ops/escalation/tick", data=b"{}", headers={
            "X-Timestamp": str(int(time.time())), "X-Signature": "v1=00", "Content-Type": "application/json"})
        assert (bad.status_code, bad.get_json()["error"]) == (401, "unauthorized")
        guard = client.get("/ops/release-guard")
        assert (guard.status_code, guard.get_json()["error"], guard.headers["Retry-After"]) == (
            503, "database_unavailable", "1")
    finally:
        app.extensions["opsguard_pool"].close()
