"""Errors are JSON with a code: oversize bodies, unknown routes, rate limits, and a
database that goes away and comes back (503 fast, recovery without a restart)."""

from __future__ import annotations

import socket
import time

from conftest import SECRET, Api
from localpg import Cluster, make_temp_datadir
from opsguard.app import create_app
from opsguard.migrate import apply


def test_a_body_over_the_limit_is_413(db_url, openapi_spec):
    app = create_app({"DATABASE_URL": db_url, "OPS_HMAC_SECRET": SECRET, "MAX_CONTENT_LENGTH": 1024})
    try:
        resp = Api(app.test_client(), openapi_spec).post("/ops/escalation/tick", {"pad": "x" * 2000})
        assert resp.status_code == 413 and resp.json["error"] == "payload_too_large"
    finally:
        app.extensions["opsguard_pool"].close()


def test_unknown_routes_and_methods_answer_json(api):
    assert api.get("/nope", validate=False).json["error"] == "not_found"
    resp = api.call("DELETE", "/ops/incidents", validate=False)
    assert resp.status_code == 405 and resp.json["error"] == "method_not_allowed"


def test_the_tick_is_limited_to_10_per_minute(api):
    codes = [api.post("/ops/escalation/tick", {}).status_code for _ in range(11)]
    assert codes == [200] * 10 + [429]
    resp = api.post("/ops/escalation/tick", {})
    assert resp.json["error"] == "rate_limited"


def test_database_down_is_503_within_seconds_and_recovers(openapi_spec):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cluster = Cluster(datadir=make_temp_datadir(), port=port, cron_database="postgres")
    cluster.start()
    app = None
    try:
        cluster.psql("postgres", "CREATE DATABASE flaky")
        apply(cluster.url("flaky"))
        app = create_app({"DATABASE_URL": cluster.url("flaky"), "OPS_HMAC_SECRET": SECRET})
        api = Api(app.test_client(), openapi_spec)
        assert api.get("/me/permissions").status_code == 200

        cluster.stop()
        started = time.monotonic()
        resp = api.get("/me/permissions")
        assert resp.status_code == 503 and resp.json["error"] == "database_unavailable"
        assert time.monotonic() - started < 3.5
        assert api.get("/healthz").status_code == 503

        cluster.start()
        deadline = time.monotonic() + 15
        while api.get("/me/permissions").status_code != 200:
            assert time.monotonic() < deadline, "the API did not recover when the database came back"
            time.sleep(0.3)
    finally:
        if app:
            app.extensions["opsguard_pool"].close()
        cluster.destroy()


def test_the_api_connects_as_a_role_that_can_only_execute_its_functions(app):
    import psycopg
    import pytest

    with app.extensions["opsguard_pool"].connection() as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "opsguard_api"
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM ops.incidents")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT ops.escalation_tick()")
