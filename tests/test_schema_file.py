"""db/schema.sql is what the migrations leave: a DBA reads the current definition of any
function there, so it must never drift from db/migrations."""

from __future__ import annotations

import difflib

from schema import SCHEMA_FILE, normalised_dump


def test_schema_file_matches_the_migrations(pg_cluster, template_db):
    dumped = normalised_dump(pg_cluster.url(template_db))
    committed = SCHEMA_FILE.read_text() if SCHEMA_FILE.exists() else ""
    diff = "".join(difflib.unified_diff(committed.splitlines(keepends=True), dumped.splitlines(keepends=True),
                                        "db/schema.sql (committed)", "the migrations", n=1))
    assert not diff, f"db/schema.sql is out of date: run `make schema` and commit it\n{diff[:6000]}"
