"""Signatures (docs/api.md, Signatures): a v1 signature is good for the one request it was made
for (method, path and query, body, time) and a write is good once; the older body-only scheme is
off unless OPS_HMAC_BODY_ONLY=on, and then works only where older scripts use it (tick, ack) and
never for a named X-Ops-Actor. Every refusal is a 401 that changes nothing."""

from __future__ import annotations

import subprocess
import time

import pytest
from conftest import SECRET, Api, sign_body_only, sign_v1
from opsguard.app import create_app

TICK = "/ops/escalation/tick"
RECALC = "/ops/escalation/recalc"
ACK_BODY = '{"reason":"chatops-ack"}'


def openssl_body_signature(body: str) -> str:
    """Exactly the smoke test's body-only recipe."""
    return subprocess.run(
        ["bash", "-c", f"printf '%s' '{body}' | openssl dgst -sha256 -hmac '{SECRET}' -binary | xxd -p -c 256"],
        capture_output=True, text=True, check=True).stdout.strip()


def open_incident(conn, key: str = "GET /a::x") -> str:
    return str(conn.execute("SELECT id FROM ops.trigger_incident(%s, 'critical')", (key,)).fetchone()[0])


def status_of(conn, incident_id: str) -> str:
    return conn.execute("SELECT status FROM incidents WHERE id = %s", (incident_id,)).fetchone()[0]


def ticks(conn) -> int:
    return conn.execute("SELECT count(*) FROM ops.tick_log").fetchone()[0]


def headers_for(method: str, target: str, body: bytes = b"", ts: int | None = None) -> dict:
    ts = int(time.time()) if ts is None else ts
    return {"X-Timestamp": str(ts), "X-Signature": sign_v1(SECRET, ts, method, target, body)}


def send(api: Api, method: str, path: str, headers: dict, body: bytes = b""):
    """A request with exactly these signature headers (what an attacker replays)."""
    return api.call(method, path, raw=body, secret=None, signature=headers["X-Signature"],
                    timestamp=headers.get("X-Timestamp"))


def assert_401(resp):
    assert resp.status_code == 401, resp.json
    assert resp.json["ok"] is False and resp.json["error"] == "unauthorized"


@pytest.fixture
def app_with(db_url):
    """An app with extra settings; closed after the test."""
    apps = []

    def make(**config):
        apps.append(create_app({"DATABASE_URL": db_url, "OPS_HMAC_SECRET": SECRET, **config}))
        return apps[-1]

    yield make
    for a in apps:
        a.extensions["opsguard_pool"].close()


# --- v1 ---------------------------------------------------------------------------------------

def test_a_v1_signature_is_accepted_everywhere(api, conn):
    incident = open_incident(conn)
    assert api.get("/me/permissions").json["principal"] == "ops-bot"
    assert api.post(TICK, {}).status_code == 200
    assert api.post(RECALC, {}).status_code == 200
    assert api.post(f"/ops/incidents/{incident}/ack", {"reason": "looking"}).status_code == 200
    assert api.post(f"/ops/incidents/{incident}/resolve").status_code == 200
    assert status_of(conn, incident) == "resolved"


@pytest.mark.parametrize("path", ["/ops/incidents/{id}/resolve", TICK, RECALC], ids=["resolve", "tick", "recalc"])
def test_a_gets_signature_does_nothing_on_a_post(api, conn, path):
    incident = open_incident(conn)
    get = headers_for("GET", "/me/permissions")
    assert send(api, "GET", "/me/permissions", get).status_code == 200
    assert_401(send(api, "POST", path.format(id=incident), get))
    # the old attack: the empty body's body-only signature, what every signed GET carried
    assert_401(api.post(path.format(id=incident), raw=b"", signature=sign_body_only(SECRET, b""), secret=None))
    assert status_of(conn, incident) == "open" and ticks(conn) == 0


def test_an_acks_signature_does_not_resolve_another_incident(api, conn):
    mine, other = open_incident(conn, "GET /a::x"), open_incident(conn, "GET /b::x")
    body = ACK_BODY.encode()
    v1 = headers_for("POST", f"/ops/incidents/{mine}/ack", body)
    assert_401(send(api, "POST", f"/ops/incidents/{other}/resolve", v1, body))
    assert_401(send(api, "POST", f"/ops/incidents/{other}/ack", v1, body))
    # the README's old body-only ack signature, on /resolve of another incident
    assert_401(api.post(f"/ops/incidents/{other}/resolve", raw=body, secret=None,
                        signature=openssl_body_signature(ACK_BODY)))
    assert status_of(conn, other) == "open"
    assert send(api, "POST", f"/ops/incidents/{mine}/ack", v1, body).status_code == 200


def test_a_signature_for_one_path_is_refused_on_another(api, conn):
    a, b = open_incident(conn, "GET /a::x"), open_incident(conn, "GET /b::x")
    resp = api.post(f"/ops/incidents/{b}/ack", sign_as=("POST", f"/ops/incidents/{a}/ack"))
    assert_401(resp)
    assert "v1:<timestamp>:<METHOD>" in resp.json["hint"], "the 401 says how to sign"
    assert status_of(conn, a) == status_of(conn, b) == "open"


def test_a_changed_query_string_is_refused(api, conn):
    open_incident(conn)
    signed_for = headers_for("GET", "/ops/incidents?status=resolved")
    assert_401(api.get("/ops/incidents", query={"status": "active"}, secret=None,
                       signature=signed_for["X-Signature"], timestamp=signed_for["X-Timestamp"]))
    assert_401(api.get("/ops/incidents", secret=None,
                       signature=signed_for["X-Signature"], timestamp=signed_for["X-Timestamp"]))
    ok = api.get("/ops/incidents", query={"status": "resolved"}, secret=None,
                 signature=signed_for["X-Signature"], timestamp=signed_for["X-Timestamp"])
    assert ok.status_code == 200 and ok.json["count"] == 0
    assert api.get("/ops/incidents", query={"status": "active"}).json["count"] == 1


def test_a_swapped_method_is_refused(api, conn):
    body = b'{"incident_key": "GET /c::x", "severity": "critical"}'
    post = headers_for("POST", "/ops/incidents", body)
    assert_401(send(api, "GET", "/ops/incidents", post, body))
    get = headers_for("GET", "/ops/incidents", body)
    assert_401(send(api, "POST", "/ops/incidents", get, body))
    assert conn.execute("SELECT count(*) FROM incidents").fetchone()[0] == 0
    assert send(api, "POST", "/ops/incidents", post, body).status_code == 201


def test_the_method_is_signed_upper_case(api):
    ts = int(time.time())
    lower = "v1=" + sign_body_only(SECRET, f"v1:{ts}:get:/me/permissions:".encode())
    assert_401(api.get("/me/permissions", secret=None, signature=lower, timestamp=ts))
    upper = "v1=" + sign_body_only(SECRET, f"v1:{ts}:GET:/me/permissions:".encode())
    assert api.get("/me/permissions", secret=None, signature=upper, timestamp=ts).status_code == 200


def test_a_signature_for_another_body_is_refused(api, conn):
    resp = api.post(TICK, raw=b'{"a":2}', secret=None, timestamp=int(time.time()),
                    signature=sign_v1(SECRET, int(time.time()), "POST", TICK, b'{"a":1}'))
    assert_401(resp)
    assert ticks(conn) == 0


def test_a_write_is_accepted_once(api, conn):
    v1 = headers_for("POST", TICK, b"{}")
    assert send(api, "POST", TICK, v1, b"{}").status_code == 200
    replay = send(api, "POST", TICK, v1, b"{}")
    assert_401(replay)
    assert "already used" in replay.json["message"]
    assert ticks(conn) == 1


def test_a_get_may_repeat_inside_the_window(api):
    v1 = headers_for("GET", "/me/permissions")
    for _ in range(3):
        assert send(api, "GET", "/me/permissions", v1).json["principal"] == "ops-bot"


@pytest.mark.parametrize("offset", [-301, 301, -100_000])
def test_a_stale_timestamp_is_refused(api, conn, offset):
    resp = api.post(TICK, {}, timestamp=int(time.time()) + offset)
    assert_401(resp)
    assert "300 s" in resp.json["message"]
    assert ticks(conn) == 0


def test_a_timestamp_inside_the_window_is_fine(api):
    assert api.post(TICK, {}, timestamp=int(time.time()) - 290).status_code == 200
    assert api.post(TICK, {}, timestamp=int(time.time()) + 290).status_code == 200


@pytest.mark.parametrize("signature, timestamp", [
    (None, None), ("", None), ("v1=" + "0" * 64, "now"), ("v1=not-hex", "now"), ("v1=" + "é" * 64, "now"),
    ("v1=\u00ff", "now"), ("\u00e9" * 64, None), ("v1=" + "0" * 64, None), ("v1=" + "0" * 64, "4" * 400),
    ("v1=" + "0" * 64, "-1"), ("v1=" + "0" * 64, "1e9"), ("v1=" + "0" * 64, "\u00b2"),
], ids=["missing", "empty", "wrong", "not-hex", "non-ascii", "latin1", "non-ascii-body-only", "no-timestamp",
        "400-digit-timestamp", "negative", "float", "superscript-digit"])
def test_a_bad_signature_or_timestamp_is_401_json(api, conn, signature, timestamp):
    ts = str(int(time.time())) if timestamp == "now" else timestamp
    assert_401(api.post(TICK, {}, secret=None, signature=signature, timestamp=ts))
    assert ticks(conn) == 0, "a rejected request changes nothing"


def test_uppercase_hex_is_refused(api, conn):
    ts = int(time.time())
    sig = sign_v1(SECRET, ts, "POST", TICK, b"{}")
    assert_401(api.post(TICK, raw=b"{}", secret=None, timestamp=ts, signature="v1=" + sig[3:].upper()))
    assert_401(api.post(TICK, raw=b"{}", secret=None, timestamp=ts, signature="V1=" + sig[3:]))
    assert ticks(conn) == 0


def test_the_old_timestamp_dot_body_scheme_is_refused_with_a_hint(api, conn):
    ts = int(time.time())
    old = sign_body_only(SECRET, f"{ts}.{{}}".encode())
    resp = api.post(TICK, raw=b"{}", secret=None, timestamp=ts, signature=old)
    assert_401(resp)
    assert "v1" in resp.json["hint"]
    # a valid body-only signature with a timestamp is refused too: the timestamp is not in its MAC
    assert_401(api.post(TICK, raw=b"{}", secret=None, timestamp=ts, signature=sign_body_only(SECRET, b"{}")))
    assert ticks(conn) == 0


def test_the_old_require_timestamp_setting_stops_the_start(db_url):
    with pytest.raises(RuntimeError, match="OPS_HMAC_REQUIRE_TIMESTAMP is gone.*unless OPS_HMAC_BODY_ONLY=on"):
        create_app({"DATABASE_URL": db_url, "OPS_HMAC_SECRET": SECRET, "OPS_HMAC_REQUIRE_TIMESTAMP": "1"})


@pytest.mark.parametrize("value", ["0", "false", "no", ""])
def test_an_unclear_body_only_setting_stops_the_start(db_url, value):
    with pytest.raises(RuntimeError, match="OPS_HMAC_BODY_ONLY is on or off"):
        create_app({"DATABASE_URL": db_url, "OPS_HMAC_SECRET": SECRET, "OPS_HMAC_BODY_ONLY": value})


def test_two_secrets_during_rotation(app_with, openapi_spec):
    api = Api(app_with(OPS_HMAC_SECRET="new", OPS_HMAC_SECRET_PREVIOUS=SECRET).test_client(), openapi_spec)
    assert api.get("/me/permissions", secret="new").status_code == 200
    assert api.get("/me/permissions", secret=SECRET).status_code == 200
    assert_401(api.get("/me/permissions", secret="older"))


def test_an_unknown_actor_is_403_and_changes_nothing(api, conn):
    incident_id = open_incident(conn)
    resp = api.post(f"/ops/incidents/{incident_id}/ack", actor="mallory")
    assert resp.status_code == 403 and resp.json["error"] == "forbidden"
    assert status_of(conn, incident_id) == "open"


# --- body-only, the older scheme ---------------------------------------------------------------

@pytest.fixture
def body_only_api(app_with, openapi_spec) -> Api:
    """The API as make run starts it, for the smoke test: OPS_HMAC_BODY_ONLY=on."""
    return Api(app_with(OPS_HMAC_BODY_ONLY="on").test_client(), openapi_spec)


@pytest.mark.parametrize("setting", [None, "off", "OFF"], ids=["unset", "off", "upper-case"])
def test_body_only_is_off_by_default(app_with, openapi_spec, conn, monkeypatch, setting):
    """A captured body-only ack names neither incident, actor nor time: where it is accepted, it works
    again forever, on any incident. So an API started without the setting refuses it."""
    monkeypatch.delenv("OPS_HMAC_BODY_ONLY", raising=False)
    api = Api(app_with(**({} if setting is None else {"OPS_HMAC_BODY_ONLY": setting})).test_client(), openapi_spec)
    incident = open_incident(conn)
    ack = api.post(f"/ops/incidents/{incident}/ack", raw=ACK_BODY.encode(), secret=None,
                   signature=openssl_body_signature(ACK_BODY))
    assert_401(ack)
    assert "v1:<timestamp>:<METHOD>" in ack.json["hint"], "the 401 says how to sign v1"
    assert_401(api.post(TICK, raw=b"{}", secret=None, signature=openssl_body_signature("{}")))
    assert ticks(conn) == 0 and status_of(conn, incident) == "open"
    assert conn.execute("SELECT count(*) FROM ops.audit_log WHERE table_name = 'incidents' "
                        "AND action = 'UPDATE'").fetchone()[0] == 0
    assert api.post(TICK, {}).status_code == 200, "v1 still works"


def test_the_body_only_openssl_signature_works_on_tick_and_ack(body_only_api, conn):
    incident = open_incident(conn)
    api = body_only_api
    assert api.post(TICK, raw=b"{}", secret=None, signature=openssl_body_signature("{}")).status_code == 200
    ack = api.post(f"/ops/incidents/{incident}/ack", raw=ACK_BODY.encode(), secret=None,
                   signature=openssl_body_signature(ACK_BODY))
    assert ack.status_code == 200 and ack.json["incident"]["acknowledgedBy"] == "ops-bot"
    assert ticks(conn) == 1 and status_of(conn, incident) == "acknowledged"


@pytest.mark.parametrize("actor", ["alice", "ops-bot", ""], ids=["another", "the signer", "empty"])
def test_a_body_only_request_naming_an_actor_is_refused(body_only_api, conn, actor):
    """X-Ops-Actor is outside every MAC: on a body-only ack, whoever captured it could put any
    name on it. A body-only request that carries the header is refused, whatever it names."""
    conn.execute("SELECT ops.add_principal('alice', 'human', ARRAY['ops_responder'], 'admin')")
    incident = open_incident(conn)
    headers = {"X-Signature": openssl_body_signature(ACK_BODY), "X-Ops-Actor": actor,
               "Content-Type": "application/json"}
    ack = body_only_api.client.post(f"/ops/incidents/{incident}/ack", data=ACK_BODY, headers=headers)
    assert_401(ack)
    assert "X-Ops-Actor" in ack.json["message"] and "v1:<timestamp>:<METHOD>" in ack.json["hint"]
    headers["X-Signature"] = openssl_body_signature("{}")
    assert_401(body_only_api.client.post(TICK, data="{}", headers=headers))
    assert status_of(conn, incident) == "open" and ticks(conn) == 0
    assert conn.execute("SELECT acknowledged_by FROM incidents").fetchone()[0] is None
    # signed v1, the same actor is fine (alice holds incidents.ack)
    if actor:
        assert body_only_api.post(f"/ops/incidents/{incident}/ack", {"reason": "x"}, actor=actor).status_code == 200


def test_body_only_is_refused_over_an_empty_body(body_only_api, conn):
    incident = open_incident(conn)
    assert_401(body_only_api.post(TICK, raw=b"", scheme="body-only"))
    resp = body_only_api.post(f"/ops/incidents/{incident}/ack", raw=b"", scheme="body-only")
    assert_401(resp)
    assert "v1" in resp.json["hint"]
    assert ticks(conn) == 0 and status_of(conn, incident) == "open"


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/ops/incidents/{id}/resolve", ACK_BODY),
    ("POST", RECALC, "{}"),
    ("POST", "/ops/incidents", '{"incident_key": "GET /z::x", "severity": "critical"}'),
    ("POST", "/ops/metrics/requests", "[]"),
    ("POST", "/ops/release-guard/overrides", '{"key": "k", "reason": "r", "minutes": 5}'),
    ("GET", "/me/permissions", ""),
    ("GET", "/ops/incidents", ""),
], ids=["resolve", "recalc", "trigger", "metrics", "override", "me", "list"])
def test_body_only_is_refused_elsewhere(body_only_api, conn, method, path, body):
    incident = open_incident(conn)
    resp = body_only_api.call(method, path.format(id=incident), raw=body.encode(), scheme="body-only")
    assert_401(resp)
    assert "not accepted here" in resp.json["message"] or method == "GET"
    assert status_of(conn, incident) == "open"
    assert conn.execute("SELECT count(*) FROM incidents").fetchone()[0] == 1


def test_healthz_warns_a_signed_admin_while_body_only_is_accepted(api, body_only_api):
    on = body_only_api.get("/healthz")
    assert on.status_code == 200 and on.json["ok"] is True
    assert any("OPS_HMAC_BODY_ONLY=off" in w for w in on.json["warnings"])
    assert "OPS_HMAC_BODY_ONLY" not in body_only_api.get("/healthz", secret=None).get_data(as_text=True)
    off = api.get("/healthz")
    assert off.status_code == 200 and off.json["warnings"] == []
