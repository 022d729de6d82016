"""Bad input never yields a 5xx (docs/api.md#errors): every case a field test
found answers a 4xx JSON error and changes nothing in the database. The cases gunicorn
sees first (an over-long request line, oversized or non-ASCII headers, a chunked body over
the limit) go through a real gunicorn process."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SECRET, sign_v1

ROOT = Path(__file__).resolve().parents[1]
DEEP_ARRAY = b"[" * 10_000 + b"]" * 10_000
DEEP_OBJECT = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
SCALARS = [b"false", b"42", b'"text"', b"null", b"[]", b"[1, 2]"]


def checksum(conn) -> dict[str, str]:
    """Every ops table's rows, hashed: what "changes nothing" is checked against."""
    tables = [r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'ops' AND c.relkind IN ('r', 'p') ORDER BY 1")]
    return {t: conn.execute(f'SELECT md5(coalesce(string_agg(t::text, chr(10) ORDER BY t::text), \'\')) '
                            f'FROM ops."{t}" AS t').fetchone()[0] for t in tables}


@pytest.fixture
def incident_id(conn) -> str:
    return str(conn.execute("SELECT id FROM ops.trigger_incident('GET /bad::input', 'critical')").fetchone()[0])


@pytest.fixture
def unchanged(conn, incident_id):
    """Asserts, after the test, that no ops table changed (the incident is made before)."""
    before = checksum(conn)
    yield
    after = checksum(conn)
    assert {t for t in before if before[t] != after[t]} == set()


def assert_4xx_json(resp, status: int | None = None, error: str | None = None):
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.get_data()[:300])
    assert resp.mimetype == "application/json"
    assert resp.json["ok"] is False and resp.json["error"]
    if status is not None:
        assert resp.status_code == status, resp.json
    if error is not None:
        assert resp.json["error"] == error, resp.json


def json_posts(incident_id: str) -> list[str]:
    return ["/ops/escalation/tick", "/ops/escalation/recalc", f"/ops/incidents/{incident_id}/ack",
            f"/ops/incidents/{incident_id}/resolve", "/ops/incidents", "/ops/release-guard",
            "/ops/release-guard/overrides"]


def test_a_non_ascii_signature_is_4xx(api, unchanged):
    assert_4xx_json(api.get("/me/permissions", signature="é" * 64, validate=False), 401, "unauthorized")
    assert_4xx_json(api.post("/ops/escalation/tick", {}, signature="\u00ff" * 64, validate=False), 401)
    assert_4xx_json(api.get("/me/permissions", actor="é", validate=False), 400, "invalid_header")


def test_a_400_digit_timestamp_is_401(api, unchanged):
    resp = api.post("/ops/escalation/tick", {}, timestamp=int("9" * 400), validate=False)
    assert_4xx_json(resp, 401, "unauthorized")
    assert_4xx_json(api.get("/me/permissions", timestamp=-5, validate=False), 401, "unauthorized")


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
def test_json_nested_10000_deep_is_400_on_every_post(api, incident_id, unchanged, body):
    for path in json_posts(incident_id):
        # the open release guard takes at most 8 KiB: a bigger body is refused before it is parsed
        expected = (413, "payload_too_large") if path == "/ops/release-guard" else (400, "invalid_json")
        assert_4xx_json(api.post(path, raw=body, validate=False), *expected)
    # within the guard's limit (1,000 deep: 2 or 6 KB), too deep is still 400
    within = b"[" * 1000 + b"]" * 1000 if body.startswith(b"[") else b'{"a":' * 1000 + b"1" + b"}" * 1000
    assert_4xx_json(api.post("/ops/release-guard", raw=within, validate=False), 400, "invalid_json")
    # the ingest endpoint hands its body to SQL untouched: the server's own depth limit answers
    assert_4xx_json(api.post("/ops/metrics/requests", raw=body, validate=False), 400, "invalid_input")


def test_json_deeper_than_32_levels_is_400_and_32_is_accepted(api, conn, incident_id):
    deep = {"reason": "ok"}
    for _ in range(30):
        deep = {"x": deep}
    assert api.post(f"/ops/incidents/{incident_id}/ack", deep, validate=False).status_code == 200
    assert_4xx_json(api.post(f"/ops/incidents/{incident_id}/resolve", {"x": {"x": deep}}, validate=False),
                    400, "invalid_json")
    assert conn.execute("SELECT status FROM ops.incidents WHERE id = %s", (incident_id,)).fetchone()[0] == "acknowledged"


@pytest.mark.parametrize("body", SCALARS)
def test_a_body_that_is_not_an_object_is_400(api, incident_id, unchanged, body):
    for path in json_posts(incident_id):
        assert_4xx_json(api.post(path, raw=body, validate=False), 400, "invalid_json")


def test_nul_bytes_in_body_path_or_query_are_400_never_an_outage(api, incident_id, unchanged):
    assert_4xx_json(api.post(f"/ops/incidents/{incident_id}/ack", raw=b'{"reason": "a\x00b"}', validate=False),
                    400, "invalid_input")
    assert_4xx_json(api.post("/ops/metrics/requests", raw=b'[{"route": "GET /\x00"}]', validate=False), 400)
    assert_4xx_json(api.post("/ops/incidents/%00/ack", {}, validate=False), 400, "invalid_input")
    assert_4xx_json(api.get("/ops/release-guard", secret=None, query={"route_prefix": "GET /\x00"},
                            validate=False), 400, "invalid_input")
    # always200 turns an outage into 200 ok:false; a NUL is no outage, so it stays a 400
    assert_4xx_json(api.get("/ops/release-guard", secret=None, query={"route_prefix": "\x00", "always200": "1"},
                            validate=False), 400, "invalid_input")
    assert_4xx_json(api.get("/ops/incidents", query={"route": "x\x00"}, validate=False), 400, "invalid_input")


def test_an_escaped_nul_in_json_is_400(api, incident_id, unchanged):
    # \u0000 is valid JSON but PostgreSQL's jsonb refuses it (22P05)
    assert_4xx_json(api.post(f"/ops/incidents/{incident_id}/ack", {"reason": "a\u0000b"}, validate=False), 400)
    assert_4xx_json(api.post("/ops/incidents", {"incident_key": "k\u0000", "severity": "critical"},
                             validate=False), 400)


def test_a_5000_character_path_is_414_json(api, unchanged):
    assert_4xx_json(api.get("/ops/incidents/" + "a" * 5000 + "/ack", validate=False), 414, "uri_too_long")
    assert_4xx_json(api.get("/ops/release-guard", secret=None, query={"route_prefix": "x" * 5000},
                            validate=False), 414, "uri_too_long")


def test_an_oversized_header_is_431_json(api, unchanged):
    resp = api.client.get("/ops/release-guard", headers={"X-Commit-Sha": "a" * 9000})
    assert_4xx_json(resp, 431, "headers_too_large")


def test_an_unknown_actor_on_me_permissions_is_403(api, unchanged):
    assert_4xx_json(api.get("/me/permissions", actor="nobody-such", validate=False), 403, "forbidden")


def test_a_disabled_actor_on_me_permissions_is_403(api, conn):
    conn.execute("SELECT ops.add_principal('gone', 'human', '{ops_viewer}', 'test')")
    assert api.get("/me/permissions", actor="gone").status_code == 200
    conn.execute("UPDATE ops.principals SET disabled = true WHERE name = 'gone'")
    assert_4xx_json(api.get("/me/permissions", actor="gone", validate=False), 403, "forbidden")


def test_a_known_actor_still_answers_200(api, conn):
    conn.execute("SELECT ops.add_principal('alice', 'human', '{ops_responder}', 'test')")
    resp = api.get("/me/permissions", actor="alice")
    assert resp.status_code == 200 and (resp.json["actor"], resp.json["roles"]) == ("alice", ["ops_responder"])


# --- through gunicorn ---------------------------------------------------------------------

@pytest.fixture
def gunicorn(db_url):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": db_url, "OPS_HMAC_SECRET": SECRET, "PORT": str(port),
           "PYTHONPATH": str(ROOT / "api"), "OPS_ACCESS_LOG": "", "OPS_MAX_BODY_BYTES": "1024"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "api/gunicorn.conf.py"), "opsguard.app:create_app()"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") is None:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
        time.sleep(0.2)
    yield port
    proc.terminate()
    proc.wait(timeout=15)


def raw_request(port: int, data: bytes) -> tuple[int, str, dict] | None:
    """Sends bytes as they are (http.client would refuse some of them); (status, content type, JSON)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(data)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
    except ConnectionError:
        return None
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers.get("content-type", ""), json.loads(body) if body else {}


def request_bytes(method: str, target: str, headers: list[tuple[str, bytes]] = (), body: bytes = b"") -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n".encode()
    for name, value in headers:
        head += name.encode() + b": " + value + b"\r\n"
    if body and not any(n.lower() == "transfer-encoding" for n, _ in headers):
        head += f"Content-Length: {len(body)}\r\n".encode()
    return head + b"\r\n" + body


def chunked(body: bytes, size: int = 256) -> bytes:
    parts = [body[i:i + size] for i in range(0, len(body), size)]
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"


def assert_json_error(answer, status: int):
    code, content_type, body = answer
    assert (code, content_type.split(";")[0]) == (status, "application/json"), answer
    assert body["ok"] is False and body["error"]


def test_gunicorn_answers_its_own_refusals_in_json(gunicorn, conn, incident_id):
    before = checksum(conn)
    assert_json_error(raw_request(gunicorn, request_bytes("GET", "/ops/incidents/" + "a" * 5000)), 414)
    assert_json_error(raw_request(gunicorn, request_bytes("GET", "/ops/release-guard",
                                                          [("X-Commit-Sha", b"a" * 9000)])), 431)
    assert_json_error(raw_request(gunicorn, request_bytes("GET", "/ops/release-guard",
                                                          [("X-Bad", b"a\x00b")])), 400)
    # non-ASCII bytes in a header gunicorn lets through: Flask refuses them (a signature that
    # cannot be one is a bad signature: 401)
    code, _, body = raw_request(gunicorn, request_bytes("GET", "/me/permissions", [("X-Signature", "é".encode() * 32)]))
    assert (code, body["error"]) == (401, "unauthorized")
    code, _, body = raw_request(gunicorn, request_bytes("GET", "/me/permissions", [("X-Ops-Actor", "é".encode())]))
    assert (code, body["error"]) == (400, "invalid_header")
    code, _, body = raw_request(gunicorn, request_bytes("POST", "/ops/escalation/tick",
                                                        [("X-Timestamp", b"9" * 400), ("X-Signature", b"0" * 64)], b"{}"))
    assert (code, body["error"]) == (401, "unauthorized")
    assert checksum(conn) == before


def test_a_chunked_body_over_the_limit_is_413_through_gunicorn(gunicorn, conn, incident_id):
    def ack(body: bytes):
        path, ts = f"/ops/incidents/{incident_id}/ack", int(time.time())
        sig = sign_v1(SECRET, ts, "POST", path, body).encode()
        return raw_request(gunicorn, request_bytes(
            "POST", path, [("Transfer-Encoding", b"chunked"), ("Content-Type", b"application/json"),
                           ("X-Timestamp", str(ts).encode()), ("X-Signature", sig)],
            chunked(body)))

    before = checksum(conn)
    big = json.dumps({"reason": "x" * 2000}).encode()  # over OPS_MAX_BODY_BYTES=1024
    code, _, answer = ack(big)
    assert (code, answer["error"]) == (413, "payload_too_large")
    assert checksum(conn) == before
    # exactly at the limit is still accepted: the extra byte read is what tells them apart
    fits = json.dumps({"reason": "y" * (1024 - 14)}).encode()
    assert len(fits) == 1024
    code, _, answer = ack(fits)
    assert (code, answer["incident"]["status"]) == (200, "acknowledged"), answer


def test_the_depth_check_counts_as_a_recursive_walk_would():
    """views._depth walks one level at a time (faster for wide bodies such as a 100-alert
    notification); it must still count every mix of arrays and objects as a recursive walk does."""
    from opsguard.views import MAX_JSON_DEPTH, _depth

    def reference(v) -> int:
        children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else ()
        return 1 + max((reference(c) for c in children if isinstance(c, dict | list)), default=0)

    rng = random.Random(12)  # noqa: S311 - test data, not secrets

    def tree(d: int):
        # one deep branch among shallow ones, so the trees stay small however deep they go
        r = rng.random()
        if d > 40 or r < 0.04:
            return rng.choice([1, "x", None, True, 1.5, [], {}])
        kids = [tree(d + 1)] + [rng.choice([1, "y", [], {"z": [2]}]) for _ in range(rng.randint(0, 2))]
        rng.shuffle(kids)
        return kids if r < 0.5 else {f"k{i}": k for i, k in enumerate(kids)}

    samples = [tree(0) for _ in range(3000)]
    for n in range(28, 36):  # around the limit, arrays and objects mixed, the deep branch not first
        deep = "leaf"
        for i in range(n - 1):
            deep = {"a": 1, "b": deep} if i % 2 else [0, deep]
        samples.append({"wide": list(range(50)), "deep": deep})
    deeper = sum(reference(s) > MAX_JSON_DEPTH for s in samples)
    assert 0 < deeper < len(samples), "both sides of the limit are sampled"
    for s in samples:
        want = reference(s)
        got = _depth(s)
        assert (got > MAX_JSON_DEPTH) == (want > MAX_JSON_DEPTH)
        if want <= MAX_JSON_DEPTH:
            assert got == want
