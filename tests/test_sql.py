"""Runs every pgTAP file in tests/sql against its own freshly migrated database.

pg_prove fails on a `not ok`, a missing plan, a plan/count mismatch, and a file that
stops on an SQL error (it runs psql with ON_ERROR_STOP)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SQL_DIR = Path(__file__).parent / "sql"
FILES = sorted(SQL_DIR.glob("*.sql"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_pgtap(path: Path, db_url: str) -> None:
    res = subprocess.run(
        ["pg_prove", "--verbose", "--failures", "--dbname", db_url, str(path)],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, f"{path.name} failed:\n{res.stdout}\n{res.stderr}"
    assert "All tests successful" in res.stdout, res.stdout


def test_pgtap_files_exist() -> None:
    assert len(FILES) >= 8
