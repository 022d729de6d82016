"""Fixtures: one throwaway PostgreSQL 15 cluster (pg_cron preloaded) per test session,
a migrated template database, and a fresh clone of it per test (~60 ms)."""

from __future__ import annotations

import hashlib
import hmac
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from localpg import Cluster, make_temp_datadir
from opsguard.dispatcher import Dispatcher, Options
from opsguard.migrate import apply
from pytest_postgresql.janitor import DatabaseJanitor
from standins import Standins

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


@pytest.fixture
def dispatcher(db_url: str) -> Iterator[Dispatcher]:
    """The notification dispatcher on a fresh database, 1 s HTTP timeout (tests/test_dispatcher.py,
    tests/test_escalation_paging.py)."""
    d = Dispatcher(Options(dsn=db_url, timeout_s=1.0, worker="d1"))
    d.connect()
    yield d
    d.close()


@pytest.fixture(scope="session")
def standins_certdir(tmp_path_factory) -> Path:
    """One self-signed certificate for every test's SMTP stand-in (openssl runs once)."""
    return tmp_path_factory.mktemp("standins-cert")


@pytest.fixture
def standins(standins_certdir: Path) -> Iterator[Standins]:
    """The senders' providers on free ports (scripts/standins): .smtp (aiosmtpd, STARTTLS
    required), .twilio (Twilio's Messages/Calls REST shape), .slack (Slack's Web API) and .hooks
    (records any POST: webhook pages, response_url replies); each keeps what it received."""
    s = Standins(certdir=standins_certdir).start()
    yield s
    s.stop()


@pytest.fixture
def page_dispatcher(db_url: str, standins: Standins) -> Iterator[Dispatcher]:
    """The dispatcher with every sender pointed at the stand-ins (SMTP through the smtp_host and
    smtp_port settings, which the test sets)."""
    d = Dispatcher(Options(dsn=db_url, timeout_s=5.0, worker="d1", senders=standins.env()))
    d.connect()
    yield d
    d.close()


# --- the HTTP API -------------------------------------------------------------------------

SECRET = "test-secret"


def sign_v1(secret: str, timestamp: int | str, method: str, target: str, body: bytes) -> str:
    """The X-Signature value of docs/api.md#signatures (v1), written out independently of the
    server's code."""
    message = f"v1:{timestamp}:{method.upper()}:{target}:".encode() + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_body_only(secret: str, body: bytes) -> str:
    """The older body-only scheme: the raw body alone."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Api:
    """A Flask test client that signs requests v1 (or body-only, as older scripts do, with
    scheme="body-only") and checks every answer against docs/openapi.yaml."""

    def __init__(self, client, spec):
        self.client, self.spec = client, spec
        self._signed_writes: set[bytes] = set()

    def _fresh_timestamp(self, method: str, target: str, data: bytes) -> int:
        """Now, or a second earlier for each identical write already signed: a write's
        signature is accepted once, and a test may repeat the same write on purpose."""
        import time

        ts = int(time.time())
        while method != "GET" and f"{ts}:{method}:{target}:".encode() + data in self._signed_writes:
            ts -= 1
        self._signed_writes.add(f"{ts}:{method}:{target}:".encode() + data)
        return ts

    def call(self, method: str, path: str, body=None, *, raw: bytes | None = None, secret: str | None = SECRET,
             signature: str | None = None, actor: str | None = None, timestamp: int | str | None = None,
             query: dict | None = None, validate: bool = True, scheme: str = "v1",
             sign_as: tuple[str, str] | None = None):
        """sign_as=(METHOD, target) signs for another request than the one sent (attacks)."""
        import json
        from urllib.parse import urlencode

        from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
        from werkzeug.test import EnvironBuilder
        from werkzeug.wrappers import Request

        assert scheme in ("v1", "body-only"), scheme
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        headers = {"Content-Type": "application/json"}
        query_string = urlencode(query) if query else ""
        target = path + (f"?{query_string}" if query_string else "")
        if signature is None and secret is not None:
            if scheme == "body-only":
                signature = sign_body_only(secret, data)
            else:
                signed_method, signed_target = sign_as or (method, target)
                if timestamp is None:
                    timestamp = self._fresh_timestamp(signed_method, signed_target, data)
                signature = sign_v1(secret, timestamp, signed_method, signed_target, data)
        if signature is not None:
            headers["X-Signature"] = signature
        if timestamp is not None:
            headers["X-Timestamp"] = str(timestamp)
        if actor:
            headers["X-Ops-Actor"] = actor
        resp = self.client.open(path, method=method, data=data, headers=headers, query_string=query_string)
        if validate:
            req = Request(EnvironBuilder(path=path, method=method, data=data, headers=headers,
                                         query_string=query_string).get_environ())
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
