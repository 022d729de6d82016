"""Fixtures: one throwaway PostgreSQL 15 cluster (pg_cron preloaded) per test session,
a migrated template database, and a fresh clone of it per test (~60 ms)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from localpg import Cluster, make_temp_datadir
from opsguard.migrate import apply
from pytest_postgresql.janitor import DatabaseJanitor

TEMPLATE = "opsguard_tpl"
CRON_DB = "opsguard_cron"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    cluster = Cluster(
        datadir=make_temp_datadir(),
        port=_free_port(),
        cron_database=CRON_DB,
        extra_options={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"},
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def template_db(pg_cluster: Cluster) -> str:
    """Migrated once; pgTAP lives here only (tests need it, production does not)."""
    pg_cluster.psql("postgres", f'CREATE DATABASE "{TEMPLATE}"')
    apply(pg_cluster.url(TEMPLATE))
    pg_cluster.psql(TEMPLATE, "CREATE EXTENSION pgtap")
    return TEMPLATE


@pytest.fixture
def db_url(pg_cluster: Cluster, template_db: str) -> Iterator[str]:
    """A fresh migrated database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    janitor = DatabaseJanitor(
        user="opsguard", host="127.0.0.1", port=pg_cluster.port, dbname=name, template_dbname=template_db
    )
    janitor.init()
    url = pg_cluster.url(name)
    # per-database settings are not copied from a template; migrations set the
    # search_path and the UTC time zone with these functions, so a clone calls them again
    pg_cluster.psql(name, "SELECT ops.use_ops_search_path(), ops.use_utc()")
    try:
        yield url
    finally:
        janitor.drop()


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


# --- the HTTP API -------------------------------------------------------------------------

SECRET = "test-secret"


class Api:
    """A Flask test client that signs requests as the seeds do and checks every answer
    against docs/openapi.yaml."""

    def __init__(self, client, spec):
        self.client, self.spec = client, spec

    def call(self, method: str, path: str, body=None, *, raw: bytes | None = None, secret: str | None = SECRET,
             signature: str | None = None, actor: str | None = None, timestamp: int | None = None,
             query: dict | None = None, validate: bool = True):
        import hashlib
        import hmac
        import json

        from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
        from werkzeug.test import EnvironBuilder
        from werkzeug.wrappers import Request

        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        headers = {"Content-Type": "application/json"}
        message = data if timestamp is None else f"{timestamp}.".encode() + data
        if signature is None and secret is not None:
            signature = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
        if signature is not None:
            headers["X-Signature"] = signature
        if timestamp is not None:
            headers["X-Timestamp"] = str(timestamp)
        if actor:
            headers["X-Ops-Actor"] = actor
        resp = self.client.open(path, method=method, data=data, headers=headers, query_string=query)
        if validate:
            req = Request(EnvironBuilder(path=path, method=method, data=data, headers=headers,
                                         query_string=query).get_environ())
            self.spec.validate_response(WerkzeugOpenAPIRequest(req), WerkzeugOpenAPIResponse(resp))
        return resp

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body, **kw)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)


@pytest.fixture(scope="session")
def openapi_spec():
    from pathlib import Path

    from openapi_core import OpenAPI

    return OpenAPI.from_file_path(str(Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml"))


@pytest.fixture
def app(db_url):
    from opsguard.app import create_app

    app = create_app({"DATABASE_URL": db_url, "OPS_HMAC_SECRET": SECRET, "TESTING": True})
    from opsguard.limits import limiter

    limiter.reset()
    yield app
    app.extensions["opsguard_pool"].close()


@pytest.fixture
def api(app, openapi_spec) -> Api:
    return Api(app.test_client(), openapi_spec)
