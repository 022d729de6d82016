"""GET/POST /ops/release-guard (open to CI), overrides, and metrics ingest over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

from conftest import SECRET, Api
from opsguard.app import create_app


def _samples(route: str, n: int, errors: int) -> list[dict]:
    at = datetime.now(UTC).isoformat()
    return [{"route": route, "status": 500 if i < errors else 200, "latency_ms": 12, "at": at} for i in range(n)]


def test_clear_is_200(api):
    resp = api.get("/ops/release-guard", secret=None)
    assert resp.status_code == 200
    assert (resp.json["ok"], resp.json["failingCount"]) == (True, 0)
    assert isinstance(resp.json["evaluationId"], int)


def test_a_seeded_critical_incident_blocks_with_409(api, conn):
    row = conn.execute("SELECT id FROM ops.trigger_incident('GET /projects::slo_violation', 'critical')").fetchone()
    incident_id = str(row[0])
    resp = api.get("/ops/release-guard", secret=None)
    assert resp.status_code == 409
    assert resp.json["ok"] is False and resp.json["failingCount"] == 1
    assert [i["id"] for i in resp.json["failing"]] == [incident_id]
    conn.execute("SELECT ops.ack_incident(%s, 'ops-bot')", (incident_id,))
    assert api.get("/ops/release-guard", secret=None).status_code == 200


def test_route_metrics_block_even_when_every_incident_is_acked(api):
    resp = api.post("/ops/metrics/requests", _samples("GET /notifications/recent", 8, 8))
    assert resp.status_code == 200 and resp.json == {"ok": True, "accepted": 8}
    guard = api.get("/ops/release-guard", secret=None)
    assert guard.status_code == 409
    critical = next(v for v in guard.json["violations"] if v["reason"] == "error_rate_critical")
    assert critical["route"] == "GET /notifications/recent"
    assert {k: critical["evidence"][k] for k in ("err_rate_1m", "samples_1m")} == {"err_rate_1m": 100, "samples_1m": 8}


def test_always200_mode_and_post_for_webhooks(api, conn):
    conn.execute("SELECT ops.trigger_incident('GET /x::y', 'critical')")
    resp = api.get("/ops/release-guard", secret=None, query={"always200": "1"})
    assert resp.status_code == 200 and resp.json["ok"] is False
    # scoped to the canary's routes: an answer not stored yet (an equal one would count as a repeat
    # of the stored row, which keeps the context of the first time it was given)
    posted = api.post("/ops/release-guard", {"name": "podinfo", "namespace": "test", "phase": "Progressing"}, secret=None,
                      query={"route_prefix": "GET /x"})
    assert posted.status_code == 409
    stored = conn.execute("SELECT context -> 'webhook' ->> 'name' FROM ops.guard_evaluations ORDER BY id DESC").fetchone()[0]
    assert stored == "podinfo"


def test_scoping_to_a_route_prefix(api):
    api.post("/ops/metrics/requests", _samples("GET /billing/x", 10, 10))
    assert api.get("/ops/release-guard", secret=None, query={"route_prefix": "GET /search"}).status_code == 200
    assert api.get("/ops/release-guard", secret=None, query={"route_prefix": "GET /billing"}).status_code == 409


def test_ci_context_is_stored(api, conn):
    api.client.get("/ops/release-guard", headers={"X-Commit-Sha": "abc123", "X-CI-Pipeline": "deploy", "X-Caller": "gha"})
    row = conn.execute("SELECT caller, context FROM ops.guard_evaluations ORDER BY id DESC").fetchone()
    assert row == ("gha", {"commit": "abc123", "pipeline": "deploy"})


def test_the_guard_lists_at_most_100_items_over_http(api, conn):
    conn.execute("SELECT ops.trigger_incident('GET /many/' || g || '::x', 'critical') FROM generate_series(1, 150) AS g")
    resp = api.get("/ops/release-guard", secret=None)
    assert resp.status_code == 409
    body = resp.json
    assert (body["failingCount"], len(body["failing"]), len(body["incidents"]), body["truncated"]) == (150, 100, 100, True)
    keys = [i["key"] for i in body["failing"]]
    assert keys == sorted(keys)


def test_unchanged_answers_add_no_rows(api, conn):
    conn.execute("SELECT ops.trigger_incident('GET /same::x', 'critical')")
    ids = {api.get("/ops/release-guard", secret=None, query={"route_prefix": "GET /same"}).json["evaluationId"]
           for _ in range(5)}
    assert len(ids) == 1
    stored = "SELECT count(*), max(repeats) FROM ops.guard_evaluations WHERE route_prefix = 'GET /same'"
    assert conn.execute(stored).fetchone() == (1, 5)


def test_a_guard_body_over_8_kib_is_413_and_stores_nothing(api, conn):
    def stored() -> tuple[int, int]:
        return conn.execute("SELECT count(*), coalesce(sum(repeats), 0) FROM ops.guard_evaluations").fetchone()

    before = stored()
    big = api.post("/ops/release-guard", raw=b'{"pad": "' + b"x" * (9 * 1024) + b'"}', secret=None)
    assert big.status_code == 413
    assert big.json["ok"] is False and big.json["error"] == "payload_too_large"
    assert stored() == before
    fits = b'{"pad": "' + b"x" * (8 * 1024 - 11) + b'"}'
    assert len(fits) == 8 * 1024
    assert api.post("/ops/release-guard", raw=fits, secret=None).status_code == 200
    assert stored() != before


def test_an_override_exempts_one_item(api, conn):
    api.post("/ops/metrics/requests", _samples("GET /flaky", 10, 10))
    keys = [v["key"] for v in api.get("/ops/release-guard", secret=None).json["failing"]]
    for key in keys:
        resp = api.post("/ops/release-guard/overrides", {"key": key, "reason": "INC-9 known", "minutes": 30})
        assert resp.status_code == 201 and resp.json["override"]["by"] == "ops-bot"
    guard = api.get("/ops/release-guard", secret=None)
    assert guard.status_code == 200 and all(v["exempted"]["reason"] == "INC-9 known" for v in guard.json["violations"])
    bad = api.post("/ops/release-guard/overrides", {"key": keys[0], "reason": "x", "minutes": 2000})
    assert bad.status_code == 400
    unknown = {"key": "GET /none::slo_violation", "reason": "nope", "minutes": 5}
    assert api.post("/ops/release-guard/overrides", unknown).status_code == 404
    conn.execute("SELECT ops.add_principal('rita', 'human', '{ops_responder}', 'test')")
    mine = {"key": keys[0], "reason": "mine", "minutes": 5}
    assert api.post("/ops/release-guard/overrides", mine, actor="rita").status_code == 403


def test_a_malformed_batch_is_400_and_writes_nothing(api, conn):
    batch = _samples("GET /a", 3, 0)
    batch[2]["status"] = "oops"
    resp = api.post("/ops/metrics/requests", batch)
    assert resp.status_code == 400 and "sample 2" in resp.json["message"]
    assert api.post("/ops/metrics/requests", raw=b'[{"route": ').status_code == 400
    assert conn.execute("SELECT count(*) FROM ops.route_minute_stats").fetchone()[0] == 0


def test_metrics_need_metrics_write(api, conn):
    conn.execute("SELECT ops.add_principal('vera', 'human', '{ops_viewer}', 'test')")
    assert api.post("/ops/metrics/requests", _samples("GET /a", 1, 0), actor="vera").status_code == 403


def test_database_down_fails_closed(openapi_spec):
    app = create_app({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "OPS_HMAC_SECRET": SECRET})
    try:
        api = Api(app.test_client(), openapi_spec)
        down = api.get("/ops/release-guard", secret=None)
        assert down.status_code == 503 and down.json["ok"] is False
        argo = api.get("/ops/release-guard", secret=None, query={"always200": "1"})
        assert argo.status_code == 200 and argo.json["ok"] is False
    finally:
        app.extensions["opsguard_pool"].close()



def test_a_signed_guard_call_is_kept_in_full_and_an_unsigned_one_is_anonymous(api, conn):
    def kept(prefix: str):
        return conn.execute("SELECT anonymous_bytes IS NULL FROM ops.guard_evaluations WHERE route_prefix = %s",
                            (prefix,)).fetchone()

    signed = api.get("/ops/release-guard", query={"route_prefix": "GET /signed"})
    unsigned = api.get("/ops/release-guard", secret=None, query={"route_prefix": "GET /unsigned"})
    assert (signed.status_code, unsigned.status_code) == (200, 200)
    assert {k: v for k, v in signed.json.items() if k not in ("evaluationId", "evaluatedAt", "routePrefix")} \
        == {k: v for k, v in unsigned.json.items() if k not in ("evaluationId", "evaluatedAt", "routePrefix")}
    assert kept("GET /signed") == (True,)
    assert kept("GET /unsigned") == (False,)


def test_a_guard_call_with_a_bad_signature_is_401_and_stores_nothing(api, conn):
    before = conn.execute("SELECT count(*) FROM ops.guard_evaluations").fetchone()
    forged = api.get("/ops/release-guard", secret="not-the-secret", query={"route_prefix": "GET /forged"})
    assert forged.status_code == 401 and forged.json["ok"] is False
    wrong_target = api.get("/ops/release-guard", query={"route_prefix": "GET /x"},
                           sign_as=("GET", "/ops/release-guard?route_prefix=GET+/y"))
    assert wrong_target.status_code == 401
    assert conn.execute("SELECT count(*) FROM ops.guard_evaluations").fetchone() == before


def test_an_anonymous_context_is_capped_tighter(api, conn):
    headers = {h: "x" * 300 for h in ("X-Commit-Sha", "X-CI-Pipeline", "X-CI-Job", "X-Git-Ref")}
    api.client.get("/ops/release-guard?route_prefix=GET%20/ctx", headers=headers)
    context = conn.execute("SELECT context FROM ops.guard_evaluations WHERE route_prefix = 'GET /ctx'").fetchone()[0]
    assert context == {**{k: "x" * 64 for k in ("commit", "pipeline", "job", "ref")}, "truncated": True,
                       "bytes": context["bytes"]}
    assert context["bytes"] > 1200
