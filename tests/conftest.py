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
    # per-database settings are not copied from a template; the first migration's
    # function sets the search_path, so a clone calls it again
    pg_cluster.psql(name, "SELECT ops.use_ops_search_path()")
    try:
        yield url
    finally:
        janitor.drop()


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c
