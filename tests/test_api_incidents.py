"""The incident endpoints: the seeds' ack shape, idempotency, and every error path."""

from __future__ import annotations

import uuid


def _open(conn, key="GET /projects::slo_violation", severity="critical") -> str:
    return str(conn.execute("SELECT id FROM ops.trigger_incident(%s, %s)", (key, severity)).fetchone()[0])


def test_ack_answers_the_seeds_shape_and_the_row_shows_it(api, conn):
    incident_id = _open(conn)
    resp = api.post(f"/ops/incidents/{incident_id}/ack", {"reason": "chatops-ack"})
    assert resp.status_code == 200
    body = resp.json
    assert body["ok"] is True
    assert {k: body["incident"][k] for k in ("id", "status", "acknowledgedBy")} == {
        "id": incident_id, "status": "acknowledged", "acknowledgedBy": "ops-bot"}
    row = conn.execute("SELECT acknowledged_by, acknowledged_at IS NOT NULL FROM incidents WHERE id = %s",
                       (incident_id,)).fetchone()
    assert row == ("ops-bot", True)
    note = conn.execute("SELECT note FROM ops.audit_log WHERE row_key = %s AND action = 'UPDATE'",
                        (incident_id,)).fetchone()[0]
    assert note == "chatops-ack", "the seeds' reason lands in the audit log"


def test_ack_is_idempotent(api, conn):
    incident_id = _open(conn)
    first = api.post(f"/ops/incidents/{incident_id}/ack").json["incident"]
    second = api.post(f"/ops/incidents/{incident_id}/ack", actor="ops-bot").json["incident"]
    assert second["acknowledgedAt"] == first["acknowledgedAt"]


def test_ack_records_the_named_actor(api, conn):
    conn.execute("SELECT ops.add_principal('alice', 'human', '{ops_responder}', 'test')")
    incident_id = _open(conn)
    resp = api.post(f"/ops/incidents/{incident_id}/ack", actor="alice")
    assert resp.json["incident"]["acknowledgedBy"] == "alice"
    assert conn.execute("SELECT acknowledged_by FROM incidents").fetchone()[0] == "alice"


def test_ack_of_an_unknown_incident_is_404(api):
    resp = api.post(f"/ops/incidents/{uuid.uuid4()}/ack")
    assert resp.status_code == 404
    assert resp.json["ok"] is False and resp.json["error"] == "not_found"


def test_ack_with_an_invalid_uuid_is_400(api):
    resp = api.post("/ops/incidents/not-a-uuid/ack")
    assert resp.status_code == 400 and resp.json["error"] == "invalid_input"


def test_malformed_json_is_400_and_changes_nothing(api, conn):
    incident_id = _open(conn)
    resp = api.post(f"/ops/incidents/{incident_id}/ack", raw=b'{"reason": ')
    assert resp.status_code == 400 and resp.json["error"] == "invalid_json"
    assert conn.execute("SELECT status FROM incidents").fetchone()[0] == "open"


def test_a_body_that_is_not_an_object_is_400(api, conn):
    incident_id = _open(conn)
    resp = api.post(f"/ops/incidents/{incident_id}/ack", [1, 2])
    assert resp.status_code == 400


def test_resolve_then_ack_is_409(api, conn):
    incident_id = _open(conn)
    resolved = api.post(f"/ops/incidents/{incident_id}/resolve", {"note": "fixed"})
    assert resolved.status_code == 200 and resolved.json["incident"]["status"] == "resolved"
    resp = api.post(f"/ops/incidents/{incident_id}/ack")
    assert resp.status_code == 409 and resp.json["error"] == "conflict"
    assert conn.execute("SELECT status FROM incidents").fetchone()[0] == "resolved"


def test_trigger_opens_then_refreshes(api, conn):
    body = {"incident_key": "GET /x::slo_violation", "severity": "warning", "summary": "5xx on /x"}
    first = api.post("/ops/incidents", body)
    assert first.status_code == 201 and first.json["created"] is True
    second = api.post("/ops/incidents", body)
    assert second.status_code == 200 and second.json["created"] is False
    assert second.json["incident"]["id"] == first.json["incident"]["id"]
    assert conn.execute("SELECT count(*) FROM incidents").fetchone()[0] == 1


def test_trigger_rejects_bad_input_and_changes_nothing(api, conn):
    for body in ({"incident_key": "k"}, {"incident_key": "k", "severity": "minor"}, {"severity": "critical"},
                 {"incident_key": 5, "severity": "critical"}):
        resp = api.post("/ops/incidents", body)
        assert resp.status_code == 400, body
        assert resp.json["error"] == "invalid_input"
    assert api.post("/ops/incidents").status_code == 400, "an empty body"
    assert conn.execute("SELECT count(*) FROM incidents").fetchone()[0] == 0


def test_list_filters(api, conn):
    _open(conn, "GET /a::x", "critical")
    _open(conn, "GET /b::x", "warning")
    resolved = _open(conn, "GET /c::x", "warning")
    conn.execute("SELECT ops.resolve_incident(%s, 'test')", (resolved,))
    keys = lambda r: sorted(i["incidentKey"] for i in r.json["incidents"])
    assert keys(api.get("/ops/incidents")) == ["GET /a::x", "GET /b::x"]
    assert keys(api.get("/ops/incidents", query={"severity": "warning", "status": "all"})) == ["GET /b::x", "GET /c::x"]
    assert keys(api.get("/ops/incidents", query={"route": "GET /a"})) == ["GET /a::x"]
    assert api.get("/ops/incidents", query={"limit": "1"}).json["count"] == 1
    assert api.get("/ops/incidents", query={"status": "sideways"}, validate=False).status_code == 400
    assert api.get("/ops/incidents", query={"limit": "0"}, validate=False).status_code == 400


def test_tick_and_recalc(api, conn):
    conn.execute("SELECT ops.trigger_incident('GET /t::x', 'critical', p_now => now() - interval '10 minutes')")
    tick = api.post("/ops/escalation/tick", {})
    assert tick.status_code == 200 and tick.json["escalationsCount"] == 1
    assert conn.execute("SELECT source FROM ops.tick_log").fetchone()[0] == "api"
    recalc = api.post("/ops/escalation/recalc")
    assert recalc.status_code == 200 and recalc.json == {"ok": True, "recomputed": 0}


def test_me_permissions(api, conn):
    me = api.get("/me/permissions").json
    assert me["principal"] == "ops-bot" and me["roles"] == ["ops_admin"]
    assert "escalation.tick" in me["permissions"]
    conn.execute("SELECT ops.add_principal('vera', 'human', '{ops_viewer}', 'test')")
    vera = api.get("/me/permissions", actor="vera").json
    assert (vera["actor"], vera["permissions"]) == ("vera", ["incidents.read", "oncall.read"])
