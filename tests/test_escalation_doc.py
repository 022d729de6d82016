"""docs/escalation.md against the database: "How a tick runs" names every step of the tick by a
name psql's \\sf finds, and the settings table shows the defaults ops.settings.default_value holds
(the one place a default lives)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "escalation.md"


def section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(f"### {title}\n")
    end = text.find("\n#", start + 1)
    return text[start:end]


def test_how_a_tick_runs_names_every_step(db_url, conn):
    named = set(re.findall(r"`ops\.(_tick_\w+)\(", section("How a tick runs")))
    steps = {r[0] for r in conn.execute(
        "SELECT p.proname FROM pg_proc AS p JOIN pg_namespace AS n ON p.pronamespace = n.oid"
        " WHERE n.nspname = 'ops' AND p.proname LIKE '\\_tick\\_%'").fetchall()}
    assert steps and named == steps
    for step in sorted(named):
        res = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", db_url, "-c", f"\\sf ops.{step}"],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and f"ops.{step}(" in res.stdout, res.stderr


def test_settings_table_shows_the_defaults_the_database_holds(conn):
    text = DOC.read_text()
    table = text[text.index("| setting | default | meaning |"):]
    rows = re.findall(r"^\| `(\w+)` \| (`[^`]*`|empty) \|", table, flags=re.M)
    assert len(rows) >= 10
    stored = dict(conn.execute("SELECT key, default_value #>> '{}' FROM ops.settings").fetchall())
    for key, shown in rows:
        assert stored[key] == ("" if shown == "empty" else shown.strip("`")), key
