"""Migrations: safe to run twice, each exactly reversible, harmless without pg_cron."""

from __future__ import annotations

import difflib

import psycopg
from opsguard.migrate import MIGRATIONS, apply, yoyo_url
from schema import pg_dump_schema
from yoyo import get_backend, read_migrations


def test_migrate_twice_applies_nothing_the_second_time(db_url):
    assert apply(db_url) == [
        "pg_cron: skipped: pg_cron runs in database opsguard_cron (cron.database_name), not here"
    ]


def test_every_migration_has_a_rollback():
    ups = {p.name[: -len(".sql")] for p in MIGRATIONS.glob("*.sql") if not p.name.endswith(".rollback.sql")}
    downs = {p.name[: -len(".rollback.sql")] for p in MIGRATIONS.glob("*.rollback.sql")}
    assert ups and ups == downs


def test_rolling_everything_back_and_applying_again(db_url):
    backend = get_backend(yoyo_url(db_url))
    migrations = read_migrations(str(MIGRATIONS))
    with backend.lock():
        backend.rollback_migrations(backend.to_rollback(migrations))
    with psycopg.connect(db_url) as c:
        assert c.execute("SELECT to_regnamespace('ops')").fetchone()[0] is None
    apply(db_url)
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("SELECT ops.trigger_incident('GET /x::y', 'critical')")
        assert c.execute("SELECT count(*) FROM incidents").fetchone()[0] == 1


def test_without_pg_cron_the_tick_still_works(conn):
    assert conn.execute("SELECT ops.pg_cron_status()").fetchone()[0].startswith("pg_cron runs in database")
    assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'").fetchone()[0] == 0
    assert conn.execute("SELECT ops.escalation_tick()->>'state'").fetchone()[0] == "ran"


def test_a_fresh_database_gets_the_ops_search_path(pg_cluster):
    pg_cluster.psql("postgres", 'CREATE DATABASE "fresh_search_path"')
    try:
        url = pg_cluster.url("fresh_search_path")
        apply(url)
        with psycopg.connect(url) as c:
            assert c.execute("SHOW search_path").fetchone()[0] == '"$user", public, ops'
            assert c.execute("SELECT count(*) FROM escalation_events").fetchone()[0] == 0
    finally:
        pg_cluster.psql("postgres", 'DROP DATABASE "fresh_search_path" WITH (FORCE)')


# pg_dump --schema-only of the whole database is the yardstick for "the same schema"
_schema = pg_dump_schema


def _same(now: str, then: str) -> str:
    return "".join(difflib.unified_diff(then.splitlines(keepends=True), now.splitlines(keepends=True), n=2))


def test_each_rollback_undoes_exactly_its_migration(pg_cluster):
    """Upgrades and downgrades: migrations applied one by one to an empty database, each
    schema dumped; rolled back one by one, each rollback must give back the dump from
    before its migration; applied again, the full schema must be the same as the first time."""
    pg_cluster.psql("postgres", 'CREATE DATABASE "upgrade_path"')
    url = pg_cluster.url("upgrade_path")
    try:
        backend = get_backend(yoyo_url(url))
        migrations = read_migrations(str(MIGRATIONS))
        with backend.lock():
            backend.ensure_internal_schema_updated()
            before = [_schema(url)]
            for m in migrations:
                backend.apply_one(m)
                before.append(_schema(url))
            assert before[-1] != before[0]
            for i, m in reversed(list(enumerate(migrations))):
                backend.rollback_one(m)
                diff = _same(_schema(url), before[i])
                assert not diff, f"rolling back {m.id} did not restore the schema before it:\n{diff}"
            backend.apply_migrations(backend.to_apply(migrations))
        diff = _same(_schema(url), before[-1])
        assert not diff, f"applying everything again gives another schema:\n{diff}"
    finally:
        pg_cluster.psql("postgres", 'DROP DATABASE "upgrade_path" WITH (FORCE)')
