"""The RBAC matrix: each role x each endpoint, through the API, decided in SQL.

ops-bot (a trusted signer) names a person holding exactly one role; a service key
(OPS_HMAC_KEYS) signs as itself."""

from __future__ import annotations

import pytest
from conftest import SECRET, Api
from opsguard.app import create_app

ENDPOINTS = {
    "tick": ("POST", "/ops/escalation/tick", "escalation.tick"),
    "recalc": ("POST", "/ops/escalation/recalc", "escalation.recalc"),
    "ack": ("POST", "/ops/incidents/{id}/ack", "incidents.ack"),
    "resolve": ("POST", "/ops/incidents/{id}/resolve", "incidents.resolve"),
    "trigger": ("POST", "/ops/incidents", "incidents.trigger"),
    "list": ("GET", "/ops/incidents", "incidents.read"),
}
ROLES = {
    "ops_admin": {"tick", "recalc", "ack", "resolve", "trigger", "list"},
    "ops_responder": {"ack", "resolve", "trigger", "list"},
    "ops_viewer": {"list"},
    "ci": {"list"},
}


@pytest.mark.parametrize("role", sorted(ROLES))
@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_role_by_endpoint(api, conn, role, endpoint):
    conn.execute("SELECT ops.add_principal('person', 'human', %s, 'test')", ([role],))
    incident_id = conn.execute("SELECT id FROM ops.trigger_incident('GET /m::x', 'critical')").fetchone()[0]
    method, path, _ = ENDPOINTS[endpoint]
    body = {"incident_key": "GET /n::x", "severity": "warning"} if endpoint == "trigger" else None
    resp = api.call(method, path.format(id=incident_id), body, actor="person")
    allowed = endpoint in ROLES[role]
    assert (resp.status_code < 300) == allowed, resp.json
    if not allowed:
        assert resp.status_code == 403 and resp.json["error"] == "forbidden"
    assert conn.execute("SELECT ops.has_permission('person', %s)", (ENDPOINTS[endpoint][2],)).fetchone()[0] == allowed, \
        "psql and the API agree"


def test_a_service_key_signs_as_itself_and_may_not_delegate(db_url, conn, openapi_spec):
    conn.execute("SELECT ops.add_principal('pipeline', 'service', '{ci}', 'test')")
    app = create_app({"DATABASE_URL": db_url, "OPS_HMAC_SECRET": SECRET, "OPS_HMAC_KEYS": "pipeline=ci-secret"})
    try:
        api = Api(app.test_client(), openapi_spec)
        assert api.get("/me/permissions", secret="ci-secret").json["principal"] == "pipeline"
        assert api.post("/ops/escalation/tick", {}, secret="ci-secret").status_code == 403
        assert api.get("/me/permissions", secret="ci-secret", actor="ops-bot").status_code == 403
    finally:
        app.extensions["opsguard_pool"].close()
