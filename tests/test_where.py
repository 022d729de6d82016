"""make where FN=...: which migrations define a function, so a change starts from the right body."""

from __future__ import annotations

import subprocess
import sys

from where import MIGRATIONS, definitions

REPO = MIGRATIONS.parent.parent


def _write(tmp_path, name, text):
    (tmp_path / name).write_text(text)


def test_lists_defining_altering_and_dropping_migrations_oldest_first(tmp_path):
    _write(tmp_path, "0001_a.sql", "CREATE FUNCTION ops.tick(p int) RETURNS int LANGUAGE sql RETURN 1;\n")
    _write(tmp_path, "0001_a.rollback.sql", "DROP FUNCTION ops.tick(int);\n")
    _write(tmp_path, "0002_b.sql", "ALTER FUNCTION ops.tick(int) SET search_path = ops;\n")
    _write(tmp_path, "0003_c.sql", "create or replace function ops.tick_step(p int) returns int language sql return 2;\n")
    _write(tmp_path, "0004_d.sql", "CREATE OR REPLACE FUNCTION ops.tick (p int) RETURNS int LANGUAGE sql RETURN 3;\n")
    _write(tmp_path, "0005_e.sql", "DROP FUNCTION IF EXISTS ops.tick(int);\n")
    assert definitions("ops.tick", tmp_path) == [
        ("0001_a.sql", "defines"), ("0002_b.sql", "alters"), ("0004_d.sql", "defines"), ("0005_e.sql", "drops")]
    assert definitions("tick_step", tmp_path) == [("0003_c.sql", "defines")]


def test_make_where_names_the_migration_whose_body_schema_sql_holds():
    out = subprocess.run(["make", "-s", "where", "FN=ops.escalation_tick"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    last = [line.split("\t")[0] for line in out if line.endswith("\tdefines")][-1]
    body = (MIGRATIONS / last).read_text()
    assert "FUNCTION ops.escalation_tick(" in body
    # no later forward migration mentions a new body of it
    later = [p for p in sorted(MIGRATIONS.glob("*.sql")) if p.name > last and not p.name.endswith(".rollback.sql")]
    assert not any("FUNCTION ops.escalation_tick(" in p.read_text() and "CREATE" in p.read_text() for p in later)


def test_a_name_that_is_no_function_name_is_refused():
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "where.py"), "ops.x; DROP"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "not a function name" in res.stderr
